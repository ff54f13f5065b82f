"""Opening hours (``schedules:`` in a rule file), the clock parts of conditions (time and sun windows,
``opens_within``), and the strict base every rule-language model shares."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from daemon.rules.durations import WEEKDAYS, Duration, TimeOfDay, Weekdays
from daemon.rules.scalars import Number

__all__ = ["OpensWithin", "Schedule", "Strict", "SunTime", "SunWindow", "TimeWindow"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class Schedule(Strict):
    """Opening hours per weekday (``mon: ["08:30", "17:30"]``; several spans allowed) and holidays."""

    mon: tuple[tuple[TimeOfDay, TimeOfDay], ...] | tuple[TimeOfDay, TimeOfDay] | None = None
    tue: tuple[tuple[TimeOfDay, TimeOfDay], ...] | tuple[TimeOfDay, TimeOfDay] | None = None
    wed: tuple[tuple[TimeOfDay, TimeOfDay], ...] | tuple[TimeOfDay, TimeOfDay] | None = None
    thu: tuple[tuple[TimeOfDay, TimeOfDay], ...] | tuple[TimeOfDay, TimeOfDay] | None = None
    fri: tuple[tuple[TimeOfDay, TimeOfDay], ...] | tuple[TimeOfDay, TimeOfDay] | None = None
    sat: tuple[tuple[TimeOfDay, TimeOfDay], ...] | tuple[TimeOfDay, TimeOfDay] | None = None
    sun: tuple[tuple[TimeOfDay, TimeOfDay], ...] | tuple[TimeOfDay, TimeOfDay] | None = None
    holidays: tuple[dt.date, ...] = ()

    def spans(self, weekday: int) -> list[tuple[dt.time, dt.time]]:
        raw = getattr(self, WEEKDAYS[weekday])
        if raw is None:
            return []
        if len(raw) == 2 and isinstance(raw[0], dt.time):
            return [(raw[0], raw[1])]
        return [(a, b) for a, b in raw]

    @model_validator(mode="after")
    def _ordered(self) -> Schedule:
        for i, day in enumerate(WEEKDAYS):
            for a, b in self.spans(i):
                if not a < b:
                    raise ValueError(f"{day}: opening time {a:%H:%M} must be before closing time {b:%H:%M}")
        return self


_SUN = re.compile(r"^\s*(sunrise|sunset|noon|dawn|dusk)\s*(?:([+-])\s*(.+))?$")  # the offset keeps its case


class SunTime(Strict):
    """``sunrise``, ``sunset``, ``noon``, ``dawn`` or ``dusk`` with an offset, e.g. ``sunset-30m``."""

    event: Literal["sunrise", "sunset", "noon", "dawn", "dusk"]
    offset_s: Number = 0.0

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            from daemon.rules.durations import parse_duration

            m = _SUN.match(value)
            if not m:
                raise ValueError(f"'{value}' is not a sun time; write e.g. 'sunrise+30m' or 'sunset-15m'")
            offset = parse_duration(m.group(3)) if m.group(3) else 0.0
            return {"event": m.group(1).lower(), "offset_s": -offset if m.group(2) == "-" else offset}
        return value


class TimeWindow(Strict):
    after: TimeOfDay | None = None
    before: TimeOfDay | None = None
    weekdays: Weekdays | None = None

    @model_validator(mode="after")
    def _span(self) -> TimeWindow:
        if self.after == dt.time.max:
            raise ValueError('\'after: "24:00"\' is the end of the day, so the window would never open; write "00:00"')
        if self.after is not None and self.after == self.before:
            raise ValueError(
                f"the window from {self.after:%H:%M} to {self.before:%H:%M} is empty (zero length); for all day "
                "leave out 'after' and 'before', else give two times, e.g. after: \"08:00\", before: \"18:00\""
            )
        return self


class SunWindow(Strict):
    # the schema says what _some says: at least one of the two, and not null (an editor marks sun: {})
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [{"required": [k], "properties": {k: {"not": {"type": "null"}}}} for k in ("after", "before")]
        }
    )
    after: SunTime | None = None
    before: SunTime | None = None

    @model_validator(mode="after")
    def _some(self) -> SunWindow:
        if self.after is None and self.before is None:
            raise ValueError("give 'after' and/or 'before', e.g. after: sunrise+30m")
        return self


class OpensWithin(Strict):
    """``opens_within: {schedule: opening-hours, within: 30min}``: closed now, opening within that time."""

    schedule: str
    within: Duration

    @model_validator(mode="after")
    def _span(self) -> OpensWithin:
        if not 0 < self.within <= 12 * 3600:
            raise ValueError(
                f"'within' must be more than 0 and at most 12 h, found {self.within / 60:g} min; e.g. within: 30min"
            )
        return self
