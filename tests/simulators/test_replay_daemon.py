"""A recorded feed through the real daemon on a virtual clock: hysteresis, safety hold and staleness
behave as in real time (a 40-minute feed takes seconds)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from simulators.replay_daemon import format_daemon_replay, replay_through_daemon

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.servers


def _feed(path: Path) -> float:
    t0 = dt.datetime(2026, 6, 3, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()  # a Wednesday, open
    lines = []
    for i in range(0, 2400, 30):  # every 30 s for 40 minutes
        t = t0 + i
        pm = 10 if i < 600 else 50 if i < 1200 else 20 if i < 1800 else None  # the PM2.5 sensor dies at 30 min
        if pm is not None:
            lines.append({"ts": t, "topic": "sensors/demo-001/hall/pm25", "payload": str(pm), "retain": False})
        lines.append({"ts": t, "topic": "sensors/demo-001/hall/lux", "payload": '{"lux": 300}', "retain": False})
        lines.append({"ts": t, "topic": "sensors/demo-001/outdoor/pm25", "payload": "20", "retain": False})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return t0


async def test_feed_through_the_daemon_on_a_virtual_clock(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    t0 = _feed(feed)
    r = await replay_through_daemon(REPO / "config" / "lobbyd.yaml", feed, step_s=10.0)
    fan = [(round(ts - t0), v) for ts, p, v in r.writes if p == "fresh_air.fan_speed"]
    # low while clean; high at the spike (10 min); medium below 25 (hysteresis of pm25-elevated, 20 min);
    # the sensor dies at 30 min: after its 120 s staleness timeout the rules fall back to their safe value 2,
    # which the fan already holds — so no write; at the end the daemon stops and leaves the profile's
    # shutdown state (low).
    assert [v for _, v in fan] == [1, 3, 2, 1]
    assert [t for t, _ in fan][1:] == [600, 1200, round(r.end - t0)]
    # stale from 1770 + 120 s until the end (2370 s): about 48 steps of 10 s in fallback, none before
    assert 44 <= r.fallbacks["fresh_air.fan_speed"] <= 50, r.fallbacks
    assert r.delivered == r.messages
    assert "fresh_air.fan_speed" in format_daemon_replay(r)
