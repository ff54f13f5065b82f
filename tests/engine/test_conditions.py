"""Conditions: hysteresis, for-timers, unknown inputs and fallbacks, zones, schedules, clock, sun, cron."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.sun import sun_day
from tests.engine.helpers import PM25_HIGH, SITE, T0, Runner, at, ruleset

FAN = "fresh_air.fan_level"


def pm25_rule(**cond: Any) -> dict[str, Any]:
    return {"id": "r", "target": FAN, "when": [{"sensor": "hall-pm25", **cond}], "set": 3}


# (series of PM2.5 values one minute apart, expected output after each; None = no decision)
HYSTERESIS = [
    ([20, 36, 30, 26, 25, 24.9, 30], [None, 3, 3, 3, 3, None, None]),
    ([40, 35, 35.1], [3, 3, 3]),
    ([30, 35, 35.01, 10], [None, None, 3, None]),
]


@pytest.mark.parametrize(("series", "expected"), HYSTERESIS)
def test_hysteresis_on_above_stays_in_band_off_below(series: list[float], expected: list[float | None]) -> None:
    run = Runner(ruleset(pm25_rule(above=35, off_below=25)))
    got = [run.value(T0 + 60 * i, hall_pm25=v) for i, v in enumerate(series)]
    assert got == expected


def test_below_with_off_above_hysteresis() -> None:
    run = Runner(ruleset(pm25_rule(below=10, off_above=15)))
    got = [run.value(T0 + 60 * i, hall_pm25=v) for i, v in enumerate([12, 9, 14, 15, 15.5, 12])]
    assert got == [None, 3, 3, 3, None, None]


def test_between() -> None:
    run = Runner(ruleset(pm25_rule(between=[10, 20])))
    got = [run.value(T0 + 60 * i, hall_pm25=v) for i, v in enumerate([5, 10, 20, 20.5])]
    assert got == [None, 3, 3, None]


def test_for_is_pending_then_true_and_resets_when_false() -> None:
    # Evaluations here are minutes apart; a pause longer than resume_grace_s would count as a gap.
    run = Runner(ruleset(pm25_rule(above=35, **{"for": "5m"})), resume_grace_s=600)
    assert run.value(T0, hall_pm25=40) is None
    trace = run.last.traces[0] if run.last else None
    assert trace is not None and "for 0s of the required 5m" in trace.lines[0]
    assert run.value(T0 + 240, hall_pm25=40) is None
    assert run.value(T0 + 300, hall_pm25=40) == 3
    assert run.value(T0 + 360, hall_pm25=30) is None  # false: the timer resets
    assert run.value(T0 + 420, hall_pm25=40) is None
    assert run.value(T0 + 420 + 299, hall_pm25=40) is None
    assert run.value(T0 + 420 + 300, hall_pm25=40) == 3


def test_unknown_to_value_inside_band_is_not_a_crossing() -> None:
    run = Runner(ruleset(PM25_HIGH))
    assert run.value(T0, hall_pm25=40) == 3
    # The sensor goes quiet for 10 minutes (stale after 120 s): fallback to the safe value.
    ev = run.step(T0 + 600)
    assert ev.decisions[FAN].value == 2 and ev.decisions[FAN].reason.fallback
    # It comes back inside the band (30): the latch does not survive a real gap → off, no decision.
    assert run.value(T0 + 660, hall_pm25=30) is None


def test_short_gap_such_as_a_restart_keeps_the_latch_and_the_for_timer() -> None:
    rule = {**PM25_HIGH, "when": [{**PM25_HIGH["when"][0], "for": "10m"}]}
    run = Runner(ruleset(rule), resume_grace_s=120)
    for t in range(0, 401, 100):
        assert run.value(T0 + t, hall_pm25=40) is None  # pending
    run.readings.clear()  # restart: nothing fresh yet
    assert run.value(T0 + 460) == 2  # unknown → safe value
    assert run.value(T0 + 500, hall_pm25=40) is None  # 100 s since last known < grace: continues
    assert run.value(T0 + 600, hall_pm25=40) == 3  # 10 min after the original start


def test_for_starts_over_after_a_gap_longer_than_grace() -> None:
    rule = {**PM25_HIGH, "when": [{**PM25_HIGH["when"][0], "for": "10m"}]}
    run = Runner(ruleset(rule), resume_grace_s=120)
    run.step(T0, hall_pm25=40)
    run.readings.clear()
    for t in range(100, 500, 100):
        assert run.value(T0 + t) == 2  # unknown → safe value
    assert run.value(T0 + 500, hall_pm25=40) is None  # known again after 500 s > 120 s grace
    for t in range(600, 1100, 100):
        assert run.value(T0 + t, hall_pm25=40) is None
    assert run.value(T0 + 1100, hall_pm25=40) == 3


def test_retained_value_counts_as_unknown() -> None:
    run = Runner(ruleset(PM25_HIGH))
    run.feed("hall-pm25", 80, T0, retained=True)
    d = run.step(T0).decisions[FAN]
    assert (d.value, d.reason.fallback) == (2, True)


def test_stale_sensor_falls_back_with_reason_and_is_silent_without_safe_value() -> None:
    silent = {**PM25_HIGH, "id": "no-safe", "safe_value": None, "priority": 99}
    run = Runner(ruleset(PM25_HIGH, silent))
    run.feed("hall-pm25", 80, T0 - 121)
    ev = run.step(T0)
    d = ev.decisions[FAN]
    assert (d.value, d.reason.rule, d.reason.fallback) == (2, "pm25-high", True)
    assert "safe value 2" in d.reason.text
    states = {t.rule: t.state for t in ev.traces}
    assert states == {"pm25-high": "fallback", "no-safe": "silent"}


def test_fallback_only_when_no_other_condition_is_false() -> None:
    rule = {**PM25_HIGH, "when": [{"schedule": "opening-hours"}, *PM25_HIGH["when"]]}
    run = Runner(ruleset(rule))
    assert run.value(T0) == 2  # open, PM2.5 unknown → safe value
    assert run.value(at(2026, 3, 4, 22)) is None  # closed: the rule is simply inactive


@pytest.mark.parametrize(
    ("aggregate", "expected_on"),
    [("max", True), ("mean", False), ("min", False), ("median", False)],
)
def test_zone_aggregate_over_fresh_sensors_only(aggregate: str, expected_on: bool) -> None:
    rule = pm25_rule(above=35)
    rule["when"] = [{"zone": "hall", "quantity": "pm25", "aggregate": aggregate, "above": 35}]
    run = Runner(ruleset(rule))
    run.feed("hall-pm25", 40, T0)
    run.feed("hall-pm25-b", 20, T0)
    assert (run.value(T0) == 3) is expected_on
    # hall-pm25-b goes stale: every aggregate is now over hall-pm25 alone (40).
    run.feed("hall-pm25", 40, T0 + 300)
    assert run.value(T0 + 300) == 3
    inputs = run.last.traces[0].inputs if run.last else ()
    assert [name for name, _, _ in inputs] == ["hall-pm25"]


def test_threshold_may_be_another_input() -> None:
    rule = pm25_rule(above={"sensor": "outdoor-pm25"})
    run = Runner(ruleset(rule))
    assert run.value(T0, hall_pm25=30, outdoor_pm25=20) == 3
    assert run.value(T0 + 60, hall_pm25=30, outdoor_pm25=50) is None


def test_a_referenced_input_can_be_scaled() -> None:
    # "outdoor PM2.5 above ten times the hall's": what a 90 % filter lets through beats the hall's air.
    rule = {
        "id": "outdoor-worse",
        "target": "fresh_air.fan_level",
        "when": [{"sensor": "outdoor-pm25", "above": {"sensor": "hall-pm25", "times": 10}}],
        "set": 1,
    }
    run = Runner(ruleset(rule))
    assert run.value(T0, hall_pm25=20, outdoor_pm25=150) is None  # 150 < 200: fresh air still helps
    assert run.value(T0 + 60, hall_pm25=12, outdoor_pm25=150) == 1  # 150 > 120
    assert run.last is not None
    assert "10 × hall-pm25" in run.last.decisions["fresh_air.fan_level"].reason.text


SCHEDULE_CASES = [
    (at(2026, 3, 4, 8, 29), False),  # Wednesday before opening
    (at(2026, 3, 4, 8, 30), True),
    (at(2026, 3, 4, 17, 29, 59), True),
    (at(2026, 3, 4, 17, 30), False),
    (at(2026, 3, 6, 12, 30), False),  # Friday lunch break (two spans)
    (at(2026, 3, 6, 13, 0), True),
    (at(2026, 3, 7, 15, 0), True),  # Saturday
    (at(2026, 3, 8, 12, 0), False),  # Sunday: not listed
    (at(2026, 10, 1, 10, 0), False),  # holiday (a Thursday)
    (at(2026, 10, 8, 10, 0), True),  # the Thursday after
]


@pytest.mark.parametrize(("now", "is_open"), SCHEDULE_CASES)
def test_schedule_with_holidays_and_multi_span_days(now: float, is_open: bool) -> None:
    run = Runner(
        ruleset(
            {"id": "open", "target": FAN, "when": [{"schedule": "opening-hours"}], "set": 1},
            {"id": "closed", "target": FAN, "when": [{"outside_schedule": "opening-hours"}], "set": 0},
        )
    )
    assert run.value(now) == (1 if is_open else 0)


TIME_CASES = [
    ({"after": "22:00", "before": "06:00"}, at(2026, 3, 4, 23, 0), True),
    ({"after": "22:00", "before": "06:00"}, at(2026, 3, 5, 5, 59), True),
    ({"after": "22:00", "before": "06:00"}, at(2026, 3, 5, 6, 0), False),
    ({"after": "22:00", "before": "06:00"}, at(2026, 3, 4, 12, 0), False),
    ({"after": "08:00"}, at(2026, 3, 4, 7, 59), False),
    ({"before": "08:00"}, at(2026, 3, 4, 7, 59), True),
    ({"after": "08:00", "before": "18:00", "weekdays": ["sat", "sun"]}, at(2026, 3, 4, 10), False),
    ({"after": "08:00", "before": "18:00", "weekdays": ["wed"]}, at(2026, 3, 4, 10), True),
    ({"after": "08:00", "before": "18:00", "weekdays": "mon-fri"}, at(2026, 3, 4, 10), True),
    ({"after": "08:00", "before": "18:00", "weekdays": "sat,sun"}, at(2026, 3, 4, 10), False),
    ({"after": "08:00", "before": "18:00", "weekdays": "sat,sun"}, at(2026, 3, 7, 10), True),
    ({"after": "08:00", "before": "18:00", "weekdays": ["mon", "thu-sat"]}, at(2026, 3, 4, 10), False),
]


@pytest.mark.parametrize(("window", "now", "expected"), TIME_CASES)
def test_time_windows_including_across_midnight(window: dict[str, Any], now: float, expected: bool) -> None:
    run = Runner(ruleset({"id": "t", "target": FAN, "when": [{"time": window}], "set": 1}))
    assert (run.value(now) == 1) is expected


def test_sun_times_from_astral_are_plausible_for_shanghai_in_march() -> None:
    day = sun_day(SITE, T0)
    assert at(2026, 3, 4, 6, 0) < day.sunrise < at(2026, 3, 4, 6, 30)
    assert at(2026, 3, 4, 17, 50) < day.sunset < at(2026, 3, 4, 18, 10)
    assert day.dawn < day.sunrise < day.noon < day.sunset < day.dusk


@pytest.mark.parametrize(
    ("window", "offset_from", "delta", "expected"),
    [
        ({"after": "sunrise+30m"}, "sunrise", 29 * 60, False),
        ({"after": "sunrise+30m"}, "sunrise", 30 * 60, True),
        ({"before": "sunset-15m"}, "sunset", -15 * 60 - 1, True),
        ({"before": "sunset-15m"}, "sunset", -15 * 60, False),
        ({"after": "sunset", "before": "sunrise"}, "sunset", 60, True),  # across midnight
        ({"after": "sunset", "before": "sunrise"}, "sunrise", -60, True),
        ({"after": "sunset", "before": "sunrise"}, "noon", 0, False),
    ],
)
def test_sun_windows(window: dict[str, str], offset_from: str, delta: float, expected: bool) -> None:
    now = sun_day(SITE, T0).event(offset_from) + delta
    run = Runner(ruleset({"id": "s", "target": FAN, "when": [{"sun": window}], "set": 1}))
    assert (run.value(now) == 1) is expected


@pytest.mark.parametrize(
    ("pattern", "now", "expected"),
    [
        ("*/15 8-18 * * *", at(2026, 3, 4, 10, 15, 30), True),
        ("*/15 8-18 * * *", at(2026, 3, 4, 10, 16), False),
        ("*/15 8-18 * * *", at(2026, 3, 4, 19, 0), False),
        ("* 9 * * 1-5", at(2026, 3, 4, 9, 5), True),  # crontab numbering: 3 = Wednesday
        ("* 9 * * 3", at(2026, 3, 4, 9, 5), True),
        ("* 9 * * 0,6", at(2026, 3, 4, 9, 5), False),
        ("* 9 * * 7", at(2026, 3, 8, 9, 5), True),  # 7 = Sunday too
        ("* 9 * * mon-fri", at(2026, 3, 7, 9, 5), False),
    ],
)
def test_cron_uses_crontab_day_numbers(pattern: str, now: float, expected: bool) -> None:
    run = Runner(ruleset({"id": "c", "target": FAN, "when": [{"cron": pattern}], "set": 1}))
    assert (run.value(now) == 1) is expected
