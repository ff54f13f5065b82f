"""Write ``pollution-day.jsonl.gz``: one day of the demo branch's sensor readings, as ``lobbyd record`` writes them.

    python -m simulators.feeds.build_day [OUT]

Wednesday 3 June 2026, Asia/Shanghai, the sensors of config/lobbyd.yaml in their own payload formats
(:func:`simulators.sensors.payload_for`), one message per sensor topic per minute. The day has what the
shipped rules react to: a clean morning, customers' dust while open, an outdoor pollution episode in the
afternoon that reaches the hall (PM2.5 above 25, then above 35, back down through the hysteresis band),
daylight from sunrise to sunset, and the hall's PM2.5 sensor silent for 25 minutes (staleness, fallback).
Deterministic: the same file every time, so tests and docs can quote what it gives.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon.config import load_config
from drivers.mqtt import TopicRouter
from simulators.sensors import payload_for

ROOT = Path(__file__).resolve().parents[2]
FEED = Path(__file__).resolve().parent / "pollution-day.jsonl.gz"
DAY = dt.datetime(2026, 6, 3, tzinfo=ZoneInfo("Asia/Shanghai"))
PM_SILENT = (14 * 60 + 50, 15 * 60 + 15)  # minutes of the day when the hall PM2.5 sensor says nothing


def _bump(minute: float, centre: float, width: float, height: float) -> float:
    return height * math.exp(-(((minute - centre) / width) ** 2))


def values_at(minute: float) -> dict[str, float]:
    """Every sensor's value at ``minute`` past local midnight."""
    outdoor = 18 + _bump(minute, 14.5 * 60, 75, 170) + 3 * math.sin(minute / 37)
    open_ = 8.5 * 60 <= minute <= 17.5 * 60
    hall = 6 + (5 + 2 * math.sin(minute / 23) if open_ else 0) + _bump(minute, 14.7 * 60, 70, 38)
    light = max(0.0, math.sin(math.pi * (minute - 5 * 60) / (14 * 60)))  # sunrise ~05:00, sunset ~19:00
    return {
        "hall-pm25": hall,
        "outdoor-pm25": outdoor,
        "hall-lux": 40 + 900 * light * (0.8 + 0.2 * math.sin(minute / 11)),
        "hall-climate-temperature": 23 + 2 * light,
        "hall-climate-humidity": 55 - 8 * light,
    }


def build(config: Path = ROOT / "config" / "lobbyd.yaml") -> list[dict[str, object]]:
    sensors = load_config(config).config.sensors
    router = TopicRouter(sensors)
    lines: list[dict[str, object]] = []
    for minute in range(24 * 60):
        values = values_at(minute)
        if PM_SILENT[0] <= minute < PM_SILENT[1]:
            del values["hall-pm25"]
        for topic in router.topics:
            on_topic = [s for s in router.route(topic) if s.id in values]
            if on_topic:
                ts = DAY.timestamp() + minute * 60 + 2 * sorted(router.topics).index(topic)
                payload = payload_for(on_topic, values).decode()
                lines.append({"ts": ts, "topic": topic, "payload": payload, "retain": False})
    lines.sort(key=lambda x: float(str(x["ts"])))
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else FEED
    text = "".join(json.dumps(x, sort_keys=True) + "\n" for x in build())
    with out.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(text.encode())
    print(f"wrote {out} ({out.stat().st_size} bytes, {text.count(chr(10))} messages)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
