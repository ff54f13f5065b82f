"""``off_below``/``off_above`` that read an input, like ``above: {sensor: ..., times: 2}``: hysteresis on
the "outdoor air worse than indoor" rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.engine.helpers import T0, Runner, ruleset

FAN = "fresh_air.fan_level"
OUTDOOR_WORSE: dict[str, Any] = {
    "id": "outdoor-worse",
    "target": FAN,
    "when": [{"sensor": "outdoor-pm25", "above": {"sensor": "hall-pm25", "times": 2}, "off_below": "hall-pm25"}],
    "set": 0,
}
BASE: dict[str, Any] = {"id": "base", "target": FAN, "set": 2}


def test_an_input_off_below_holds_the_rule_until_the_input_is_passed() -> None:
    run = Runner(ruleset(OUTDOOR_WORSE, BASE))
    assert run.value(T0, hall_pm25=20, outdoor_pm25=35) == 2  # not above 2 × 20
    assert run.value(T0 + 10, outdoor_pm25=41) == 0  # above 40: on
    ev = run.step(T0 + 20, outdoor_pm25=30)  # below 40 but not below 20: held on
    assert ev.decisions[FAN].value == 0
    assert "outdoor-pm25 = 30" in ev.decisions[FAN].reason.text
    assert "held on until below hall-pm25 (20)" in ev.decisions[FAN].reason.text
    assert run.value(T0 + 30, hall_pm25=35) == 2  # the off threshold moves with its sensor: 30 < 35 ends it


def test_the_hold_ends_when_the_value_falls_below_the_off_input() -> None:
    run = Runner(ruleset(OUTDOOR_WORSE, BASE))
    run.value(T0, hall_pm25=20, outdoor_pm25=41)
    assert run.value(T0 + 10, outdoor_pm25=25) == 0
    assert run.value(T0 + 20, outdoor_pm25=19) == 2
    assert run.value(T0 + 30, outdoor_pm25=30) == 2  # coming back up needs above 40 again


def test_an_unknown_off_input_makes_the_condition_unknown() -> None:
    run = Runner(ruleset({**OUTDOOR_WORSE, "when": [{**OUTDOOR_WORSE["when"][0], "off_below": "hall-pm25-b"}]}, BASE))
    run.value(T0, hall_pm25=20, outdoor_pm25=41)
    assert run.last is not None
    trace = next(t for t in run.last.traces if t.rule == "outdoor-worse")
    assert trace.state == "silent" and any("hall-pm25-b" in line for line in trace.lines)


@pytest.mark.parametrize(
    ("cond", "fragment"),
    [
        ({"sensor": "outdoor-pm25", "below": 10, "off_below": "hall-pm25"}, "'off_below' goes with 'above'"),
        ({"sensor": "outdoor-pm25", "above": 10, "off_above": "hall-pm25"}, "'off_above' goes with 'below'"),
        ({"sensor": "outdoor-pm25", "above": 10, "off_below": 12}, "must be lower than 'above'"),
        ({"sensor": "outdoor-pm25", "above": 10, "off_below": "35µg"}, "is not a number"),
    ],
)
def test_wrong_off_thresholds_are_refused(cond: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        ruleset({**OUTDOOR_WORSE, "when": [cond]})
    assert fragment in str(info.value)
