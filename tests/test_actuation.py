"""Actuation on a virtual clock with stand-in devices: when writers wake, retries of held and failed
writes, re-applying after a device comes back, and the drain at shutdown.

The devices here are stand-ins that record writes (the Modbus side is tested against real servers in
tests/drivers/modbus and end to end in tests/e2e); what is under test is the policy around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from daemon.actuation import Actuation
from daemon.config import SafetyConfig
from daemon.model import Decision, Reason, WriteOutcome, WriteResult
from daemon.publish import Publisher
from daemon.safety import SafetyGate
from daemon.telemetry import Recorder
from drivers.clock import VirtualClock
from drivers.modbus import AvailabilityCallback, DeviceConfig, load_profile

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_780_475_400.0
FAN = "fresh_air.fan_speed"
PROFILE = load_profile(ROOT / "config" / "devices" / "freshair-standard.yaml")


class FakeDevice:
    """Records (clock time, point, value) of each write; answers as told."""

    def __init__(self, name: str, clock: VirtualClock, on_availability: AvailabilityCallback) -> None:
        self.name, self.clock, self.on_availability = name, clock, on_availability
        self.online, self.polling, self.profile, self.requests = True, False, PROFILE, 0
        self.last_error: str | None = None
        self.writes: list[tuple[float, str, float]] = []
        self.outcome = WriteOutcome.OK
        self.extra: dict[str, str] = {}

    async def read_setpoints(self) -> dict[str, float]:
        return {}

    async def write_point(self, point: str, value: float) -> WriteResult:
        self.writes.append((self.clock.now(), point, value))
        shown = value - 1 if self.outcome is WriteOutcome.MISMATCH else value  # mode N−1 reported for N
        return WriteResult(self.name, point, value, self.outcome, readback=shown, extra=dict(self.extra))

    async def run_polls(self, callback: Callable[[str, str, float], None]) -> None:
        await asyncio.Event().wait()


class NoLink:
    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0) -> None:
        return None


def decision(value: float, at: float, rule: str = "r") -> dict[str, Decision]:
    return {FAN: Decision("fresh_air", "fan_speed", value, Reason(rule, "test"), at)}


@contextlib.asynccontextmanager
async def actuation(min_hold_s: float = 0.0) -> AsyncIterator[tuple[Actuation, FakeDevice, VirtualClock]]:
    clock = VirtualClock(T0)
    made: list[FakeDevice] = []

    def make(dc: DeviceConfig, cb: AvailabilityCallback) -> FakeDevice:
        made.append(FakeDevice(dc.name, clock, cb))
        return made[-1]

    dc = DeviceConfig.model_validate(
        {"name": "fresh_air", "profile": "freshair-standard", "transport": {"type": "tcp", "host": "127.0.0.1"}}
    )
    act = Actuation(
        [dc],
        make_device=make,
        gate=SafetyGate(),
        safety_for=lambda _t: SafetyConfig(min_hold_s=min_hold_s, max_writes_per_hour=30),
        recorder=Recorder("demo-001", None),
        publisher=Publisher("demo-001", NoLink()),
        clock=clock,
    )
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(act.run(drain_s=1.0))
        yield act, made[0], clock
        act.stop()
        await task


async def settled(act: Actuation) -> None:
    async with asyncio.timeout(5):
        while not act.idle:  # noqa: ASYNC110 - the writer's work, polled
            await asyncio.sleep(0.001)


async def test_a_writer_is_woken_only_when_its_device_has_something_to_do() -> None:
    async with actuation() as (act, fan, clock):
        act.desired_changed(decision(1, clock.now()))
        assert act.wants_write("fresh_air")  # the device's value is not known yet: write it
        await settled(act)
        assert [v for _, _, v in fan.writes] == [1] and act.known(FAN) == 1
        act.desired_changed(decision(1, clock.now()))  # the same value again: nothing to do
        assert not act.wants_write("fresh_air")
        act.gate.observed(FAN, 2)  # the unit holds something else (set by hand)
        act.desired_changed(decision(1, clock.now()))
        assert act.wants_write("fresh_air")
        await settled(act)
        assert [v for _, _, v in fan.writes] == [1, 1]


async def test_a_held_write_goes_through_when_its_minimum_hold_ends() -> None:
    async with actuation(min_hold_s=120) as (act, fan, clock):
        act.gate.observed(FAN, 1.0)
        act.gate.wrote(FAN, 2.0, clock.now(), ok=True)  # set to 2 just now
        await clock.advance(1.0)
        act.desired_changed(decision(1, clock.now()))  # the rules want 1 again
        await settled(act)
        assert fan.writes == [] and (act.held_by(FAN) or "").startswith("minimum hold time 120s")
        assert act.retry_at("fresh_air") == T0 + 120
        act.desired_changed(decision(1, clock.now()))  # the same held value again: the writer sleeps on
        assert not act.wants_write("fresh_air")
        for _ in range(118):
            await clock.advance(1.0)
            await settled(act)
        assert clock.now() == T0 + 119 and fan.writes == []
        await clock.advance(1.0)
        await settled(act)
        assert fan.writes == [(T0 + 120, "fan_speed", 1.0)]
        assert act.held_by(FAN) is None and act.retry_at("fresh_air") is None


async def test_a_failed_write_is_retried_once_a_slot_not_in_a_storm() -> None:
    async with actuation() as (act, fan, clock):
        fan.outcome = WriteOutcome.FAILED
        await clock.advance(0.25)
        act.desired_changed(decision(3, clock.now()))
        await settled(act)
        assert len(fan.writes) == 1 and act.retry_at("fresh_air") == T0 + 1
        for _ in range(40):
            await clock.advance(0.25)
            await settled(act)
        assert [t - T0 for t, _, _ in fan.writes] == [0.25, *range(1, 11)]  # one a second
        assert act.stats.writes_failed == 11
        fan.outcome = WriteOutcome.OK
        await clock.advance(1.0)
        await settled(act)
        assert act.known(FAN) == 3 and act.retry_at("fresh_air") is None


async def test_a_mismatch_is_retried_with_backoff_then_marked_and_left_alone() -> None:
    async with actuation() as (act, fan, clock):
        fan.outcome = WriteOutcome.MISMATCH
        for _ in range(4 * 120):  # two minutes of decisions, four a second (a reading each)
            act.desired_changed(decision(2, clock.now()))
            await settled(act)
            await clock.advance(0.25)
        assert [t - T0 for t, _, _ in fan.writes] == [0, 1, 3, 7]  # retries after 1, 2 and 4 s, then none
        m = act.mismatch(FAN)
        assert m is not None and (m.desired, m.readback, m.writes) == (2, 1, 4)
        assert act.held_by(FAN) == "read-back mismatch (wrote 2, device reports 1)"
        assert not act.wants_write("fresh_air") and act.stats.writes_mismatch == 4
        act.desired_changed(decision(3, clock.now()))  # a new value: a fresh start
        await settled(act)
        assert [v for _, _, v in fan.writes][-1] == 3 and act.mismatch(FAN) is None
        fan.outcome = WriteOutcome.OK
        await clock.advance(1.0)
        await settled(act)
        assert act.known(FAN) == 3 and len(fan.writes) == 6 and act.mismatches == {}


async def test_a_marked_mismatch_is_written_again_when_the_device_comes_back() -> None:
    async with actuation() as (act, fan, clock):
        fan.outcome = WriteOutcome.MISMATCH
        act.desired_changed(decision(2, clock.now()))
        for _ in range(10):
            await settled(act)
            await clock.advance(1.0)
        assert len(fan.writes) == 4 and act.mismatch(FAN) is not None
        fan.outcome = WriteOutcome.OK
        fan.on_availability("fresh_air", False, "3 consecutive failures")
        fan.on_availability("fresh_air", True, "device answered")  # perhaps repaired or replaced
        await settled(act)
        assert len(fan.writes) == 5 and act.mismatch(FAN) is None and act.known(FAN) == 2


async def test_a_device_back_online_gets_its_desired_state_again() -> None:
    async with actuation() as (act, fan, clock):
        act.desired_changed(decision(2, clock.now()))
        await settled(act)
        assert len(fan.writes) == 1
        fan.on_availability("fresh_air", False, "3 consecutive failures")
        fan.on_availability("fresh_air", True, "device answered")  # it may have rebooted: what it holds is unknown
        await settled(act)
        assert [v for _, _, v in fan.writes] == [2, 2]


async def test_stop_lets_the_write_under_way_finish_and_writes_nothing_more() -> None:
    async with actuation() as (act, fan, clock):
        act.desired_changed(decision(2, clock.now()))
        act.stop()
        await asyncio.sleep(0)
        act.desired_changed(decision(3, clock.now()))
        await settled(act)
        assert [v for _, _, v in fan.writes] in ([], [2])
        assert 3 not in [v for _, _, v in fan.writes]


async def test_a_refused_value_is_not_written_again_until_the_value_changes() -> None:
    async with actuation() as (act, fan, clock):
        fan.outcome, fan.extra = WriteOutcome.FAILED, {"kind": "refused", "exception": "03"}
        act.desired_changed(decision(3, clock.now()))
        await settled(act)
        for _ in range(120):  # two minutes of evaluations asking for the same value
            await clock.advance(1.0)
            act.desired_changed(decision(3, clock.now()))
            await settled(act)
        assert len(fan.writes) == 1 and "refused 3" in (act.point_error(FAN) or "")
        fan.outcome, fan.extra = WriteOutcome.OK, {}
        act.desired_changed(decision(2, clock.now()))  # a new value is worth a try
        await settled(act)
        assert [v for _, _, v in fan.writes] == [3, 2] and act.point_error(FAN) is None


async def test_a_busy_device_is_asked_again_after_a_growing_wait() -> None:
    async with actuation() as (act, fan, clock):
        fan.outcome, fan.extra = WriteOutcome.FAILED, {"kind": "busy", "exception": "06"}
        act.desired_changed(decision(3, clock.now()))
        await settled(act)
        for _ in range(480):
            await clock.advance(0.25)
            act.desired_changed(decision(3, clock.now()))
            await settled(act)
        gaps = [b - a for (a, _, _), (b, _, _) in itertools.pairwise(fan.writes)]
        assert len(fan.writes) <= 5, gaps  # at most 5 writes in 2 minutes
        assert all(5 * 2**i <= g <= 10 * 2**i + 1 for i, g in enumerate(gaps)), gaps  # doubling, on the 1 s grid
        assert "busy" in (act.point_error(FAN) or "")
