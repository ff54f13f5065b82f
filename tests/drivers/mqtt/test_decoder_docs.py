"""docs/decoders.md says what the decoder models say, and every example payload decodes as it states."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pydantic
import pytest
from ruamel.yaml import YAML

from daemon.model import MEASURED
from drivers.mqtt.config import UNIT_CONVERSIONS, Z2M_DEFAULT_KEYS, Decoder, PayloadTime, SensorConfig
from drivers.mqtt.decode import DEFAULT_MAX_BYTES, RejectReason, decode
from drivers.mqtt.inputs_config import FilterConfig, StuckConfig
from tests.doctables import rows, table_text, tables

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "decoders.md"

DECODERS: list[type[pydantic.BaseModel]] = list(get_args(get_args(Decoder)[0]))


def _type(model: type[pydantic.BaseModel]) -> str:
    return str(get_args(model.model_fields["type"].annotation)[0])


NAMES: dict[Any, str] = {
    frozenset(DECODERS): "decoder (above)",
    PayloadTime: "payload time (below)",
    FilterConfig: "input filter (README)",
    StuckConfig: "stuck check (README)",
}
DOCUMENTED: dict[str, type[pydantic.BaseModel]] = {
    **{f"Decoder `{_type(m)}`": m for m in DECODERS},
    "Payload time": PayloadTime,
    "Sensor keys that shape a reading": SensorConfig,
}


def test_every_decoder_is_a_section() -> None:
    assert set(tables(DOC)) == set(DOCUMENTED)


@pytest.mark.parametrize("heading", list(DOCUMENTED))
def test_option_table_matches_the_model(heading: str) -> None:
    model = DOCUMENTED[heading]
    assert tables(DOC)[heading] == rows(model, NAMES), (
        f"docs/decoders.md, table '{heading}' differs from {model.__name__}; the model says:\n"
        + table_text(model, NAMES)
    )


def _pairs(header: str) -> dict[str, str]:
    """The two-column table after the line ``header``: first cell → second cell (backticks dropped)."""
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index(header) :].split("\n\n")[1]
    out = {}
    for line in block.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0].strip("`")] = cells[1]
    return out


def test_zigbee2mqtt_default_keys_match() -> None:
    assert _pairs("Keys used when a sensor gives no `key`:") == {q.value: f"`{k}`" for q, k in Z2M_DEFAULT_KEYS.items()}


def test_units_match() -> None:
    documented = _pairs("Units a payload may be in:")
    assert documented == {q.value: ", ".join(f"`{u}`" for u in units) for q, units in UNIT_CONVERSIONS.items()}
    assert set(documented) == {q.value for q in MEASURED}


_EXAMPLE = re.compile(
    r"```yaml\n(?P<sensor>.*?)```\s*```(?:json|text)\n(?P<payload>.*?)\n```\s*"
    r"(?:Reading: \*\*(?P<value>[^*]+)\*\*|Rejected: `(?P<reason>\w+)`)",
    re.DOTALL,
)
EXAMPLES = list(_EXAMPLE.finditer(DOC.read_text(encoding="utf-8")))


def test_every_payload_block_is_an_example() -> None:
    """A payload without a stated reading (or a typo in the pattern) would silently go unchecked."""
    text = DOC.read_text(encoding="utf-8")
    assert len(EXAMPLES) == text.count("```json") + text.count("```text") == 8
    used = {m.group("sensor").split("decoder: {type: ")[1].split(",")[0].split("}")[0] for m in EXAMPLES}
    assert used == {_type(m) for m in DECODERS}


@pytest.mark.parametrize("example", EXAMPLES, ids=[m.group("sensor").split("\n")[0] for m in EXAMPLES])
def test_example_payload_decodes_as_documented(example: re.Match[str]) -> None:
    sensor = SensorConfig.model_validate(YAML(typ="safe").load(example.group("sensor")))
    readings, rejected = decode([sensor], example.group("payload").encode(), ts=1.0, retained=False)
    if example.group("value") is not None:
        assert rejected == [] and len(readings) == 1, rejected
        assert readings[0].value == pytest.approx(float(example.group("value")))
    else:
        assert readings == [] and [r.reason.value for r in rejected] == [example.group("reason")]


def test_the_rejections_named_are_the_decoders() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"larger than {DEFAULT_MAX_BYTES // 1024} KiB" in text
    for m in EXAMPLES:
        assert m.group("reason") is None or m.group("reason") in {r.value for r in RejectReason}
