"""Modbus RTU for real: client and simulator on the two ends of a socat pty pair."""

from __future__ import annotations

import pytest

from daemon.model import WriteOutcome
from drivers.clock import VirtualClock
from drivers.modbus import DeviceException, ModbusBus, ModbusDevice, RtuTransport
from drivers.modbus.config import DeviceConfig
from drivers.modbus.wire import crc16
from simulators.devices import DeviceSimulator
from tests.drivers.modbus.helpers import drive, profile

pytestmark = pytest.mark.servers


def test_crc16_known_frame() -> None:
    # read holding registers, unit 1, address 0, count 1: 01 03 00 00 00 01 84 0A
    assert crc16(bytes.fromhex("010300000001")).to_bytes(2, "little") == bytes.fromhex("840A")


async def test_write_and_readback_over_a_serial_line(pty_pair: tuple[str, str], clock: VirtualClock) -> None:
    device_end, client_end = pty_pair
    ecodim = profile("ecodim-dali-gw2")
    sim = DeviceSimulator.rtu(ecodim, 7, device_end, baudrate=19200, parameters={"a": 2}, clock=clock.now)
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
