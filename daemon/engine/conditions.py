"""Conditions: numbers with hysteresis and ``for:`` timers, and clock windows (schedule, time, sun, cron).

A numeric condition is evaluated in two steps. :func:`step_numeric` moves its memory on (latch, ``for:``
start, until when its inputs are known) and reports what it saw; :func:`numeric_words` puts that in
words. The step alone is what :func:`daemon.engine.advance` runs for a reading of a burst, so that a
coalesced evaluation afterwards ends in the same memory as evaluating after each reading.

Hysteresis: ``above: 35, off_below: 25`` switches on above 35 and off only below 25. Coming back from
unknown is not a crossing: the latch starts off and ``for`` starts again, unless the input was unknown
for less than ``resume_grace_s`` (a restart, a short gap) — counted from the moment its last reading
went stale, so the answer depends on the readings, not on when evaluations happened to run.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Literal, NamedTuple

from daemon.engine.ruleset import RuleSet, day_stamps
from daemon.engine.types import EngineMemory
from daemon.engine.view import SensorView, Used
from daemon.model import Quantity
from daemon.rules.cron import cron_trigger
from daemon.rules.model import Condition, Input
from daemon.sun import Site, sun_day

__all__ = [
    "Clock",
    "NumericOutcome",
    "Status",
    "clock_condition",
    "fmt",
    "numeric_sources",
    "numeric_words",
    "step_numeric",
]

Status = Literal["true", "false", "unknown"]


class NumericOutcome(NamedTuple):
    """What one step of a numeric condition saw and decided."""

    status: Status
    value: float | None = None  # the input's value
    limit: float | None = None  # the threshold's value (above/below)
    off: float | None = None  # the hysteresis threshold's value (off_below/off_above)
    was: bool = False  # the latch before this step
    raw: bool = False  # the latch after it: the threshold, with hysteresis, is met
    since: float | None = None  # when it became true (while it is)
    changes_at: float = math.inf  # when the outcome can change with no new reading
    unknown: str = ""  # why it is unknown, in words


def step_numeric(
    mem: EngineMemory, key: str, c: Condition, view: SensorView, now: float, *, resume_grace_s: float
) -> NumericOutcome:
    """Move the condition's memory on to ``now`` (``mem`` is the caller's own copy) and say what it saw."""
    inp = view.value(c.input, now)
    if inp.value is None:
        return NumericOutcome("unknown", unknown=f"{c.input.key} is unknown (no fresh reading)")
    value, changes_at, known_until = inp.value, inp.changes_at, inp.known_until
    limit = c.threshold_value
    reads = c.threshold_input
    if reads is not None:
        lim = view.value(reads, now)
        if lim.value is None:
            return NumericOutcome("unknown", changes_at=changes_at, unknown=f"{reads.key} is unknown")
        limit, changes_at, known_until = lim.value, min(changes_at, lim.changes_at), min(known_until, lim.known_until)
    off = c.off_below if c.off_below is not None else c.off_above
    if isinstance(off, Input):
        got = view.value(off, now)
        if got.value is None:
            return NumericOutcome("unknown", changes_at=changes_at, unknown=f"{off.key} is unknown")
        off, changes_at, known_until = got.value, min(changes_at, got.changes_at), min(known_until, got.known_until)
    if now - mem.known_until.get(key, now) > resume_grace_s:
        # Back from unknown after a real gap: not a crossing. Start over.
        mem.latched.pop(key, None)
        mem.since.pop(key, None)
    mem.known_until[key] = known_until
    was = mem.latched.get(key, False)
    if c.above is not None:
        assert limit is not None
        raw = value > limit or (was and off is not None and value >= off)
    elif c.below is not None:
        assert limit is not None
        raw = value < limit or (was and off is not None and value <= off)
    else:
        assert c.between is not None
        raw = c.between[0] <= value <= c.between[1]
    mem.latched[key] = raw
    if not raw:
        mem.since.pop(key, None)
        return NumericOutcome("false", value, limit, off, was, raw, None, changes_at)
    start = mem.since.setdefault(key, now)
    if c.for_ and now - start < c.for_:
        return NumericOutcome("false", value, limit, off, was, raw, start, min(changes_at, start + c.for_))
    return NumericOutcome("true", value, limit, off, was, raw, start, changes_at)


def numeric_sources(c: Condition, out: NumericOutcome, view: SensorView, now: float) -> tuple[Used, ...]:
    """What the condition's outcome was computed from (its threshold's sensors too, when it had a value)."""
    used = view.sources(c.input, now)
    if out.limit is not None:
        for extra in c.threshold_inputs:
            used += view.sources(extra, now)
    return used


def _off_text(c: Condition, out: NumericOutcome) -> str:
    return f"{c.off_input.key} ({fmt(out.off)})" if c.off_input is not None else fmt(out.off)


def numeric_words(c: Condition, out: NumericOutcome, quantity: Quantity | None, now: float) -> str:
    """The outcome of :func:`step_numeric` in plain words."""
    if out.status == "unknown":
        return out.unknown
    key = c.input.key
    shown = f"{key} = {fmt(out.value, quantity)}"
    reads = c.threshold_input
    lim_text = f"{reads.key} ({fmt(out.limit)})" if reads is not None else fmt(out.limit)
    assert out.value is not None
    if c.above is not None:
        assert out.limit is not None
        over = out.value > out.limit
        words = f"{shown} {'is above' if over else 'is not above'} {lim_text}"
        if c.off_below is not None and out.was and not over:
            words += f", held on until below {_off_text(c, out)}"
    elif c.below is not None:
        assert out.limit is not None
        under = out.value < out.limit
        words = f"{shown} {'is below' if under else 'is not below'} {lim_text}"
        if c.off_above is not None and out.was and not under:
            words += f", held on until above {_off_text(c, out)}"
    else:
        assert c.between is not None
        words = f"{shown} {'is' if out.raw else 'is not'} between {c.between[0]:g} and {c.between[1]:g}"
    if out.since is not None and c.for_:
        if out.status == "false":
            return f"{words}, for {fmt_duration(now - out.since)} of the required {fmt_duration(c.for_)}"
        words += f" for at least {fmt_duration(c.for_)}"
    return words


class Clock(NamedTuple):
    """The site's clock at ``now``, shared by the clock conditions of one evaluation."""

    site: Site
    now: float
    local: dt.datetime

    @classmethod
    def at(cls, site: Site, now: float) -> Clock:
        return cls(site, now, dt.datetime.fromtimestamp(now, site.tz))

    def next_midnight(self) -> float:
        return day_stamps(self.site.tz, self.local.date(), ())[-1]

    def next_of(self, times: tuple[dt.time, ...]) -> float:
        """The next of today's ``times`` (local) after now, else the next midnight."""
        return next(ts for ts in day_stamps(self.site.tz, self.local.date(), times) if ts > self.now)

    def hhmm(self, t: float) -> str:
        return f"{dt.datetime.fromtimestamp(t, self.site.tz):%H:%M}"


def clock_condition(rules: RuleSet, clock: Clock, c: Condition) -> tuple[Status, str, float]:
    """A schedule, time, sun or cron condition: its status, its words, and when it can next change."""
    now, local = clock.now, clock.local
    if c.schedule is not None or c.outside_schedule is not None:
        name = c.schedule if c.schedule is not None else c.outside_schedule
        assert name is not None
        today = rules.schedule_day(name, clock.site.tz, local.date())
        if today is None:  # caught by validation; be safe at runtime
            return "false", f"schedule '{name}' does not exist", math.inf
        is_open = today.is_open(local.time())
        want_open = c.schedule is not None
        words = f"{name} is {'open' if is_open else 'closed'}"
        if is_open != want_open:
            words += f" (the rule needs it {'open' if want_open else 'closed'})"
        return ("true" if is_open == want_open else "false"), words, today.next_boundary(now)
    if c.opens_within is not None:
        return _opens_within(rules, clock, c.opens_within.schedule, c.opens_within.within)
    if c.time is not None:
        due = clock.next_of(tuple(x for x in (c.time.after, c.time.before) if x is not None))
        ok = True
        if c.time.weekdays is not None:
            ok = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()] in c.time.weekdays
        after, before, t = c.time.after, c.time.before, local.time()
        if after is not None and before is not None and before < after:  # window across midnight
            ok = ok and (t >= after or t < before)
        else:
            ok = ok and (after is None or t >= after) and (before is None or t < before)
        return ("true" if ok else "false"), f"local time {local:%a %H:%M} {'is' if ok else 'is not'} in the window", due
    if c.sun is not None:
        day = sun_day(clock.site, now)
        start = day.event(c.sun.after.event) + c.sun.after.offset_s if c.sun.after is not None else None
        end = day.event(c.sun.before.event) + c.sun.before.offset_s if c.sun.before is not None else None
        due = min([x for x in (start, end) if x is not None and x > now] + [clock.next_midnight()])
        if start is not None and end is not None and end < start:  # e.g. after sunset, before sunrise
            ok = now >= start or now < end
        else:
            ok = (start is None or now >= start) and (end is None or now < end)
        parts = ([f"after {clock.hhmm(start)}"] if start is not None else []) + (
            [f"before {clock.hhmm(end)}"] if end is not None else []
        )
        words = f"local time {local:%H:%M} {'is' if ok else 'is not'} {' and '.join(parts)} (sun)"
        return ("true" if ok else "false"), words, due
    assert c.cron is not None
    minute = local.replace(second=0, microsecond=0)
    nxt = cron_trigger(c.cron, clock.site.timezone).get_next_fire_time(None, minute - dt.timedelta(microseconds=1))
    ok = nxt is not None and nxt == minute
    words = f"cron '{c.cron}' {'matches' if ok else 'does not match'} {minute:%H:%M}"
    return ("true" if ok else "false"), words, minute.timestamp() + 60.0  # cron has minute resolution


def _opens_within(rules: RuleSet, clock: Clock, name: str, within: float) -> tuple[Status, str, float]:
    """Closed now, and the schedule's next opening (today or tomorrow) is at most ``within`` away."""
    now, tz, date = clock.now, clock.site.tz, clock.local.date()
    today = rules.schedule_day(name, tz, date)
    if today is None:  # caught by validation; be safe at runtime
        return "false", f"schedule '{name}' does not exist", math.inf
    openings: list[float] = []
    for day in (date, date + dt.timedelta(days=1)):
        sd = rules.schedule_day(name, tz, day)
        if sd is not None and not sd.holiday:
            openings += day_stamps(tz, day, tuple(a for a, _ in sd.spans))[:-1]
    nxt = min((t for t in openings if t > now), default=None)
    span = fmt_duration(within)
    if today.is_open(clock.local.time()):
        return "false", f"{name} is open (the rule is for the {span} before it opens)", today.next_boundary(now)
    if nxt is None:
        return "false", f"{name} does not open within {span}", today.next_boundary(now)
    if nxt - within <= now:
        return "true", f"{name} opens at {clock.hhmm(nxt)}, within {span}", nxt
    words = f"{name} opens at {clock.hhmm(nxt)}, more than {span} from now"
    return "false", words, min(nxt - within, today.next_boundary(now))


def fmt(v: float | None, quantity: Quantity | None = None) -> str:
    if v is None:
        return "unknown"
    return f"{v:.4g}" + (f" {quantity.unit}" if quantity is not None else "")


def fmt_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60}m"
    return f"{seconds}s"
