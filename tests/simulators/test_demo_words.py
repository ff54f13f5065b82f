"""The demo says what it changes, prints whole kelvin, and explains every lost reading."""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML

from simulators.demo import DEMO_MIN_HOLD_S, shown, speed_up

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_says_on_screen_which_safety_limit_it_shortens() -> None:
    data = YAML().load((REPO / "config" / "lobbyd.yaml").read_text())
    field = data["safety"]["fresh_air.fan_speed"]["min_hold_s"]
    lines = speed_up(data)
    assert data["safety"]["fresh_air.fan_speed"]["min_hold_s"] == DEMO_MIN_HOLD_S
    assert lines == [
        f"demo speed-up: fresh_air.fan_speed minimum hold between writes shortened from {field:g} s to "
        f"{DEMO_MIN_HOLD_S} s (config/lobbyd.yaml keeps {field:g} s in the field)"
    ]
    assert speed_up(data) == []  # nothing left to shorten: nothing said


def test_kelvin_are_whole_numbers() -> None:
    assert shown("cct", 4115.085) == "4115 K"
    assert shown("fan_speed", 2.0) == "2"
