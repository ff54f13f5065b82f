"""``lobbyd status`` text for conditioned and virtual sensors (pure: no daemon)."""

from __future__ import annotations

from typing import Any

from daemon.status import format_status, needs_attention
from tests.service.test_status_text import _status


def _sensor(sid: str, value: float, raw: float | None = None, stuck: bool = False) -> dict[str, Any]:
    return {"sensor": sid, "zone": "hall", "quantity": "pm25", "value": value, "age_s": 1.0, "fresh": True,
            "retained": False, "raw": raw, "stuck": stuck}  # fmt: skip


def test_filtered_stuck_and_daylight_sensors_are_shown() -> None:
    st = _status()
    st["sensors"] = [_sensor("hall-pm25", 30.0, raw=41.5), _sensor("outdoor-pm25", 12.0, stuck=True)]
    st["daylight"] = {
        "hall-daylight": {
            "source": "hall-lux",
            "lux_per_percent": 4.0,
            "calibrations": 3,
            "lamps": "lights.brightness",
        },
        "roof": {"source": "roof-lux", "lux_per_percent": None, "calibrations": 0, "lamps": None},
    }
    problems = needs_attention(st)
    assert problems == ["sensor outdoor-pm25 is stuck at 12: the rules treat it as unavailable until it moves"]
    text = format_status(st, problems)
    pm = next(line for line in text.splitlines() if "hall-pm25" in line)
    assert "30" in pm and "raw 41.5" in pm and "fresh" in pm
    assert "STUCK" in next(line for line in text.splitlines() if "outdoor-pm25" in line and "is stuck" not in line)
    assert "hall-daylight: daylight = hall-lux − lamps (lights.brightness, 4 lx per %)" in text
    assert "roof: daylight = roof-lux" in text


def test_without_the_new_keys_status_reads_as_before() -> None:
    st = _status()
    st["sensors"] = [{k: v for k, v in _sensor("hall-pm25", 30.0).items() if k not in ("raw", "stuck")}]
    assert needs_attention(st) == []
    assert "raw" not in format_status(st, [])


def test_a_trend_filling_its_window_is_warming_up_not_stale() -> None:
    st = _status()
    warming = {**_sensor("hall-pm25-trend", 0.0), "value": None, "age_s": None, "fresh": False, "warming_up": True}
    stale = {**warming, "sensor": "day-trend", "warming_up": False}
    st["sensors"] = [warming, stale]
    problems = needs_attention(st)
    assert problems == ["sensor day-trend is stale"]
    text = format_status(st, problems)
    assert "warming up" in next(line for line in text.splitlines() if "hall-pm25-trend" in line)
    assert "STALE" in next(line for line in text.splitlines() if "day-trend" in line and "is stale" not in line)
