"""Register encoding: pure functions and value objects, no I/O.

Two layers: a *data type* turns a raw number into 16-bit registers (word and byte order), and an
*encoder* turns an engineering value (%, K, °C, a fan level) into that raw number and back.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Sequence
from typing import Annotated, Literal

import pydantic

__all__ = [
    "DaliArcEncoder",
    "DataType",
    "Encoder",
    "EnumEncoder",
    "KelvinDiv10Encoder",
    "KelvinEncoder",
    "MirekEncoder",
    "Order",
    "PercentEncoder",
    "ScaleEncoder",
    "decode_registers",
    "encode_registers",
    "register_count",
]


class DataType(enum.StrEnum):
    """How a raw number is laid out in registers. ``bool`` is for coils and discrete inputs."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    BOOL = "bool"


class Order(enum.StrEnum):
    """Word order of 32-bit values (``big`` = high word first) or byte order inside a register."""

    BIG = "big"
    LITTLE = "little"


_STRUCT = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.FLOAT32: "f",
}


def register_count(data_type: DataType) -> int:
    """Number of 16-bit registers (or bits, for ``bool``) one value occupies."""
    return 2 if data_type in (DataType.INT32, DataType.UINT32, DataType.FLOAT32) else 1


def raw_range(data_type: DataType) -> tuple[float, float]:
    """Smallest and largest raw value the data type can carry."""
    return {
        DataType.INT16: (-0x8000, 0x7FFF),
        DataType.UINT16: (0, 0xFFFF),
        DataType.INT32: (-0x80000000, 0x7FFFFFFF),
        DataType.UINT32: (0, 0xFFFFFFFF),
        DataType.FLOAT32: (-3.4028234663852886e38, 3.4028234663852886e38),
        DataType.BOOL: (0, 1),
    }[data_type]


def encode_registers(
    raw: float, data_type: DataType, *, word_order: Order = Order.BIG, byte_order: Order = Order.BIG
) -> list[int]:
    """Raw number → register values. Integers are rounded; out-of-range raises ``ValueError``."""
    if data_type is DataType.BOOL:
        return [1 if raw else 0]
    lo, hi = raw_range(data_type)
    if not lo <= raw <= hi or math.isnan(raw):
        raise ValueError(f"raw value {raw} does not fit {data_type}")
    value: float | int = raw if data_type is DataType.FLOAT32 else round(raw)
    packed = struct.pack(">" + _STRUCT[data_type], value)
    words = [packed[i : i + 2] for i in range(0, len(packed), 2)]
    if word_order is Order.LITTLE:
        words.reverse()
    if byte_order is Order.LITTLE:
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def decode_registers(
    registers: Sequence[int],
    data_type: DataType,
    *,
    word_order: Order = Order.BIG,
    byte_order: Order = Order.BIG,
) -> float:
    """Register values → raw number (inverse of :func:`encode_registers`)."""
    n = register_count(data_type)
    if len(registers) != n:
        raise ValueError(f"{data_type} needs {n} register(s), got {len(registers)}")
    if data_type is DataType.BOOL:
        return 1.0 if registers[0] else 0.0
    words = [int(r & 0xFFFF).to_bytes(2, "big") for r in registers]
    if byte_order is Order.LITTLE:
        words = [w[::-1] for w in words]
    if word_order is Order.LITTLE:
        words.reverse()
    return float(struct.unpack(">" + _STRUCT[data_type], b"".join(words))[0])


class _Encoder(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    def to_raw(self, value: float) -> float:
        """Engineering value → raw number."""
        raise NotImplementedError

    def from_raw(self, raw: float) -> float:
        """Raw number → engineering value."""
        raise NotImplementedError


class ScaleEncoder(_Encoder):
    """``value = raw * scale + offset`` (e.g. 0.1 °C steps: ``scale: 0.1``)."""

    kind: Literal["scale"] = "scale"
    scale: float = 1.0
    offset: float = 0.0

    @pydantic.field_validator("scale")
    @classmethod
    def _nonzero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("scale must not be 0")
        return v

    def to_raw(self, value: float) -> float:
        return (value - self.offset) / self.scale

    def from_raw(self, raw: float) -> float:
        return raw * self.scale + self.offset


class PercentEncoder(_Encoder):
    """0–100 % mapped linearly onto 0–``raw_max`` (100 for plain percent, 254 for linear DALI, 1000 ‰)."""

    kind: Literal["percent"] = "percent"
    raw_max: float = 100.0

    def to_raw(self, value: float) -> float:
        return value * self.raw_max / 100.0

    def from_raw(self, raw: float) -> float:
        return raw * 100.0 / self.raw_max


class DaliArcEncoder(_Encoder):
    """Brightness % ↔ DALI arc power level 0–254 on the IEC 62386 logarithmic curve.

    Level n (1…254) is ``10 ** ((n - 1) / (253 / 3) - 1)`` %: 1 → 0.1 %, 254 → 100 %; 0 is off.
    """

    kind: Literal["dali_arc"] = "dali_arc"

    def to_raw(self, value: float) -> float:
        if value <= 0:
            return 0
        level = 1 + (253 / 3) * (math.log10(min(value, 100.0)) + 1)
        return float(min(254, max(1, round(level))))

    def from_raw(self, raw: float) -> float:
        n = round(raw)
        if n <= 0:
            return 0.0
        return float(10 ** ((min(n, 254) - 1) / (253 / 3) - 1))


class KelvinEncoder(_Encoder):
    """Colour temperature in kelvin, one raw unit per K."""

    kind: Literal["kelvin"] = "kelvin"

    def to_raw(self, value: float) -> float:
        return value

    def from_raw(self, raw: float) -> float:
        return raw


class KelvinDiv10Encoder(_Encoder):
    """Colour temperature as K/10 (2700 K → 270)."""

    kind: Literal["kelvin_div10"] = "kelvin_div10"

    def to_raw(self, value: float) -> float:
        return value / 10.0

    def from_raw(self, raw: float) -> float:
        return raw * 10.0


class MirekEncoder(_Encoder):
    """Colour temperature as mirek = 10⁶ / K (DALI DT8 native: 2700 K ≈ 370, 5000 K = 200)."""

    kind: Literal["mirek"] = "mirek"

    def to_raw(self, value: float) -> float:
        if value <= 0:
            raise ValueError("kelvin must be positive")
        return 1e6 / value

    def from_raw(self, raw: float) -> float:
        if raw <= 0:
            raise ValueError(f"mirek value {raw} is not positive")
        return 1e6 / raw


class EnumEncoder(_Encoder):
    """Discrete values: ``write`` maps engineering value → raw; ``read`` maps raw → engineering.

    ``read`` defaults to the inverse of ``write``; give it when the device reports a different code
    than it accepts (e.g. read-back = written − 1). ``labels`` names the engineering values.
    """

    kind: Literal["enum"] = "enum"
    write: dict[float, int]
    read: dict[int, float] | None = None
    labels: dict[float, str] = pydantic.Field(default_factory=dict)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> EnumEncoder:
        if not self.write:
            raise ValueError("enum needs at least one value under 'write'")
        if self.read is None and len(set(self.write.values())) != len(self.write):
            raise ValueError("'write' maps two values to one code; give an explicit 'read' map")
        unknown = set(self.labels) - set(self.write)
        if unknown:
            raise ValueError(f"labels for values not in 'write': {sorted(unknown)}")
        return self

    @property
    def read_map(self) -> dict[int, float]:
        """Raw code → engineering value."""
        return self.read if self.read is not None else {v: k for k, v in self.write.items()}

    def to_raw(self, value: float) -> float:
        try:
            return float(self.write[value])
        except KeyError:
            raise ValueError(f"{value} is not one of {sorted(self.write)}") from None

    def from_raw(self, raw: float) -> float:
        try:
            return float(self.read_map[round(raw)])
        except KeyError:
            raise ValueError(f"device reported unknown code {raw:g}") from None


Encoder = Annotated[
    ScaleEncoder | PercentEncoder | DaliArcEncoder | KelvinEncoder | KelvinDiv10Encoder | MirekEncoder | EnumEncoder,
    pydantic.Field(discriminator="kind"),
]
