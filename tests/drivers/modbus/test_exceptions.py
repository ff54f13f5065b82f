"""Exception answers to writes, classified once: refused (03), busy (06), gateway target absent (0B)."""

from __future__ import annotations

import random

from daemon.model import WriteOutcome
from drivers.clock import VirtualClock
from drivers.modbus import DeviceConfig, ModbusBus, ModbusDevice
from simulators.devices import DeviceSimulator
from tests.drivers.modbus.helpers import profile

LIGHT = profile("lighting-standard")


def config(port: int, unit_id: int = 1) -> DeviceConfig:
    return DeviceConfig.model_validate(
        {
            "name": "dev",
            "profile": "x",
            "unit_id": unit_id,
            "transport": {"type": "tcp", "host": "127.0.0.1", "port": port},
        }
    )


async def test_a_refused_or_busy_write_is_sent_once_and_says_what_it_was(clock: VirtualClock) -> None:
    async with DeviceSimulator.tcp(LIGHT, 1) as sim:
        cfg = config(sim.port)
        async with ModbusBus(cfg.transport, clock=clock) as bus:
            dev = ModbusDevice(cfg, LIGHT, bus, clock=clock)
            sim.model.refuse_out_of_range = True
            sim.model.ranges["cct"] = (2700, 4000)  # narrower than the profile's 2700..5000
            result = await dev.write_point("cct", 4500)
            assert result.outcome is WriteOutcome.FAILED and result.attempts == 1
            assert result.extra == {"kind": "refused", "exception": "03", "exception_name": "illegal data value"}
            assert (len(sim.model.refused), sim.received_writes[1], dev.online) == (1, 1, True)
            assert (await dev.write_point("cct", 3500)).outcome is WriteOutcome.OK

            sim.model.answer_all = 6
            result = await dev.write_point("cct", 3000)
            assert (result.outcome, result.attempts, result.extra["kind"]) == (WriteOutcome.FAILED, 1, "busy")
            assert sim.received_writes[1] == 3 and dev.online  # not retried within the write


async def test_a_gateway_without_the_unit_marks_it_offline_and_nothing_is_written(clock: VirtualClock) -> None:
    events: list[bool] = []
    async with DeviceSimulator.tcp(LIGHT, 1) as sim:
        sim.absent_unit_code = 0x0B
        cfg = config(sim.port, unit_id=5)  # wrong unit id: the gateway serves unit 1
        async with ModbusBus(cfg.transport, clock=clock) as bus:
            dev = ModbusDevice(
                cfg, LIGHT, bus, clock=clock, rng=random.Random(1), on_availability=lambda _n, up, _w: events.append(up)
            )
            result = await dev.write_point("cct", 3500)
            assert result.outcome is WriteOutcome.FAILED and result.extra["kind"] == "unreachable"
            assert "gateway target failed to respond" in (result.error or "")
            assert (events, dev.online, sim.received_writes[5]) == ([False], False, 1)  # offline at once
            for _ in range(120):  # two minutes of a writer asking every second
                await clock.advance(1.0)
                result = await dev.write_point("cct", 3500)
                assert result.outcome is WriteOutcome.FAILED and result.extra["sent"] == "no"
            assert sim.received_writes[5] == 1  # offline: only reads probe it
            probes = sim.absent_requests[5] - 1
            assert 60 <= probes <= 130, probes  # a probe a second in the first minute, then growing waits

            sim.add_unit(LIGHT, 5)  # the unit is there now (the gateway reaches it)
            await clock.advance(60.0)  # past the next probe
            result = await dev.write_point("cct", 3500)
            assert result.outcome is WriteOutcome.OK and events == [False, True]
