"""Shipped profiles load and say what the reference register maps say; broken ones are positioned."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.yamlsource import ConfigError
from drivers.modbus import DataType, RegisterType, load_profile, resolve_profile_path
from tests.drivers.modbus.helpers import DEVICES, profile

SHIPPED = ["komfovent-c6", "ecodim-dali-gw2", "arlight-dali-logic-lite", "freshair-standard", "lighting-standard"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load(name: str) -> None:
    p = load_profile(resolve_profile_path(name, DEVICES))
    assert p.name == name
    assert p.setpoints()


def test_komfovent_is_one_based_high_word_first() -> None:
    p = profile("komfovent-c6")
    assert p.base == 1 and p.default_unit_id == 254
    assert p.point("operation_mode").wire_address(base=1, parameters={}) == 4
    flow = p.point("supply_flow_setpoint")
    assert flow.data_type is DataType.UINT32
    assert flow.to_registers(70000) == [1, 70000 - 65536]  # high word first
    assert p.point("fan_level").to_registers(0) == [10]  # lobbyd's "off" is mode 10
    assert p.point("fan_level").from_registers([4]) == 3  # boost reads back as high
    assert p.point("fault").from_registers([1 << 11]) == 1
    assert p.point("temperature_setpoint").to_registers(21.5) == [215]
    assert p.point("supply_temperature").from_registers([0xFFEC]) == pytest.approx(-2.0)


def test_ecodim_addresses_follow_the_device_parameter() -> None:
    p = profile("ecodim-dali-gw2")
    params = p.resolve_parameters({"a": 3})
    cct = p.point("cct")
    assert cct.wire_address(base=0, parameters=params) == 3320 + 15
    assert cct.wire_address(base=0, parameters=params, readback=True) == 3324 + 15
    assert p.point("brightness").to_registers(100) == [254]
    assert p.readback_delay("cct") == 5 and p.readback_delay("read_buffer_period") == 0
    with pytest.raises(ValueError, match=r"outside 0\.\.63"):
        p.resolve_parameters({"a": 64})
    with pytest.raises(ValueError, match="no parameter"):
        p.resolve_parameters({"b": 1})


def test_arlight_write_only_and_kelvin_div10() -> None:
    p = profile("arlight-dali-logic-lite")
    params = p.resolve_parameters({"a": 2})
    assert p.point("brightness").wire_address(base=0, parameters=params, readback=True) == 2562
    cct = p.point("cct")
    assert not cct.readable and cct.to_registers(2700) == [270]


def test_standard_profiles() -> None:
    fresh = profile("freshair-standard")
    assert fresh.point("fan_speed").allowed_values == (0, 1, 2, 3)
    assert fresh.status_points() == ["fan_output", "filter_alarm", "fault_code"]
    assert all(fresh.points[n].poll_interval_s == 5 for n in fresh.status_points())
    assert fresh.point("filter_alarm").register_type is RegisterType.DISCRETE
    light = profile("lighting-standard")
    assert (light.point("cct").min, light.point("cct").max) == (2700, 5000)
    assert light.point("cct").readback_address == 10


BROKEN = [
    ("name: x\npoints:\n  p:\n    address: 1\n    writeable: true\n", 5, 5, "unknown key 'writeable'"),
    ("name: x\npoints:\n  p:\n    address: 1\n    data_type: int64\n", 5, 16, "'int64' is not allowed for 'data_type'"),
    (
        "name: x\npoints:\n  p:\n    address: 1\n    stride: {a: 5}\n    writable: true\n",
        5,
        14,
        "unknown parameter 'a'",
    ),
    ("name: x\npoints:\n  p:\n    address: 0\n    writable: true\nshutdown:\n  q: 1\n", 7, 3, "unknown point 'q'"),
    (
        "name: x\npoints:\n  p:\n    address: 1\n    min: 0\n    max: 3\n    writable: true\nshutdown: {p: 9}\n",
        8,
        15,
        "outside",
    ),
    ("name: x\npoints:\n  p: {address: 1, encoder: {kind: dali}}\n", 3, 19, "'dali' is not allowed for 'kind'"),
    ("name: x\npoints:\n  p:\n    address: [1\n", 5, 1, "YAML syntax"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), BROKEN)
def test_broken_profile_reports_file_line_column(
    tmp_path: Path, text: str, line: int, column: int, message: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    first = info.value.errors[0]
    assert (first.file, first.line, first.column) == (str(path), line, column), str(info.value)
    assert message in first.message
