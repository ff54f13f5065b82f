"""Device profiles: register maps as data (``config/devices/*.yaml``), validated in stages.

Shape is checked by pydantic (``extra="forbid"``), point semantics by each :class:`PointSpec`, and
cross-references (parameters, shutdown values) by :func:`load_profile`, which reports every problem
as ``file:line:column``. The same profile drives the client and the simulator.

Addressing: ``base: 1`` means register numbers as printed in a vendor manual (wire address =
number − 1). Devices that repeat a block per DALI device or group declare a *parameter*
(``parameters: {a: {max: 63}}``) and points give a ``stride`` per parameter
(``address: 3000, stride: {a: 5}``); the device entry in ``lobbyd.yaml`` chooses the value
(``parameters: {a: 3}``). No address expressions are evaluated.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pydantic

from daemon.yamlsource import ConfigError, load_yaml

from .codec import (
    DataType,
    Encoder,
    EnumEncoder,
    Order,
    ScaleEncoder,
    decode_registers,
    encode_registers,
    register_count,
)
from .profile_messages import profile_errors

__all__ = ["DeviceProfile", "ParameterSpec", "PointSpec", "ReadbackSpec", "RegisterType", "Role", "load_profile"]


class RegisterType(enum.StrEnum):
    """Modbus data table of a point."""

    HOLDING = "holding"
    COIL = "coil"
    INPUT = "input"
    DISCRETE = "discrete"

    @property
    def bits(self) -> bool:
        return self in (RegisterType.COIL, RegisterType.DISCRETE)

    @property
    def read_only(self) -> bool:
        return self in (RegisterType.INPUT, RegisterType.DISCRETE)


class Role(enum.StrEnum):
    """``setpoint``: the daemon writes it; ``status``: the daemon polls it."""

    SETPOINT = "setpoint"
    STATUS = "status"


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ParameterSpec(_Model):
    """A per-device addressing parameter, e.g. DALI short address ``a`` 0–63."""

    description: str = ""
    min: int = 0
    max: int
    default: int = 0


class ReadbackSpec(_Model):
    """Where and how a device reports a written point's actual value; a key left out is the point's own."""

    register_type: RegisterType | None = pydantic.Field(
        None, alias="register", description="Register space of the read-back, e.g. input. Default: the point's."
    )
    address: int | None = pydantic.Field(
        None, ge=0, le=0xFFFF, description="Register number of the read-back (numbering and stride as address)."
    )
    data_type: DataType | None = pydantic.Field(None, description="Data type of the read-back register(s).")
    word_order: Order | None = pydantic.Field(None, description="Word order of a 32-bit read-back.")
    byte_order: Order | None = pydantic.Field(None, description="Byte order inside a read-back register.")
    encoder: Encoder | None = pydantic.Field(
        None,
        description="How the device reports the value: scale/offset, value map... (a unit reporting mode N−1 "
        "for mode N written: {kind: scale, offset: 1}).",
    )
    tolerance: float | None = pydantic.Field(
        None, ge=0, allow_inf_nan=False, description="Largest desired − read-back difference that confirms a write."
    )
    delay_s: float | None = pydantic.Field(
        None, ge=0, le=3600, allow_inf_nan=False, description="Seconds between a write and its read-back."
    )


class PointSpec(_Model):
    """One register (or bit, or pair of registers) and how it maps to an engineering value."""

    description: str = ""
    register_type: RegisterType = pydantic.Field(default=RegisterType.HOLDING, alias="register")
    address: int = pydantic.Field(ge=0, le=0xFFFF)
    readback_address: int | None = pydantic.Field(
        default=None,
        ge=0,
        le=0xFFFF,
        description="Read back from this register (same space and encoding) instead of the write address.",
    )
    readback: ReadbackSpec | None = pydantic.Field(
        default=None,
        description="Read back from another register space, address or encoding (see the readback keys).",
    )
    stride: dict[str, int] = pydantic.Field(default_factory=dict)
    data_type: DataType = DataType.UINT16
    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    bit: int | None = pydantic.Field(default=None, ge=0, le=15)
    encoder: Encoder = pydantic.Field(default_factory=ScaleEncoder)
    unit: str = ""
    min: float | None = None
    max: float | None = None
    allowed: tuple[float, ...] | None = None
    writable: bool = False
    readable: bool = True
    readback_delay_s: float | None = pydantic.Field(default=None, ge=0, le=3600, allow_inf_nan=False)
    tolerance: float | None = pydantic.Field(default=None, ge=0, allow_inf_nan=False)
    role: Role | None = None
    poll_interval_s: float | None = pydantic.Field(default=None, gt=0)

    @pydantic.model_validator(mode="after")
    def _semantics(self) -> PointSpec:
        if self.register_type.bits and self.data_type is not DataType.BOOL:
            raise ValueError(f"{self.register_type} points carry one bit: use data_type: bool")
        if not self.register_type.bits and self.data_type is DataType.BOOL:
            raise ValueError("data_type bool is only for coil and discrete points")
        if self.writable and self.register_type.read_only:
            raise ValueError(f"{self.register_type} points cannot be writable")
        if self.bit is not None and (self.writable or self.data_type not in (DataType.UINT16, DataType.INT16)):
            raise ValueError("bit points are read-only and need a 16-bit data type")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.allowed is not None and not self.allowed:
            raise ValueError("allowed must list at least one value")
        if not self.readable and not self.writable:
            raise ValueError("a point must be readable or writable")
        if not self.readable and (self.readback_address is not None or self.readback is not None):
            raise ValueError("readable: false contradicts a read-back")
        if self.readback_address is not None and self.readback is not None:
            raise ValueError("give readback_address or readback.address, not both")
        rb = self.readback
        if rb is not None and not self.writable:
            raise ValueError("readback is for writable points (a status point is read where it is)")
        if rb is not None and rb.register_type is not None:
            rb_bits = rb.register_type.bits
            if rb_bits != (self.readback_data_type is DataType.BOOL):
                raise ValueError(f"readback from {rb.register_type} points needs data_type bool (and only there)")
        if self.effective_role is Role.STATUS and self.writable:
            raise ValueError("status points are not writable (use role: setpoint)")
        if self.poll_interval_s is not None and self.effective_role is not Role.STATUS:
            raise ValueError("poll_interval_s is only for status points")
        if self.effective_role is Role.SETPOINT and not self.writable:
            raise ValueError("setpoint points must be writable")
        for v in self.allowed_values or ():
            self.encoder.to_raw(v)  # every allowed value must encode
        return self

    @property
    def effective_role(self) -> Role:
        """The declared role, or ``setpoint`` for writable points and ``status`` otherwise."""
        if self.role is not None:
            return self.role
        return Role.SETPOINT if self.writable else Role.STATUS

    @property
    def allowed_values(self) -> tuple[float, ...] | None:
        """Discrete allowed values: ``allowed`` or the keys of an enum encoder."""
        if self.allowed is not None:
            return tuple(sorted(self.allowed))
        if isinstance(self.encoder, EnumEncoder):
            return tuple(sorted(self.encoder.write))
        return None

    @property
    def count(self) -> int:
        """Registers (or bits) to read or write."""
        return register_count(self.data_type)

    def clamp(self, value: float) -> float:
        """Bring ``value`` into the allowed range, or to the nearest allowed value (ties go down)."""
        if math.isnan(value):
            raise ValueError("cannot clamp NaN")
        if self.min is not None:
            value = max(self.min, value)
        if self.max is not None:
            value = min(self.max, value)
        allowed = self.allowed_values
        if allowed:
            value = min(allowed, key=lambda a: (abs(a - value), a))
        return value

    def check(self, value: float) -> None:
        """Raise ``ValueError`` unless ``value`` is within range and allowed."""
        if (
            math.isnan(value)
            or (self.min is not None and value < self.min)
            or (self.max is not None and value > self.max)
        ):
            raise ValueError(f"{value} is outside {self.min}..{self.max}")
        allowed = self.allowed_values
        if allowed and value not in allowed:
            raise ValueError(f"{value} is not one of {list(allowed)}")

    def to_registers(self, value: float) -> list[int]:
        """Engineering value → register (or bit) values to write."""
        raw = self.encoder.to_raw(value)
        return encode_registers(raw, self.data_type, word_order=self.word_order, byte_order=self.byte_order)

    def from_registers(self, registers: list[int]) -> float:
        """Register (or bit) values as read → engineering value (extracting ``bit`` if set)."""
        raw = decode_registers(registers, self.data_type, word_order=self.word_order, byte_order=self.byte_order)
        if self.bit is not None:
            raw = float((int(raw) >> self.bit) & 1)
        return self.encoder.from_raw(raw)

    # ---- read-back: where and how the device reports what it holds --------------------------------------
    @property
    def readback_register_type(self) -> RegisterType:
        """The register space the read-back is read from."""
        rb = self.readback
        return rb.register_type if rb is not None and rb.register_type is not None else self.register_type

    @property
    def readback_data_type(self) -> DataType:
        rb = self.readback
        return rb.data_type if rb is not None and rb.data_type is not None else self.data_type

    @property
    def readback_encoder(self) -> Encoder:
        rb = self.readback
        return rb.encoder if rb is not None and rb.encoder is not None else self.encoder

    @property
    def readback_count(self) -> int:
        return register_count(self.readback_data_type)

    def _readback_orders(self) -> tuple[Order, Order]:
        rb = self.readback or ReadbackSpec()
        return rb.word_order or self.word_order, rb.byte_order or self.byte_order

    def readback_from_registers(self, registers: list[int]) -> float:
        """Read-back register values → engineering value (the point's own decoding without a readback spec)."""
        if self.readback is None:
            return self.from_registers(registers)
        word, byte = self._readback_orders()
        raw = decode_registers(registers, self.readback_data_type, word_order=word, byte_order=byte)
        return self.readback_encoder.from_raw(raw)

    def readback_registers(self, value: float) -> list[int]:
        """What a device that holds ``value`` shows on the read-back registers (for simulators)."""
        enc = self.readback_encoder
        if isinstance(enc, EnumEncoder):
            codes = [raw for raw, v in enc.read_map.items() if v == value]
            if not codes:
                raise ValueError(f"{value} is not reported by the read map")
            raw = float(codes[0])
        else:
            raw = enc.to_raw(value)
        word, byte = self._readback_orders()
        return encode_registers(raw, self.readback_data_type, word_order=word, byte_order=byte)

    def written_value(self, registers: list[int]) -> float:
        """The engineering value that registers written to the write address stand for."""
        raw = decode_registers(registers, self.data_type, word_order=self.word_order, byte_order=self.byte_order)
        if isinstance(self.encoder, EnumEncoder):
            for value, code in self.encoder.write.items():
                if code == round(raw):
                    return float(value)
            raise ValueError(f"code {raw:g} is not one of the written codes")
        return self.encoder.from_raw(raw)

    def expected_readback(self, value: float) -> float:
        """What a correct read-back of ``value`` decodes to (quantised by the write and read-back encodings)."""
        expected = self.written_value(self.to_registers(value))
        if self.readback is not None:
            with contextlib.suppress(ValueError):  # not encodable on the read-back: compare as written
                expected = self.readback_from_registers(self.readback_registers(expected))
        return expected

    def matches(self, written: float, readback: float) -> bool:
        """Does ``readback`` confirm a write of ``written``?"""
        expected = self.expected_readback(written)
        tol = self.readback.tolerance if self.readback is not None else None
        tol = self.tolerance if tol is None else tol
        if tol is None:
            tol = 1e-6 * max(1.0, abs(expected))
        return abs(expected - readback) <= tol

    def wire_address(self, *, base: int, parameters: Mapping[str, int], readback: bool = False) -> int:
        """Address on the wire: (read-back) number + Σ stride·parameter − base."""
        number = self.address
        if readback and self.readback_address is not None:
            number = self.readback_address
        elif readback and self.readback is not None and self.readback.address is not None:
            number = self.readback.address
        number += sum(step * parameters[name] for name, step in self.stride.items())
        return number - base


class DeviceProfile(_Model):
    """A device type's register map. See the module docstring for addressing."""

    name: str
    description: str = ""
    base: Literal[0, 1] = 0
    default_unit_id: int | None = pydantic.Field(default=None, ge=0, le=255)
    readback_delay_s: float = pydantic.Field(default=0.0, ge=0, le=3600, allow_inf_nan=False)
    parameters: dict[str, ParameterSpec] = pydantic.Field(default_factory=dict)
    points: dict[str, PointSpec]
    shutdown: dict[str, float] | None = None

    def point(self, name: str) -> PointSpec:
        """The point called ``name``; ``KeyError`` names the known points."""
        try:
            return self.points[name]
        except KeyError:
            raise KeyError(f"profile {self.name} has no point {name!r} (known: {sorted(self.points)})") from None

    def readback_delay(self, point: str) -> float:
        """Seconds to wait between a write and its read-back for ``point``."""
        spec = self.points[point]
        own = spec.readback.delay_s if spec.readback is not None and spec.readback.delay_s is not None else None
        own = spec.readback_delay_s if own is None else own
        return self.readback_delay_s if own is None else own

    def resolve_parameters(self, given: Mapping[str, int]) -> dict[str, int]:
        """Profile defaults overridden by a device's ``parameters``; ``ValueError`` if unknown/out of range."""
        unknown = set(given) - set(self.parameters)
        if unknown:
            raise ValueError(f"profile {self.name} has no parameter(s) {sorted(unknown)}")
        out = {name: spec.default for name, spec in self.parameters.items()}
        out.update(given)
        for name, value in out.items():
            spec = self.parameters[name]
            if not spec.min <= value <= spec.max:
                raise ValueError(f"parameter {name}={value} is outside {spec.min}..{spec.max}")
        return out

    def setpoints(self) -> list[str]:
        """Names of setpoint points."""
        return [n for n, p in self.points.items() if p.effective_role is Role.SETPOINT]

    def status_points(self) -> list[str]:
        """Names of status points."""
        return [n for n, p in self.points.items() if p.effective_role is Role.STATUS]


def load_profile(path: str | Path) -> DeviceProfile:
    """Read and validate one profile; every problem is reported as ``file:line:column``."""
    doc = load_yaml(path)
    try:
        profile = DeviceProfile.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        raise ConfigError(profile_errors(DeviceProfile, doc, exc)) from None
    errors = []
    for pname, spec in profile.parameters.items():
        if not spec.min <= spec.default <= spec.max:
            errors.append(doc.error(("parameters", pname, "default"), "default outside min..max"))
    for name, point in profile.points.items():
        for key in point.stride:
            if key not in profile.parameters:
                errors.append(doc.error(("points", name, "stride", key), f"unknown parameter '{key}'", at_key=True))
        if point.address - profile.base < 0:
            errors.append(doc.error(("points", name, "address"), f"address below base {profile.base}"))
    for name, value in (profile.shutdown or {}).items():
        target = profile.points.get(name)
        if target is None:
            errors.append(doc.error(("shutdown", name), f"unknown point '{name}'", at_key=True))
        elif not target.writable:
            errors.append(doc.error(("shutdown", name), f"point '{name}' is not writable"))
        else:
            try:
                target.check(value)
            except ValueError as exc:
                errors.append(doc.error(("shutdown", name), str(exc)))
    if errors:
        raise ConfigError(errors)
    return profile
