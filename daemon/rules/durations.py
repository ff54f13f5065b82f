"""Human-friendly durations and times of day for rule files: ``90s``, ``2m``, ``1h30m``, ``08:30``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = ["Duration", "TimeOfDay", "parse_duration", "parse_time_of_day"]

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|min|s|sec)(?![a-z])")
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, "sec": 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``"90s"``, ``"2m"``, ``"1h30m"``, ``"1d"``; rejects negatives and junk."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or text like '2m' or '1h30m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        pos, seconds, matched = 0, 0.0, False
        for m in _PART.finditer(text):
            if text[pos : m.start()].strip():
                break
            seconds += float(m.group(1)) * _UNIT[m.group(2)]
            pos, matched = m.end(), True
        if not matched or text[pos:].strip():
            raise ValueError(f"'{value}' is not a duration; write e.g. '90s', '2m', '1h30m'")
    else:
        raise ValueError("a duration must be a number of seconds or text like '2m'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_time_of_day(value: Any) -> dt.time:
    """``"08:30"`` or ``"8:30:15"`` → ``datetime.time``; ``"24:00"`` means end of day."""
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads 08:30 unquoted as sexagesimal minutes; accept that too.
        hours, minutes = divmod(value, 60)
        if 0 <= hours < 24:
            return dt.time(hours, minutes)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*", value)
        if m:
            h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
            if (h, mi, s) == (24, 0, 0):
                return dt.time.max
            if h < 24 and mi < 60 and s < 60:
                return dt.time(h, mi, s)
    raise ValueError(f"'{value}' is not a time of day; write e.g. '08:30'")


DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(d|h|m|min|s|sec)\s*)+$"},
    ],
    "description": "seconds, or text like '90s', '5m', '1h30m'",
}
TIME_OF_DAY_SCHEMA = {
    "type": "string",
    "pattern": r"^\s*\d{1,2}:\d{2}(:\d{2})?\s*$",
    "description": "local time of day, e.g. '08:30' ('24:00' = end of day)",
}

Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(float), WithJsonSchema(DURATION_SCHEMA, mode="validation")
]
TimeOfDay = Annotated[
    dt.time, BeforeValidator(parse_time_of_day), WithJsonSchema(TIME_OF_DAY_SCHEMA, mode="validation")
]
