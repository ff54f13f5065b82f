"""When the daemon evaluates its rules and retries held writes: on readings a rule reads, and on the
ticker's ``evaluate_every_s`` grid only when something is due (a timer, a ramp, a hold ending, the heartbeat);
and which rules a reading evaluates again (those that read it; the ticker and ``why``: all).

In-process daemon on a virtual clock, no servers: only its control loop and ticker run (and, in the
held-write test, one device writer against a stand-in device), fed through the same ``_on_message``
entry the MQTT link calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from daemon.app import HEARTBEAT_S, Daemon
from daemon.config import load_config
from daemon.model import WriteOutcome, WriteResult
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
    """Until the ticker has handled the ticks due and the control loop whatever was pending (bounded)."""
    async with asyncio.timeout(5):
        while not (d.caught_up() and d.idle()):  # noqa: ASYNC110 - conditions over several events, polled
            await asyncio.sleep(0.001)


def msg(topic: str, payload: str, at: float) -> Message:
    return Message(topic, payload.encode(), False, at)


async def test_a_reading_no_rule_reads_is_recorded_but_evaluates_nothing(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        d._on_message(msg("sensors/demo-001/annex/temp", "21.5", clock.now()))
        d.take_batch()  # it waits in a batch (tests/test_intake_batch.py)
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
        assert (d.stats.ticks, d.stats.evaluations) == (1, 1)  # nothing due: the ticker slept through
        assert d._tick_at == T0 + 1 + HEARTBEAT_S
        await clock.advance(1.0)
        await settled(d)
        assert (d.stats.ticks, d.stats.evaluations) == (2, 2)  # the heartbeat (the watchdog wants progress)
        d._on_message(msg("sensors/demo-001/hall/pm25", "12", clock.now()))
        await settled(d)
        assert d.stats.evaluations == 3  # a reading a rule reads: at once, not at a tick
        assert d.evaluation.next_due <= clock.now() + 120  # at the latest when it goes stale


async def test_a_reading_that_starts_a_timer_wakes_the_ticker_earlier(tmp_path: Path) -> None:
    async with daemon(tmp_path, pm25_alarm_rule("5s")) as (d, clock):
        await clock.advance(1.0)
        await settled(d)
        assert (d.stats.ticks, d.stats.evaluations) == (1, 1)
        assert d._tick_at == T0 + 1 + HEARTBEAT_S  # nothing due: asleep until the heartbeat
        await clock.advance(1.0)
        d._on_message(msg("sensors/demo-001/hall/pm25", "45", clock.now()))
        await settled(d)
        assert d.stats.evaluations == 2
        assert d._tick_at == T0 + 7  # the `for: 5s` completes then: re-armed
        for _ in range(4):
            await clock.advance(1.0)
            await settled(d)
        assert "lights.brightness" not in d.desired and d.stats.ticks == 1  # no daylight reading yet: no decision
        await clock.advance(1.0)
        await settled(d)
        assert (d.stats.ticks, d.stats.evaluations) == (2, 3)
        alarm = d.desired["lights.brightness"]
        assert (alarm.reason.rule, alarm.value) == ("pm25-alarm-light", 100)


async def test_readings_move_a_ramp_on_without_ticks_and_ticks_take_over_when_they_stop(tmp_path: Path) -> None:
    lux, cct = "sensors/demo-001/hall/lux", "lights.cct"
    async with daemon(tmp_path) as (d, clock):
        await clock.advance(0.5)  # readings between the ticker's slots, as a real sensor's would be
        d._on_message(msg(lux, '{"lux": 300}', clock.now()))  # 3500 K on the daylight curve
        await settled(d)
        d._on_message(msg(lux, '{"lux": 1500}', clock.now()))  # 5000 K, at 600 K/min: 150 s of ramp
        await settled(d)
        assert d.desired[cct].value == 3500 and d.desired[cct].reason.held_by == "ramp"
        for _ in range(10):  # a reading a second keeps it moving; the ticker is never needed
            await clock.advance(1.0)
            d._on_message(msg(lux, '{"lux": 1500}', clock.now()))
            await settled(d)
        assert (d.stats.ticks, d.desired[cct].value) == (0, 3600)
        await clock.advance(0.5)
        await settled(d)
        for _ in range(9):  # the sensor falls silent: from a second after it, a tick a second moves the ramp on
            await clock.advance(1.0)
            await settled(d)
        assert clock.now() == T0 + 20
        assert (d.stats.ticks, d.desired[cct].value) == (9, 3500 + 10 * (20 - 0.5))


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


class FakeFan:
    """Stands in for the fresh-air unit's ModbusDevice in the writer: records (clock time, value)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.name, self.online, self.clock = "fresh_air", True, clock
        self.writes: list[tuple[float, float]] = []

    async def write_point(self, point: str, value: float) -> WriteResult:
        self.writes.append((self.clock.now(), value))
        return WriteResult(self.name, point, value, WriteOutcome.OK, readback=value)


async def test_a_held_write_goes_through_when_its_minimum_hold_ends(tmp_path: Path) -> None:
    """The ticker sleeps until the hold ends (not a look every second), then the writer writes."""
    async with daemon(tmp_path) as (d, clock):
        fan = FakeFan(clock)
        d._wake = {"fresh_air": asyncio.Event()}  # no lights writer in this test
        d.gate.observed("fresh_air.fan_speed", 1.0)  # what the unit holds: the opening-hours level
        async with asyncio.TaskGroup() as tg:
            writer = tg.create_task(d._device_writer(fan))  # type: ignore[arg-type]
            d._on_message(msg("sensors/demo-001/hall/pm25", "12", clock.now()))
            await settled(d)
            assert fan.writes == []  # it already holds 1
            d.gate.wrote("fresh_air.fan_speed", 2.0, clock.now(), ok=True)  # as if set to 2 just now
            assert d.loaded.safety_for("fresh_air.fan_speed").min_hold_s == 120
            await clock.advance(1.0)
            d._on_message(msg("sensors/demo-001/hall/pm25", "12", clock.now()))  # the rules want 1 again
            await settled(d)
            assert d.stats.held["fresh_air.fan_speed"].startswith("minimum hold time 120s")
            assert d._retry_at == {"fresh_air": T0 + 120}
            ticks = d.stats.ticks
            for _ in range(118):
                await clock.advance(1.0)
                if int(clock.now() - T0) % 30 == 0:  # fresh readings, the same value: no new decision
                    d._on_message(msg("sensors/demo-001/hall/pm25", "12", clock.now()))
                await settled(d)
            assert clock.now() == T0 + 119 and fan.writes == []
            assert d.stats.ticks - ticks <= 119 // HEARTBEAT_S + 1  # heartbeats, not a tick a second
            await clock.advance(1.0)
            await settled(d)
            assert fan.writes == [(T0 + 120, 1.0)]
            assert "fresh_air.fan_speed" not in d.stats.held and d._retry_at == {}
            writer.cancel()


async def test_a_reading_evaluates_again_only_the_rules_that_read_it_and_why_evaluates_all(tmp_path: Path) -> None:
    async with daemon(tmp_path) as (d, clock):
        d._on_message(msg("sensors/demo-001/hall/pm25", "12", clock.now()))
        d._on_message(msg("sensors/demo-001/hall/lux", "300", clock.now()))
        await settled(d)
        assert d.evaluation is not None and d.evaluation.kept == frozenset()  # the first one: every rule
        await clock.advance(1.0)
        d._on_message(msg("sensors/demo-001/hall/pm25", "14", clock.now()))
        await settled(d)
        ev = d.evaluation
        assert ev is not None and ev.at == clock.now()
        rules = d.rules.ruleset.rules
        hall_pm25 = {
            r.id
            for r in rules
            if any(i.sensor == "hall-pm25" or (i.zone, i.quantity) == ("hall", "pm25") for i in r.inputs())
        }
        assert hall_pm25 and ev.kept == {r.id for r in rules} - hall_pm25  # only the rules reading it ran again
        d.why("fresh_air")
        assert d.evaluation is not ev and d.evaluation.kept == frozenset()  # why: every rule, as of now
