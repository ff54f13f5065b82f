"""Replay speed: a simulated 24 h lobby day, against the 30 s target.

1. ``simulate``: the business-day scenario (``simulators/scenarios/business-day.yaml``) through the REAL
   daemon (:class:`daemon.app.Daemon` on a :class:`~daemon.clock.VirtualClock`) with real mosquitto,
   pymodbus device simulators and influxd — ``lobbyd simulate``'s engine (``simulators.simulate``).
2. ``what-if``: a recorded 24 h feed (the lobby's four topics every 10 s: 34 560 messages) through
   ``daemon/whatif.py`` (router, decoders, engine every second of feed time, safety gate; no I/O).

Run alone: ``.venv/bin/python -m bench.bench_replay``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.rig import REPO

TARGET_S = 30.0


@dataclass
class ReplayRow:
    name: str
    simulated_h: float
    wall_s: float
    detail: str

    @property
    def speedup(self) -> float:
        return self.simulated_h * 3600 / self.wall_s


def write_feed(path: Path, *, hours: float = 24.0, every_s: float = 10.0) -> int:
    """A day of the standard lobby's sensors as a JSONL feed; returns the message count."""
    from daemon.config import load_config
    from simulators.sensors import payload_for

    loaded = load_config(REPO / "config" / "lobbyd.yaml")
    tz = dt.timezone(dt.timedelta(hours=8))
    t0 = dt.datetime(2026, 6, 3, tzinfo=tz).timestamp()
    by_topic: dict[str, list[object]] = {}
    for s in loaded.config.sensors:
        by_topic.setdefault(s.topic, []).append(s)
    n = 0
    with path.open("w") as f:
        for k in range(int(hours * 3600 / every_s)):
            t = t0 + k * every_s
            hour = (k * every_s / 3600) % 24
            pm = 12 + (30 if 11.5 <= hour < 12.5 else 0) + (k % 7)  # a lunchtime PM2.5 episode
            lux = max(0.0, 1200 * (1 - abs(hour - 12.5) / 6.5))
            values = {"hall-pm25": pm, "outdoor-pm25": 30.0, "hall-lux": lux,
                      "hall-climate-temperature": 23.5, "hall-climate-humidity": 48.0}  # fmt: skip
            for topic, group in by_topic.items():
                payload = payload_for(group, values)  # type: ignore[arg-type]
                f.write(json.dumps({"ts": t, "topic": topic, "payload": payload.decode(), "retain": False}) + "\n")
                n += 1
    return n


def whatif_row(tmp: Path) -> ReplayRow:
    from daemon.config import load_config
    from daemon.rules.load import load_rules
    from daemon.whatif import replay

    feed = tmp / "day.jsonl"
    n = write_feed(feed)
    loaded = load_config(REPO / "config" / "lobbyd.yaml")
    rules = load_rules(loaded.rules_dir, loaded.rule_context())
    t0 = time.perf_counter()
    report = replay(loaded, rules.ruleset, feed, step_s=1.0)
    wall = time.perf_counter() - t0
    writes = sum(p.writes for p in report.points.values())
    return ReplayRow(
        "what-if replay of a recorded feed (daemon/whatif.py, engine every 1 s)",
        (report.end - report.start) / 3600,
        wall,
        f"{n:,} messages, {report.evaluations:,} evaluations, {writes} writes",
    )


async def simulate_row() -> ReplayRow:
    from simulators.scenario import load_scenario
    from simulators.simulate import run_scenario

    scn = load_scenario(REPO / "simulators" / "scenarios" / "business-day.yaml")
    t0 = time.perf_counter()
    res = await run_scenario(scn, "lobbyd", influx=True)
    wall = time.perf_counter() - t0
    writes = sum(len(w) for w in res.writes.values())
    return ReplayRow(
        "simulated day through the real daemon (lobbyd simulate: VirtualClock, mosquitto, pymodbus, influxd)",
        scn.duration_h,
        wall,
        f"{res.published:,} messages published, {res.evaluations:,} evaluations, {writes} Modbus writes",
    )


def bench() -> list[ReplayRow]:
    rows: list[ReplayRow] = []
    try:
        rows.append(asyncio.run(simulate_row()))
    except ImportError as exc:  # the simulator is another engineer's work in progress
        rows.append(ReplayRow(f"simulated day: not available ({exc})", 24, float("nan"), ""))
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        rows.append(whatif_row(Path(tmp)))
    return rows


def markdown(rows: list[ReplayRow]) -> str:
    out = ["| replay | simulated | wall s | × real time | vs 30 s target | work |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        out.append(
            f"| {r.name} | {r.simulated_h:.0f} h | {r.wall_s:.1f} | {r.speedup:,.0f} | "
            f"{r.wall_s / TARGET_S:.2f} | {r.detail} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    print(markdown(bench()))


if __name__ == "__main__":
    main()
