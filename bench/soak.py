"""Accelerated soak: the real daemon on a virtual clock for a simulated week; RSS, fds and tasks stay flat.

Run: ``python -m bench.soak [--days 7] [--step-s 60]``. Not a test. Real mosquitto and influxd on
loopback, the two standard device simulators, the shipped rules and config; the daemon runs
in-process on a :class:`daemon.clock.VirtualClock`. Every step the five sensors publish a reading
(a diurnal daylight curve, a PM2.5 episode every few hours, slow temperature/humidity drift) through
the broker; the bench waits until the daemon has received them, then advances the clock by
``--step-s``. Every simulated six hours it samples this process's RSS, open fds and asyncio tasks.
Verdict: RSS growth from day 1 to the end under ``--max-growth-mb``; fds and tasks do not grow (their
floor in the second half is not above the first half's, peaks at most 2 above: a request in flight).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from bench.rig import daemon_config, device_sims
from daemon.app import build_daemon
from daemon.config import load_config
from drivers.clock import VirtualClock
from simulators.servers import InfluxServer, MosquittoServer

_PAGE = os.sysconf("SC_PAGE_SIZE")
START = 1780453800.0  # 2026-06-03 10:30 +08:00, a Wednesday


@dataclass(frozen=True)
class Point:
    """One sample of the process during the soak."""

    sim_h: float
    rss_mb: float
    fds: int
    tasks: int
    evaluations: int
    writes: int
    received: int


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE / 1e6


def fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


def readings(t: float) -> dict[str, bytes]:
    """What the lobby's sensors say at simulated time ``t`` (topic -> payload)."""
    h = ((t - START) / 3600 + 10.5) % 24
    lux = max(0.0, math.sin((h - 6) / 12 * math.pi)) * 900 + 20
    pm = 12 + (40 if int((t - START) // 3600) % 5 == 0 else 0)
    temp = 24 + 2 * math.sin(h / 24 * 2 * math.pi)
    return {
        "sensors/demo-001/hall/pm25": f"{pm:.1f}".encode(),
        "sensors/demo-001/outdoor/pm25": b"18.0",
        "sensors/demo-001/hall/lux": f'{{"lux": {lux:.0f}}}'.encode(),
        "zigbee2mqtt/demo-001/hall-climate": f'{{"temperature": {temp:.2f}, "humidity": 50}}'.encode(),
    }


async def soak(days: float, step_s: float, tmp: Path) -> list[Point]:
    mosq = MosquittoServer(tmp / "mosquitto")
    idb = InfluxServer(tmp / "influxd")
    mosq.start()
    idb.start()
    idb.create_database("lobbyd")
    state = Path(tempfile.mkdtemp(prefix="lobbyd-soak-", dir="/dev/shm"))  # fsync every step: keep it in RAM
    try:
        async with device_sims() as sims:

            def edit(data: dict[str, object]) -> None:
                data["state_dir"] = str(state)

            ports = {name: sim.port for name, sim in sims.items()}
            cfg = daemon_config(tmp, mqtt_port=mosq.port, device_ports=ports, influx_url=idb.url, edit=edit)
            loaded = load_config(cfg)
            clock = VirtualClock(START)
            daemon = build_daemon(loaded, clock=clock, watch_rules=False)
            points: list[Point] = []
            async with asyncio.TaskGroup() as tg:
                run = tg.create_task(daemon.run(), name="daemon")
                while not daemon.ready.is_set():  # start-up waits (backoff, pacing) follow the virtual clock
                    await clock.advance(0.05)
                    await asyncio.sleep(0.01)
                async with aiomqtt.Client("127.0.0.1", mosq.port, identifier="soak-sensors") as pub:
                    steps = int(days * 86400 / step_s)
                    every = max(1, int(6 * 3600 / step_s))
                    for i in range(steps + 1):
                        msgs = readings(clock.now())
                        want = daemon.parts.link.received + len(msgs)
                        for topic, payload in msgs.items():
                            await pub.publish(topic, payload)
                        deadline = time.monotonic() + 10
                        while daemon.parts.link.received < want and time.monotonic() < deadline:  # noqa: ASYNC110
                            await asyncio.sleep(0.0005)
                        await clock.advance(step_s)
                        if i % every == 0:
                            gc.collect()
                            s, w = daemon.parts.control.stats, daemon.parts.actuation.stats
                            points.append(
                                Point(
                                    (clock.now() - START) / 3600,
                                    rss_mb(),
                                    fds(),
                                    len(asyncio.all_tasks()),
                                    s.evaluations,
                                    w.writes_ok + w.writes_failed + w.writes_mismatch,
                                    daemon.parts.link.received,
                                )
                            )
                            p = points[-1]
                            print(
                                f"  sim {p.sim_h:7.1f} h  rss {p.rss_mb:6.1f} MB  fds {p.fds:3d}  tasks {p.tasks:3d}  "
                                f"evals {p.evaluations:7d}  writes {p.writes:5d}  msgs {p.received:7d}",
                                flush=True,
                            )
                daemon.stop()
                while not run.done():
                    await clock.advance(0.5)
                    await asyncio.sleep(0.01)
            return points
    finally:
        mosq.close()
        idb.close()
        shutil.rmtree(state, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--step-s", type=float, default=60.0)
    ap.add_argument("--max-growth-mb", type=float, default=5.0)
    args = ap.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lobbyd-soak-") as d:
        points = asyncio.run(soak(args.days, args.step_s, Path(d)))
    wall = time.monotonic() - t0
    day1 = [p for p in points if p.sim_h >= 24]
    if len(day1) < 4:  # a run of a day or so: judge all but the start-up sample, not one or two samples
        day1 = points[1:] or points
    base, last = day1[0], points[-1]
    growth = last.rss_mb - base.rss_mb
    print(
        f"\nsimulated {last.sim_h / 24:.1f} days in {wall:.0f} s wall; {last.evaluations} evaluations, "
        f"{last.writes} Modbus writes, {last.received} MQTT messages"
    )
    print(
        f"RSS {base.rss_mb:.1f} MB after {base.sim_h:.0f} h -> {last.rss_mb:.1f} MB at the end ({growth:+.1f} MB); "
        f"peak {max(p.rss_mb for p in points):.1f} MB"
    )
    print(f"fds {sorted({p.fds for p in day1})}; tasks {sorted({p.tasks for p in day1})}")
    # A leak raises the typical count (the median of each half: one sample that catches a moment without
    # a transient task must not count as a rise). Above it, a sample may catch transient tasks or
    # sockets (a time-series request in flight, a Modbus reconnect); they must not pile up either.
    mid = (base.sim_h + last.sim_h) / 2
    first, second = [p for p in day1 if p.sim_h < mid], [p for p in day1 if p.sim_h >= mid]
    steady = all(
        statistics.median_low(map(f, second)) <= statistics.median_low(map(f, first))
        and max(map(f, second)) <= max(map(f, first)) + 2
        for f in (lambda p: p.fds, lambda p: p.tasks)
    ) if first and second else False  # fmt: skip
    ok = growth < args.max_growth_mb and steady
    print("VERDICT:", "flat" if ok else "NOT FLAT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
