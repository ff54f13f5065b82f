"""When the daemon evaluates its rules and retries held writes: on readings a rule reads, and on the
ticker's ``evaluate_every_s`` grid only when something is due (a timer, a ramp, the heartbeat); a held
write is retried when its limit ends.

In-process daemon on a virtual clock, no servers: only its control loop and ticker run (and, in the
held-write test, one device writer), fed through :meth:`daemon.intake.Intake.on_message`, the entry the
MQTT link calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from daemon.app import Daemon, build_daemon
from daemon.config import load_config
from daemon.control import HEARTBEAT_S
from daemon.control_socket import commands
from drivers.clock import VirtualClock
from drivers.mqtt.message import Message
from tests.e2e.harness import copy_rules, pm25_alarm_rule, write_config

T0 = 1_780_475_400.0  # 2026-06-03 10:30 local: the branch is open


def _annex(data: dict[str, Any]) -> None:
    data["sensors"].append(
        {"id": "annex-temp", "topic": "sensors/demo-001/annex/temp", "zone": "annex", "quantity": "temperature",
         "decoder": {"type": "plain"}, "stale_after_s": 120}
    )  # fmt: skip


@contextlib.asynccontextmanager
async def daemon(tmp_path: Path, extra_rules: str | None = None) -> AsyncIterator[tuple[Daemon, VirtualClock]]:
    rules = copy_rules(tmp_path)
    if extra_rules is not None:
        (rules / "extra.yaml").write_text(extra_rules)
    cfg = write_config(
        tmp_path, mqtt_port=1, device_ports={"fresh_air": 1, "lights": 1}, influx_url=None,
        rules_dir=rules, edit=_annex,
    )  # fmt: skip
    clock = VirtualClock(T0)
    d = build_daemon(load_config(cfg), clock=clock, watch_rules=False)
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(d.parts.control.run()), tg.create_task(d.parts.control.run_ticker())]
        await asyncio.sleep(0)
        try:
            yield d, clock
        finally:
            for t in tasks:
                t.cancel()


async def settled(d: Daemon) -> None:
    """Until the ticker has handled the ticks due and the control loop whatever was pending (bounded).

    No device writer runs here: a woken writer's work is tests/test_actuation.py's subject."""
    async with asyncio.timeout(5):
        while not (d.caught_up() and not d.parts.control.pending):  # noqa: ASYNC110 - two conditions, polled
            await asyncio.sleep(0.001)


def msg(topic: str, payload: str, at: float) -> Message:
    return Message(topic, payload.encode(), False, at)


async def test_a_reading_no_rule_reads_is_recorded_at_once_but_evaluates_nothing(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        p = d.parts
        p.intake.on_message(msg("sensors/demo-001/annex/temp", "21.5", clock.now()))
        assert p.state.latest("annex-temp") is not None and p.recorder.lines == 1  # no batch, no delay
        await settled(d)
        assert p.control.stats.evaluations == 0
        p.intake.on_message(msg("sensors/demo-001/hall/pm25", "12", clock.now()))  # the hall's PM2.5 rules read it
        assert p.control.stats.evaluations == 1  # a lone reading is decided at once, in the same call
        await settled(d)
        assert p.control.stats.evaluations == 1


async def test_a_tick_evaluates_only_when_something_is_due_or_at_the_heartbeat(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        control = d.parts.control
        assert d.parts.loaded.config.evaluate_every_s == 1.0
        await clock.advance(1.0)
        await settled(d)
        assert control.stats.evaluations == 1  # nothing evaluated yet: the first tick does
        assert control.evaluation is not None
        due = control.evaluation.next_due  # no readings: the next change is a rule's clock, or first data
        assert due > T0 + 1 + HEARTBEAT_S
        for _ in range(int(HEARTBEAT_S) - 1):
            await clock.advance(1.0)
            await settled(d)
        assert (control.stats.ticks, control.stats.evaluations) == (1, 1)  # nothing due: the ticker slept through
        assert control.next_tick_at == T0 + 1 + HEARTBEAT_S
        await clock.advance(1.0)
        await settled(d)
        assert (control.stats.ticks, control.stats.evaluations) == (2, 2)  # the heartbeat (the watchdog wants it)
        d.parts.intake.on_message(msg("sensors/demo-001/hall/pm25", "12", clock.now()))
        await settled(d)
        assert control.stats.evaluations == 3  # a reading a rule reads: at once, not at a tick
        assert control.evaluation.next_due <= clock.now() + 120  # at the latest when it goes stale


async def test_a_reading_that_starts_a_timer_wakes_the_ticker_earlier(tmp_path: Path) -> None:
    async with daemon(tmp_path, pm25_alarm_rule("5s")) as (d, clock):
        control = d.parts.control
        await clock.advance(1.0)
        await settled(d)
        assert (control.stats.ticks, control.stats.evaluations) == (1, 1)
        assert control.next_tick_at == T0 + 1 + HEARTBEAT_S  # nothing due: asleep until the heartbeat
        await clock.advance(1.0)
        d.parts.intake.on_message(msg("sensors/demo-001/hall/pm25", "45", clock.now()))
        await settled(d)
        assert control.stats.evaluations == 2
        assert control.next_tick_at == T0 + 7  # the `for: 5s` completes then: re-armed
        for _ in range(4):
            await clock.advance(1.0)
            await settled(d)
        assert "lights.brightness" not in control.desired and control.stats.ticks == 1  # no daylight reading yet
        await clock.advance(1.0)
        await settled(d)
        assert (control.stats.ticks, control.stats.evaluations) == (2, 3)
        alarm = control.desired["lights.brightness"]
        assert (alarm.reason.rule, alarm.value) == ("pm25-alarm-light", 100)


async def test_a_ramp_moves_once_a_minute_and_the_ticker_takes_it_on_when_readings_stop(tmp_path: Path) -> None:
    lux, cct = "sensors/demo-001/hall/lux", "lights.cct"
    async with daemon(tmp_path) as (d, clock):
        control, on_message = d.parts.control, d.parts.intake.on_message
        await clock.advance(0.5)  # readings between the ticker's slots, as a real sensor's would be
        on_message(msg(lux, '{"lux": 300}', clock.now()))  # 3500 K on the daylight curve
        await settled(d)
        on_message(msg(lux, '{"lux": 1500}', clock.now()))  # 5000 K, at 600 K/min: 3 equal steps, one a minute
        await settled(d)
        assert control.desired[cct].value == 4000 and control.desired[cct].reason.held_by == "ramp"
        for _ in range(10):  # more readings within the minute move nothing
            await clock.advance(1.0)
            on_message(msg(lux, '{"lux": 1500}', clock.now()))
            await settled(d)
        assert (control.stats.ticks, control.desired[cct].value) == (0, 4000)
        for _ in range(52):  # the sensor falls silent: the ticker wakes when the next minute begins
            await clock.advance(1.0)
            await settled(d)
        assert clock.now() == T0 + 62.5
        # moved on with no reading; the ticker woke for the heartbeat and the new minute, not every second
        assert control.desired[cct].value == 4500 and control.stats.ticks <= 62 // HEARTBEAT_S + 1


async def test_a_flood_is_evaluated_less_often_than_it_reads_but_no_crossing_is_lost(tmp_path: Path) -> None:
    """1000 readings in one burst: the hysteresis sees each (40 on, 20 off), the last one (30) keeps it off."""
    pm25, fan = "sensors/demo-001/hall/pm25", "fresh_air.fan_speed"
    async with daemon(tmp_path) as (d, clock):
        control, on_message = d.parts.control, d.parts.intake.on_message
        on_message(msg(pm25, "40", clock.now()))
        await settled(d)
        high = control.desired[fan].value
        assert control.desired[fan].reason.rule == "pm25-high"
        before = control.stats.evaluations
        for i in range(1000):
            on_message(msg(pm25, "20" if i == 500 else "30", clock.now()))
        await settled(d)
        assert control.stats.evaluations - before < 1000  # coalesced: the loop never ran in between
        assert control.desired[fan].reason.rule != "pm25-high" and control.desired[fan].value != high


async def test_the_counters_query_is_small_and_counts_rejections_by_reason(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        d.parts.intake.on_message(msg("sensors/demo-001/hall/pm25", "12", clock.now()))
        d.parts.intake.on_message(msg("sensors/demo-001/hall/pm25", "not a number", clock.now()))
        await settled(d)
        c = await commands(d.parts)({"cmd": "counters"})
        assert set(c) == {"received", "accepted", "rejected", "evaluations", "ticks", "overrides"}
        assert c["accepted"] == 1 and c["evaluations"] == 1
        assert sum(c["rejected"].values()) == 1 and c["rejected"]["wrong_type"] == 1
