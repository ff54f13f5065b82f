"""The target check on hand-made reports: which sentence for which figure, and when energy is compared."""

from __future__ import annotations

from typing import Any

from simulators.targets import check, not_compared


def _run(**over: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "pm25_ok_reachable_pct": 100.0,
        "writes_per_device_worst_hour": {"fresh_air": 1, "lights": 4},
        "cct_in_band_pct": 99.0,
        "cct_max_change_per_min_k": 250.0,
        "cct_reversals_worst_hour": 1,
        "fan_kwh": 1.0,
    }
    return {**run, **over}


def _report(own: dict[str, Any], naive: dict[str, Any] | None) -> dict[str, Any]:
    runs = {"lobbyd": own} | ({"naive": naive} if naive is not None else {})
    return {"scenarios": {"day": {"runs": runs}}}


def test_every_target_held_says_nothing() -> None:
    r = _report(_run(), _run(fan_kwh=1.0))
    assert check(r) == [] and not_compared(r) == []


def test_each_missed_target_is_one_sentence() -> None:
    own = _run(
        pm25_ok_reachable_pct=98.0,
        writes_per_device_worst_hour={"fresh_air": 7, "lights": 4},
        cct_in_band_pct=94.0,
        cct_max_change_per_min_k=301.0,
        cct_reversals_worst_hour=5,
        fan_kwh=1.01,
    )
    said = check(_report(own, _run()))
    assert said == [
        "day: PM2.5 <= target for 98.0 % of open time the plant can reach (goal >= 99 %)",
        "day: 7 writes to fresh_air in one hour (goal at most 6)",
        "day: CCT within ±150 K of the daylight curve for 94.0 % of open time (goal >= 95 %)",
        "day: CCT changed 301 K within a minute (goal at most 300 K)",
        "day: 5 CCT reversals in one hour (goal at most 4)",
        "day: fan energy 1.01 kWh, more than the naive baseline's 1.00 kWh",
    ]


def test_energy_is_held_against_a_naive_baseline_that_keeps_the_air_clean_only() -> None:
    """A baseline that leaves the hall dirty is no energy bound: such a scenario is named, not failed."""
    dirty = _report(_run(fan_kwh=3.0), _run(fan_kwh=0.2, pm25_ok_reachable_pct=64.9))
    assert check(dirty) == []
    assert not_compared(dirty) == [
        "day: fan energy not compared: the naive baseline keeps PM2.5 at target for only 64.9 % of open "
        "time the plant can reach (goal >= 99 %)"
    ]
    at_the_goal = _report(_run(fan_kwh=3.0), _run(fan_kwh=0.2, pm25_ok_reachable_pct=99.0))
    assert check(at_the_goal) == ["day: fan energy 3.00 kWh, more than the naive baseline's 0.20 kWh"]
    assert not_compared(at_the_goal) == []


def test_without_a_naive_run_energy_is_not_checked() -> None:
    r = _report(_run(fan_kwh=9.0), None)
    assert check(r) == [] and not_compared(r) == []
    assert check({"scenarios": {}}) == ["the report has no scenarios"]
