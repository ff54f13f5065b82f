"""Loading a rules directory: per-file validation, last good versions, references, positions."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from daemon.rules.durations import (
    DURATION_SCHEMA,
    WEEKDAYS_SCHEMA,
    parse_duration,
    parse_rule_duration,
    parse_weekdays,
)
from daemon.rules.load import RuleContext, load_rules
from tests.engine.helpers import LIMITS, SENSORS

CTX = RuleContext(SENSORS, LIMITS)

SCHEDULES = """schedules:
  opening-hours:
    mon: ["08:30", "17:30"]
"""
GOOD = """rules:
  - id: pm25-high
    target: fresh_air.fan_level
    when:
      - sensor: hall-pm25
        above: 35
        off_below: 25
    set: 3
"""
GOOD_V2 = GOOD.replace("set: 3", "set: 2")
BAD_SHAPE = GOOD.replace("off_below: 25", "off_below: 40")


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_file_keeps_its_last_good_version_in_memory(tmp_path: Path) -> None:
    d = tmp_path / "rules"
    write(d, "schedules.yaml", SCHEDULES)
    write(d, "air.yaml", GOOD)
    first = load_rules(d, CTX)
    assert first.ok and [r.id for r in first.ruleset.rules] == ["pm25-high"]
    write(d, "air.yaml", BAD_SHAPE)
    second = load_rules(d, CTX, previous=first)
    assert len(second.errors) == 1
    err = second.errors[0]
    assert (Path(err.file).name, err.line, err.column) == ("air.yaml", 5, 9)
    assert "'off_below' (40) must be lower than 'above' (35)" in err.message
    assert second.kept_previous == [str(d / "air.yaml")]
    assert second.ruleset.rules[0].set.value == 3
    assert "opening-hours" in second.ruleset.schedules


def test_bad_file_at_start_uses_the_last_good_copy_on_disk(tmp_path: Path) -> None:
    d, keep = tmp_path / "rules", tmp_path / "state" / "last-good"
    write(d, "air.yaml", GOOD_V2)
    assert load_rules(d, CTX, last_good_dir=keep).ok
    assert (keep / "air.yaml").read_text(encoding="utf-8") == GOOD_V2
    write(d, "air.yaml", "rules: [\n")  # a bad edit left behind at reboot
    after_reboot = load_rules(d, CTX, last_good_dir=keep)
    assert not after_reboot.ok and after_reboot.errors[0].message.startswith("YAML syntax")
    assert [r.set.value for r in after_reboot.ruleset.rules] == [2]
    assert (keep / "air.yaml").read_text(encoding="utf-8") == GOOD_V2  # not overwritten by the bad one


def test_unknown_references_get_did_you_mean(tmp_path: Path) -> None:
    d = tmp_path / "rules"
    write(d, "schedules.yaml", SCHEDULES)
    text = GOOD.replace("hall-pm25", "hall-pm52").replace("fan_level", "fan_levl")
    text = text.replace("    set: 3\n", "    set: 3\n  - id: open\n    target: lights.cct\n")
    text += "    when: [{schedule: openin-hours}]\n    set: 3000\n"
    write(d, "air.yaml", text)
    result = load_rules(d, CTX)
    got = [(e.line, e.message) for e in result.errors]
    assert got == [
        (3, "unknown device point 'fresh_air.fan_levl' (did you mean 'fresh_air.fan_level'?)"),
        (5, "unknown sensor 'hall-pm52' (did you mean 'hall-pm25'?)"),
        (11, "unknown schedule 'openin-hours' (did you mean 'opening-hours'?)"),
    ]
    assert result.ruleset.rules == ()


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    d = tmp_path / "rules"
    write(d, "a.yaml", GOOD)
    write(d, "b.yaml", GOOD_V2)
    result = load_rules(d, CTX)
    assert [(Path(e.file).name, e.line, e.message) for e in result.errors] == [
        (
            "b.yaml",
            2,
            f"rule id 'pm25-high' is already used in {d / 'a.yaml'}:2:9; give this rule another id, e.g. 'pm25-high-2'",
        )
    ]
    assert [r.set.value for r in result.ruleset.rules] == [3]


def test_durations() -> None:
    table = {"90s": 90, "2m": 120, "1h30m": 5400, "5 min": 300, "1d": 86400, 45: 45, "10sec": 10}
    assert {k: parse_duration(k) for k in table} == table
    for bad in ("5 minutes", "-5s", "h", True, "1h 30"):
        try:
            parse_duration(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5 min", 300), ("1h30m", 5400), ("PT5M", 300), ("PT1H30M", 5400), ("P1D", 86400), ("2MIN", 120)],
)
def test_rule_durations_with_units(text: str, seconds: float) -> None:
    assert parse_rule_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (120, "120 has no unit"),
        ("2M", "'2M' is ambiguous"),
        ("P1M", "months and years are not"),
        ("5 minutes", "units are d (days)"),
        ("-5s", "is not a duration"),
    ],
)
def test_rule_durations_refused_in_words(value: object, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_rule_duration(value)


@pytest.mark.parametrize(
    ("value", "days"),
    [
        ("mon-fri", ("mon", "tue", "wed", "thu", "fri")),
        ("sat,sun", ("sat", "sun")),
        ("wed", ("wed",)),
        (["mon", "thu-sat"], ("mon", "thu", "fri", "sat")),
        ("fri-mon", ("mon", "fri", "sat", "sun")),
        ("Mon-Fri", ("mon", "tue", "wed", "thu", "fri")),
    ],
)
def test_weekdays_as_ranges_lists_and_single_days(value: object, days: tuple[str, ...]) -> None:
    assert parse_weekdays(value) == days


DURATION_TEXTS = ["90s", "5 min", "1h30m", "PT5M", "2M", "2MIN", "P1D", "PT", "P1DT", "pt5m", "P1M", 120, "5s5", "0s"]
WEEKDAY_TEXTS = ["mon-fri", "sat,sun", "wed", ["mon", "thu-sat"], "Mon-Fri", "", [], "mon-fry", "1-5", "monday"]


@pytest.mark.parametrize(
    ("schema", "parse", "value"),
    [(DURATION_SCHEMA, parse_rule_duration, v) for v in DURATION_TEXTS]
    + [(WEEKDAYS_SCHEMA, parse_weekdays, v) for v in WEEKDAY_TEXTS],
)
def test_duration_and_weekday_schemas_agree_with_the_parsers(
    schema: dict[str, object], parse: Callable[[object], object], value: object
) -> None:
    try:
        parse(value)
        parsed = True
    except ValueError:
        parsed = False
    assert jsonschema.Draft202012Validator(schema).is_valid(value) is parsed
