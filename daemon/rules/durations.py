"""Durations, times of day, weekdays and numbers as staff write them: ``90s``, ``5 min``, ``1h30m``, ``PT5M``,
``"08:30"``, ``mon-fri``.

Every rejection says what was seen and what to write instead. A bare number is not a duration in a
rule file (``for: 120``: seconds or minutes?), and ``2M`` is refused because M means months as often
as minutes; the override commands still take plain seconds (:func:`parse_duration`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = [
    "WEEKDAYS",
    "Duration",
    "TimeOfDay",
    "Weekdays",
    "parse_duration",
    "parse_rule_duration",
    "parse_time_of_day",
    "parse_weekdays",
    "refuse_number_text",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|min|m|sec|s)(?![a-z])", re.IGNORECASE)
_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0, "sec": 1.0}
_ISO = re.compile(
    r"P(?=\d|T\d)(?:(\d+(?:\.\d+)?)D)?(?:T(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)
# A number with a unit or a decimal comma ("35µg", "30%", "24,5") is a mistaken threshold, not a sensor name.
_NUMBER_WITH_UNIT = re.compile(
    r"^\s*([+-]?\d+(?:[.,]\d+)?\s*(%|[^\w\s-].*|[µu]g.*|ppm|ppb|lx|lux|k|c|°c|)|yes|no|on|off|true|false)\s*$", re.I
)
_EXAMPLES = "write e.g. '90s', '5min', '1h30m' or 'PT5M'"


def _text_duration(value: str) -> float:
    text = value.strip()
    iso = _ISO.fullmatch(text)
    if iso:
        d, h, mi, s = (float(g) if g else 0.0 for g in iso.groups())
        return d * 86400 + h * 3600 + mi * 60 + s
    if re.fullmatch(r"P.*", text.upper()):
        raise ValueError(
            f"'{value}' is not a duration lobbyd understands: in 'P…' (ISO 8601) form only days, hours, minutes "
            "and seconds are allowed, e.g. 'PT5M' (5 minutes) or 'P1D' (a day); months and years are not"
        )
    if re.search(r"\d\s*M(?![a-zA-Z])", text):
        raise ValueError(
            f"'{value}' is ambiguous: 'M' means months in some notations and minutes in others. "
            "For minutes write 'min' (e.g. '2min'); for months, lobbyd has no durations that long"
        )
    pos, seconds, matched = 0, 0.0, False
    for m in _PART.finditer(text):
        if text[pos : m.start()].strip():
            break
        seconds += float(m.group(1)) * _UNIT[m.group(2).lower()]
        pos, matched = m.end(), True
    if not matched or text[pos:].strip():
        raise ValueError(
            f"'{value}' is not a duration; units are d (days), h (hours), min or m (minutes), s (seconds): {_EXAMPLES}"
        )
    return seconds


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``"90s"``, ``"2min"``, ``"1h30m"``, ``"1d"``, ``"PT5M"``; rejects negatives and junk."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; {_EXAMPLES}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _text_duration(value)
    else:
        raise ValueError(f"a duration must be text like '2min' or '1h30m'; {_EXAMPLES}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative (got {value!r}); {_EXAMPLES}")
    return seconds


def parse_rule_duration(value: Any) -> float:
    """As :func:`parse_duration`, but a bare number is refused: in a rule file the unit must be written."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        n = f"{value:g}" if isinstance(value, float) else str(value)
        raise ValueError(
            f"{n} has no unit: seconds or minutes? Write '{n}s' for seconds or '{n}min' for minutes "
            "(also '1h30m', 'PT5M')"
        )
    return parse_duration(value)


def refuse_number_text(value: Any) -> None:
    """Raise if ``value`` is a number written with a unit, a decimal comma or a YAML 1.1 word
    (``35µg``, ``30%``, ``24,5``, ``off``): in a threshold that would otherwise name a sensor."""
    if isinstance(value, str) and _NUMBER_WITH_UNIT.match(value):
        number = re.match(r"\s*[+-]?\d+(?:[.,]\d+)?", value)
        plain = number.group(0).strip().replace(",", ".") if number else "35"
        raise ValueError(
            f"'{value}' is not a number: write the number alone, with a decimal point and without a unit, "
            f"e.g. {plain} (units are those of the sensor, e.g. µg/m³ for PM2.5)"
        )


def parse_time_of_day(value: Any) -> dt.time:
    """``"08:30"`` or ``"8:30:15"`` → ``datetime.time``; ``"24:00"`` means end of day."""
    if isinstance(value, dt.time):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"{value!r} is a number, not a time of day: write the time in quotes as hours:minutes, "
            f'e.g. "09:00" or "15:00"'
        )
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*", value)
        if m:
            h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
            if (h, mi, s) == (24, 0, 0):
                return dt.time.max
            if h < 24 and mi < 60 and s < 60:
                return dt.time(h, mi, s)
            raise ValueError(f"'{value}' is not a time of day: hours go from 00 to 23 and minutes from 00 to 59")
    raise ValueError(f'{value!r} is not a time of day; write hours:minutes in quotes, e.g. "08:30"')


def parse_weekdays(value: Any) -> Any:
    """``"mon-fri"``, ``"sat,sun"``, ``"wed"``, ``[mon, thu-sat]`` → a tuple of day names in week order."""
    if value is None:
        return None
    items: list[Any] = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"{value!r} is not a list of weekdays; write e.g. mon-fri, sat,sun or [mon, wed]")
    parts = [p for item in items for p in (item.split(",") if isinstance(item, str) else [item])]
    days: set[int] = set()
    for part in parts:
        if not isinstance(part, str):
            raise ValueError(f"{part!r} is not a weekday; write mon, tue, wed, thu, fri, sat or sun, or mon-fri")
        ends = [p.strip().lower() for p in part.split("-")]
        if len(ends) not in (1, 2) or any(e not in WEEKDAYS for e in ends):
            raise ValueError(
                f"'{part.strip()}' is not a weekday; write mon, tue, wed, thu, fri, sat or sun, or a range: mon-fri"
            )
        lo, hi = WEEKDAYS.index(ends[0]), WEEKDAYS.index(ends[-1])
        days.update((lo + i) % 7 for i in range((hi - lo) % 7 + 1))
    if not days:
        raise ValueError("no weekdays given; write e.g. mon-fri (or leave 'weekdays' out for every day)")
    return tuple(WEEKDAYS[d] for d in sorted(days))


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" for c in word)


_DAY = "(" + "|".join(_any_case(d) for d in WEEKDAYS) + ")"
_DAYS_PATTERN = rf"^\s*{_DAY}(\s*-\s*{_DAY})?(\s*,\s*{_DAY}(\s*-\s*{_DAY})?)*\s*$"
DURATION_SCHEMA = {
    "type": "string",
    "pattern": (
        r"^\s*((\d+(\.\d+)?\s*([Dd]|[Hh]|m|[Mm][Ii][Nn]|[Ss]|[Ss][Ee][Cc])\s*)+"
        r"|P(?=\d|T\d)(\d+(\.\d+)?D)?(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?)\s*$"
    ),
    "description": "a duration with its unit: '90s', '5min', '1h30m', 'PT5M' (a bare number is refused)",
}
TIME_OF_DAY_SCHEMA = {
    "type": "string",
    # hours 0-23 (or 24:00, the end of a day; where only an end may be 24:00 is for `lobbyd check`)
    "pattern": r"^\s*(([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?|24:00(:00)?)\s*$",
    "description": "local time of day, e.g. '08:30' ('24:00' = end of day)",
}
WEEKDAYS_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": _DAYS_PATTERN},
        {"type": "array", "items": {"type": "string", "pattern": _DAYS_PATTERN}, "minItems": 1},
    ],
    "description": "days of the week: mon-fri, sat,sun, wed, or a list such as [mon, thu-sat]",
}

Duration = Annotated[
    float,
    BeforeValidator(parse_rule_duration),
    PlainSerializer(float),
    WithJsonSchema(DURATION_SCHEMA, mode="validation"),
]
TimeOfDay = Annotated[
    dt.time, BeforeValidator(parse_time_of_day), WithJsonSchema(TIME_OF_DAY_SCHEMA, mode="validation")
]
Weekdays = Annotated[
    tuple[str, ...], BeforeValidator(parse_weekdays), WithJsonSchema(WEEKDAYS_SCHEMA, mode="validation")
]
