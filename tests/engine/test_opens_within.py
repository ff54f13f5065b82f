"""``opens_within``: true while the schedule is closed and opens within the given time (a pre-purge)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.engine.helpers import Runner, at, ruleset

FAN = "fresh_air.fan_level"
PURGE: dict[str, Any] = {
    "id": "pre-purge",
    "target": FAN,
    "when": [{"opens_within": {"schedule": "opening-hours", "within": "30min"}}],
    "set": 3,
}
BASE: dict[str, Any] = {"id": "base", "target": FAN, "set": 1}


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at(2026, 3, 4, 7, 59), 1),  # Wednesday, opens 08:30: too early
        (at(2026, 3, 4, 8, 0), 3),  # 30 min before
        (at(2026, 3, 4, 8, 29, 59), 3),
        (at(2026, 3, 4, 8, 30), 1),  # open: the purge is over
        (at(2026, 3, 6, 12, 45), 3),  # Friday lunch break: opens again 13:00
        (at(2026, 3, 6, 12, 15), 1),
        (at(2026, 3, 7, 8, 45), 3),  # Saturday opens 09:00
        (at(2026, 3, 8, 8, 45), 1),  # Sunday: closed all day
        (at(2026, 9, 30, 8, 15), 3),  # the day before the holiday (a Wednesday) opens at 08:30
        (at(2026, 10, 1, 8, 15), 1),  # the holiday: no opening
    ],
)
def test_pre_purge_runs_only_in_the_window_before_opening(when: float, expected: float) -> None:
    run = Runner(ruleset(PURGE, BASE))
    assert run.value(when) == expected


def test_the_window_crosses_midnight_and_says_when_it_opens() -> None:
    rule = {**PURGE, "when": [{"opens_within": {"schedule": "opening-hours", "within": "9h"}}]}
    run = Runner(ruleset(rule, BASE))
    ev = run.step(at(2026, 3, 3, 23, 45))  # Tuesday night: Wednesday opens 08:30, within 9 h
    assert ev.decisions[FAN].value == 3
    assert "opening-hours opens at 08:30, within 9h" in ev.decisions[FAN].reason.text
    assert ev.next_due == at(2026, 3, 4, 8, 30)


def test_it_is_due_at_the_start_of_the_window() -> None:
    run = Runner(ruleset(PURGE, BASE))
    ev = run.step(at(2026, 3, 4, 7, 0))
    assert ev.next_due == at(2026, 3, 4, 8, 0)


@pytest.mark.parametrize(
    ("opens", "fragment"),
    [
        ({"schedule": "opening-hours", "within": "13h"}, "at most 12 h"),
        ({"schedule": "opening-hours", "within": "0s"}, "more than 0"),
        ({"schedule": "opening-hours", "within": 30}, "has no unit"),
        ({"schedule": "opening-hours"}, "within"),
    ],
)
def test_a_wrong_window_is_refused(opens: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        ruleset({**PURGE, "when": [{"opens_within": opens}]})
    assert fragment in str(info.value)
