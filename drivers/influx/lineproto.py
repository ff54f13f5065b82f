"""Influx line protocol, formatted by hand: a plain string per point, far cheaper than a ``Point`` object.

Escaping follows the InfluxDB 1.x/2.x parser: in the measurement, commas and spaces are escaped; in
tag keys, tag values and field keys, commas, equals signs and spaces; in string field values, double
quotes and backslashes. Some strings cannot be expressed at all in line protocol and are refused with
``ValueError`` rather than written wrongly: a newline or carriage return anywhere, a backslash at the
end of a name or just before a character that would need escaping, a measurement starting with ``#``
(it would read as a comment), and the reserved key ``time``. A tag with an empty value is left out
(InfluxDB treats "empty" and "absent" the same); a field whose value is ``None`` is left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["PER_SECOND", "FieldValue", "line", "timestamp"]

FieldValue = float | int | bool | str

#: Timestamp units per second, by write precision.
PER_SECOND: dict[str, int] = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_MEAS = str.maketrans({",": "\\,", " ": "\\ "})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_STR = str.maketrans({"\\": "\\\\", '"': '\\"'})


def _check_name(what: str, s: str, specials: str) -> None:
    if not s:
        raise ValueError(f"empty {what}")
    if "\n" in s or "\r" in s:
        raise ValueError(f"{what} {s!r} contains a line break, which line protocol cannot carry")
    if "\\" in s:
        if s.endswith("\\"):
            raise ValueError(f"{what} {s!r} ends with a backslash, which line protocol cannot carry")
        for i, ch in enumerate(s[:-1]):
            if ch == "\\" and s[i + 1] in specials:
                raise ValueError(f"{what} {s!r} has a backslash before {s[i + 1]!r}; not representable")


def _field(key: str, value: FieldValue) -> str:
    _check_name("field key", key, ",= ")
    if key == "time":
        raise ValueError("field key 'time' is reserved by InfluxDB")
    k = key.translate(_KEY)
    if isinstance(value, bool):
        return f"{k}={'true' if value else 'false'}"
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"field {key!r}: integer {value} out of int64 range")
        return f"{k}={value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"field {key!r}: {value} is not a finite number")
        return f"{k}={value!r}"
    if isinstance(value, str):
        if "\n" in value or "\r" in value:
            raise ValueError(f"field {key!r}: string contains a line break; replace it before writing")
        return f'{k}="{value.translate(_STR)}"'
    raise TypeError(f"field {key!r}: unsupported type {type(value).__name__}")


def timestamp(ts: float, precision: str = "ns") -> int:
    """POSIX seconds as a line-protocol timestamp in ``precision`` (``s``, ``ms``, ``us``, ``ns``), rounded."""
    return round(ts * PER_SECOND[precision])


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue | None],
    ts_ns: int,
) -> str:
    """Return one line of line protocol with an explicit timestamp (``ts_ns``: an int in the write's
    precision, nanoseconds unless configured otherwise; see :func:`timestamp`).

    Tags are sorted by key (what InfluxDB prefers); integers are written as ``5i``; ``None`` fields
    are skipped. Raises ``ValueError`` when no field is left, on NaN/inf, or on a string that line
    protocol cannot express (see the module docstring).
    """
    _check_name("measurement", measurement, ", ")
    if measurement.startswith("#"):
        raise ValueError(f"measurement {measurement!r} starts with '#', which reads as a comment")
    parts = [measurement.translate(_MEAS)]
    for key in sorted(tags):
        value = tags[key]
        _check_name("tag key", key, ",= ")
        if key == "time":
            raise ValueError("tag key 'time' is reserved by InfluxDB")
        if value == "":
            continue
        _check_name(f"tag {key!r} value", value, ",= ")
        parts.append(f"{key.translate(_KEY)}={value.translate(_KEY)}")
    field_text = ",".join(_field(k, v) for k, v in fields.items() if v is not None)
    if not field_text:
        raise ValueError(f"{measurement}: a point needs at least one field")
    if isinstance(ts_ns, bool) or not isinstance(ts_ns, int):
        raise TypeError("ts_ns must be an int (the timestamp in the write's precision)")
    return f"{','.join(parts)} {field_text} {ts_ns}"
