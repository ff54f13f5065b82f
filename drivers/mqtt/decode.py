"""Payload bytes → :class:`~daemon.model.Reading`: pure, total, and never raising.

Every payload either yields readings (finite, converted to the quantity's unit, inside the plausible
range) or a :class:`Rejected` with a :class:`RejectReason`. One payload is decoded (UTF-8, JSON) once
for all sensors sharing its topic; each sensor then picks its own field.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from daemon.model import Quantity, Reading
from drivers.mqtt.config import (
    UNIT_CONVERSIONS,
    Z2M_DEFAULT_KEYS,
    JsonDecoder,
    PayloadTime,
    PlainDecoder,
    SensorConfig,
    TasmotaDecoder,
    Zigbee2MqttDecoder,
)

__all__ = ["DEFAULT_MAX_BYTES", "TIME_REASONS", "RejectReason", "Rejected", "decode"]

DEFAULT_MAX_BYTES = 64 * 1024


class RejectReason(enum.StrEnum):
    """Why a payload (or one sensor's share of it) was not turned into a reading."""

    NOT_UTF8 = "not_utf8"
    OVERSIZE = "oversize"
    NOT_JSON = "not_json"
    DUPLICATE_KEY = "duplicate_key"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NULL = "null"
    NAN = "nan"
    INFINITE = "infinite"
    IMPLAUSIBLE = "implausible"
    UNKNOWN_TOPIC = "unknown_topic"
    # The payload's own time (a decoder's ``time:``) is not used; the reading is kept, stamped on receipt.
    TIME_UNPARSEABLE = "time_unparseable"
    TIME_OUTSIDE_WINDOW = "time_outside_window"


#: Reasons that reject only the payload's time: the reading itself is accepted, stamped on receipt.
TIME_REASONS = frozenset({RejectReason.TIME_UNPARSEABLE, RejectReason.TIME_OUTSIDE_WINDOW})


@dataclass(frozen=True, slots=True)
class Rejected:
    """One rejected payload or field: where it came from, why, and a short human detail.

    With a reason in :data:`TIME_REASONS` only the payload's time was rejected (its reading is kept)."""

    topic: str
    reason: RejectReason
    detail: str
    sensor: str | None = None
    ts: float = 0.0


class _Reject(Exception):  # internal control flow only; never leaves this module
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_NUMBER = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_NAN_WORDS = frozenset({"nan", "+nan", "-nan"})
_INF_WORDS = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
_MISSING = object()


class _DuplicateKey(ValueError):  # raised inside json.loads by _unique_pairs; caught in decode
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s object hook: an object naming a key twice is refused (JSON would keep the last)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(f"key {_short(key)} appears twice in one object")
            seen.add(key)
    return obj


def _number_from_text(text: str) -> float:
    """A strict decimal number (no ``1_000``, no hex); NaN / infinity words get their own reason."""
    try:  # fast path for the usual payload: float() accepts exactly the pattern, plus "_", nan and inf
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value) and "_" not in text:
            return value
    if _NUMBER.fullmatch(text):
        try:
            return float(text)
        except (ValueError, OverflowError):  # pragma: no cover - the pattern admits only floats
            pass
    word = text.strip().lower()
    if word in _NAN_WORDS:
        raise _Reject(RejectReason.NAN, "NaN")
    if word in _INF_WORDS:
        raise _Reject(RejectReason.INFINITE, "infinity")
    if not word:
        raise _Reject(RejectReason.WRONG_TYPE, "empty value")
    raise _Reject(RejectReason.WRONG_TYPE, f"not a number: {_short(text)}")


def _number(value: Any) -> float:
    """A JSON value as a float: numbers, and strings holding a strict decimal number."""
    if value is None:
        raise _Reject(RejectReason.NULL, "null")
    if isinstance(value, bool):
        raise _Reject(RejectReason.WRONG_TYPE, f"boolean {str(value).lower()}")
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            raise _Reject(RejectReason.INFINITE, "integer too large for a float") from None
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return _number_from_text(value)
    raise _Reject(RejectReason.WRONG_TYPE, f"{type(value).__name__} instead of a number")


def _lookup(doc: Any, path: Sequence[str | int]) -> Any:
    node = doc
    for i, part in enumerate(path):
        if isinstance(part, int):
            if not isinstance(node, list):
                raise _Reject(RejectReason.WRONG_TYPE, f"{_where(path, i)} is not a list")
            if part >= len(node):
                raise _Reject(RejectReason.MISSING_FIELD, f"{_where(path, i + 1)} missing")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise _Reject(RejectReason.WRONG_TYPE, f"{_where(path, i)} is not an object")
            node = node.get(part, _MISSING)
            if node is _MISSING:
                raise _Reject(RejectReason.MISSING_FIELD, f"{_where(path, i + 1)} missing")
    return node


def _where(path: Sequence[str | int], n: int) -> str:
    out = ""
    for part in path[:n]:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "document"


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


_EPOCH_SCALE = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def _tasmota_body(dec: TasmotaDecoder, doc: Any) -> Any:
    """Tasmota's telemetry object, also when wrapped in ``StatusSNS`` (the answer to ``Status 10``)."""
    if isinstance(doc, dict) and dec.sensor not in doc and isinstance(doc.get("StatusSNS"), dict):
        return doc["StatusSNS"]
    return doc


def _payload_time(spec: PayloadTime, doc: Any) -> float:
    """The time the payload states, in POSIX seconds (wall clock); ``_Reject`` if it cannot be read."""
    try:
        value = _lookup(doc, spec.parts)
    except _Reject as r:
        raise _Reject(RejectReason.TIME_UNPARSEABLE, f"time {r.detail}") from None
    shown = _short(str(value))
    if spec.format == "iso8601":
        if not isinstance(value, str):
            raise _Reject(RejectReason.TIME_UNPARSEABLE, f"time {shown} is not an ISO 8601 text")
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            raise _Reject(RejectReason.TIME_UNPARSEABLE, f"time {shown} is not ISO 8601") from None
        if when.tzinfo is None:
            if spec.timezone is None:
                raise _Reject(
                    RejectReason.TIME_UNPARSEABLE, f"time {shown} has no UTC offset and the decoder names no timezone"
                )
            when = when.replace(tzinfo=zoneinfo.ZoneInfo(spec.timezone))
        try:
            return when.timestamp()
        except (OverflowError, ValueError, OSError):  # pragma: no cover - fromisoformat bounds the year
            raise _Reject(RejectReason.TIME_UNPARSEABLE, f"time {shown} out of range") from None
    try:
        number = _number(value)
    except _Reject:
        raise _Reject(RejectReason.TIME_UNPARSEABLE, f"time {shown} is not a number of {spec.format}") from None
    seconds = number / _EPOCH_SCALE[spec.format]
    if not math.isfinite(seconds):
        raise _Reject(RejectReason.TIME_UNPARSEABLE, f"time {shown} is not finite")
    return seconds


def _time_of(dec: PayloadTime, doc: Any, ts: float, wall: float) -> float:
    """The reading's time on the caller's line (``ts`` is receipt on it, ``wall`` receipt on the wall clock):
    receipt moved back by how much earlier the payload's time is than ``wall`` (a later one is taken as
    receipt: a reading is never fresher than its arrival); ``_Reject`` when unusable."""
    stated = _payload_time(dec, doc)
    skew = stated - wall
    if not abs(skew) <= dec.window_s:
        raise _Reject(
            RejectReason.TIME_OUTSIDE_WINDOW,
            f"time {stated:.3f} is {skew:+.0f}s from receipt {wall:.3f} (allowed ±{dec.window_s:g}s)",
        )
    return ts + min(skew, 0.0)  # ahead of receipt: the sensor's clock is fast; nothing is measured later


def _raw_value(sensor: SensorConfig, text: str, doc: Any) -> tuple[float, str | None]:
    """The sensor's raw number and the unit the payload states for it (Tasmota's TempUnit)."""
    dec = sensor.decoder
    if isinstance(dec, PlainDecoder):
        return _number_from_text(text), None
    if isinstance(dec, JsonDecoder):
        return _number(_lookup(doc, dec.parts)), None
    if isinstance(dec, Zigbee2MqttDecoder):
        key = dec.key if dec.key is not None else Z2M_DEFAULT_KEYS[sensor.quantity]
        if dec.key is None and key == "illuminance" and isinstance(doc, dict) and "illuminance_lux" in doc:
            key = "illuminance_lux"  # Zigbee2MQTT 1.x: ``illuminance`` is the raw Zigbee value, not lx
        return _number(_lookup(doc, (key,))), None
    assert isinstance(dec, TasmotaDecoder)
    body = _tasmota_body(dec, doc)
    value = _number(_lookup(body, (dec.sensor, dec.key)))
    stated = body.get("TempUnit") if isinstance(body, dict) else None
    unit = stated if sensor.quantity is Quantity.TEMPERATURE and stated in ("C", "F") else None
    return value, unit


def _convert(sensor: SensorConfig, raw: float, stated_unit: str | None) -> float:
    if math.isnan(raw):
        raise _Reject(RejectReason.NAN, "NaN")
    if math.isinf(raw):
        raise _Reject(RejectReason.INFINITE, "infinity")
    unit = sensor.unit if sensor.unit is not None else stated_unit
    value = raw
    if unit is not None:
        scale, offset = UNIT_CONVERSIONS[sensor.quantity][unit]
        value = raw * scale + offset
        if math.isinf(value):
            raise _Reject(RejectReason.INFINITE, f"{raw!r} {unit} overflows")
    lo, hi = sensor.plausible_range
    if not lo <= value <= hi:
        shown = f"{value:g} {sensor.quantity.unit}" + (f" (from {raw:g} {unit})" if unit else "")
        raise _Reject(RejectReason.IMPLAUSIBLE, f"{shown} outside [{lo:g}, {hi:g}]")
    return value


def decode(
    sensors_for_topic: Sequence[SensorConfig],
    payload: bytes,
    *,
    ts: float,
    retained: bool,
    topic: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    wall: float | None = None,
) -> tuple[list[Reading], list[Rejected]]:
    """Decode one payload for every sensor on its topic. Never raises, whatever the bytes.

    A payload-level failure (size, UTF-8, JSON) rejects once for the whole payload; a field-level
    failure rejects once per sensor. ``topic`` defaults to the first sensor's topic. ``ts`` is the
    time of receipt on the caller's time line, ``wall`` the same instant on the wall clock (default
    ``ts``): a decoder with ``time:`` stamps its reading ``ts + min(0, payload time − wall)``, so that
    the reading stays on the caller's line; an unusable payload time keeps ``ts`` and adds a
    :data:`TIME_REASONS` entry to the rejections.
    """
    if not sensors_for_topic:
        return [], []
    where = topic if topic is not None else sensors_for_topic[0].topic

    def whole(reason: RejectReason, detail: str) -> tuple[list[Reading], list[Rejected]]:
        return [], [Rejected(where, reason, detail, None, ts)]

    if len(payload) > max_bytes:
        return whole(RejectReason.OVERSIZE, f"{len(payload)} bytes > {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return whole(RejectReason.NOT_UTF8, f"invalid UTF-8 at byte {exc.start}")
    doc: Any = None
    needs_json = False
    for s in sensors_for_topic:  # a loop, not any(<genexpr>): this runs for every message
        if not isinstance(s.decoder, PlainDecoder):
            needs_json = True
            break
    if needs_json:
        try:
            doc = json.loads(text, object_pairs_hook=_unique_pairs)
        except _DuplicateKey as exc:
            return whole(RejectReason.DUPLICATE_KEY, str(exc))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, int digit limit, deep nesting
            return whole(RejectReason.NOT_JSON, _short(str(exc), 60))
    readings: list[Reading] = []
    rejected: list[Rejected] = []
    for sensor in sensors_for_topic:
        try:
            raw, stated = _raw_value(sensor, text, doc)
            value = _convert(sensor, raw, stated)
        except _Reject as r:
            rejected.append(Rejected(where, r.reason, r.detail, sensor.id, ts))
            continue
        at = ts
        dec = sensor.decoder
        if not isinstance(dec, PlainDecoder) and dec.time is not None:
            try:
                body = _tasmota_body(dec, doc) if isinstance(dec, TasmotaDecoder) else doc
                at = _time_of(dec.time, body, ts, ts if wall is None else wall)
            except _Reject as r:
                rejected.append(Rejected(where, r.reason, r.detail, sensor.id, ts))
        readings.append(Reading(sensor.id, sensor.quantity, value, at, sensor.zone, retained))
    return readings, rejected
