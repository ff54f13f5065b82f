"""When the daemon evaluates its rules: on readings a rule reads, and at least every ``evaluate_every_s``.

In-process daemon on a virtual clock, no servers: only its control loop and ticker run, fed through
the same ``_on_message`` entry the MQTT link calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from daemon.app import HEARTBEAT_S, Daemon
from daemon.clock import VirtualClock
from daemon.config import load_config
from drivers.mqtt.message import Message
from tests.e2e.harness import copy_rules, write_config

T0 = 1_780_475_400.0  # 2026-06-03 10:30 local: the branch is open


def _annex(data: dict[str, Any]) -> None:
    data["sensors"].append(
        {"id": "annex-temp", "topic": "sensors/demo-001/annex/temp", "zone": "annex", "quantity": "temperature",
         "decoder": {"type": "plain"}, "stale_after_s": 120}
    )  # fmt: skip


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, VirtualClock]]:
    cfg = write_config(
        tmp_path, mqtt_port=1, device_ports={"fresh_air": 1, "lights": 1}, influx_url=None,
        rules_dir=copy_rules(tmp_path), edit=_annex,
    )  # fmt: skip
    clock = VirtualClock(T0)
    d = Daemon(load_config(cfg), clock=clock, watch_rules=False)
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(d._control_loop()), tg.create_task(d._ticker())]
        await asyncio.sleep(0)
        try:
            yield d, clock
        finally:
            for t in tasks:
                t.cancel()


async def settled(d: Daemon) -> None:
    """Until the control loop has evaluated whatever was pending (bounded)."""
    async with asyncio.timeout(5):
        while not d.idle():  # noqa: ASYNC110 - idle() is a condition over several events, polled
            await asyncio.sleep(0.001)


def msg(topic: str, payload: str, at: float) -> Message:
    return Message(topic, payload.encode(), False, at)


async def test_a_reading_no_rule_reads_is_recorded_but_evaluates_nothing(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        d._on_message(msg("sensors/demo-001/annex/temp", "21.5", clock.now()))
        await settled(d)
        assert d.state.latest("annex-temp") is not None
        assert d.stats.evaluations == 0
        d._on_message(msg("sensors/demo-001/hall/pm25", "12", clock.now()))  # the hall's PM2.5 rules read it
        await settled(d)
        assert d.stats.evaluations == 1


async def test_a_tick_evaluates_only_when_something_is_due_or_at_the_heartbeat(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        assert d.cfg.evaluate_every_s == 1.0
        await clock.advance(1.0)
        await settled(d)
        assert d.stats.evaluations == 1  # nothing evaluated yet: the first tick does
        assert d.evaluation is not None
        due = d.evaluation.next_due  # no readings: the next change is a rule's clock, or first data
        assert due > T0 + 1 + HEARTBEAT_S
        for _ in range(int(HEARTBEAT_S) - 1):
            await clock.advance(1.0)
            await settled(d)
        assert (d.stats.ticks, d.stats.evaluations) == (HEARTBEAT_S, 1)  # ticks, nothing due
        await clock.advance(1.0)
        await settled(d)
        assert d.stats.evaluations == 2  # the heartbeat (the watchdog wants evaluations to progress)
        d._on_message(msg("sensors/demo-001/hall/pm25", "12", clock.now()))
        await settled(d)
        assert d.stats.evaluations == 3  # a reading a rule reads: at once, not at a tick
        assert d.evaluation.next_due <= clock.now() + 120  # at the latest when it goes stale


async def test_the_counters_query_is_small_and_counts_rejections_by_reason(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        d._on_message(msg("sensors/demo-001/hall/pm25", "12", clock.now()))
        d._on_message(msg("sensors/demo-001/hall/pm25", "not a number", clock.now()))
        await settled(d)
        c = await d.handle_control({"cmd": "counters"})
        assert set(c) == {"received", "accepted", "rejected", "evaluations", "ticks"}
        assert c["accepted"] == 1 and c["evaluations"] == 1
        assert sum(c["rejected"].values()) == 1 and c["rejected"]["wrong_type"] == 1


async def test_a_writer_is_woken_only_when_its_device_has_something_to_do(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        d._wake = {"fresh_air": asyncio.Event(), "lights": asyncio.Event()}  # run() makes them; no writers here

        async def evaluated(payload: str) -> None:
            n = d.stats.evaluations
            d._on_message(msg("sensors/demo-001/hall/pm25", payload, clock.now()))
            async with asyncio.timeout(5):
                while d.stats.evaluations == n or d._dirty.is_set():  # noqa: ASYNC110 - two conditions
                    await asyncio.sleep(0.001)

        await evaluated("12")
        fan = "fresh_air.fan_speed"
        assert fan in d.desired
        assert d._wake["fresh_air"].is_set()  # the device's value is not known yet: write it
        for target, decision in d.desired.items():  # as if every writer had written its value
            d.gate.observed(target, decision.value)
        for w in d._wake.values():
            w.clear()
        await evaluated("12.5")  # a reading that changes no decision
        assert not any(w.is_set() for w in d._wake.values())
        d.gate.observed(fan, d.desired[fan].value + 1)  # the fan holds something else (e.g. set by hand)
        await evaluated("12.4")
        assert d._wake["fresh_air"].is_set()
        assert not d._wake["lights"].is_set()
        d.gate.observed(fan, d.desired[fan].value)
        d._wake["fresh_air"].clear()
        d.stats.held[fan] = "deadband ±1"  # a held-back state is cleared by the writer, so it is woken
        await evaluated("12.3")
        assert d._wake["fresh_air"].is_set()
