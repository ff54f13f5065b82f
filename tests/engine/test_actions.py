"""Actions: curves, step tables, the circadian formula, clamping to the profile, ramps."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import pytest

from daemon.engine import PointLimits
from daemon.sun import sun_day, sun_position
from tests.engine.helpers import SITE, T0, Runner, at, ruleset

CCT = "lights.cct"
CURVE = {"input": "hall-lux", "points": [[0, 2700], [100, 3000], [500, 4000], [1500, 5000]]}


def cct_rule(action: Any, **extra: Any) -> dict[str, Any]:
    return {"id": "cct", "target": CCT, "set": action, **extra}


@pytest.mark.parametrize(
    ("lux", "kelvin"),
    [(0, 2700), (-5, 2700), (50, 2850), (100, 3000), (300, 3500), (1000, 4500), (1500, 5000), (9000, 5000)],
)
def test_curve_interpolates_and_holds_the_ends(lux: float, kelvin: float) -> None:
    run = Runner(ruleset(cct_rule({"curve": CURVE})))
    assert run.value(T0, CCT, hall_lux=lux) == pytest.approx(kelvin)


@pytest.mark.parametrize(("lux", "pct"), [(0, 100), (299, 100), (300, 80), (799.9, 80), (800, 60), (5000, 60)])
def test_steps_take_the_last_row_reached(lux: float, pct: float) -> None:
    steps = {"input": "hall-lux", "table": [[0, 100], [300, 80], [800, 60]]}
    run = Runner(ruleset({"id": "b", "target": "lights.brightness", "set": {"steps": steps}}))
    assert run.value(T0, "lights.brightness", hall_lux=lux) == pct


def test_circadian_is_the_adaptive_lighting_formula_at_known_times() -> None:
    day = sun_day(SITE, T0)
    run = Runner(ruleset(cct_rule({"circadian": {"min_k": 2700, "max_k": 5000}})))
    assert sun_position(SITE, day.noon) == pytest.approx(1.0)
    assert sun_position(SITE, day.sunrise) == pytest.approx(0.0, abs=1e-9)
    assert run.value(day.noon, CCT) == pytest.approx(5000)
    assert run.value(day.sunset + 600, CCT) == pytest.approx(2700)  # after sunset: min_k
    assert run.value(at(2026, 3, 5, 1, 0), CCT) == pytest.approx(2700)  # night
    # Halfway between sunrise and noon the parabola gives 1 - 0.5² = 0.75.
    mid = (day.sunrise + day.noon) / 2
    assert run.value(mid, CCT) == pytest.approx(2700 + 2300 * 0.75)


@pytest.mark.parametrize(("lux", "expected"), [(0, 2700 + 2300 * 0.5), (2000, 5000), (1000, 2700 + 2300 * 0.75)])
def test_circadian_daylight_correction_at_noon(lux: float, expected: float) -> None:
    day = sun_day(SITE, T0)
    circ = {"min_k": 2700, "max_k": 5000, "daylight": "hall-lux", "full_daylight_lux": 2000, "daylight_weight": 0.5}
    run = Runner(ruleset(cct_rule({"circadian": circ})))
    assert run.value(day.noon, CCT, hall_lux=lux) == pytest.approx(expected)


def test_circadian_with_quiet_daylight_sensor_falls_back() -> None:
    circ = {"daylight": "hall-lux"}
    run = Runner(ruleset(cct_rule({"circadian": circ}, safe_value=4000)))
    d = run.step(T0).decisions[CCT]
    assert (d.value, d.reason.fallback) == (4000, True)


@pytest.mark.parametrize(
    ("limits", "asked", "got"),
    [
        (PointLimits(0, 3, (0, 1, 2, 3)), 2.4, 2),
        (PointLimits(0, 3, (0, 1, 2, 3)), 2.5, 2),  # ties go down
        (PointLimits(0, 3, (0, 1, 2, 3)), 7, 3),
        (PointLimits(0, 3, (0, 1, 2, 3)), -1, 0),
        (PointLimits(2700, 5000), 6500, 5000),
        (PointLimits(2700, 5000), 2000, 2700),
        (PointLimits(1, 2, (0, 1, 2, 3)), 3, 2),  # range first, then the nearest allowed value
        (PointLimits(), 123.0, 123.0),
    ],
)
def test_point_limits_clamp(limits: PointLimits, asked: float, got: float) -> None:
    assert limits.clamp(asked) == got


def test_output_is_clamped_to_the_profile_with_a_reason() -> None:
    curve = {"input": "hall-lux", "points": [[0, 1000], [1000, 9000]]}
    run = Runner(ruleset(cct_rule({"curve": curve})))
    d = run.step(T0, hall_lux=1000).decisions[CCT]
    assert d.value == 5000
    assert d.reason.text.endswith("clamped 9000 to 5000 (device range)")


def test_ramp_moves_at_most_the_rate_per_minute() -> None:
    run = Runner(ruleset(cct_rule({"curve": CURVE}, ramp_per_minute=600)))
    assert run.value(T0, CCT, hall_lux=0) == 2700  # first output: no previous value to ramp from
    # One step of at most the rate per minute, each the moment its minute begins (one write, not many);
    # the 2300 K are four equal steps of 575 K.
    got = [run.value(T0 + 30 * i, CCT, hall_lux=1500) for i in range(1, 7)]
    assert got == [3275, 3275, 3850, 3850, 4425, 4425]
    d = run.last.decisions[CCT] if run.last else None
    assert d is not None and d.reason.held_by == "ramp"
    assert run.last is not None and run.last.next_due == T0 + 150 + 60  # woken when the next minute begins
    assert [run.value(T0 + 30 * i, CCT, hall_lux=1500) for i in (7, 8)] == [5000, 5000]
    # Downwards too, and the target itself is reached exactly.
    assert run.value(T0 + 300, CCT, hall_lux=1000) == 4500
    assert run.last is not None and run.last.decisions[CCT].reason.held_by is None


def test_fallback_is_not_ramped() -> None:
    run = Runner(ruleset(cct_rule({"curve": CURVE}, ramp_per_minute=60, safe_value=4000)))
    run.step(T0, hall_lux=0)
    run.readings.clear()
    assert run.value(T0 + 10, CCT) == 4000


BRIGHT = "lights.brightness"
HYST_STEPS = {"input": "hall-lux", "table": [[0, 100], [300, 80], [800, 60]], "hysteresis": 40}


def test_steps_with_hysteresis_do_not_cycle_on_a_boundary() -> None:
    run = Runner(ruleset({"id": "b", "target": BRIGHT, "set": {"steps": HYST_STEPS}}))
    lux = [790, 805, 795, 835, 850, 815, 790, 765, 759, 790, 805, 839, 841]
    got = [run.value(T0 + 10 * i, BRIGHT, hall_lux=x) for i, x in enumerate(lux)]
    # Up only at 800 + 40, down only below 800 - 40: noise of ±35 around 800 moves nothing.
    assert got == [80, 80, 80, 80, 60, 60, 60, 60, 80, 80, 80, 80, 60]
    assert run.last is not None
    assert run.memory.held == {"b": 800}


def test_steps_hysteresis_says_why_it_holds_a_row() -> None:
    run = Runner(ruleset({"id": "b", "target": BRIGHT, "set": {"steps": HYST_STEPS}}))
    run.value(T0, BRIGHT, hall_lux=850)
    d = run.step(T0 + 10, hall_lux=780).decisions[BRIGHT]
    assert d.value == 60
    assert "step table of hall-lux = 780 gives 60 (hysteresis 40: holds the row from 800)" in d.reason.text


def test_steps_hysteresis_jumps_several_rows_at_once() -> None:
    run = Runner(ruleset({"id": "b", "target": BRIGHT, "set": {"steps": HYST_STEPS}}))
    assert run.value(T0, BRIGHT, hall_lux=0) == 100
    assert run.value(T0 + 10, BRIGHT, hall_lux=2000) == 60
    assert run.value(T0 + 20, BRIGHT, hall_lux=0) == 100


def test_steps_without_hysteresis_keep_no_memory() -> None:
    steps = {"input": "hall-lux", "table": [[0, 100], [300, 80], [800, 60]]}
    run = Runner(ruleset({"id": "b", "target": BRIGHT, "set": {"steps": steps}}))
    assert [run.value(T0 + i, BRIGHT, hall_lux=x) for i, x in enumerate([805, 795, 805])] == [60, 80, 60]
    assert run.memory.held == {}


def test_steps_row_is_forgotten_with_its_rule_and_survives_a_restart() -> None:
    from daemon.engine import EngineMemory

    run = Runner(ruleset({"id": "b", "target": BRIGHT, "set": {"steps": HYST_STEPS}}))
    run.value(T0, BRIGHT, hall_lux=850)
    assert EngineMemory.from_json(run.memory.to_json()).held == {"b": 800}
    run.rules = ruleset({"id": "other", "target": BRIGHT, "set": 50})
    run.value(T0 + 10, BRIGHT, hall_lux=850)
    assert run.memory.held == {}


@pytest.mark.parametrize(
    ("hysteresis", "fragment"),
    [
        (250, "'hysteresis' (250) must be less than half the smallest gap between two rows (300)"),
        (-1, "greater than or equal to 0"),
    ],
)
def test_steps_hysteresis_too_wide_or_negative_is_refused(hysteresis: float, fragment: str) -> None:
    from pydantic import ValidationError

    steps = {**HYST_STEPS, "hysteresis": hysteresis}
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        ruleset({"id": "b", "target": BRIGHT, "set": {"steps": steps}})


def test_curve_min_change_ignores_small_moves_and_follows_big_ones() -> None:
    run = Runner(ruleset(cct_rule({"curve": {**CURVE, "min_change": 200}})))
    lux = [300, 340, 360, 270, 380, 400, 300]  # the curve gives 3500, 3600, 3650, 3425, 3700, 3750, 3500
    got = [run.value(T0 + 10 * i, CCT, hall_lux=x) for i, x in enumerate(lux)]
    assert got == [3500, 3500, 3500, 3500, 3700, 3700, 3500]
    assert run.memory.held == {"cct": 3500}
    run.value(T0 + 100, CCT, hall_lux=340)
    assert run.last is not None
    assert "keeps 3500 (moves only by min_change 200 or more)" in run.last.decisions[CCT].reason.text


def test_circadian_min_change_holds_the_colour_between_big_enough_moves() -> None:
    day = sun_day(SITE, T0)
    run = Runner(ruleset(cct_rule({"circadian": {"min_k": 2700, "max_k": 5000, "min_change": 150}})))
    got = [run.value(day.sunrise + 600 * i, CCT) or 0.0 for i in range(30)]
    moves = [b - a for a, b in itertools.pairwise(got) if b != a]
    assert moves and all(abs(m) >= 150 for m in moves)
    plain = Runner(ruleset(cct_rule({"circadian": {"min_k": 2700, "max_k": 5000}})))
    free = [plain.value(day.sunrise + 600 * i, CCT) or 0.0 for i in range(30)]
    assert any(0 < abs(b - a) < 150 for a, b in itertools.pairwise(free))  # without it: small steps


def _follow(curve: dict[str, Any], lux: Sequence[float]) -> tuple[list[float], list[float]]:
    """The outputs for a series of readings, and what the curve gave for each (without min_change)."""
    run = Runner(ruleset(cct_rule({"curve": curve})))
    free = Runner(ruleset(cct_rule({"curve": CURVE})))
    got = [run.value(T0 + 60 * i, CCT, hall_lux=x) or 0.0 for i, x in enumerate(lux)]
    want = [free.value(T0 + 60 * i, CCT, hall_lux=x) or 0.0 for i, x in enumerate(lux)]
    return got, want


def test_lead_moves_past_the_curve_so_a_steady_rise_takes_fewer_steps_and_none_back() -> None:
    rise = [100 + 4 * i for i in range(100)]  # 3000 K to 3990 K on the curve, 10 K a minute
    plain, want = _follow({**CURVE, "min_change": 150}, rise)
    led, _ = _follow({**CURVE, "min_change": 150, "lead": 100}, rise)
    moves = [[b - a for a, b in itertools.pairwise(g) if b != a] for g in (plain, led)]
    assert len(moves[0]) == 6 and len(moves[1]) == 4  # a step every 150 K, and every 250 K with the lead
    assert all(m >= 250 for m in moves[1])
    assert max(abs(g - w) for g, w in zip(led, want, strict=True)) <= 150  # never further off than min_change
    assert any(g - w >= 90 for g, w in zip(led, want, strict=True))  # ahead of the curve after a step
    # A plateau after the rise: the lead holds, no step back towards the curve.
    hold, _ = _follow({**CURVE, "min_change": 150, "lead": 100}, rise + [rise[-1]] * 30)
    assert hold[-31:] == [hold[-31]] * 31


def test_lead_stays_within_the_curves_range_and_says_so() -> None:
    run = Runner(ruleset(cct_rule({"curve": {**CURVE, "min_change": 150, "lead": 100}})))
    assert run.value(T0, CCT, hall_lux=1200) == 4700  # the first value: no move yet, nothing to lead
    assert run.value(T0 + 60, CCT, hall_lux=1400) == 5000  # 4900 led by 100 would be 5000 anyway
    assert run.value(T0 + 120, CCT, hall_lux=1000) == 4400  # 4500, led down by 100
    assert run.last is not None
    assert "gives 4500; leads to 4400 (100 ahead of the move)" in run.last.decisions[CCT].reason.text
    run = Runner(ruleset(cct_rule({"curve": {**CURVE, "min_change": 150, "lead": 100}})))
    run.value(T0, CCT, hall_lux=1300)
    assert run.value(T0 + 60, CCT, hall_lux=1500) == 5000  # not 5100: the curve's top is the limit


def test_after_a_lead_step_a_turn_back_by_min_change_minus_lead_steps_back() -> None:
    # the documented price of a lead (rules/README.md, Lead): 100 K ahead, a 50 K turn is 150 K off
    run = Runner(ruleset(cct_rule({"curve": {**CURVE, "min_change": 150, "lead": 100}})))
    assert run.value(T0, CCT, hall_lux=500) == 4000
    assert run.value(T0 + 60, CCT, hall_lux=650) == 4250  # the curve at 4150, led to 4250
    assert run.value(T0 + 120, CCT, hall_lux=610) == 4250  # the curve at 4110, turned back 40 K: kept
    assert run.value(T0 + 180, CCT, hall_lux=600) == 4000  # at 4100, turned back 50 K: 150 K off, led back down


def test_circadian_lead_takes_fewer_steps_over_the_morning() -> None:
    day = sun_day(SITE, T0)
    spec = {"min_k": 2700, "max_k": 5000, "min_change": 150}
    counts = []
    for extra in ({}, {"lead": 100}):
        run = Runner(ruleset(cct_rule({"circadian": {**spec, **extra}})))
        got = [run.value(day.sunrise + 300 * i, CCT) or 0.0 for i in range(40)]
        counts.append(sum(1 for a, b in itertools.pairwise(got) if b != a))
    assert counts[1] < counts[0]


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "much"])
def test_min_change_must_be_a_plain_number_not_below_zero(bad: Any) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ruleset(cct_rule({"curve": {**CURVE, "min_change": bad}}))
    with pytest.raises(ValidationError):  # lead, too, with a min_change it would fit under
        ruleset(cct_rule({"curve": {**CURVE, "min_change": 1e9, "lead": bad}}))
    with pytest.raises(ValidationError):
        ruleset(cct_rule({"circadian": {"min_change": 1e9, "lead": bad}}))
