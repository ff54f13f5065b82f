"""Configuration models for the MQTT driver: sensors (``sensors:``) and the broker link (``mqtt:``).

Shape is checked by pydantic (``extra="forbid"`` everywhere); semantics that span fields (a unit that
fits the quantity, a plausible range with min < max, a parseable JSON path) are checked here too so
that a bad sensor is reported with its position by :mod:`daemon.yamlsource`. Defaults live here and
nowhere else.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from daemon.model import MeasuredQuantity, Quantity
from drivers.mqtt.inputs_config import FilterConfig, StuckConfig

__all__ = [
    "DEFAULT_PLAUSIBLE",
    "UNIT_CONVERSIONS",
    "Z2M_DEFAULT_KEYS",
    "Decoder",
    "JsonDecoder",
    "MqttConfig",
    "PayloadTime",
    "PlainDecoder",
    "SensorConfig",
    "TasmotaDecoder",
    "TlsConfig",
    "Zigbee2MqttDecoder",
    "parse_json_path",
]

_FROZEN = ConfigDict(extra="forbid", frozen=True)

#: Plausible range per quantity, in the quantity's engineering unit, when a sensor declares none.
DEFAULT_PLAUSIBLE: dict[Quantity, tuple[float, float]] = {
    Quantity.TEMPERATURE: (-40.0, 85.0),
    Quantity.HUMIDITY: (0.0, 100.0),
    Quantity.PM25: (0.0, 1000.0),
    Quantity.ILLUMINANCE: (0.0, 200_000.0),
    Quantity.CO2: (0.0, 10_000.0),
}

#: Units a payload may be in, per quantity: (scale, offset) so that value_si = raw * scale + offset.
#: Fahrenheit is the one conversion with an offset: °C = (°F − 32) · 5/9.
UNIT_CONVERSIONS: dict[Quantity, dict[str, tuple[float, float]]] = {
    Quantity.TEMPERATURE: {
        "°C": (1.0, 0.0),
        "C": (1.0, 0.0),
        "°F": (5.0 / 9.0, -32.0 * 5.0 / 9.0),
        "F": (5.0 / 9.0, -32.0 * 5.0 / 9.0),
        "K": (1.0, -273.15),
    },
    Quantity.HUMIDITY: {"%RH": (1.0, 0.0), "%": (1.0, 0.0), "fraction": (100.0, 0.0)},
    Quantity.PM25: {"µg/m³": (1.0, 0.0), "ug/m3": (1.0, 0.0), "mg/m³": (1000.0, 0.0), "mg/m3": (1000.0, 0.0)},
    Quantity.ILLUMINANCE: {"lx": (1.0, 0.0), "klx": (1000.0, 0.0)},
    Quantity.CO2: {"ppm": (1.0, 0.0), "%": (10_000.0, 0.0)},
}

#: Zigbee2MQTT's key for each quantity when a sensor names none (Zigbee2MQTT ≥ 2.0: illuminance in lx;
#: 1.x sends the raw Zigbee value as ``illuminance`` and lx as ``illuminance_lux``, which is then preferred).
Z2M_DEFAULT_KEYS: dict[Quantity, str] = {
    Quantity.TEMPERATURE: "temperature",
    Quantity.HUMIDITY: "humidity",
    Quantity.PM25: "pm25",
    Quantity.ILLUMINANCE: "illuminance",
    Quantity.CO2: "co2",
}

_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]|(\.)")


def parse_json_path(path: str) -> tuple[str | int, ...]:
    """Parse ``a.b[0].c`` into ``("a", "b", 0, "c")``; raise ``ValueError`` on anything else."""
    parts: list[str | int] = []
    pos = 0
    expect_key = True  # at the start or after a dot a key must follow
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None:
            raise ValueError(f"bad JSON path {path!r} at character {pos + 1}")
        key, index, dot = m.groups()
        if dot is not None:
            if expect_key:
                raise ValueError(f"bad JSON path {path!r}: empty key at character {pos + 1}")
            expect_key = True
        elif index is not None:
            if expect_key and parts:
                raise ValueError(f"bad JSON path {path!r}: '.[' at character {pos + 1}")
            parts.append(int(index))
            expect_key = False
        else:
            if not expect_key:
                raise ValueError(f"bad JSON path {path!r}: missing '.' before {key!r}")
            parts.append(key)
            expect_key = False
        pos = m.end()
    if not parts or expect_key:
        raise ValueError(f"bad JSON path {path!r}: it must name a field, e.g. 'a.b[0].c'")
    return tuple(parts)


class PayloadTime(BaseModel):
    """Where a payload states when the sensor measured, and how (``time:`` of a JSON-based decoder).

    A time further than ``window_s`` from the time of receipt, or one that cannot be read, is not used:
    the reading is then stamped on receipt, and the case is counted and logged (once per topic and
    interval). A time after receipt (the sensor's clock is ahead) is taken as the time of receipt.
    """

    model_config = _FROZEN
    path: str = Field(description="JSON path of the time in the payload, e.g. 'Time' or 'meta.ts'")
    format: Literal["s", "ms", "us", "ns", "iso8601"] = Field(
        description="seconds, milliseconds, microseconds or nanoseconds since 1970-01-01 UTC"
        " (a number), or an ISO 8601 text such as 2024-03-04T10:11:12Z",
    )
    window_s: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="the most the payload's time may differ from the time of receipt, either way (seconds)",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA time zone of an ISO 8601 time given without offset (Tasmota sends local time);"
        " without it such a time is not used",
    )
    _parts: tuple[str | int, ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        """Parse the path once."""
        self._parts = parse_json_path(self.path)

    @field_validator("path")
    @classmethod
    def _path_parses(cls, v: str) -> str:
        parse_json_path(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _zone_known(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                zoneinfo.ZoneInfo(v)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r} (an IANA name such as 'Europe/Zurich')") from None
        return v

    @property
    def parts(self) -> tuple[str | int, ...]:
        """The parsed path."""
        return self._parts


def _time_field() -> Any:
    return Field(default=None, description="take the reading's time from the payload (path, format, window_s)")


class PlainDecoder(BaseModel):
    """The payload is the number itself, as text: ``21.5``."""

    model_config = _FROZEN
    type: Literal["plain"]


class JsonDecoder(BaseModel):
    """A JSON document; ``path`` selects the number (``a.b[0].c``)."""

    model_config = _FROZEN
    type: Literal["json"]
    path: str = Field(description="JSON path of the number, e.g. 'a.b[0].c'")
    time: PayloadTime | None = _time_field()
    _parts: tuple[str | int, ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        """Parse the path once (a bad path is a validation error with the path's position)."""
        self._parts = parse_json_path(self.path)

    @field_validator("path")
    @classmethod
    def _path_parses(cls, v: str) -> str:
        parse_json_path(v)
        return v

    @property
    def parts(self) -> tuple[str | int, ...]:
        """The parsed path."""
        return self._parts


class Zigbee2MqttDecoder(BaseModel):
    """Zigbee2MQTT device state: a flat JSON object, ``{"temperature": 22.5, "humidity": 41, ...}``.

    ``key`` defaults to Zigbee2MQTT's name for the sensor's quantity (``pm25``, ``illuminance``...);
    for illuminance, ``illuminance_lux`` is taken when the payload has it (Zigbee2MQTT 1.x).
    """

    model_config = _FROZEN
    type: Literal["zigbee2mqtt"]
    key: str | None = Field(
        default=None,
        description="the payload's key; default Zigbee2MQTT's name for the quantity"
        " (illuminance: illuminance_lux when present, else illuminance)",
    )
    time: PayloadTime | None = _time_field()


class TasmotaDecoder(BaseModel):
    """Tasmota telemetry (``tele/<device>/SENSOR``): ``{"SDS0X1": {"PM2.5": 12.3}, "TempUnit": "C"}``.

    Also reads the same object wrapped in ``StatusSNS`` (the answer to ``Status 10``). A temperature
    follows the payload's ``TempUnit`` unless the sensor declares a ``unit``.
    """

    model_config = _FROZEN
    type: Literal["tasmota"]
    sensor: str = Field(min_length=1, description="the sensor's object in the payload, e.g. 'SDS0X1'")
    key: str = Field(min_length=1, description="the value's key in that object, e.g. 'PM2.5'")
    time: PayloadTime | None = _time_field()


Decoder = Annotated[PlainDecoder | JsonDecoder | Zigbee2MqttDecoder | TasmotaDecoder, Field(discriminator="type")]


def _check_topic(topic: str) -> str:
    if not topic or len(topic.encode()) > 65535:
        raise ValueError("topic must be 1–65535 bytes")
    if any(c in topic for c in "+#\0"):
        raise ValueError("a sensor topic is exact: no '+', '#' or NUL (wildcards are computed)")
    return topic


class SensorConfig(BaseModel):
    """One value from one MQTT topic. Several sensors may share a topic (different keys)."""

    model_config = _FROZEN

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    topic: str
    zone: str = Field(min_length=1)
    quantity: MeasuredQuantity
    decoder: Decoder
    unit: str | None = None  # the payload's unit; converted to the quantity's unit
    stale_after_s: float = Field(default=300.0, gt=0)
    plausible: tuple[float, float] | None = None  # in the quantity's unit; default per quantity
    qos: Literal[0, 1, 2] = 1  # the subscription's QoS: at 1 the broker queues readings while the daemon is away
    filter: FilterConfig | None = Field(
        default=None, description="median_of: N or ema_s: T; rules see the filtered value"
    )
    stuck: StuckConfig | None = Field(
        default=None, description="after_s, min_change: a value that stays put this long counts as unavailable"
    )

    @field_validator("topic")
    @classmethod
    def _topic_ok(cls, v: str) -> str:
        return _check_topic(v)

    @model_validator(mode="after")
    def _semantics(self) -> SensorConfig:
        if self.unit is not None and self.unit not in UNIT_CONVERSIONS[self.quantity]:
            known = ", ".join(UNIT_CONVERSIONS[self.quantity])
            raise ValueError(f"unit {self.unit!r} does not fit {self.quantity.value} (known: {known})")
        if self.plausible is not None:
            lo, hi = self.plausible
            if not lo < hi:
                raise ValueError(f"plausible range [{lo}, {hi}] needs min < max")
        return self

    @property
    def plausible_range(self) -> tuple[float, float]:
        """The range a converted value must lie in (declared, else the quantity's default)."""
        return self.plausible if self.plausible is not None else DEFAULT_PLAUSIBLE[self.quantity]


class TlsConfig(BaseModel):
    """TLS towards the broker. Without ``ca_file`` the system's CAs are trusted."""

    model_config = _FROZEN
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate (for ``require_certificate`` brokers)
    key_file: Path | None = None
    verify_hostname: bool = True

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttConfig(BaseModel):
    """The daemon's broker connection. The password is never in this file: it comes from an
    environment variable (``password_env``) or a file (``password_file``), read at each connect."""

    model_config = _FROZEN

    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = None  # default "lobbyd-<branch>": fixed, so the broker can see duplicates
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    timeout_s: float = Field(default=10.0, gt=0)  # CONNACK / SUBACK / PUBACK wait
    reconnect_initial_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    silence_after_s: float = Field(default=300.0, gt=0)
    retained_buffer: int = Field(default=1000, ge=1)  # latest retained values kept while down
    # messages received but not yet handled (~350 bytes each); beyond it they are discarded, and counted
    incoming_queue: int = Field(default=100_000, ge=1)

    @model_validator(mode="after")
    def _semantics(self) -> MqttConfig:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("give password_env or password_file, not both")
        if (self.password_env is not None or self.password_file is not None) and self.username is None:
            raise ValueError("a password needs a username")
        if self.reconnect_initial_s > self.reconnect_max_s:
            raise ValueError("reconnect_initial_s must not exceed reconnect_max_s")
        return self

    def password(self) -> SecretStr | None:
        """Read the password now (env or file). Raises ``LookupError`` / ``OSError`` if missing."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise LookupError(f"environment variable {self.password_env} is not set")
            return SecretStr(value)
        if self.password_file is not None:
            return SecretStr(self.password_file.read_text().rstrip("\r\n"))
        return None
