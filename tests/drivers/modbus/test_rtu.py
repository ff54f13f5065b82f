"""Modbus RTU for real: client and simulator on the two ends of a socat pty pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.model import WriteOutcome
from drivers.clock import VirtualClock
from drivers.modbus import (
    ConnectionLost,
    DeviceException,
    DeviceTimeout,
    ModbusBus,
    ModbusDevice,
    RegisterType,
    RtuTransport,
)
from drivers.modbus.config import DeviceConfig
from simulators.devices import DeviceSimulator
from tests.drivers.modbus.helpers import drive, profile

pytestmark = pytest.mark.servers


async def test_write_and_readback_over_a_serial_line(pty_pair: tuple[str, str], clock: VirtualClock) -> None:
    device_end, client_end = pty_pair
    ecodim = profile("ecodim-dali-gw2")
    sim = DeviceSimulator.rtu(ecodim, 7, device_end, baudrate=19200, parameters={"a": 2}, clock=clock)
    transport = RtuTransport(port=client_end, baudrate=19200)
    cfg = DeviceConfig(name="dali", profile="ecodim-dali-gw2", unit_id=7, transport=transport, parameters={"a": 2})
    async with sim, ModbusBus(transport, clock=clock) as bus:
        dev = ModbusDevice(cfg, ecodim, bus, clock=clock)
        result = await drive(clock, dev.write_point("cct", 4000))  # read back after the gateway's 5 s cache
        assert result.outcome is WriteOutcome.OK and result.readback == 4000
        assert [(w.point, w.value) for w in sim.writes] == [("cct", 4000)]
        assert sim.model.tables[ecodim.point("cct").register_type][3324 + 10] == 4000
        assert (await drive(clock, dev.write_point("brightness", 50))).outcome is WriteOutcome.OK
        assert await dev.read_setpoints() == {
            "read_buffer_period": 1, "brightness": pytest.approx(50, rel=0.02), "cct": 4000,
        }  # fmt: skip
        sim.model.fail("cct", 2)
        with pytest.raises(DeviceException) as info:
            await dev.read_point("cct")
        assert info.value.code == 2 and info.value.endpoint == f"rtu://{client_end}"
        assert (bus.stats.connections, bus.stats.failures) == (1, 0)


async def test_an_absent_unit_times_out_and_the_line_serves_the_next_request(
    pty_pair: tuple[str, str], clock: VirtualClock
) -> None:
    device_end, client_end = pty_pair
    light = profile("lighting-standard")
    transport = RtuTransport(port=client_end, baudrate=19200)
    async with DeviceSimulator.rtu(light, 1, device_end, baudrate=19200), ModbusBus(transport, clock=clock) as bus:
        with pytest.raises(DeviceTimeout) as info:
            await bus.read(5, RegisterType.HOLDING, 10, 1, timeout_s=0.2)  # nobody is unit 5 on this line
        assert (info.value.unit_id, info.value.address, info.value.endpoint) == (5, 10, f"rtu://{client_end}")
        assert await bus.read(1, RegisterType.HOLDING, 10, 1, timeout_s=1.0) == [2700]
        assert (bus.stats.connections, bus.stats.failures) == (1, 1)


async def test_a_missing_serial_port_is_connection_lost(tmp_path: Path, clock: VirtualClock) -> None:
    transport = RtuTransport(port=str(tmp_path / "ttyUSB9"))
    async with ModbusBus(transport, clock=clock) as bus:
        with pytest.raises(ConnectionLost, match="cannot connect") as info:
            await bus.read(1, RegisterType.HOLDING, 10, 1, timeout_s=1.0)
        assert info.value.endpoint == f"rtu://{tmp_path / 'ttyUSB9'}"
        assert (bus.stats.connect_attempts, bus.stats.connections) == (1, 0)
