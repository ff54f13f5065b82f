"""``lobbyd check`` on deliberately broken copies of the shipped config and rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from daemon.check import check, format_result

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the shipped config/ and rules/; returns the config file."""
    shutil.copytree(ROOT / "config", tmp_path / "config", ignore=shutil.ignore_patterns("schema"))
    shutil.copytree(ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("*.md"))
    return tmp_path / "config" / "lobbyd.yaml"


def edit(path: Path, old: str, new: str) -> tuple[int, int]:
    """Replace the one occurrence of ``old``; return the 1-based line and column where it stood."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path.name}"
    before = text[: text.index(old)]
    line = before.count("\n") + 1
    col = len(before) - (before.rfind("\n") + 1) + 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    return line, col


def test_shipped_files_are_valid(site: Path) -> None:
    result = check(site)
    assert result.ok, format_result(result)
    # The one shipped threshold without hysteresis: the "outdoor worse than indoor" factor (issue 20;
    # the rule tuning adds its off_below). A warning only: check does not reject it.
    assert result.warnings == []  # every threshold of the shipped rules has hysteresis (issue 20)
    assert [p.name for p in result.files] == ["air-quality.yaml", "lighting.yaml", "schedules.yaml"]
    assert result.rules is not None
    assert {"pm25-high", "daylight-cct"} <= {r.id for r in result.rules.ruleset.rules}
    assert format_result(result).splitlines()[-1].startswith(f"ok: {site} and 3 rule file(s)")


PM25_HIGH_BLOCK = "  - id: pm25-high\n"


def _in_pm25_high(rules: Path, old: str, new: str) -> tuple[int, int]:
    """Edit ``old`` inside the pm25-high rule (the first occurrence after its id)."""
    f = rules / "air-quality.yaml"
    text = f.read_text(encoding="utf-8")
    start = text.index(PM25_HIGH_BLOCK)
    at = text.index(old, start)
    before = text[:at]
    f.write_text(before + new + text[at + len(old) :], encoding="utf-8")
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


@pytest.mark.parametrize(
    ("old", "new", "message", "column_shift"),
    [
        ("above: 35", "abve: 35", "unknown key 'abve' (did you mean 'above'?)", 0),
        ("off_below: 25", "off_below: 40", "'off_below' (40) must be lower than 'above' (35)", 0),
        ("set: 3", "set: 7", "7 is outside the range of fresh_air.fan_speed (one of [0, 1, 2, 3])", 5),
        ("zone: hall", "zone: hal", "no sensor measures pm25 in zone 'hal' (did you mean 'hall'?)", 6),
        ("target: fresh_air.fan_speed", "target: fresh_air.fan_sped", "did you mean 'fresh_air.fan_speed'?", 8),
        ("aggregate: max", "aggregate: maximum", "'maximum' is not allowed for 'aggregate'; write one of", 11),
        ("priority: 50", "priority: high", "'high' is not a whole number; write e.g. priority: 50", 10),
    ],
)
def test_rule_errors_have_position_and_suggestion(
    site: Path, old: str, new: str, message: str, column_shift: int
) -> None:
    line, col = _in_pm25_high(site.parent.parent / "rules", old, new)
    result = check(site)
    assert not result.ok
    assert len(result.errors) == 1, format_result(result)
    err = result.errors[0]
    assert err.file.endswith("air-quality.yaml")
    assert message in err.message
    if "'off_below'" not in message:  # a cross-field error points at the condition, not the key
        assert (err.line, err.column) == (line, col + column_shift)
    out = format_result(result)
    assert out.splitlines()[-1] == "1 error(s) in 1 file(s); nothing was changed"


def test_unknown_sensor_and_schedule_with_did_you_mean(site: Path) -> None:
    rules = site.parent.parent / "rules"
    l1, c1 = edit(rules / "lighting.yaml", "input: hall-daylight\n        points", "input: hall-lx\n        points")
    l2, c2 = edit(
        rules / "air-quality.yaml", "- schedule: opening-hours\n    set: 1", "- schedule: opening-hour\n    set: 1"
    )
    result = check(site)
    got = sorted((Path(e.file).name, e.line, e.column, e.message) for e in result.errors)
    assert got == [
        ("air-quality.yaml", l2, c2 + 12, "unknown schedule 'opening-hour' (did you mean 'opening-hours'?)"),
        ("lighting.yaml", l1, c1 + 7, "unknown sensor 'hall-lx' (did you mean 'hall-lux'?)"),
    ]


def test_config_errors_are_positioned_and_rules_still_shape_checked(site: Path) -> None:
    line, col = edit(site, "  latitude: 31.23", "  lattitude: 31.23")
    result = check(site)
    typo = [e for e in result.errors if e.message == "unknown key 'lattitude' (did you mean 'latitude'?)"]
    assert [(e.line, e.column) for e in typo] == [(line, col + 2)]
    assert format_result(result).endswith("nothing was changed")
    assert result.loaded is None


def test_unknown_sensor_in_config_safety_and_duplicate_rule_ids(site: Path) -> None:
    rules = site.parent.parent / "rules"
    edit(rules / "lighting.yaml", "- id: after-hours-brightness", "- id: pm25-high")
    result = check(site)
    assert len(result.errors) == 1
    assert "rule id 'pm25-high' is already used in" in result.errors[0].message
    assert result.errors[0].file.endswith("lighting.yaml")


def test_yaml_syntax_error_has_position(site: Path) -> None:
    rules = site.parent.parent / "rules"
    (rules / "broken.yaml").write_text("rules:\n  - id: x\n    target: [unclosed\n", encoding="utf-8")
    result = check(site)
    assert len(result.errors) == 1
    err = result.errors[0]
    assert err.file.endswith("broken.yaml") and err.line >= 3 and err.message.startswith("YAML syntax:")


def test_check_an_edited_copy_against_the_rules_directory(site: Path, tmp_path: Path) -> None:
    edited = tmp_path / "edits" / "air-quality.yaml"
    edited.parent.mkdir()
    shutil.copy(site.parent.parent / "rules" / "air-quality.yaml", edited)
    assert check(site, [edited]).ok  # schedules come from rules/schedules.yaml; no duplicate ids
    edit(edited, "off_below: 60", "off_below: 80")
    result = check(site, [edited])
    assert [Path(e.file) for e in result.errors] == [edited]
    assert "'off_below' (80) must be lower than 'above' (75)" in result.errors[0].message
    assert check(site, [tmp_path / "nope.yaml"]).errors[0].message == "no such file or directory"


def test_curve_outside_the_point_range_is_a_warning(site: Path) -> None:
    line, col = edit(site.parent.parent / "rules" / "lighting.yaml", "[1500, 5000]", "[1500, 6500]")
    result = check(site)
    ranges = [w for w in result.warnings if "off_below" not in w.message]  # not the shipped outdoor one
    assert result.ok and len(ranges) == 1
    w = ranges[0]
    assert (w.line, w.column) == (line, col + 7)
    assert w.message == "6500 is outside the range of lights.cct (2700..5000); it will be clamped to 5000"
    assert "warning: 6500 is outside" in format_result(result)


FAN_STEPS = """
rules:
  - id: fan-by-lux
    description: A fan speed from a table, and one from a curve.
    target: fresh_air.fan_speed
    priority: 5
    set:
      steps:
        input: hall-lux
        table:
          - [0, 1]
          - [300, 1.5]
  - id: fan-curve
    description: A curve cannot drive a point that takes only some values.
    target: fresh_air.fan_speed
    priority: 6
    set:
      curve:
        input: hall-lux
        points: [[0, 0], [1000, 3]]
    ramp_per_minute: 1
"""


def test_a_value_an_enum_point_does_not_take_is_refused_not_rounded(site: Path) -> None:
    (site.parent.parent / "rules" / "fan.yaml").write_text(FAN_STEPS, encoding="utf-8")
    result = check(site)
    messages = [(e.line, e.message) for e in result.errors]
    takes = "fresh_air.fan_speed takes one of [0, 1, 2, 3]"
    assert messages == [
        (12, f"{takes}; 1.5 is not one of them"),
        (18, f"{takes}; a curve gives values between them: use steps instead"),
        (21, f"{takes}; a ramp gives values between them: remove the ramp"),
    ], messages
