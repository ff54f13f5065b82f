"""Read-back as devices do it: another register space, another encoding, a tolerance (issue 18, 2 and 3).

Profile semantics are pure; the device cases run ModbusDevice against real pymodbus simulators
configured with the quirks of real units (mode N−1 reported for mode N written, the actual value
in an input register while the written holding register reads 0).
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from daemon.model import WriteOutcome
from drivers.clock import VirtualClock
from drivers.modbus import DeviceProfile, PointSpec, RegisterType
from drivers.modbus.codec import EnumEncoder
from simulators.devices import DeviceSimulator
from tests.drivers.modbus.test_tcp import connected

FAN: dict[str, Any] = {
    "register": "holding",
    "address": 0,
    "encoder": {"kind": "enum", "write": {0: 0, 1: 1, 2: 2, 3: 3}},
    "writable": True,
}


def fan_profile(**fan: Any) -> DeviceProfile:
    return DeviceProfile.model_validate(
        {
            "name": "quirky-fan",
            "points": {
                "fan_speed": FAN | fan,
                "fan_output": {"register": "input", "address": 0, "encoder": {"kind": "percent"}},
            },
        }
    )


def test_enum_read_map_confirms_what_was_written() -> None:
    # A read map "device reports written − 1" must not make every write look like a mismatch.
    spec = PointSpec(address=0, encoder=EnumEncoder(write={1: 1, 2: 2, 3: 3}, read={0: 1, 1: 2, 2: 3}), writable=True)
    assert spec.expected_readback(2) == 2
    assert spec.matches(2, spec.readback_from_registers([1]))
    assert not spec.matches(2, spec.readback_from_registers([2]))


def test_readback_in_another_space_encoding_and_tolerance() -> None:
    spec = fan_profile(
        readback={"register": "input", "address": 10, "data_type": "int16", "encoder": {"kind": "scale", "offset": 1}}
    ).point("fan_speed")
    assert spec.readback_register_type is RegisterType.INPUT
    assert spec.wire_address(base=0, parameters={}, readback=True) == 10
    assert spec.readback_from_registers([0xFFFF]) == 0  # −1 + 1: "off" reported as −1
    assert spec.readback_registers(2) == [1]
    assert spec.matches(2, 2) and not spec.matches(2, 1)
    temp = PointSpec.model_validate(
        {"address": 110, "data_type": "int16", "encoder": {"kind": "scale", "scale": 0.1}, "writable": True,
         "readback": {"address": 902, "tolerance": 0.5}}
    )  # fmt: skip
    assert temp.matches(21.0, 21.4) and not temp.matches(21.0, 21.6)


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ({"readback_address": 3, "readback": {"address": 4}}, "not both"),
        ({"readback": {"register": "coil"}}, "needs data_type bool"),
        ({"readable": False, "readback": {"address": 4}}, "contradicts a read-back"),
        ({"writable": False, "readback": {"address": 4}}, "writable points"),
        ({"readback": {"adress": 4}}, "adress"),
        ({"readback": {"tolerance": -1}}, "greater than or equal"),
        ({"readback": {"tolerance": float("inf")}}, "finite number"),
        ({"readback": {"delay_s": float("nan")}}, "finite number"),
        ({"readback": {"delay_s": 1e9}}, "less than or equal to 3600"),
    ],
)
def test_bad_readback_is_refused(point: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        PointSpec.model_validate(FAN | point)


async def test_enum_offset_quirk_is_a_mismatch_until_the_profile_says_so(clock: VirtualClock) -> None:
    async with DeviceSimulator.tcp(fan_profile(), 1) as sim, connected(sim, clock) as (_bus, dev):
        sim.model.readback_shift["fan_speed"] = -1  # reports mode N−1 for mode N written
        result = await dev.write_point("fan_speed", 2)
        assert (result.outcome, result.readback, len(sim.writes)) == (WriteOutcome.MISMATCH, 1, 1)
    declared = fan_profile(readback={"data_type": "int16", "encoder": {"kind": "scale", "offset": 1}})
    async with DeviceSimulator.tcp(declared, 1) as sim, connected(sim, clock) as (_bus, dev):
        sim.model.readback_shift["fan_speed"] = -1
        for level in (0, 1, 2, 3):
            result = await dev.write_point("fan_speed", level)
            assert (result.outcome, result.readback) == (WriteOutcome.OK, level)
        assert len(sim.writes) == 4


async def test_actual_value_in_an_input_register(clock: VirtualClock) -> None:
    async with DeviceSimulator.tcp(fan_profile(), 1) as sim, connected(sim, clock) as (_bus, dev):
        sim.model.actual_in["fan_speed"] = (RegisterType.INPUT, 10)  # the holding register reads 0
        result = await dev.write_point("fan_speed", 3)
        assert (result.outcome, result.readback) == (WriteOutcome.MISMATCH, 0)
    declared = fan_profile(readback={"register": "input", "address": 10})
    async with DeviceSimulator.tcp(declared, 1) as sim, connected(sim, clock) as (_bus, dev):
        sim.model.actual_in["fan_speed"] = (RegisterType.INPUT, 10)
        result = await dev.write_point("fan_speed", 3)
        assert (result.outcome, result.readback) == (WriteOutcome.OK, 3)
        assert sim.model.tables[RegisterType.INPUT][10] == 3 and sim.model.written("fan_speed") == 3
        assert await dev.read_setpoints() == {"fan_speed": 3}
        # Without the quirk, a profile's input-register read-back is served by the simulator itself.
    async with DeviceSimulator.tcp(declared, 1) as sim, connected(sim, clock) as (_bus, dev):
        assert (await dev.write_point("fan_speed", 1)).outcome is WriteOutcome.OK
        assert sim.value("fan_speed") == 1 and sim.model.tables[RegisterType.INPUT][10] == 1


@given(
    level=st.integers(0, 3000),
    data_type=st.sampled_from(["int16", "int32", "uint32", "float32"]),
    word_order=st.sampled_from(["big", "little"]),
    offset=st.sampled_from([-50.0, 0.0, 1.0, 273.15]),
)
def test_a_correct_device_always_confirms_in_any_declared_readback_encoding(
    level: int, data_type: str, word_order: str, offset: float
) -> None:
    spec = PointSpec.model_validate(
        {"address": 0, "encoder": {"kind": "scale", "scale": 0.1}, "writable": True,
         "readback": {"register": "input", "address": 7, "data_type": data_type, "word_order": word_order,
                      "encoder": {"kind": "scale", "scale": 0.1, "offset": offset}}}
    )  # fmt: skip
    value = level / 10
    try:
        shown = spec.readback_registers(spec.expected_readback(value))  # what a correct simulator shows
    except ValueError:
        assume(False)  # not representable in that data type (e.g. negative in uint32)
    assert spec.matches(value, spec.readback_from_registers(shown))
