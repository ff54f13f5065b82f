"""Cron patterns as people write them (``"*/15 8-18 * * 1-5"``), on APScheduler's cron trigger.

APScheduler 3 counts day-of-week numbers from Monday = 0, while every crontab (and every how-to
staff will find) counts Sunday = 0 (and 7), Monday = 1. :func:`cron_trigger` translates numeric
days to names before handing the pattern over, so ``1-5`` means Monday to Friday as in crontab.
"""

from __future__ import annotations

import functools
import re
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

__all__ = ["cron_trigger", "normalise_cron"]

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PART = re.compile(r"^(\d)(?:-(\d))?(?:/(\d+))?$")


def _day_field(text: str) -> str:
    out: list[str] = []
    for part in text.split(","):
        m = _PART.match(part.strip())
        if m is None:
            out.append(part.strip())
            continue
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        step = int(m.group(3)) if m.group(3) is not None else 1
        if lo > 7 or hi > 7 or lo > hi or step < 1:
            raise ValueError(f"day of week '{part}' must be 0-7 (0 and 7 are Sunday), low before high")
        if m.group(3) is not None and m.group(2) is None:
            hi = 6  # "1/2" means from Monday every second day
        out.extend(_DAYS[d] for d in range(lo, hi + 1, step))
    return ",".join(dict.fromkeys(out))


def normalise_cron(expr: str) -> tuple[str, str, str, str, str]:
    """The five fields of ``expr`` with numeric days of week turned into names (crontab numbering)."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"a cron pattern has 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, dow = fields
    return minute, hour, day, month, _day_field(dow)


@functools.lru_cache(maxsize=256)
def cron_trigger(expr: str, timezone: str = "UTC") -> CronTrigger:
    """An APScheduler trigger for a crontab pattern; ``ValueError`` with a readable message if invalid."""
    minute, hour, day, month, dow = normalise_cron(expr)
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=dow, timezone=ZoneInfo(timezone))
