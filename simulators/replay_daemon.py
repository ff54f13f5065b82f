"""Replay a recorded feed through the REAL daemon on a virtual clock (faster than real time).

Real mosquitto and real Modbus device simulators (from the config's own profiles) on loopback, the
real :class:`daemon.app.Daemon` in this process, sharing one :class:`~daemon.clock.VirtualClock` with
the replayer. The clock moves to each message's recorded time and to each tick the daemon has asked for (a reading
going stale, a ``for:`` timer; and in ``step_s`` steps through gaps, so timers, schedules and
staleness run exactly as they did, only faster); after each step the
replayer waits until the daemon has received the step's messages, evaluated and finished writing.

    python -m simulators.replay FEED --config config/lobbyd.yaml --daemon
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from daemon.config import load_config
from daemon.whatif import read_feed
from drivers.clock import VirtualClock
from simulators.devices import DeviceSimulator
from simulators.publisher import SimPublisher
from simulators.servers import MosquittoServer, free_port
from simulators.settle import settle
from simulators.variants import write_config

__all__ = ["DaemonReplay", "format_daemon_replay", "replay_through_daemon"]


@dataclass
class DaemonReplay:
    """What the daemon did with a feed: device writes (time, point, value) and counters."""

    messages: int = 0
    delivered: int = 0
    evaluations: int = 0
    start: float = 0.0
    end: float = 0.0
    wall_s: float = 0.0
    writes: list[tuple[float, str, float]] = field(default_factory=list)  # what the rules wrote
    initial: dict[str, float] = field(default_factory=dict)  # each setpoint's value before the daemon started
    shutdown_writes: list[tuple[float, str, float]] = field(default_factory=list)  # leaving shutdown states
    fallbacks: Counter[str] = field(default_factory=Counter)


async def replay_through_daemon(
    config: Path, feed: Path, *, step_s: float = 10.0, timeout_s: float = 20.0
) -> DaemonReplay:
    """Replay ``feed`` through a daemon built from ``config`` (its rules and profiles) on a virtual clock."""
    from daemon.app import build_daemon

    logging.getLogger("lobbyd").setLevel(logging.WARNING)
    messages = read_feed(feed)
    if not messages:
        return DaemonReplay()
    source = load_config(config)
    clock = VirtualClock(messages[0].ts)  # the daemon starts where the feed does, as `check --replay` does
    result = DaemonReplay(messages=len(messages), start=messages[0].ts, end=messages[-1].ts)
    wall0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lobbyd-replay-") as tmp_:
        tmp = Path(tmp_)
        mosq = MosquittoServer(tmp / "mosquitto", extra_config="set_tcp_nodelay true")
        await asyncio.to_thread(mosq.start)
        try:
            sims = {
                dc.name: DeviceSimulator.tcp(source.profiles[dc.name], dc.unit_id, port=free_port(),
                                             parameters=dict(dc.parameters), clock=clock)
                for dc in source.config.devices
            }  # fmt: skip
            cfg = write_config(config, tmp / "lobbyd.yaml", mqtt_port=mosq.port,
                               device_ports={n: s.port for n, s in sims.items()}, influx_url=None,
                               rules_dir=source.rules_dir, state_dir=tmp / "state")  # fmt: skip
            loaded = load_config(cfg)
            async with contextlib.AsyncExitStack() as stack:
                for sim in sims.values():
                    await stack.enter_async_context(sim)
                result.initial = {
                    f"{name}.{point}": sim.value(point)
                    for name, sim in sims.items()
                    for point in source.profiles[name].setpoints()
                }
                daemon = build_daemon(loaded, clock=clock, watch_rules=False)
                pub = SimPublisher("127.0.0.1", mosq.port, branch=loaded.config.branch, client_id="lobbyd-replay")
                subscribed = daemon.parts.intake.decoder.router.topics
                async with asyncio.TaskGroup() as tg:
                    pub_task = tg.create_task(pub.run(), name="replay-publisher")
                    daemon_task = tg.create_task(daemon.run(), name="daemon")
                    async with asyncio.timeout(timeout_s):
                        await pub.connected.wait()
                        await daemon.ready.wait()

                    expected = daemon.parts.link.received
                    i = 0
                    t = clock.now()
                    while i < len(messages):
                        # never jump over a tick the daemon asked for (a reading going stale, a timer)
                        due = daemon.parts.control.next_tick_at
                        t = min(t + step_s, messages[i].ts, due if due > t else math.inf)
                        clock.set(t)
                        while i < len(messages) and messages[i].ts <= t:
                            m = messages[i]
                            if await pub.publish(m.topic, m.payload) and m.topic in subscribed:
                                expected += 1
                                result.delivered += 1
                            i += 1
                        async with asyncio.timeout(timeout_s):
                            await settle(daemon, daemon_task, expected, during="replay")
                        result.fallbacks.update(k for k, d in daemon.parts.control.desired.items() if d.reason.fallback)
                    result.evaluations = daemon.parts.control.stats.evaluations
                    by_rules = {name: len(sim.writes) for name, sim in sims.items()}
                    daemon.stop()
                    await daemon_task
                    pub_task.cancel()
            for name, sim in sims.items():
                writes = [(w.ts, f"{name}.{w.point}", w.value) for w in sim.writes]
                result.writes += writes[: by_rules[name]]
                result.shutdown_writes += writes[by_rules[name] :]
        finally:
            mosq.close()
    result.writes.sort()
    result.shutdown_writes.sort()
    result.wall_s = time.monotonic() - wall0
    return result


def format_daemon_replay(r: DaemonReplay) -> str:
    span = max(0.0, r.end - r.start)
    lines = [
        f"replayed {r.messages} messages ({r.delivered} to the daemon) covering {span / 3600:.2f} h "
        f"in {r.wall_s:.1f} s through the real daemon; {r.evaluations} evaluations",
        "device writes:",
    ]
    per_point = Counter(p for _, p, _ in r.writes)
    for point, n in sorted(per_point.items()):
        values = [v for _, p, v in r.writes if p == point]
        lines.append(f"  {point:<28} {n:4d} writes, values {sorted(set(values))}")
    if r.shutdown_writes:
        lines.append(
            "on stopping (profile shutdown states): " + ", ".join(f"{p} = {v:g}" for _, p, v in r.shutdown_writes)
        )
    if r.fallbacks:
        lines.append("fallback steps: " + ", ".join(f"{k} {n}" for k, n in sorted(r.fallbacks.items())))
    return "\n".join(lines)
