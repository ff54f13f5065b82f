"""Issue 17: rule files fuzzed through the real loading code (``load_rules`` against the shipped config).

Random YAML-ish text, mutated shipped rule files and alias-heavy files (1 400 cases in all, derandomized,
~10 s): no
exception escapes, and every rejection names the file, a line and a column, in words of ours
rather than the YAML or validation library's.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.config import load_config
from daemon.rules.load import RuleContext, load_rules
from daemon.yamlsource import YamlLimits
from tests.e2e.harness import REPO
from tests.fuzzing import examples

CTX: RuleContext = load_config(REPO / "config" / "lobbyd.yaml").rule_context()
SHIPPED = [p.read_text(encoding="utf-8") for p in sorted((REPO / "rules").glob("*.yaml"))]
# Small limits, so that the fuzzer reaches them too.
LIMITS = YamlLimits(max_bytes=4096, max_alias_values=200, max_depth=12)
LIBRARY_WORDS = re.compile(
    r"ruamel|pydantic|Traceback|<unicode string>|For further information|instance of|Input should|valid dictionary"
    r"|mapping values|ScannerError|ParserError|Value error|function-before|block end|cannot start any token"
    r"|while scanning|Field required|Extra inputs|Unable to extract|found unexpected|expected <|found character"
)

TOKENS = [
    "rules:", "schedules:", "\n", "\n  ", "\n    ", "  ", "- ", "id: ", "target: ", "set: ", "when:", "priority: ",
    "safe_value: ", "ramp_per_minute: ", "sensor: ", "zone: ", "quantity: ", "above: ", "below: ", "off_below: ",
    "for: ", "curve:", "steps:", "points: ", "table: ", "circadian:", "min_k: ", "time: ", "after: ", "before: ",
    "cron: ", "sun: ", "schedule: ", "mon: ", "holidays: ", "fresh_air.fan_speed", "lights.cct", "hall-pm25",
    "hall", "pm25", "opening-hours", "sunset+30m", "\"08:30\"", "'24:00'", "5m", "1e999", "-1e999", ".nan", ".inf",
    "-0", "99999999999999999999", "0x1F", "true", "null", "~", "[", "]", "{", "}", ", ", ": ", "&a ", "*a", "&b ",
    "*b", "<<: ", "!!str ", "!!binary ", "!custom ", "? ", "|\n", ">-\n", "# c", "---\n", "...\n", "%YAML 1.2\n",
    "\t", "\x00", "\x85", "\ufeff", "é", "µg/m³", "\\", "\"", "'", "%", "@", "`",
]  # fmt: skip


@pytest.fixture(scope="module")
def rule_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d) / "fuzz.yaml"


def _load_and_check(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    result = load_rules(path.parent, CTX, files=[path], limits=LIMITS)  # any exception fails the test
    for err in result.errors:
        assert err.file == str(path), err
        assert err.line >= 1 and err.column >= 1, err
        text = str(err)
        assert text.startswith(f"{path}:{err.line}:{err.column}: ") and err.message.strip(), text
        assert not LIBRARY_WORDS.search(text), text
    if not result.ok:
        assert not result.ruleset.rules  # a file that never validated contributes nothing


LOADER_FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=[*HealthCheck])
yamlish = st.lists(st.sampled_from(TOKENS) | st.text(max_size=4), max_size=60).map("".join)


@settings(LOADER_FUZZ, max_examples=examples(600, 120))
@given(text=yamlish)
def test_random_yamlish_text_never_crashes_the_loader(rule_file: Path, text: str) -> None:
    _load_and_check(rule_file, text.encode("utf-8", "surrogatepass"))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    text = draw(st.sampled_from(SHIPPED))
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "number", "truncate", "indent"]))
        if not lines:
            break
        if kind == "delete":
            del lines[i]
        elif kind == "insert":
            col = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:col] + draw(st.sampled_from(TOKENS)) + lines[i][col:]
        elif kind == "duplicate":
            lines[i:i] = [lines[i]] * draw(st.integers(1, 3))
        elif kind == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "number":
            value = draw(st.sampled_from(["1e999", "-1", "nan", "-0.0", "99999999999", "1e-320", "'3'", "[3]"]))
            lines[i] = re.sub(r"-?\d+(\.\d+)?", value, lines[i], count=1)
        elif kind == "truncate":
            lines = lines[:i]
        else:
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
    data = "".join(lines).encode()
    if draw(st.booleans()) and data:  # a byte flipped: not UTF-8, a control character, a stray quote
        k = draw(st.integers(0, len(data) - 1))
        data = data[:k] + bytes([draw(st.integers(0, 255))]) + data[k + 1 :]
    return data


@settings(LOADER_FUZZ, max_examples=examples(600, 120))
@given(data=mutated())
def test_mutated_shipped_rule_files_never_crash_the_loader(rule_file: Path, data: bytes) -> None:
    _load_and_check(rule_file, data)


@st.composite
def alias_heavy(draw: st.DrawFn) -> bytes:
    """Anchors that alias earlier ones (or themselves), merge keys, nesting: the limits' own territory."""
    lines = ["a0: &a0 [x" + ", x" * draw(st.integers(0, 9)) + "]"]
    for i in range(1, draw(st.integers(1, 8))):
        refs = [f"*a{draw(st.integers(0, i - 1))}" for _ in range(draw(st.integers(1, 12)))]
        if draw(st.integers(0, 19)) == 0:
            refs.append(f"*a{i}")  # an alias inside its own block
        if draw(st.booleans()):
            lines.append(f"a{i}: &a{i} [" + ", ".join(refs) + "]")
        else:
            lines.append(f"a{i}: &a{i} {{<<: *a{draw(st.integers(0, i - 1))}, k: [" + ", ".join(refs) + "]}")
    depth = draw(st.integers(0, 16))
    lines.append("rules: " + "[" * depth + f"*a{len(lines) - 1}" + "]" * depth)
    return ("\n".join(lines) + "\n").encode()


@settings(LOADER_FUZZ, max_examples=examples(200, 60))
@given(data=alias_heavy())
def test_aliases_and_nesting_never_crash_the_loader(rule_file: Path, data: bytes) -> None:
    _load_and_check(rule_file, data)
