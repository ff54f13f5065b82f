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
    # low while clean; high at the spike (10 min; the median of nine readings turns 50 two minutes
    # later); at 20 µg/m³ (20 min, the median two minutes later) high and medium both let go, and high
    # keeps 3 for its release_after of 5 minutes; but at 1530 s the 15-minute trend of the median (no
    # longer holding the 10s from before the spike) reads a fall of more than 0.5 a minute, and
    # pm25-clearing takes the fan straight to low. The sensor dies at 30 min: after its 120 s
    # staleness timeout the rules fall back to their safe value with outdoor air known clean, 1, which
    # the fan already holds — so no write; at the end the daemon stops and leaves the profile's
    # shutdown state (low), which is not a rule's write.
    assert [v for _, v in fan] == [1, 3, 1]
    assert [t for t, _ in fan][1:] == [720, 1530]
    assert r.shutdown_writes == []  # the fan already holds its shutdown state (low)
    # stale from 1770 + 120 s until the end (2370 s): about 48 steps of 10 s in fallback, none before,
    # plus the steps to the ticks the daemon asks for in between (the replay never jumps over one)
    assert 44 <= r.fallbacks["fresh_air.fan_speed"] <= 70, r.fallbacks
    assert r.delivered == r.messages
    assert "fresh_air.fan_speed" in format_daemon_replay(r)


SHIPPED_FEED = REPO / "simulators" / "feeds" / "pollution-day.jsonl.gz"


async def test_check_replay_and_the_daemon_write_the_same_on_the_shipped_day() -> None:
    """One engine path: `lobbyd check --replay` (daemon/whatif.py) and the real daemon on the same day give
    the same writes, at the same second, to the fan and the brightness. Both start where the feed does,
    the what-if from the values the daemon found on the devices; the daemon's leaving of shutdown
    states when it stops is not a rule's write. The colour temperature is compared by count only:
    see docs/simulation.md for why its values differ (register resolution, a ramp's cadence, a tick and a
    message at the same instant before a 100 K deadband)."""
    from daemon.config import load_config
    from daemon.rules.load import load_rules
    from daemon.whatif import replay

    config = REPO / "config" / "lobbyd.yaml"
    by_daemon = await replay_through_daemon(config, SHIPPED_FEED, step_s=10.0)
    loaded = load_config(config)
    rules = load_rules(loaded.rules_dir, loaded.rule_context())
    by_check = replay(loaded, rules.ruleset, SHIPPED_FEED, initial=by_daemon.initial)

    for target in ("fresh_air.fan_speed", "lights.brightness"):
        mine = [(round(t), v) for t, v in by_check.points[target].values]
        theirs = [(round(t), v) for t, p, v in by_daemon.writes if p == target]
        assert [v for _, v in mine] == [v for _, v in theirs], target
        # the same second, give or take one: a release_after ending between two readings is seen at the
        # what-if's next whole second from the feed's start, and at the daemon's next tick slot
        assert all(abs(b - a) <= 1 for (a, _), (b, _) in zip(mine, theirs, strict=True)), (target, mine, theirs)
    fan = [v for _, v in by_check.points["fresh_air.fan_speed"].values]
    assert fan == [2, 1, 2, 3, 2, 1, 0]  # pre-purge at 08:00; open; the afternoon episode up and down; closed
    assert by_daemon.shutdown_writes == [(by_daemon.end, "fresh_air.fan_speed", 1.0)]
    cct = [v for _, p, v in by_daemon.writes if p == "lights.cct"]
    assert abs(len(cct) - by_check.points["lights.cct"].writes) <= 2
