"""Opening hours (``schedules:`` in a rule file), and the strict base every rule-language model shares."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, model_validator

from daemon.rules.durations import WEEKDAYS, TimeOfDay

__all__ = ["Schedule", "Strict"]


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
