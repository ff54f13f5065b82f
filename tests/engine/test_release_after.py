"""``release_after``: step up fast, step down slow — a rule keeps its value that long after its conditions
stop holding, then lets go; a new crossing restarts the wait; it survives a restart."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from daemon.engine import EngineMemory
from tests.engine.helpers import T0, Runner, ruleset

FAN = "fresh_air.fan_level"
HIGH: dict[str, Any] = {
    "id": "pm25-high",
    "target": FAN,
    "priority": 50,
    "when": [{"sensor": "hall-pm25", "above": 35}],
    "set": 3,
    "release_after": "10min",
}
BASE: dict[str, Any] = {"id": "base", "target": FAN, "set": 1}


def test_the_value_is_kept_for_release_after_then_let_go() -> None:
    run = Runner(ruleset(HIGH, BASE))
    assert run.value(T0, hall_pm25=50) == 3  # up at once
    assert run.value(T0 + 60, hall_pm25=20) == 3  # conditions false: kept
    ev = run.step(T0 + 599, hall_pm25=20)
    assert ev.decisions[FAN].value == 3
    assert "conditions no longer hold: keeps 3 until 10:10 (release_after)" in ev.decisions[FAN].reason.text
    assert ev.next_due <= T0 + 600  # the release is due on its own, without a reading
    assert run.value(T0 + 600, hall_pm25=20) == 1
    assert run.memory.acted == {}


def test_a_new_crossing_restarts_the_wait() -> None:
    run = Runner(ruleset(HIGH, BASE))
    run.value(T0, hall_pm25=50)
    run.value(T0 + 300, hall_pm25=20)
    assert run.value(T0 + 500, hall_pm25=60) == 3
    assert run.value(T0 + 1000, hall_pm25=20) == 3  # 500 s after the last time it acted
    assert run.value(T0 + 1100, hall_pm25=20) == 1


def test_without_release_after_the_rule_lets_go_at_once() -> None:
    run = Runner(ruleset({**HIGH, "release_after": "0s"}, BASE))
    run.value(T0, hall_pm25=50)
    assert run.value(T0 + 60, hall_pm25=20) == 1
    assert run.memory.acted == {}


def test_the_wait_survives_a_restart_and_a_clock_shift() -> None:
    run = Runner(ruleset(HIGH, BASE))
    run.value(T0, hall_pm25=50)
    saved = EngineMemory.from_json(run.memory.to_json())
    assert saved.acted == {"pm25-high": (3, T0)}
    assert saved.shifted(100).acted == {"pm25-high": (3, T0 + 100)}
    run.memory = saved
    assert run.value(T0 + 120, hall_pm25=20) == 3


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("25h", "at most 24 h is allowed"), (600, "has no unit"), ("-5min", ""), ("soon", "")],
)
def test_release_after_must_be_a_duration_up_to_a_day(value: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        ruleset({**HIGH, "release_after": value})
    assert fragment in str(info.value)
