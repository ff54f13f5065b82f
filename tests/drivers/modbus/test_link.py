"""Each failure class at the pymodbus edge, against real pymodbus servers (TCP, RTU over TCP)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pymodbus.framer import FramerType

from daemon.model import WriteOutcome
from drivers.backoff import Backoff
from drivers.clock import VirtualClock
from drivers.modbus import (
    ConnectionLost,
    DeviceConfig,
    DeviceException,
    DeviceTimeout,
    ModbusBus,
    ModbusDevice,
    ModbusError,
    ProtocolError,
    RegisterType,
    RtuOverTcpTransport,
    TcpTransport,
)
from simulators.devices import DeviceSimulator
from simulators.servers import free_port
from tests.drivers.modbus.helpers import profile
from tests.polling import eventually

LIGHT = profile("lighting-standard")
HOLDING = RegisterType.HOLDING
CCT = 10  # lighting-standard: the cct read-back register (holding, wire address; 11: brightness)


Link = TcpTransport | RtuOverTcpTransport


def device(transport: Link, *, unit_id: int = 1, **kw: Any) -> DeviceConfig:
    return DeviceConfig.model_validate(
        {"name": "light", "profile": "x", "unit_id": unit_id, "transport": transport.model_dump()} | kw
    )


@asynccontextmanager
async def bus_to(transport: Link, clock: VirtualClock, **kw: Any) -> AsyncIterator[ModbusBus]:
    """A bus whose first connect attempt is over."""
    async with ModbusBus(transport, clock=clock, backoff=Backoff(0.5, 8.0), **kw) as bus:
        await eventually(lambda: bus.stats.connect_attempts > 0 and not bus.busy, what="the first connect attempt")
        yield bus


@asynccontextmanager
async def served(
    clock: VirtualClock, *, framer: FramerType = FramerType.SOCKET, gap_s: float = 0.005, max_pending: int = 256
) -> AsyncIterator[tuple[DeviceSimulator, Link, ModbusBus]]:
    """A lighting simulator (unit 1) and a connected bus to it (``FramerType.RTU``: RTU over TCP)."""
    async with DeviceSimulator.tcp(LIGHT, 1, framer=framer) as sim:
        link: Link = TcpTransport(host="127.0.0.1", port=sim.port)
        if framer is FramerType.RTU:
            link = RtuOverTcpTransport(host="127.0.0.1", port=sim.port, inter_frame_gap_s=gap_s)
        async with bus_to(link, clock, max_pending=max_pending) as bus:
            assert bus.connected
            yield sim, link, bus


@pytest.mark.parametrize("fault", ["wrong unit", "silent device"])
async def test_no_answer_is_a_device_timeout_and_the_link_stays(clock: VirtualClock, fault: str) -> None:
    async with served(clock) as (sim, link, bus):
        unit = 9 if fault == "wrong unit" else 1
        sim.model.silent = fault == "silent device"
        with pytest.raises(DeviceTimeout) as info:
            await bus.read(unit, HOLDING, CCT, 1, timeout_s=0.1)
        err = info.value
        assert (err.endpoint, err.unit_id, err.address) == (link.key, unit, CCT)
        assert "no answer within 0.1s" in str(err)
        assert bus.connected and bus.stats.connections == 1
        assert (bus.stats.requests, bus.stats.failures) == (1, 1)
        sim.model.heal()
        assert await bus.read(1, HOLDING, CCT, 1, timeout_s=1.0) == [2700]  # no late answer leaks in


async def test_a_refused_link_fails_fast_and_reconnects_only_on_its_backoff(clock: VirtualClock) -> None:
    transport = TcpTransport(host="127.0.0.1", port=free_port())  # nothing listens there
    async with bus_to(transport, clock) as bus:
        assert not bus.connected and bus.stats.connect_attempts == 1
        assert isinstance(bus.last_error, ConnectionLost) and "cannot connect" in bus.last_error.message
        for _ in range(20):
            with pytest.raises(ConnectionLost) as info:
                await bus.read(1, HOLDING, CCT, 1, timeout_s=1.0)
        assert "link down, reconnecting: cannot connect" in str(info.value)
        assert (info.value.endpoint, info.value.unit_id, info.value.address) == (transport.key, 1, CCT)
        # No storm: twenty failed requests, still the one attempt; the next waits for the backoff.
        assert (bus.stats.connect_attempts, bus.stats.requests, bus.stats.failures) == (1, 0, 20)
        wait = clock.next_deadline
        assert wait is not None and 0.25 <= wait - clock.now() <= 0.5  # Backoff(0.5, 8): [d/2, d]
        clock.set(wait)
        await eventually(lambda: bus.stats.connect_attempts == 2 and not bus.busy, what="the second attempt")
        assert list(bus.stats.recent_attempts) == [1_700_000_000.0, wait]


async def test_a_link_lost_during_a_request_is_connection_lost_at_once(clock: VirtualClock) -> None:
    async with served(clock) as (sim, _link, bus):
        sim.model.delay_s = 30.0
        read = asyncio.ensure_future(bus.read(1, HOLDING, CCT, 1, timeout_s=20.0))
        await eventually(lambda: sim.model.held == 1, what="the request at the device")
        await sim.stop()  # drops the connection; the answer never comes
        with pytest.raises(ConnectionLost) as info:
            async with asyncio.timeout(5):  # not the 20 s request timeout
                await read
        assert "connection lost while waiting for the answer" in str(info.value)
        assert info.value.unit_id == 1 and not bus.connected


async def test_an_answer_that_does_not_fit_is_a_protocol_error(clock: VirtualClock) -> None:
    async with served(clock) as (sim, link, bus):
        dev = ModbusDevice(device(link, retries=1, offline_after=5), LIGHT, bus, clock=clock)
        sim.model.short_answer = True  # one register fewer than asked
        with pytest.raises(ProtocolError) as info:
            await dev.read_point("cct")
        err = info.value
        assert "expected 1 registers, got 0" in str(err)
        assert (err.device, err.endpoint, err.unit_id, err.address) == ("light", link.key, 1, CCT)
        assert dev.requests == 2  # a bad answer may be a glitch: retried once
        with pytest.raises(ProtocolError, match="expected 2 registers, got 1"):
            await bus.read(1, HOLDING, CCT, 2, timeout_s=1.0)  # cct and brightness read back
        assert bus.connected and bus.stats.connections == 1  # well framed: the link is fine
        sim.model.heal()
        assert await dev.read_point("cct") == 2700


async def test_a_write_echo_that_differs_is_a_protocol_error(clock: VirtualClock) -> None:
    async with served(clock) as (sim, link, bus):
        sim.model.bad_echo = True
        with pytest.raises(ProtocolError, match=r"write echo \(0, \[3001\]\) differs from the request \(0, \[3000\]\)"):
            await bus.write(1, HOLDING, 0, [3000], timeout_s=1.0)
        dev = ModbusDevice(device(link, retries=1), LIGHT, bus, clock=clock)
        result = await dev.write_point("cct", 4000)
        assert result.outcome is WriteOutcome.FAILED and result.attempts == 2
        assert "write echo" in (result.error or "")
        sim.model.heal()
        assert (await dev.write_point("cct", 4000)).outcome is WriteOutcome.OK


async def test_rtu_over_tcp_against_a_pymodbus_server_with_the_rtu_framer(clock: VirtualClock) -> None:
    async with served(clock, framer=FramerType.RTU) as (sim, rtu, bus):
        dev = ModbusDevice(device(rtu, retries=0), LIGHT, bus, clock=clock)
        result = await dev.write_point("cct", 4100)
        assert result.outcome is WriteOutcome.OK and result.readback == 4100
        assert [(w.point, w.value) for w in sim.writes] == [("cct", 4100)]
        sim.model.fail("cct", 2)
        with pytest.raises(DeviceException) as info:
            await dev.read_point("cct")
        assert (info.value.code, info.value.endpoint) == (2, rtu.key)
        with pytest.raises(DeviceTimeout):  # unit 9 is not on this line: RTU frames to it go unanswered
            await bus.read(9, HOLDING, CCT, 1, timeout_s=0.1)
        assert bus.stats.connections == 1
        # The same server spoken to with MBAP framing answers nothing: the framer is what makes it work.
        async with bus_to(TcpTransport(host="127.0.0.1", port=sim.port), clock) as mbap:
            with pytest.raises((DeviceTimeout, ConnectionLost)):
                await mbap.read(1, HOLDING, CCT, 1, timeout_s=0.2)


async def test_rtu_frames_keep_the_configured_silence_between_them(clock: VirtualClock) -> None:
    async with served(clock, framer=FramerType.RTU, gap_s=0.25) as (_sim, _rtu, bus):
        loop = asyncio.get_running_loop()
        await bus.read(1, HOLDING, CCT, 1, timeout_s=1.0)
        t0 = loop.time()
        for _ in range(3):
            await bus.read(1, HOLDING, CCT, 1, timeout_s=1.0)
        assert loop.time() - t0 >= 3 * 0.25  # real time: the line's silence is physical


@pytest.mark.parametrize(
    ("call", "why"),
    [
        (lambda b: b.read(1, HOLDING, 0, 0, timeout_s=1.0), "carries 1 to 125"),
        (lambda b: b.read(1, HOLDING, 0, 126, timeout_s=1.0), "carries 1 to 125"),
        (lambda b: b.read(1, RegisterType.COIL, 0, 2001, timeout_s=1.0), "carries 1 to 2000"),
        (lambda b: b.read(1, HOLDING, 65535, 2, timeout_s=1.0), "outside 0..65535"),
        (lambda b: b.read(1, HOLDING, -1, 1, timeout_s=1.0), "outside 0..65535"),
        (lambda b: b.read(256, HOLDING, 0, 1, timeout_s=1.0), "unit id"),
        (lambda b: b.read(1, HOLDING, 0, 1, timeout_s=math.nan), "timeout_s"),
        (lambda b: b.read(1, HOLDING, 0, 1, timeout_s=0.0), "timeout_s"),
        (lambda b: b.read(1, HOLDING, 0, 1, timeout_s=1e9), "timeout_s"),
        (lambda b: b.write(1, RegisterType.INPUT, 0, [1], timeout_s=1.0), "cannot be written"),
        (lambda b: b.write(1, HOLDING, 0, [70000], timeout_s=1.0), "0..65535"),
        (lambda b: b.write(1, HOLDING, 0, [], timeout_s=1.0), "carries 1 to 123"),
    ],
)
async def test_requests_modbus_cannot_carry_are_refused(clock: VirtualClock, call: Any, why: str) -> None:
    async with served(clock) as (sim, _link, bus):
        with pytest.raises(ValueError, match=why):
            await call(bus)
        assert (bus.stats.requests, sim.model.requests) == (0, 0)
        assert await bus.read(1, HOLDING, CCT, 1, timeout_s=1.0) == [2700]


async def test_the_queue_is_bounded(clock: VirtualClock) -> None:
    async with served(clock, max_pending=2) as (sim, _link, bus):
        sim.model.silent = True
        reads = [asyncio.ensure_future(bus.read(1, HOLDING, CCT, 1, timeout_s=20.0))]
        await eventually(lambda: bus.stats.requests == 1, what="the first request on the wire")
        reads += [asyncio.ensure_future(bus.read(1, HOLDING, CCT, 1, timeout_s=20.0)) for _ in range(2)]
        await asyncio.sleep(0)  # both queued behind the first
        with pytest.raises(ModbusError, match="bus queue full"):
            await bus.read(1, HOLDING, CCT, 1, timeout_s=20.0)
        assert bus.stats.failures == 1
        for r in reads:
            r.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
