"""``lobbyd check`` on broken copies of a shipped device profile: file:line:column, plain words, did-you-mean."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from daemon.check import check, format_result
from daemon.schema import json_schemas
from daemon.yamlsource import ConfigError
from drivers.modbus import load_profile

ROOT = Path(__file__).resolve().parents[3]

#: Library phrasing that must never reach the person editing a profile.
BANNED = (
    "Input should be",
    "Input tag",
    "found using",
    "valid dictionary",
    "instance of",
    "Value error",
    "[key]",
    "validation error",
    "pydantic",
    "Field required",
    "Extra inputs",
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the shipped config/ and rules/; returns the config file."""
    shutil.copytree(ROOT / "config", tmp_path / "config", ignore=shutil.ignore_patterns("schema"))
    shutil.copytree(ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("*.md"))
    return tmp_path / "config" / "lobbyd.yaml"


def edit(path: Path, old: str, new: str, at: str | None = None) -> tuple[int, int]:
    """Replace the one occurrence of ``old``; return the line and column of ``at`` (default: ``new``) in it."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path.name}"
    start = text.index(old)
    before = text[: start + new.index(at) if at else start]
    path.write_text(text.replace(old, new), encoding="utf-8")
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


# (profile, old text, new text, where the error points in the new text, expected message)
BROKEN = [
    (
        "freshair-standard",
        "    writable: true\n  fan_output:",
        "    writeable: true\n  fan_output:",
        "writeable",
        "unknown key 'writeable' (did you mean 'writable'?)",
    ),
    ("freshair-standard", "readback_delay_s: 0", "readback_dealy_s: 0", None, "did you mean 'readback_delay_s'?"),
    (
        "freshair-standard",
        "    register: input\n    address: 1",
        "    register: inputs\n    address: 1",
        "inputs",
        "'inputs' is not a valid register (did you mean 'input'?); use one of: holding, coil, input, discrete",
    ),
    (
        "freshair-standard",
        "kind: enum",
        "kind: enums",
        "enums",
        "unknown encoder kind 'enums' (did you mean 'enum'?); use one of: scale, percent, dali_arc",
    ),
    (
        "freshair-standard",
        "      write: {0: 0",
        "      wirte: {0: 0",
        "wirte",
        "unknown key 'wirte' (did you mean 'write'?)",
    ),
    (
        "lighting-standard",
        "readback_address: 10",
        "readback_address: 70000",
        "70000",
        "readback_address must be at most 65535, found 70000",
    ),
    (
        "lighting-standard",
        "    min: 2700",
        "    min: warm",
        "warm",
        "min must be a number, found 'warm'",
    ),
    (
        "freshair-standard",
        "    data_type: uint16\n    encoder: {kind: percent}",
        "    data_type: uint64\n    encoder: {kind: percent}",
        "uint64",
        "'uint64' is not a valid data_type (did you mean 'uint16'?)",
    ),
    (
        "freshair-standard",
        "      write: {0: 0, 1: 1,",
        "      write: {zero: 0, 1: 1,",
        "zero",
        "the key 'zero' under 'write' must be a number",
    ),
]


@pytest.mark.parametrize("case", BROKEN, ids=[b[4][:40] for b in BROKEN])
def test_check_reports_a_broken_profile_in_plain_words(site: Path, case: tuple[str, str, str, str | None, str]) -> None:
    name, old, new, at, message = case
    profile = site.parent / "devices" / f"{name}.yaml"
    line, column = edit(profile, old, new, at)
    result = check(site)
    assert not result.ok
    ours = [e for e in result.errors if e.file == str(profile) and message in e.message]
    assert len(ours) == 1, format_result(result)
    assert (ours[0].line, ours[0].column) == (line, column), format_result(result)
    text = format_result(result)
    assert not [b for b in BANNED if b in text], text
    assert "unknown device point" not in text  # the safety entries of that device are not blamed too


def test_the_cli_prints_position_and_suggestion_and_exits_2(site: Path) -> None:
    profile = site.parent / "devices" / "freshair-standard.yaml"
    line, column = edit(profile, "    writable: true\n  fan_output:", "    writeable: true\n  fan_output:", "writeable")
    argv = [sys.executable, "-m", "daemon", "check", "--config", str(site)]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    expected = (
        f"{profile}:{line}:{column}: unknown key 'writeable' (did you mean 'writable'?) (points.fan_speed.writeable)"
    )
    assert expected in done.stdout.splitlines(), done.stdout
    assert "device profile freshair-standard.yaml is invalid" in done.stdout


def test_every_problem_in_one_run_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "name: x\nbse: 1\npoints:\n"
        "  p: {address: -1, writable: maybe}\n"
        "  q: {address: 2, encoder: {scale: 2}}\n"
        "  r: 5\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    got = [(e.line, e.column, e.message) for e in info.value.errors]
    assert got == [
        (2, 1, "unknown key 'bse' (did you mean 'base'?)"),
        (4, 16, "address must be at least 0, found -1"),
        (4, 30, "writable must be true or false, found 'maybe'"),
        (5, 19, "encoder needs a 'kind': one of scale, percent, dali_arc, kelvin, kelvin_div10, mirek, enum"),
        (6, 6, "'r' must be a mapping (lines of 'key: value'), found 5"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file must be a mapping (lines of 'key: value') with at least name: and points:, found nothing"),
        ("- a\n", "the file must be a mapping (lines of 'key: value') with at least name: and points:, found a list"),
        ("points: {}\n", "missing required key 'name'"),
        ("name: x\npoints:\n  p: {address: 1, foo: 2}\n", "unknown key 'foo' (known keys here: description, register"),
    ],
)
def test_empty_or_shapeless_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert message in info.value.errors[0].message


_KEYS = ["register", "address", "data_type", "word_order", "encoder", "min", "writable", "bit", "role", "tolerance"]
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.sampled_from(["kind", "write", "scale", "x"]), st.text(max_size=6), max_size=3),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(point=st.dictionaries(st.sampled_from([*_KEYS, "writeable", "adress"]), _VALUES, max_size=6))
def test_any_point_loads_or_gets_a_plain_positioned_message(tmp_path: Path, point: dict[str, object]) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(f"name: x\npoints:\n  p: {json.dumps(point)}\n", encoding="utf-8")
    try:
        load_profile(path)
    except ConfigError as exc:
        assert exc.errors
        for e in exc.errors:
            assert e.file == str(path) and e.line >= 1 and e.column >= 1
            assert not [b for b in BANNED if b in e.message], e.message


def test_check_a_profile_no_device_uses_yet(site: Path) -> None:
    """An integrator checks a new profile before any device entry names it."""
    new = site.parent / "devices" / "new-unit.yaml"
    new.write_text("name: new-unit\npoints:\n  fan:\n    address: 3\n    writeable: true\n", encoding="utf-8")
    result = check(site, [new])
    assert [str(e) for e in result.errors] == [
        f"{new}:5:5: unknown key 'writeable' (did you mean 'writable'?) (points.fan.writeable)"
    ]
    new.write_text("name: new-unit\npoints:\n  fan:\n    address: 3\n    writable: true\n", encoding="utf-8")
    result = check(site, [new])
    assert result.ok, format_result(result)
    assert result.profiles == [new.resolve()]
    assert format_result(result).endswith("rule(s), 1 device profile(s)")
    assert [p.name for p in result.files] == ["air-quality.yaml", "lighting.yaml", "schedules.yaml"]


_TYPED = {  # values of the right JSON type (the loader also coerces "3" and true to numbers; the schema does not)
    "register": st.sampled_from(["holding", "coil", "input", "discrete", "holdng"]),
    "address": st.integers(min_value=-2, max_value=70000),
    "data_type": st.sampled_from(["int16", "uint16", "int32", "float32", "bool", "int64"]),
    "word_order": st.sampled_from(["big", "little", "middle"]),
    "bit": st.integers(min_value=-1, max_value=17),
    "min": st.floats(allow_nan=False, allow_infinity=False),
    "writable": st.booleans(),
    "readable": st.booleans(),
    "role": st.sampled_from(["setpoint", "status", "both"]),
    "tolerance": st.floats(min_value=-1, max_value=10),
    "poll_interval_s": st.floats(min_value=-1, max_value=100),
    "encoder": st.sampled_from(
        [{"kind": "scale", "scale": 0.1}, {"kind": "percent", "raw_max": 254}, {"kind": "mirek"}, {"kind": "dali"}]
    ),
    "writeable": st.booleans(),
}


@settings(max_examples=300, deadline=None)
@given(point=st.fixed_dictionaries({}, optional=_TYPED))
def test_the_schema_never_flags_a_profile_the_loader_accepts(point: dict[str, object]) -> None:
    """Editors use the schema: a red mark on a profile the daemon runs would teach staff to ignore it."""
    doc = {"name": "x", "points": {"p": point}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        path.write_text(json.dumps(doc), encoding="utf-8")
        try:
            load_profile(path)
        except ConfigError:
            return  # the loader also checks what the schema cannot (e.g. a bit point is read-only)
    found = [e.message for e in Draft202012Validator(json_schemas()["profile"]).iter_errors(doc)]
    assert found == []
