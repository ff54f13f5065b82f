"""The demo says what it changes, prints whole kelvin, and explains every lost reading."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from simulators.demo import DEMO_HIGH_RELEASE, DEMO_MIN_HOLD_S, narration, shown, speed_up, speed_up_rules

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_says_on_screen_which_safety_limit_it_shortens() -> None:
    data = YAML().load((REPO / "config" / "lobbyd.yaml").read_text())
    field = data["safety"]["fresh_air.fan_speed"]["min_hold_s"]
    lines = speed_up(data)
    assert data["safety"]["fresh_air.fan_speed"]["min_hold_s"] == DEMO_MIN_HOLD_S
    assert lines[:2] == [
        f"demo speed-up: fresh_air.fan_speed minimum hold between writes shortened from {field:g} s to "
        f"{DEMO_MIN_HOLD_S} s (config/lobbyd.yaml keeps {field:g} s in the field)",
        "demo speed-up: lights.brightness minimum hold between writes shortened from 300 s to "
        f"{DEMO_MIN_HOLD_S} s (config/lobbyd.yaml keeps 300 s in the field)",
    ]
    assert speed_up(data) == []  # nothing left to shorten: nothing said


def test_the_demo_says_which_rule_hold_it_shortens_and_only_that_one() -> None:
    data = YAML().load((REPO / "rules" / "air-quality.yaml").read_text())
    holds = {r["id"]: r.get("release_after") for r in data["rules"]}
    assert speed_up_rules(data) == [
        f"demo speed-up: pm25-high keeps high {DEMO_HIGH_RELEASE} after the hall falls below 34, not "
        f"{holds['pm25-high']} (rules/air-quality.yaml keeps {holds['pm25-high']} in the field)"
    ]
    after = {r["id"]: r.get("release_after") for r in data["rules"]}
    assert after == {**holds, "pm25-high": DEMO_HIGH_RELEASE}  # pm25-elevated keeps its 5 minutes
    assert speed_up_rules(data) == []  # nothing left to shorten: nothing said


def test_kelvin_are_whole_numbers() -> None:
    assert shown("cct", 4115.085) == "4115 K"
    assert shown("fan_speed", 2.0) == "2"


def test_the_demo_says_which_input_filters_it_shortens() -> None:
    data = YAML().load((REPO / "config" / "lobbyd.yaml").read_text())
    lines = speed_up(data)
    assert any("hall-pm25 read as the median of 3 readings, not 9 (config/lobbyd.yaml keeps 9" in x for x in lines)
    assert any("hall-daylight averaged over 5 s, not 900 s (config/lobbyd.yaml keeps 900 s" in x for x in lines)
    pm = next(s for s in data["sensors"] if s["id"] == "hall-pm25")
    assert pm["filter"] == {"median_of": 3}
    assert speed_up(data) == []


def test_the_narrator_tells_writes_status_values_and_errors_apart() -> None:
    seen: dict[str, object] = {}
    state = "lobbyd/demo-001/device/lights/cct/state"
    write = {"desired": 4115.085, "readback": 4115.0, "outcome": "ok", "state": "ok", "ts": 1.0}
    assert narration(state, write, seen) == "    writes   lights.cct = 4115 K  -> device reads back 4115.0  [ok]"
    assert narration(state, write, seen) is None  # the same again (a retained copy): nothing new
    polled = "lobbyd/demo-001/device/lights/cct_actual/state"
    assert narration(polled, {"value": 4115, "ts": 2.0}, seen) == "    reads    lights.cct_actual = 4115"
    assert narration(polled, {"value": 4115, "ts": 7.0}, seen) is None  # polled again, unchanged
    fan = "lobbyd/demo-001/device/fresh_air/fan_speed/state"
    assert narration(fan, {"error": "refused", "ts": 3.0}, seen) == "    error    fresh_air.fan_speed: refused"
    assert narration(fan, {"error": None, "ts": 4.0}, seen) == "    cleared  fresh_air.fan_speed"
    decision = {"value": 3, "rule": "pm25-high", "reason": "above 35"}
    line = narration("lobbyd/demo-001/decision/fresh_air/fan_speed", decision, seen)
    assert line == "    decides  fresh_air.fan_speed = 3  (pm25-high: above 35)"
