"""docs/profiles.md says what the profile models say, and its worked examples load and encode as it states."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pydantic
import pytest

from drivers.modbus import load_profile
from drivers.modbus.codec import Encoder
from drivers.modbus.config import DeviceConfig, RtuOverTcpTransport, RtuTransport, TcpTransport, Transport
from drivers.modbus.profile import DeviceProfile, ParameterSpec, PointSpec, ReadbackSpec
from tests.doctables import rows, table_text, tables

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "profiles.md"

ENCODERS: list[type[pydantic.BaseModel]] = list(get_args(get_args(Encoder)[0]))
TRANSPORTS: list[type[pydantic.BaseModel]] = [TcpTransport, RtuTransport, RtuOverTcpTransport]
NAMES: dict[Any, str] = {
    ParameterSpec: "parameter (below)",
    PointSpec: "point (below)",
    ReadbackSpec: "read-back block (below)",
    frozenset(ENCODERS): "encoder (below)",
    frozenset(TRANSPORTS): "transport (below)",
}


def _tag(model: type[pydantic.BaseModel], key: str) -> str:
    return str(model.model_fields[key].default)


DOCUMENTED: dict[str, type[pydantic.BaseModel]] = {
    "Profile keys (top level)": DeviceProfile,
    "`parameters.<name>`": ParameterSpec,
    "`points.<name>`": PointSpec,
    "`points.<name>.readback`": ReadbackSpec,
    **{f"Encoder `{_tag(m, 'kind')}`": m for m in ENCODERS},
    "Device entry keys (`devices:` items)": DeviceConfig,
    **{f"Transport `{_tag(m, 'type')}`": m for m in TRANSPORTS},
}


def test_every_encoder_and_transport_is_a_section() -> None:
    """A new encoder kind or transport type must get its own table (the drift test below then checks it)."""
    assert get_args(get_args(Transport)[0]) == tuple(TRANSPORTS)
    assert set(tables(DOC)) == set(DOCUMENTED)


@pytest.mark.parametrize("heading", list(DOCUMENTED))
def test_key_table_matches_the_model(heading: str) -> None:
    model = DOCUMENTED[heading]
    documented = tables(DOC)[heading]
    expected = rows(model, NAMES)
    assert documented == expected, (
        f"docs/profiles.md, table '{heading}' differs from {model.__name__}; the model says:\n"
        + table_text(model, NAMES)
    )


def _examples() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return [b for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) if re.search(r"^points:", b, re.M)]


@pytest.fixture
def examples(tmp_path: Path) -> dict[str, DeviceProfile]:
    out = {}
    for i, block in enumerate(_examples()):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block, encoding="utf-8")
        profile = load_profile(path)
        out[profile.name] = profile
    return out


def test_three_worked_examples_load_with_the_profile_loader(examples: dict[str, DeviceProfile]) -> None:
    assert sorted(examples) == ["example-arlight-dali-logic-lite", "example-ecodim-dali-gw2", "example-komfovent-c6"]


def test_komfovent_example_does_what_the_doc_says(examples: dict[str, DeviceProfile]) -> None:
    p = examples["example-komfovent-c6"]
    fan = p.point("fan_level")
    assert fan.wire_address(base=p.base, parameters={}) == 4
    assert fan.to_registers(0) == [10]
    assert fan.from_registers([4]) == 3 and fan.from_registers([0]) == 0 and fan.from_registers([9]) == 2
    assert p.point("supply_flow_setpoint").to_registers(70000) == [1, 4464]
    assert p.point("temperature_setpoint").to_registers(21.5) == [215]
    assert p.point("supply_temperature").from_registers([0xFFEC]) == pytest.approx(-2.0)
    assert p.point("fault").from_registers([1 << 11]) == 1
    assert p.status_points() == ["fault", "supply_temperature", "filter_clogging"]


def test_ecodim_example_does_what_the_doc_says(examples: dict[str, DeviceProfile]) -> None:
    p = examples["example-ecodim-dali-gw2"]
    params = p.resolve_parameters({"a": 3})
    cct = p.point("cct")
    assert cct.wire_address(base=p.base, parameters=params) == 3335
    assert cct.wire_address(base=p.base, parameters=params, readback=True) == 3339
    assert p.point("brightness").to_registers(100) == [254]
    assert p.readback_delay("cct") == 5


def test_arlight_example_does_what_the_doc_says(examples: dict[str, DeviceProfile]) -> None:
    p = examples["example-arlight-dali-logic-lite"]
    params = p.resolve_parameters({"a": 2, "g": 1})
    assert p.point("brightness").wire_address(base=p.base, parameters=params, readback=True) == 2562
    cct = p.point("group_cct")
    assert not cct.readable
    assert cct.wire_address(base=p.base, parameters=params) == 1921
    assert cct.to_registers(5000) == [200]
