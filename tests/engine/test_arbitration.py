"""Arbitration, manual overrides, memory persistence, and timers across reloads."""

from __future__ import annotations

import json

import pytest

from daemon.engine import EngineMemory, Override, RuleSet
from tests.engine.helpers import PM25_HIGH, T0, Runner, ruleset

FAN = "fresh_air.fan_level"


def const(rule_id: str, value: float, priority: int = 0, conditions: int = 0) -> dict[str, object]:
    when = [{"time": {"after": "00:00"}} for _ in range(conditions)]
    return {"id": rule_id, "target": FAN, "priority": priority, "when": when, "set": value}


@pytest.mark.parametrize(
    ("rules", "winner", "phrase"),
    [
        ([const("a", 1, 10), const("b", 2, 20)], "b", "a (priority 10 < 20)"),
        ([const("a", 1, 5, 2), const("b", 2, 5, 1)], "a", "b (same priority, 1 condition(s) < 2)"),
        ([const("b", 1, 5, 1), const("a", 2, 5, 1)], "a", "b (same priority and conditions, id sorts after 'a')"),
        ([const("z", 3, 7), const("a", 1, 0, 3)], "z", "a (priority 0 < 7)"),
    ],
)
def test_priority_then_specificity_then_id(rules: list[dict[str, object]], winner: str, phrase: str) -> None:
    for order in (rules, rules[::-1]):
        d = Runner(ruleset(*order)).step(T0).decisions[FAN]
        assert d.reason.rule == winner
        assert f"won over {phrase}" in d.reason.text


def test_inactive_higher_priority_rule_does_not_win() -> None:
    rules = ruleset(PM25_HIGH, const("base", 1))
    run = Runner(rules)
    assert run.value(T0, hall_pm25=10) == 1
    assert run.value(T0 + 1, hall_pm25=50) == 3


def test_override_wins_until_it_expires_and_is_clamped() -> None:
    run = Runner(ruleset(PM25_HIGH))
    run.memory.overrides[FAN] = Override(value=0, until=T0 + 600, source="mqtt")
    d = run.step(T0, hall_pm25=50).decisions[FAN]
    assert (d.value, d.reason.rule) == (0, "manual-override")
    assert "manual override (mqtt) until 10:10" in d.reason.text
    assert run.value(T0 + 599, hall_pm25=50) == 0
    assert run.value(T0 + 600, hall_pm25=50) == 3
    assert FAN not in run.memory.overrides
    run.memory.overrides[FAN] = Override(value=9, until=T0 + 1200)
    assert run.value(T0 + 601, hall_pm25=50) == 3  # clamped to the profile's highest level


def test_override_on_a_point_no_rule_targets() -> None:
    run = Runner(ruleset(PM25_HIGH))
    run.memory.overrides["lights.cct"] = Override(4200, T0 + 60)
    assert run.value(T0, "lights.cct") == 4200
    assert run.value(T0 + 60, "lights.cct") is None


def test_memory_json_round_trip_keeps_timers_across_a_restart() -> None:
    rule = {**PM25_HIGH, "when": [{**PM25_HIGH["when"][0], "for": "5m"}]}
    run = Runner(ruleset(rule))
    for t in range(0, 200, 60):
        run.step(T0 + t, hall_pm25=40)
    run.memory.overrides["lights.cct"] = Override(3000, T0 + 9999, "cli")
    saved = json.dumps(run.memory.to_json())
    restored = EngineMemory.from_json(json.loads(saved))
    assert restored == run.memory
    fresh = Runner(ruleset(rule))
    fresh.memory = restored
    assert fresh.value(T0 + 240, hall_pm25=40) is None
    assert fresh.value(T0 + 300, hall_pm25=40) == 3  # the timer started before the restart


def test_empty_memory_json() -> None:
    assert EngineMemory.from_json({}) == EngineMemory()


def test_reload_keeps_timers_of_unchanged_rules_and_resets_edited_ones() -> None:
    a = {**PM25_HIGH, "when": [{**PM25_HIGH["when"][0], "for": "5m"}]}
    b = {**a, "id": "pm25-other", "target": "lights.cct", "set": 4000, "safe_value": None}
    run = Runner(ruleset(a, b))
    for t in range(0, 241, 60):
        run.step(T0 + t, hall_pm25=40)
    # Reload: rule b's condition is edited (5m → 4m), rule a is unchanged, a third rule is added.
    b_edited = {**b, "when": [{**b["when"][0], "for": "4m"}]}
    c = {**a, "id": "pm25-new", "target": "lights.brightness", "set": 50, "safe_value": None}
    run.rules = ruleset(a, b_edited, c)
    ev = run.step(T0 + 300, hall_pm25=40)
    assert ev.decisions[FAN].value == 3  # a: started at T0, 5 minutes have passed
    assert "lights.cct" not in ev.decisions  # b: edited, its timer started again at T0 + 300
    assert "lights.brightness" not in ev.decisions
    for t in range(360, 540, 60):
        assert "lights.cct" not in run.step(T0 + t, hall_pm25=40).decisions
    ev = run.step(T0 + 540, hall_pm25=40)
    assert ev.decisions["lights.cct"].value == 4000
    assert "lights.brightness" not in ev.decisions
    # Removed rules leave nothing behind in memory.
    run.rules = RuleSet()
    run.step(T0 + 600)
    assert run.memory.since == {} and run.memory.latched == {} and run.memory.known_until == {}
