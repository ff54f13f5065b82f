"""Issue 17, finding 9: the systemd watchdog is fed only while the control loop makes progress.

The real daemon runs in this process under :func:`daemon.systemd.serve` (the supervisor ``lobbyd run``
starts under systemd), sending to a fake ``NOTIFY_SOCKET`` with ``WatchdogSec=2``; the broker and both
devices are real (mosquitto, pymodbus simulators). Its clock is a :class:`~drivers.clock.VirtualClock`
that the test keeps at real time, then freezes: the ticker's timers stop firing and the sensors fall
silent, so no rule is evaluated any more while the event loop, the MQTT session and the control socket
all keep running. That is the stuck control loop a blocked-loop check cannot see; the supervisor must
stop feeding the watchdog (so systemd restarts the service) and start again once evaluations resume.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.app import build_daemon
from daemon.config import load_config
from daemon.control_socket import request
from daemon.health import HealthPolicy
from daemon.systemd import Notifier, serve
from drivers.clock import VirtualClock
from tests.e2e.harness import REPO, lobby
from tests.polling import eventually
from tests.service.fake_systemd import FakeSystemd, Notification, fake_systemd

pytestmark = pytest.mark.servers

WATCHDOG_S = 2.0  # WatchdogSec: the supervisor wakes every 0.5 s
T0 = 1_780_475_400.0  # 2026-06-03 10:30 local: the branch is open


def _quick_heartbeat(data: dict[str, Any]) -> None:
    # A heartbeat evaluation every second (resume_grace_s / 2): the health bound on the gap between
    # evaluations, 2 * (heartbeat + evaluate_every_s), is then 4 s instead of the shipped 32 s.
    data["resume_grace_s"] = 2.0
    data["evaluate_every_s"] = 1.0


def _pings(sd: FakeSystemd, after: float) -> Iterator[Notification]:
    return (n for n in sd.with_key("WATCHDOG", "1") if n.at > after)


async def test_watchdog_is_not_fed_while_evaluations_are_stuck(tmp_path: Path) -> None:
    async with (
        lobby(tmp_path, influx=False, edit=_quick_heartbeat) as lob,
        fake_systemd(watchdog_s=WATCHDOG_S) as sd,
    ):
        clock = VirtualClock(T0)
        daemon = build_daemon(lob.loaded, clock=clock, watch_rules=False)
        notifier = Notifier(str(sd.path))
        running = asyncio.Event()
        running.set()

        async def follow_real_time() -> None:
            """The daemon's clock moves with real time while ``running`` is set; it stops otherwise."""
            base = time.monotonic() - clock.now()
            while True:
                await running.wait()
                clock.set(time.monotonic() - base)
                await asyncio.sleep(0.02)

        async def evaluations() -> int:
            st = await request(lob.loaded.control_socket, {"cmd": "status"})
            return int(st["evaluations"])

        async with asyncio.TaskGroup() as tg:
            ticking = tg.create_task(follow_real_time(), name="clock")
            served = tg.create_task(serve(daemon, notifier, environ=sd.env()), name="daemon")
            try:
                # Healthy: subscribed, evaluating, pinging.
                await sd.wait_key("READY", "1")
                for _ in range(3):
                    await sd.wait_key("WATCHDOG", "1", after=len(sd.received))
                assert not any("no rule evaluation" in s for s in sd.statuses()), sd.statuses()

                # Stuck: the sensors fall silent and the daemon's timers stop; the event loop runs on.
                lob.sensors.stop()
                await eventually(daemon.idle, what="the last reading evaluated")
                running.clear()
                frozen_at = time.monotonic()
                unhealthy = await sd.wait_for(
                    lambda n: "no rule evaluation for" in n.fields.get("STATUS", ""), after=len(sd.received), timeout=20
                )
                evals_frozen = await evaluations()  # a reading still in flight at the freeze may have counted
                # Watch for two more WatchdogSec: the loop answers, nothing is evaluated, nothing is fed.
                watch_until = unhealthy.at + 2 * WATCHDOG_S
                while time.monotonic() < watch_until:
                    assert await evaluations() == evals_frozen  # the control socket answers: the loop runs
                    await asyncio.sleep(0.1)
                fed = list(_pings(sd, after=unhealthy.at))
                assert fed == [], f"watchdog fed {len(fed)} times while no rule was evaluated"
                last_ping = max(n.at for n in sd.with_key("WATCHDOG", "1"))
                silent_s = time.monotonic() - last_ping
                assert silent_s > 2 * WATCHDOG_S, silent_s  # systemd would have restarted the service
                # The verdict came within the bound (4 s) plus a supervisor period (0.5 s) and margin.
                assert unhealthy.at - frozen_at < 4.0 + 0.5 + 2.0, unhealthy.at - frozen_at

                # Unstuck: time moves again, the ticker evaluates, the watchdog is fed again.
                resumed_at = time.monotonic()
                running.set()
                await sd.wait_for(lambda n: n.fields.get("WATCHDOG") == "1" and n.at > resumed_at, timeout=10)
                assert await evaluations() > evals_frozen
            finally:
                daemon.stop()
                await served
                ticking.cancel()


def test_the_evaluation_gap_bound_follows_the_heartbeat() -> None:
    shipped = load_config(REPO / "config" / "lobbyd.yaml").config  # resume_grace_s 120: heartbeat 15 s
    assert HealthPolicy.for_config(shipped, watchdog_s=30).max_eval_gap_s == 2 * (15 + shipped.evaluate_every_s)
    quick = shipped.model_copy(update={"resume_grace_s": 2.0, "evaluate_every_s": 0.5})
    assert HealthPolicy.for_config(quick, watchdog_s=30).max_eval_gap_s == 2 * (1 + 0.5)
