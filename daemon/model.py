"""Value types shared by every layer: what a reading, a decision and a write look like.

Everything here is immutable and free of I/O. Timestamps are POSIX seconds (float) taken from the
injected clock, never from ``time.time()`` directly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, get_args

__all__ = ["MEASURED", "Decision", "MeasuredQuantity", "Quantity", "Reading", "Reason", "WriteOutcome", "WriteResult"]


class Quantity(enum.StrEnum):
    """Physical quantities lobbyd understands, with the unit every layer above the decoder uses."""

    TEMPERATURE = "temperature"  # °C
    HUMIDITY = "humidity"  # %RH
    PM25 = "pm25"  # µg/m³
    ILLUMINANCE = "illuminance"  # lx
    CO2 = "co2"  # ppm
    TREND = "trend"  # the source's unit per minute (a trend virtual sensor; never measured)

    @property
    def unit(self) -> str:
        return _UNITS[self]


#: What a sensor measures: every quantity but ``trend``, which is derived (``trends:`` in the config)
MeasuredQuantity = Literal[Quantity.TEMPERATURE, Quantity.HUMIDITY, Quantity.PM25, Quantity.ILLUMINANCE, Quantity.CO2]
MEASURED: tuple[Quantity, ...] = get_args(MeasuredQuantity)

_UNITS = {
    Quantity.TEMPERATURE: "°C",
    Quantity.HUMIDITY: "%RH",
    Quantity.PM25: "µg/m³",
    Quantity.ILLUMINANCE: "lx",
    Quantity.CO2: "ppm",
    Quantity.TREND: "/min",
}


class Reading(NamedTuple):
    """One decoded, plausible sensor value in engineering units.

    ``retained`` marks a value the broker replayed from its store: it is shown but counts as
    unknown for control until a fresh one arrives. A named tuple: one is built per reading, and a
    frozen dataclass costs several times as much to build.
    """

    sensor: str
    quantity: Quantity
    value: float
    ts: float
    zone: str = ""
    retained: bool = False

    @property
    def unit(self) -> str:
        return self.quantity.unit


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a point has the value it has: the rule, the inputs it looked at, and what held it back."""

    rule: str
    text: str
    inputs: tuple[tuple[str, float | None, float | None], ...] = ()  # (name, value, age in s)
    held_by: str | None = None  # safety limit that held the output back, if any
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine's desired value for one device point, with its reason."""

    device: str
    point: str
    value: float
    reason: Reason
    ts: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.device, self.point)


class WriteOutcome(enum.StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"  # written, but the read-back differs
    FAILED = "failed"  # not written (timeout, exception response, offline)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What happened when a value was written to a device point."""

    device: str
    point: str
    value: float
    outcome: WriteOutcome
    readback: float | None = None
    error: str | None = None
    attempts: int = 1
    latency_s: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)
