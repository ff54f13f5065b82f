"""ModbusBus + ModbusDevice against real pymodbus TCP servers built from the shipped profiles."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from daemon.model import WriteOutcome
from drivers.backoff import Backoff
from drivers.clock import VirtualClock
from drivers.modbus import (
    ConnectionLost,
    DeviceConfig,
    DeviceException,
    DeviceOffline,
    DeviceTimeout,
    ModbusBus,
    ModbusDevice,
    TcpTransport,
)
from drivers.modbus.bus import QUICK_RECONNECT_FOR_S, RECENT_ATTEMPTS
from drivers.modbus.device import QUICK_PROBE_FOR_S
from simulators.devices import DeviceSimulator
from tests.drivers.modbus.helpers import drive, profile
from tests.polling import eventually

LIGHT = profile("lighting-standard")
FRESH = profile("freshair-standard")


def config(port: int, *, unit_id: int = 1, name: str = "dev", **kw: Any) -> DeviceConfig:
    return DeviceConfig.model_validate(
        {
            "name": name,
            "profile": "x",
            "unit_id": unit_id,
            "transport": {"type": "tcp", "host": "127.0.0.1", "port": port},
        }
        | kw
    )


@asynccontextmanager
async def connected(
    sim: DeviceSimulator, clock: VirtualClock, events: list[tuple[str, bool]] | None = None, **kw: Any
) -> AsyncIterator[tuple[ModbusBus, ModbusDevice]]:
    cfg = config(sim.port, **kw)
    backoff = Backoff(0.5, 8.0, rng=random.Random(7))
    async with ModbusBus(cfg.transport, clock=clock, backoff=backoff) as bus:
        device = ModbusDevice(
            cfg, sim.model.profile, bus, clock=clock,
            on_availability=(lambda n, up, why: events.append((n, up))) if events is not None else None,
        )  # fmt: skip
        yield bus, device


async def test_write_is_verified_on_the_readback_address(clock: VirtualClock) -> None:
    async with DeviceSimulator.tcp(LIGHT, 1) as sim, connected(sim, clock) as (bus, dev):
        result = await dev.write_point("cct", 4200)
        assert result.outcome is WriteOutcome.OK
        assert (result.readback, result.attempts) == (4200, 1)
        assert sim.value("cct") == 4200
        assert [(w.point, w.value) for w in sim.writes] == [("cct", 4200)]
        assert sim.model.tables[sim.model.profile.point("cct").register_type][10] == 4200  # read-back register
        assert (dev.requests, bus.stats.requests, sim.model.requests) == (2, 2, 2)  # one write, one read
        assert await dev.read_setpoints() == {"cct": 4200, "brightness": 0}
        assert bus.stats.connections == 1


async def test_bus_is_busy_while_a_request_is_queued_or_served(clock: VirtualClock) -> None:
    """What simulations wait for before they move their virtual clock on (Daemon.idle)."""
    async with DeviceSimulator.tcp(LIGHT, 1) as sim, connected(sim, clock) as (bus, dev):
        await dev.read_setpoints()
        assert not bus.busy
        read = asyncio.ensure_future(dev.read_point("cct"))
        await asyncio.sleep(0)
        assert bus.busy  # queued or on the wire: real time, not the virtual clock's
        assert await read == sim.value("cct")
        assert not bus.busy


async def test_startup_adopts_device_state_without_writing(clock: VirtualClock) -> None:
    async with DeviceSimulator.tcp(FRESH, 1) as sim, connected(sim, clock) as (_bus, dev):
        sim.set_value("fan_speed", 2)
        sim.set_value("fan_output", 55)
        sim.set_value("filter_alarm", 1)
        assert await dev.read_setpoints() == {"fan_speed": 2}
        assert await dev.poll_status() == {"fan_output": 55, "filter_alarm": 1, "fault_code": 0}
        assert await dev.poll_status() == {}  # nothing due yet
        await clock.advance(5)
        assert set(await dev.poll_status()) == {"fan_output", "filter_alarm", "fault_code"}
        assert sim.writes == []


async def test_adjacent_status_points_due_together_are_read_in_one_request(clock: VirtualClock) -> None:
    # freshair-standard: fan_output (input 0) and fault_code (input 1) are one run; filter_alarm is a
    # discrete input: two requests, not three.
    async with DeviceSimulator.tcp(FRESH, 1) as sim, connected(sim, clock) as (_bus, dev):
        sim.set_value("fan_output", 55)
        sim.set_value("fault_code", 7)
        sim.set_value("filter_alarm", 1)
        assert await dev.poll_status() == {"fan_output": 55, "filter_alarm": 1, "fault_code": 7}
        assert dev.requests == sim.model.requests == 2
        await clock.advance(5)
        sim.set_value("fault_code", 0)
        assert await dev.poll_status() == {"fan_output": 55, "filter_alarm": 1, "fault_code": 0}
        assert dev.requests == 4


async def test_a_device_that_refuses_a_read_across_points_is_read_one_by_one(clock: VirtualClock) -> None:
    async with DeviceSimulator.tcp(FRESH, 1) as sim, connected(sim, clock) as (_bus, dev):
        sim.set_value("fan_output", 40)
        sim.model.fail("fault_code", 2)  # illegal data address for anything touching input 1
        assert await dev.poll_status() == {"fan_output": 40, "filter_alarm": 0}  # what can be read still is
        assert dev.requests == 4  # discrete run, refused input run, then its points one by one
        assert "exception 2" in (dev.last_error or "")
        sim.model.heal()
        await clock.advance(5)
        assert await dev.poll_status() == {"fan_output": 40, "filter_alarm": 0, "fault_code": 0}
        assert dev.requests == 7  # one by one from now on: 3 requests
        assert dev.online


async def test_a_busy_device_keeps_its_runs(clock: VirtualClock) -> None:
    async with DeviceSimulator.tcp(FRESH, 1) as sim, connected(sim, clock, retries=0) as (_bus, dev):
        sim.model.fail("fault_code", 6)  # busy: may pass, so it says nothing about reading runs
        assert await dev.poll_status() == {"filter_alarm": 0}  # the input run failed this round
        assert dev.requests == 2 and "exception 6" in (dev.last_error or "")
        sim.model.heal()
        await clock.advance(5)
        assert set(await dev.poll_status()) == {"fan_output", "filter_alarm", "fault_code"}
        assert dev.requests == 4  # still two runs, not three single reads


async def test_readback_after_the_declared_cache_delay(clock: VirtualClock) -> None:
    ecodim = profile("ecodim-dali-gw2")
    async with DeviceSimulator.tcp(ecodim, 3, parameters={"a": 5}, clock=clock) as sim:
        cfg = config(sim.port, unit_id=3, parameters={"a": 5})
        async with ModbusBus(cfg.transport, clock=clock) as bus:
            dev = ModbusDevice(cfg, ecodim, bus, clock=clock)
            waits: list[float] = []
            result = await drive(clock, dev.write_point("brightness", 100), waits=waits)
            assert result.outcome is WriteOutcome.OK and result.readback == 100
            assert waits == [5.0]  # waited for the gateway's read cache
            assert sim.writes[0].registers == (254,)
            assert sim.model.address("brightness") == 3025
            no_verify = await dev.write_point("group_cct", 3000)
            assert no_verify.outcome is WriteOutcome.OK and no_verify.extra == {"verified": "no"}


async def test_mismatch_is_reported_not_rewritten_at_once(clock: VirtualClock) -> None:
    # The actuation retries a mismatch with backoff (daemon level); the device does not hammer it.
    async with DeviceSimulator.tcp(LIGHT, 1) as sim, connected(sim, clock, retries=2) as (_bus, dev):
        sim.model.readback_override["cct"] = 3000  # lamps stuck at 3000 K
        result = await dev.write_point("cct", 4000)
        assert result.outcome is WriteOutcome.MISMATCH
        assert (result.attempts, result.readback) == (1, 3000)
        assert len(sim.writes) == 1 and dev.requests == 2
        sim.model.heal()
        assert (await dev.write_point("cct", 4000)).attempts == 1


async def test_invalid_value_is_not_written(clock: VirtualClock) -> None:
    async with DeviceSimulator.tcp(LIGHT, 1) as sim, connected(sim, clock) as (_bus, dev):
        result = await dev.write_point("cct", 9000)
        assert result.outcome is WriteOutcome.FAILED and "outside" in (result.error or "")
        assert (result.attempts, dev.requests, sim.writes) == (0, 0, [])


@pytest.mark.parametrize(("code", "requests"), [(2, 1), (3, 1), (6, 3)])
async def test_exception_responses_are_classified(clock: VirtualClock, code: int, requests: int) -> None:
    async with DeviceSimulator.tcp(LIGHT, 1) as sim, connected(sim, clock, retries=2, offline_after=1) as (_b, dev):
        sim.model.fail("cct", code)
        waits: list[float] = []
        with pytest.raises(DeviceException) as info:
            await drive(clock, dev.read_point("cct"), waits=waits)
        # busy/gateway: retried after a short, growing wait (drivers.backoff: [d/2, d], d = 0.2 s, 0.4 s)
        assert len(waits) == requests - 1
        assert all(0.1 * 2**i <= w <= 0.2 * 2**i for i, w in enumerate(waits)), waits
        err = info.value
        assert (err.code, err.device, err.unit_id, err.address) == (code, "dev", 1, 10)
        assert err.endpoint == f"tcp://127.0.0.1:{sim.port}"
        assert dev.requests == requests  # illegal address/value: no retry; busy/gateway: retried
        assert dev.online  # an exception response is an answer
        write = await dev.write_point("cct", 3000)
        assert write.outcome is WriteOutcome.FAILED and f"exception {code}" in (write.error or "")


async def test_slow_device_times_out_goes_offline_and_comes_back(clock: VirtualClock) -> None:
    events: list[tuple[str, bool]] = []
    async with (
        DeviceSimulator.tcp(LIGHT, 1) as sim,
        connected(sim, clock, events, timeout_s=0.1, retries=1, offline_after=2) as (bus, dev),
    ):
        assert await dev.read_point("cct") == 2700
        sim.model.delay_s = 5.0
        with pytest.raises(DeviceTimeout) as info:
            await dev.read_point("cct")
        assert (info.value.unit_id, info.value.address) == (1, 10)
        assert dev.requests == 3 and not dev.online  # 1 ok + 2 timeouts (one retry) → offline
        assert events == [("dev", True), ("dev", False)]
        with pytest.raises(DeviceOffline):
            await dev.read_point("cct")
        assert dev.requests == 3  # fast fail: nothing sent while waiting for the next probe
        sim.model.delay_s = 0.0
        await clock.advance(1.0)  # past the first probe delay (0.5-1 s)
        assert await dev.read_point("cct") == 2700
        assert events[-1] == ("dev", True) and dev.online
        assert bus.stats.connections == 1  # timeouts never dropped the TCP connection


async def test_an_offline_device_is_probed_on_its_own_schedule_not_its_poll_interval(clock: VirtualClock) -> None:
    async with (
        DeviceSimulator.tcp(LIGHT, 1) as sim,
        connected(sim, clock, timeout_s=0.1, retries=0, offline_after=1) as (_bus, dev),
    ):
        assert await dev.poll_status()  # every status point read; the next polls are 5 and 10 s away
        sim.model.delay_s = 5.0
        await clock.advance(10)
        with pytest.raises((DeviceTimeout, DeviceOffline)):
            await dev.poll_status()
        assert not dev.online
        wait = dev.next_poll_in()
        assert 0.5 <= wait <= 1.0  # the first probe (0.5-1 s), not the 5 s poll interval
        sim.model.delay_s = 0.0
        await clock.advance(wait)
        assert await dev.poll_status()  # no point is due, yet the probe is sent: the device is back
        assert dev.online


async def test_an_offline_device_is_probed_once_per_growing_interval(clock: VirtualClock) -> None:
    async with DeviceSimulator.tcp(LIGHT, 1) as sim, connected(sim, clock) as (bus, _dev):
        cfg = config(sim.port, timeout_s=0.1, retries=0, offline_after=1)
        dev = ModbusDevice(cfg, LIGHT, bus, clock=clock, probe_backoff=Backoff(1.0, 60.0, rng=random.Random(3)))
        twin = Backoff(1.0, 60.0, rng=random.Random(3))  # draws the same waits
        sim.model.silent = True
        with pytest.raises(DeviceTimeout):
            await dev.read_point("cct")
        assert not dev.online
        # The first minute of an outage: a probe every 0.5-1 s, so a unit back soon is found at once.
        probes = [clock.now()]
        while clock.now() - probes[0] < QUICK_PROBE_FOR_S - 1:
            sent = dev.requests
            await clock.advance(0.05)
            with pytest.raises((DeviceOffline, DeviceTimeout)):
                await dev.read_point("cct")
            if dev.requests > sent:
                probes.append(clock.now())
        gaps = [b - a for a, b in itertools.pairwise(probes)]
        assert all(0.5 - 1e-9 <= g <= 1.05 for g in gaps), gaps
        await clock.advance(1.0)  # the minute is over: the next probes follow the growing backoff
        with pytest.raises(DeviceTimeout):
            await dev.read_point("cct")
        for ceiling in (1, 2, 4, 8, 16, 32, 60, 60):  # each wait in [ceiling/2, ceiling]
            wait = twin.next_delay()
            assert ceiling / 2 <= wait <= ceiling
            sent = dev.requests
            await clock.advance(wait * 0.99)
            with pytest.raises(DeviceOffline):  # not yet: nothing is sent
                await dev.read_point("cct")
            await clock.advance(wait * 0.02)
            with pytest.raises(DeviceTimeout):  # the one probe of this interval
                await dev.read_point("cct")
            assert dev.requests == sent + 1


async def test_a_reconnected_link_probes_its_offline_device_at_once(clock: VirtualClock) -> None:
    events: list[tuple[str, bool]] = []
    async with DeviceSimulator.tcp(LIGHT, 1) as sim:
        cfg = config(sim.port, timeout_s=0.5, retries=0, offline_after=1)
        link_backoff = Backoff(0.5, 1.0)
        async with ModbusBus(cfg.transport, clock=clock, backoff=link_backoff) as bus:
            dev = ModbusDevice(
                cfg, LIGHT, bus, clock=clock,
                on_availability=lambda n, up, _why: events.append((n, up)),
                probe_backoff=Backoff(100.0, 100.0),
            )  # fmt: skip
            assert await dev.read_point("cct") == 2700
            await sim.stop()
            with pytest.raises(ConnectionLost):
                await dev.read_point("cct")
            assert events == [("dev", True), ("dev", False)]
            with pytest.raises(DeviceOffline):  # the next probe is 50-100 s away
                await dev.read_point("cct")
            await eventually(lambda: clock.next_deadline is not None, what="the link's reconnect wait")
            await sim.start()  # same port
            await clock.advance(1)  # past the link's reconnect wait (at most 0.5 s), far from the device's probe
            await eventually(lambda: bus.connected, what="reconnect")
            assert await dev.read_point("cct") == 2700  # the link is back: probed at once, not in 100 s
            assert events[-1] == ("dev", True)


async def test_stopped_device_reconnects_with_bounded_backoff(clock: VirtualClock) -> None:
    events: list[tuple[str, bool]] = []
    async with (
        DeviceSimulator.tcp(LIGHT, 1) as sim,
        connected(sim, clock, events, timeout_s=0.5, retries=0, offline_after=2) as (bus, dev),
    ):
        assert (await dev.write_point("cct", 3500)).outcome is WriteOutcome.OK
        await sim.stop()
        for _ in range(2):
            with pytest.raises(ConnectionLost):
                await dev.read_point("cct")
        assert events == [("dev", True), ("dev", False)]
        await eventually(lambda: bus.stats.connect_attempts == 2, what="the immediate reconnect attempt")
        # The first minute after the last answer: an attempt every 0.5-1 s (a gateway back soon is used at once).
        first = bus.stats.recent_attempts[1]
        while clock.now() - first < QUICK_RECONNECT_FOR_S - 1:
            await reconnect_attempt(clock, bus)
        quick = bus.stats.connect_attempts - 2
        assert 58 <= quick <= 118, quick
        gaps = [b - a for a, b in itertools.pairwise(bus.stats.recent_attempts)]
        assert all(0.5 - 1e-9 <= g <= 1.0 + 1e-9 for g in gaps), gaps
        while clock.now() - first < QUICK_RECONNECT_FOR_S + 20:  # then the waits double (0.5, 1, 2 .. 8 s)
            await reconnect_attempt(clock, bus)
        gaps = [b - a for a, b in itertools.pairwise(list(bus.stats.recent_attempts)[-4:])]
        assert all(4 <= g <= 8 for g in gaps), gaps  # capped at 8 s, each wait in [4, 8]
        start = clock.now()
        before = bus.stats.connect_attempts
        while clock.now() - start < 60:  # a whole virtual minute of a refused link, past the quick one
            await reconnect_attempt(clock, bus)
        assert 7 <= bus.stats.connect_attempts - before <= 16  # never a storm: 4-8 s apart
        assert len(bus.stats.recent_attempts) == RECENT_ATTEMPTS  # bounded, however long the link is down
        assert bus.stats.connections == 1 and not bus.connected

        await sim.start()  # same port
        await reconnect_attempt(clock, bus)
        await eventually(lambda: bus.connected, what="reconnect")
        await clock.advance(120)  # past the device's probe delay
        assert await dev.read_point("cct") == 3500
        assert events == [("dev", True), ("dev", False), ("dev", True)]
        assert bus.stats.connections == 2

        # That answer started the backoff over: the next loss gets an immediate attempt, then the quick waits.
        before = bus.stats.connect_attempts
        await sim.stop()
        with pytest.raises(ConnectionLost):
            await dev.read_point("cct")
        await eventually(lambda: clock.next_deadline is not None, what="the wait after the immediate attempt")
        assert bus.stats.connect_attempts == before + 1
        assert 0.5 <= (clock.next_deadline or 0) - clock.now() <= 1.0


async def reconnect_attempt(clock: VirtualClock, bus: ModbusBus) -> None:
    """Move the clock to the end of the connector's backoff wait and let its attempt finish."""
    attempts = bus.stats.connect_attempts
    await eventually(lambda: clock.next_deadline is not None, what="the connector's backoff wait")
    clock.set(clock.next_deadline or clock.now())
    await eventually(lambda: bus.stats.connect_attempts > attempts and not bus.busy, what="a connect attempt")


async def test_one_slow_unit_does_not_starve_another_on_the_same_bus(clock: VirtualClock) -> None:
    sim = DeviceSimulator(clock=clock)
    fresh = sim.add_unit(FRESH, 1)
    slow = sim.add_unit(LIGHT, 2)
    async with sim:
        transport = TcpTransport(host="127.0.0.1", port=sim.port)
        async with ModbusBus(transport, clock=clock) as bus:
            fast_dev = ModbusDevice(config(sim.port, unit_id=1, name="fresh"), FRESH, bus, clock=clock)
            slow_dev = ModbusDevice(
                config(sim.port, unit_id=2, name="light", timeout_s=0.2, retries=0, offline_after=10), LIGHT, bus,
                clock=clock,
            )  # fmt: skip
            slow.delay_s = 3.0
            fresh.set_value("fan_speed", 3)

            async def hammer_slow() -> int:
                failures = 0
                for _ in range(4):
                    try:
                        await slow_dev.read_point("cct")
                    except DeviceTimeout:
                        failures += 1
                return failures

            async def fast_reads() -> list[tuple[float, int]]:
                out = []
                for _ in range(6):
                    out.append((await fast_dev.read_point("fan_speed"), slow_dev.requests))
                return out

            slow_task = asyncio.create_task(hammer_slow())
            fast = await fast_reads()
            assert await slow_task == 4
        assert [v for v, _ in fast] == [3] * 6  # late answers of unit 2 never leaked into unit 1
        # round robin: each fast read waited for at most one slow request
        assert all(seen <= i + 1 for i, (_, seen) in enumerate(fast)), fast
        assert fresh.requests == 6 and bus.stats.connections == 1
