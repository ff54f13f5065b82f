"""The rule engine: a pure function of (rules, sensor readings, clock) → desired setpoints with reasons.

:func:`evaluate` never does I/O and never sleeps. Everything it must remember between calls
(hysteresis latches, ``for:`` start times, ramp positions, manual overrides) lives in an
:class:`EngineMemory` value that is passed in and returned, so it can be persisted and a replay
or simulation can run a whole day in seconds.

Semantics, in short (``rules/README.md`` says the same for staff):

* A rule acts while all its ``when`` conditions hold; the winner per point is the highest
  ``priority``, then the more specific rule (more conditions), then the lowest rule id.
* A number condition with a stale or missing input is *unknown*. A rule with no false condition
  and at least one unknown one does not act on old values: it asks for its ``safe_value``
  (a *fallback*) or, without one, stays silent.
* Hysteresis: ``above: 35, off_below: 25`` switches on above 35 and off only below 25.
  Coming back from unknown is not a crossing: the latch starts off and ``for`` starts again,
  unless the input was unknown for less than ``resume_grace_s`` (a restart, a short gap).
* A manual override wins until it expires. Every output is clamped to the point's range
  (into ``min..max`` first, then to the nearest allowed value, ties downwards — as the profile does).
* The caller evaluates at least every ``resume_grace_s`` (the daemon: on every reading a rule reads,
  and at least every ``evaluate_every_s``): a longer pause between evaluations (the daemon was
  down) counts as a gap in every input.
* A condition's timers are keyed by rule id, position and content (:func:`condition_key`): after a
  reload, an unchanged condition keeps its hysteresis state and ``for`` start; an edited one restarts.
* Clock semantics: ``time`` and ``sun`` windows whose end is before their start run across midnight;
  ``cron`` day-of-week numbers follow crontab (0 and 7 = Sunday), see :mod:`daemon.rules.cron`.
* ``Evaluation.next_due`` is the earliest time the outcome can change with no new reading (a
  reading going stale, a ``for`` completing, a window edge, a ramp step, an override ending, the
  circadian colour every minute); the daemon evaluates again then, or on a reading, or at its
  heartbeat. ``tests/engine/test_next_due.py`` checks nothing changes earlier.
* After a reading the caller may pass the previous evaluation (``reuse``) and the sensors with a new
  reading (``changed``): rules that read none of them keep their outcome while nothing was due since
  (:func:`evaluate`); the decisions and timers are those of a full evaluation.
* Each :class:`RuleTrace` carries the rule's priority and specificity; a winning decision's reason
  names every loser and why it lost (:func:`lost_because`), for ``lobbyd why``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import json
import math
import statistics
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from daemon.model import Decision, Quantity, Reading, Reason
from daemon.rules.cron import cron_trigger
from daemon.rules.model import Action, Condition, Input, Rule, Schedule
from daemon.sun import Site, sun_day, sun_position

__all__ = [
    "EngineMemory",
    "Evaluation",
    "Override",
    "PointLimits",
    "RuleSet",
    "RuleTrace",
    "SensorInfo",
    "SensorView",
    "evaluate",
    "lost_because",
    "zone_index",
]

Status = Literal["true", "false", "unknown"]

CIRCADIAN_EVERY_S = 60.0  # the sun's colour is recomputed at least this often (Adaptive Lighting: 90 s)


@dataclass(frozen=True, slots=True)
class SensorInfo:
    id: str
    zone: str
    quantity: Quantity
    stale_after_s: float


@dataclass(frozen=True, slots=True)
class PointLimits:
    """Allowed output of one device point, from its device profile."""

    min: float | None = None
    max: float | None = None
    allowed: tuple[float, ...] | None = None

    def clamp(self, value: float) -> float:
        """Into ``min..max``, then to the nearest allowed value (ties go down) — as the profile does."""
        if self.min is not None:
            value = max(self.min, value)
        if self.max is not None:
            value = min(self.max, value)
        if self.allowed:
            value = min(self.allowed, key=lambda a: (abs(a - value), a))
        return value

    def describe(self) -> str:
        """The range in words, e.g. ``one of [0, 1, 2, 3]`` or ``2700..5000``."""
        if self.allowed:
            return "one of [" + ", ".join(f"{a:g}" for a in self.allowed) + "]"
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"{lo}..{hi}"


@dataclass(frozen=True)
class RuleSet:
    """Validated rules from every file, plus named schedules."""

    rules: tuple[Rule, ...] = ()
    schedules: Mapping[str, Schedule] = field(default_factory=dict)

    def reads(self, sensor: SensorInfo) -> bool:
        """Whether any rule reads this sensor, by id or through its zone's aggregate of its quantity."""
        ids, zones = self._read_keys
        return sensor.id in ids or (sensor.zone, sensor.quantity) in zones

    @functools.cached_property
    def _read_keys(self) -> tuple[frozenset[str], frozenset[tuple[str, Quantity]]]:
        reads = self._rule_reads.values()
        return frozenset(i for ids, _ in reads for i in ids), frozenset(z for _, zones in reads for z in zones)

    @functools.cached_property
    def _rule_reads(self) -> dict[str, tuple[frozenset[str], frozenset[tuple[str, Quantity]]]]:
        """Per rule: the sensor ids it reads, and the (zone, quantity) aggregates it reads."""
        out = {}
        for r in self.rules:
            inputs = r.inputs()
            ids = frozenset(i.sensor for i in inputs if i.sensor is not None)
            zones = frozenset((i.zone, i.quantity) for i in inputs if i.zone is not None and i.quantity is not None)
            out[r.id] = (ids, zones)
        return out

    def rules_reading(self, sensors: Collection[str], infos: Mapping[str, SensorInfo]) -> frozenset[str]:
        """The ids of the rules that read any of ``sensors``, by id or through a zone aggregate.

        Kept per set of sensors and ``infos``: asked after every reading, mostly for the same few sensors."""
        key = frozenset(sensors)
        cache = self._reading_cache
        hit = cache.get(key)
        if hit is not None and hit[0] is infos:
            return hit[1]
        pairs = [(sid, infos.get(sid)) for sid in key]
        got = frozenset(
            rid
            for rid, (ids, zones) in self._rule_reads.items()
            if any(sid in ids or (info is not None and (info.zone, info.quantity) in zones) for sid, info in pairs)
        )
        if len(cache) >= 256:
            cache.clear()
        cache[key] = (infos, got)
        return got

    @functools.cached_property
    def _reading_cache(self) -> dict[frozenset[str], tuple[Mapping[str, SensorInfo], frozenset[str]]]:
        return {}

    @functools.cached_property
    def numeric_keys(self) -> dict[str, tuple[str, ...]]:
        """Per rule, the timer keys (:func:`condition_key`) of its numeric conditions, in order."""
        key = self.condition_key
        return {r.id: tuple(key(r, i, c) for i, c in enumerate(r.when) if c.is_numeric) for r in self.rules}

    def condition_key(self, rule: Rule, index: int, cond: Condition) -> str:
        """:func:`condition_key`, computed once per rule set (hashing a condition is not free)."""
        key = self._condition_keys.get((rule.id, index))
        return key if key is not None else condition_key(rule, index, cond)

    @functools.cached_property
    def _condition_keys(self) -> dict[tuple[str, int], str]:
        return {(r.id, i): condition_key(r, i, c) for r in self.rules for i, c in enumerate(r.when) if c.is_numeric}

    @functools.cached_property
    def in_order(self) -> tuple[Rule, ...]:
        """The rules sorted by id: the order in which they are evaluated and traced."""
        return tuple(sorted(self.rules, key=lambda r: r.id))

    @functools.cached_property
    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    @functools.cached_property
    def targets(self) -> tuple[str, ...]:
        """Every rule target once, in the order of its first rule in :attr:`in_order`."""
        return tuple(dict.fromkeys(r.target for r in self.in_order))

    def schedule_day(self, name: str, tz: dt.tzinfo, day: dt.date) -> ScheduleDay | None:
        """A schedule's spans on local ``day`` and the timestamps at which it may open or close (then the next
        midnight), or None if it does not exist. Kept per day: every evaluation asks for each schedule
        condition, and the answer changes once a day."""
        cache = self._schedule_days
        got = cache.get((name, tz, day))
        if got is None:
            sched = self.schedules.get(name)
            if sched is None:
                return None
            if len(cache) >= 64:  # a few schedules a day; a replay crosses many days
                cache.clear()
            spans = tuple(sched.spans(day.weekday()))
            stamps = _day_stamps(tz, day, tuple(t for span in spans for t in span))
            got = cache[(name, tz, day)] = ScheduleDay(day in sched.holidays, spans, stamps)
        return got

    @functools.cached_property
    def _schedule_days(self) -> dict[tuple[str, dt.tzinfo, dt.date], ScheduleDay]:
        return {}


class ScheduleDay(NamedTuple):
    holiday: bool
    spans: tuple[tuple[dt.time, dt.time], ...]  # of the weekday (closed all day on a holiday)
    boundaries: tuple[float, ...]  # the spans' edges as sorted timestamps, then the next midnight

    def is_open(self, t: dt.time) -> bool:
        """Whether local time ``t`` of this day is within a span."""
        if self.holiday:
            return False
        return any(a <= t < b or (b == dt.time.max and a <= t) for a, b in self.spans)

    def next_boundary(self, now: float) -> float:
        return self.boundaries[bisect.bisect_right(self.boundaries, now)]


_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "mean": statistics.fmean,
    "max": max,
    "min": min,
    "median": statistics.median,
}


def zone_index(sensors: Mapping[str, SensorInfo]) -> dict[tuple[str, Quantity], list[str]]:
    """Sensor ids per (zone, quantity), for zone aggregates."""
    zones: dict[tuple[str, Quantity], list[str]] = {}
    for s in sensors.values():
        zones.setdefault((s.zone, s.quantity), []).append(s.id)
    return zones


class SensorView:
    """Latest reading per sensor and what the engine needs to know about each sensor."""

    def __init__(
        self,
        sensors: Mapping[str, SensorInfo],
        readings: Mapping[str, Reading],
        *,
        started_at: float | None = None,
        zones: Mapping[tuple[str, Quantity], Sequence[str]] | None = None,
    ) -> None:
        self.sensors = sensors
        self.readings = readings
        self.started_at = started_at
        self._zones = zones if zones is not None else zone_index(sensors)
        self.changes_at = math.inf  # earliest moment a value this view handed out goes stale (or warms up)

    def fresh(self, sensor: str, now: float) -> Reading | None:
        r = self.readings.get(sensor)
        info = self.sensors.get(sensor)
        if r is None or info is None or r.retained:
            return None
        if now - r.ts > info.stale_after_s:
            return None
        self.changes_at = min(self.changes_at, r.ts + info.stale_after_s)
        return r

    def warming_up(self, inp: Input, now: float) -> bool:
        """True while an input has not yet had the chance to report since start.

        A sensor that has sent nothing (or only a retained value) since the daemon started, and whose
        staleness timeout has not yet run out since then, is *not yet known* rather than stale: rules
        that depend on it stay silent instead of falling back, so a restart toggles nothing.
        """
        if self.started_at is None:
            return False
        members: Sequence[str]
        if inp.sensor is not None:
            members = (inp.sensor,)
        else:
            members = self._zones.get((inp.zone or "", inp.quantity), ()) if inp.quantity else ()
        for sid in members:
            info = self.sensors.get(sid)
            r = self.readings.get(sid)
            fresh_since_start = r is not None and not r.retained and r.ts >= self.started_at
            if info is not None and not fresh_since_start and now - self.started_at < info.stale_after_s:
                self.changes_at = min(self.changes_at, self.started_at + info.stale_after_s)
                return True
        return False

    def value(self, inp: Input, now: float) -> tuple[float | None, list[tuple[str, float | None, float | None]]]:
        """The input's value (``None`` when unknown, times its factor) and the sensors it was computed from."""
        value, used = self._raw_value(inp, now)
        return (value * inp.times if value is not None else None), used

    def _raw_value(self, inp: Input, now: float) -> tuple[float | None, list[tuple[str, float | None, float | None]]]:
        if inp.sensor is not None:
            r = self.fresh(inp.sensor, now)
            last = self.readings.get(inp.sensor)
            used = [(inp.sensor, last.value if last else None, (now - last.ts) if last else None)]
            return (r.value if r else None), used
        assert inp.zone is not None and inp.quantity is not None
        members = self._zones.get((inp.zone, inp.quantity), [])
        values: list[float] = []
        used = []
        for sid in members:
            r = self.fresh(sid, now)
            if r is not None:
                values.append(r.value)
                used.append((sid, r.value, now - r.ts))
        if not values:
            return None, used
        return float(_AGGREGATES[inp.aggregate](values)), used


@dataclass(frozen=True, slots=True)
class Override:
    value: float
    until: float
    source: str = "mqtt"


@dataclass
class EngineMemory:
    """What the engine remembers between evaluations; JSON-serialisable for the state directory."""

    latched: dict[str, bool] = field(default_factory=dict)
    since: dict[str, float] = field(default_factory=dict)
    known_at: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, tuple[float, float]] = field(default_factory=dict)
    overrides: dict[str, Override] = field(default_factory=dict)

    def copy(self) -> EngineMemory:
        return EngineMemory(
            dict(self.latched),
            dict(self.since),
            dict(self.known_at),
            dict(self.outputs),
            dict(self.overrides),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "latched": self.latched,
            "since": self.since,
            "known_at": self.known_at,
            "outputs": {k: list(v) for k, v in self.outputs.items()},
            "overrides": {k: [o.value, o.until, o.source] for k, o in self.overrides.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EngineMemory:
        return cls(
            latched={str(k): bool(v) for k, v in data.get("latched", {}).items()},
            since={str(k): float(v) for k, v in data.get("since", {}).items()},
            known_at={str(k): float(v) for k, v in data.get("known_at", {}).items()},
            outputs={str(k): (float(v[0]), float(v[1])) for k, v in data.get("outputs", {}).items()},
            overrides={
                str(k): Override(float(v[0]), float(v[1]), str(v[2])) for k, v in data.get("overrides", {}).items()
            },
        )


class RuleTrace(NamedTuple):
    """How one rule came out in one evaluation (for ``lobbyd why`` and the what-if replay).

    A named tuple rather than a frozen dataclass: one is built per rule per evaluation, several times a
    second, and a frozen dataclass's ``__init__`` costs one ``object.__setattr__`` per field."""

    rule: str
    target: str
    state: Literal["active", "inactive", "fallback", "silent", "disabled"]
    value: float | None
    lines: tuple[str, ...]
    inputs: tuple[tuple[str, float | None, float | None], ...]
    priority: int = 0
    specificity: int = 0


@dataclass
class Evaluation:
    decisions: dict[str, Decision]
    traces: list[RuleTrace]
    memory: EngineMemory
    # The earliest time at which this outcome can change with no new reading: a reading going stale,
    # a `for:` completing, a clock window opening or closing, a ramp step, an override ending, the sun
    # moving a circadian colour. ``now`` means "at the next tick"; ``inf`` means "only a reading can".
    next_due: float = math.inf
    at: float = -math.inf  # the ``now`` it was made at
    ruleset: RuleSet | None = field(default=None, repr=False, compare=False)  # the rules it evaluated
    kept: frozenset[str] = frozenset()  # ids of the rules whose outcome was kept from the previous one
    # Per point, the rule that won arbitration, its value and its reason (before a ramp, an override and
    # clamping): a later evaluation in which none of the point's rules is evaluated again reuses it.
    winners: Mapping[str, tuple[str, float, Reason]] = field(default_factory=dict, repr=False, compare=False)


def condition_key(rule: Rule, index: int, cond: Condition) -> str:
    """Stable key for a condition's timers: unchanged conditions keep their timers across reloads."""
    return f"{rule.id}#{index}:{_digest(cond)}"


@functools.lru_cache(maxsize=1024)
def _digest(cond: Condition) -> str:
    return hashlib.sha1(
        json.dumps(cond.model_dump(mode="json", by_alias=True), sort_keys=True).encode(),
        usedforsecurity=False,
    ).hexdigest()[:10]


def _fmt(v: float | None, quantity: Quantity | None = None) -> str:
    if v is None:
        return "unknown"
    unit = f" {quantity.unit}" if quantity is not None else ""
    return f"{v:.4g}{unit}"


def _fmt_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _local(site: Site, now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, site.tz)


def _clock(site: Site, t: float) -> str:
    return f"{_local(site, t):%H:%M}"


def _quantity_of(inp: Input, view: SensorView) -> Quantity | None:
    if inp.quantity is not None:
        return inp.quantity
    info = view.sensors.get(inp.sensor or "")
    return info.quantity if info else None


@dataclass
class _Ctx:
    rules: RuleSet
    view: SensorView
    site: Site
    now: float
    mem: EngineMemory
    resume_grace_s: float
    live_keys: set[str]
    _local_now: dt.datetime | None = None
    due: float = math.inf

    def due_at(self, t: float) -> None:
        """The outcome may change at ``t`` without a new reading (a past ``t`` means: at the next tick)."""
        self.due = min(self.due, max(t, self.now))

    @property
    def local_now(self) -> dt.datetime:
        """``now`` in the site's time zone (converted once per evaluation)."""
        if self._local_now is None:
            self._local_now = _local(self.site, self.now)
        return self._local_now

    @functools.cached_property
    def local_time(self) -> dt.time:
        return self.local_now.time()


def _numeric(ctx: _Ctx, key: str, c: Condition) -> tuple[Status, str, list[tuple[str, float | None, float | None]]]:
    inp = c.input
    value, used = ctx.view.value(inp, ctx.now)
    q = _quantity_of(inp, ctx.view)
    mem = ctx.mem
    threshold_used: list[tuple[str, float | None, float | None]] = []

    def level(t: float | Input) -> float | None:
        if isinstance(t, Input):
            v, u = ctx.view.value(t, ctx.now)
            threshold_used.extend(u)
            return v
        return float(t)

    if value is None:
        return "unknown", f"{inp.key} is unknown (no fresh reading)", used
    if ctx.now - mem.known_at.get(key, ctx.now) > ctx.resume_grace_s:
        # Back from unknown after a real gap: not a crossing. Start over.
        mem.latched.pop(key, None)
        mem.since.pop(key, None)
    mem.known_at[key] = ctx.now
    was = mem.latched.get(key, False)
    if c.above is not None:
        lim = level(c.above)
        if lim is None:
            return "unknown", f"{c.above.key if isinstance(c.above, Input) else c.above} is unknown", used
        lim_text = f"{c.above.key} ({_fmt(lim)})" if isinstance(c.above, Input) else _fmt(lim)
        if c.off_below is not None:
            raw = value > lim or (was and value >= c.off_below)
            words = f"{inp.key} = {_fmt(value, q)} {'is above' if value > lim else 'is not above'} {lim_text}"
            if was and value <= lim:
                words += f", held on until below {_fmt(c.off_below)}"
        else:
            raw = value > lim
            words = f"{inp.key} = {_fmt(value, q)} {'is above' if raw else 'is not above'} {lim_text}"
    elif c.below is not None:
        lim = level(c.below)
        if lim is None:
            return "unknown", f"{c.below.key if isinstance(c.below, Input) else c.below} is unknown", used
        lim_text = f"{c.below.key} ({_fmt(lim)})" if isinstance(c.below, Input) else _fmt(lim)
        if c.off_above is not None:
            raw = value < lim or (was and value <= c.off_above)
            words = f"{inp.key} = {_fmt(value, q)} {'is below' if value < lim else 'is not below'} {lim_text}"
            if was and value >= lim:
                words += f", held on until above {_fmt(c.off_above)}"
        else:
            raw = value < lim
            words = f"{inp.key} = {_fmt(value, q)} {'is below' if raw else 'is not below'} {lim_text}"
    else:
        assert c.between is not None
        lo, hi = c.between
        raw = lo <= value <= hi
        words = f"{inp.key} = {_fmt(value, q)} {'is' if raw else 'is not'} between {lo:g} and {hi:g}"
    mem.latched[key] = raw
    used = used + threshold_used
    if not raw:
        mem.since.pop(key, None)
        return "false", words, used
    start = mem.since.setdefault(key, ctx.now)
    if c.for_ and ctx.now - start < c.for_:
        ctx.due_at(start + c.for_)
        return (
            "false",
            f"{words}, for {_fmt_duration(ctx.now - start)} of the required {_fmt_duration(c.for_)}",
            used,
        )
    if c.for_:
        words += f" for at least {_fmt_duration(c.for_)}"
    return "true", words, used


@functools.lru_cache(maxsize=256)
def _day_stamps(tz: dt.tzinfo, day: dt.date, times: tuple[dt.time, ...]) -> tuple[float, ...]:
    """``times`` on local ``day`` as sorted timestamps, then the next midnight. Cached: the same schedule
    serves many rules in every evaluation, and the answer changes once a day."""
    stamps = sorted(dt.datetime.combine(day, x, tzinfo=tz).timestamp() for x in times if x != dt.time.max)
    return (*stamps, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz).timestamp())


def _next_midnight(ctx: _Ctx) -> float:
    return _day_stamps(ctx.site.tz, ctx.local_now.date(), ())[-1]


def _next_boundary(ctx: _Ctx, times: Sequence[dt.time]) -> float:
    """The next of today's ``times`` (local) after now, else the next midnight (weekday, holiday)."""
    return next(ts for ts in _day_stamps(ctx.site.tz, ctx.local_now.date(), tuple(times)) if ts > ctx.now)


def _condition(ctx: _Ctx, rule: Rule, i: int, c: Condition) -> tuple[Status, str, list[Any]]:
    if c.is_numeric:
        key = ctx.rules.condition_key(rule, i, c)
        ctx.live_keys.add(key)
        return _numeric(ctx, key, c)
    if c.schedule is not None or c.outside_schedule is not None:
        name = c.schedule if c.schedule is not None else c.outside_schedule
        assert name is not None
        local = ctx.local_now
        today = ctx.rules.schedule_day(name, ctx.site.tz, local.date())
        if today is None:  # caught by validation; be safe at runtime
            return "false", f"schedule '{name}' does not exist", []
        is_open = today.is_open(ctx.local_time)
        ctx.due_at(today.next_boundary(ctx.now))
        want_open = c.schedule is not None
        ok = is_open == want_open
        words = f"{name} is {'open' if is_open else 'closed'}"
        if not ok:
            words += f" (the rule needs it {'open' if want_open else 'closed'})"
        return ("true" if ok else "false"), words, []
    if c.time is not None:
        t = ctx.local_now
        ctx.due_at(_next_boundary(ctx, [x for x in (c.time.after, c.time.before) if x is not None]))
        ok = True
        if c.time.weekdays is not None:
            ok = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[t.weekday()] in c.time.weekdays
        after, before = c.time.after, c.time.before
        if after is not None and before is not None and before < after:  # window across midnight
            ok = ok and (t.time() >= after or t.time() < before)
        else:
            if after is not None:
                ok = ok and t.time() >= after
            if before is not None:
                ok = ok and t.time() < before
        return (
            ("true" if ok else "false"),
            f"local time {t:%a %H:%M} {'is' if ok else 'is not'} in the window",
            [],
        )
    if c.sun is not None:
        day = sun_day(ctx.site, ctx.now)
        start = day.event(c.sun.after.event) + c.sun.after.offset_s if c.sun.after is not None else None
        end = day.event(c.sun.before.event) + c.sun.before.offset_s if c.sun.before is not None else None
        ctx.due_at(min([x for x in (start, end) if x is not None and x > ctx.now] + [_next_midnight(ctx)]))
        if start is not None and end is not None and end < start:  # e.g. after sunset, before sunrise
            ok = ctx.now >= start or ctx.now < end
        else:
            ok = (start is None or ctx.now >= start) and (end is None or ctx.now < end)
        parts = []
        if start is not None:
            parts.append(f"after {_clock(ctx.site, start)}")
        if end is not None:
            parts.append(f"before {_clock(ctx.site, end)}")
        return (
            ("true" if ok else "false"),
            f"local time {ctx.local_now:%H:%M} {'is' if ok else 'is not'} {' and '.join(parts)} (sun)",
            [],
        )
    assert c.cron is not None
    t = ctx.local_now.replace(second=0, microsecond=0)
    ctx.due_at(t.timestamp() + 60.0)  # cron has minute resolution: it may change at the next minute
    trigger = cron_trigger(c.cron, ctx.site.timezone)
    nxt = trigger.get_next_fire_time(None, t - dt.timedelta(microseconds=1))
    ok = nxt is not None and nxt == t
    return (
        ("true" if ok else "false"),
        f"cron '{c.cron}' {'matches' if ok else 'does not match'} {t:%H:%M}",
        [],
    )


def _interpolate(points: Sequence[tuple[float, float]], x: float) -> float:
    xs = [p[0] for p in points]
    if x <= xs[0]:
        return points[0][1]
    if x >= xs[-1]:
        return points[-1][1]
    i = bisect.bisect_right(xs, x)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def _action(ctx: _Ctx, action: Action) -> tuple[float | None, str, list[Any]]:
    used: list[Any]
    if action.value is not None:
        return action.value, f"set {action.value:g}", []
    if action.curve is not None:
        v, used = ctx.view.value(action.curve.input, ctx.now)
        if v is None:
            return None, f"{action.curve.input.key} is unknown", used
        out = _interpolate(action.curve.points, v)
        return out, f"curve of {action.curve.input.key} = {v:.4g} gives {out:.4g}", used
    if action.steps is not None:
        v, used = ctx.view.value(action.steps.input, ctx.now)
        if v is None:
            return None, f"{action.steps.input.key} is unknown", used
        xs = [row[0] for row in action.steps.table]
        i = max(0, bisect.bisect_right(xs, v) - 1)
        out = action.steps.table[i][1]
        return out, f"step table of {action.steps.input.key} = {v:.4g} gives {out:g}", used
    assert action.circadian is not None
    circ = action.circadian
    ctx.due_at(ctx.now + CIRCADIAN_EVERY_S)
    p = sun_position(ctx.site, ctx.now)
    frac = max(p, 0.0)
    text = f"sun position {p:.2f}"
    used = []
    if circ.daylight is not None:
        lux, used = ctx.view.value(circ.daylight, ctx.now)
        if lux is None:
            return None, f"{circ.daylight.key} is unknown", used
        d = min(max(lux / circ.full_daylight_lux, 0.0), 1.0)
        frac = (1 - circ.daylight_weight) * frac + circ.daylight_weight * d
        text += f", daylight {lux:.4g} lx ({d:.0%} of full)"
    out = circ.min_k + (circ.max_k - circ.min_k) * frac
    return out, f"circadian: {text} gives {out:.0f} K", used


def lost_because(win_rank: tuple[int, int], win_id: str, rank: tuple[int, int], rule_id: str) -> str:
    """Why the rule ``rule_id`` lost to ``win_id``, in words (the arbitration order, step by step)."""
    if rank[0] != win_rank[0]:
        return f"priority {rank[0]} < {win_rank[0]}"
    if rank[1] != win_rank[1]:
        return f"same priority, {rank[1]} condition(s) < {win_rank[1]}"
    return f"same priority and conditions, id sorts after '{win_id}'"


def evaluate(
    rules: RuleSet,
    view: SensorView,
    now: float,
    memory: EngineMemory,
    *,
    site: Site,
    limits: Mapping[str, PointLimits],
    resume_grace_s: float = 120.0,
    reuse: Evaluation | None = None,
    changed: Collection[str] = (),
) -> Evaluation:
    """Evaluate every rule at time ``now``; return the winning decision per point, traces and new memory.

    With ``reuse`` (the previous evaluation) and ``changed`` (the sensors with a new reading since), a
    rule that reads none of ``changed`` keeps its outcome from ``reuse`` instead of being evaluated
    again, provided ``reuse`` evaluated the same rule set, nothing was due since (``now`` is before its
    ``next_due``: no reading went stale, no ``for`` completed, no window opened or closed, no ramp is on
    its way) and it is no older than ``resume_grace_s`` (no gap). Its outcome cannot have changed; the
    decisions, memory and timers are the same as a full evaluation's (tests/engine/test_reuse.py). Only
    the words of a kept trace are as old as its evaluation (the age of an input, how long a ``for`` has
    run), so ``lobbyd why`` asks for a full evaluation. A point none of whose rules is evaluated again
    keeps its arbitration winner (the same candidates); ramps, overrides and clamping run for every
    point each time.
    """
    mem = memory.copy()
    view.changes_at = math.inf
    ctx = _Ctx(rules, view, site, now, mem, resume_grace_s, set())
    traces: list[RuleTrace] = []
    candidates: dict[str, list[tuple[tuple[int, int], str, float, Reason]]] = {}
    kept: dict[str, RuleTrace] = {}
    winners: dict[str, tuple[str, float, Reason]] = {}
    if (
        reuse is not None
        and reuse.ruleset is rules
        and reuse.at <= now < reuse.next_due
        and now - reuse.at <= resume_grace_s
    ):
        again = rules.rules_reading(changed, view.sensors)
        kept = {t.rule: t for t in reuse.traces if t.rule not in again}
        ctx.due = reuse.next_due  # the kept rules' own due times are among it
        # A point none of whose rules is evaluated again has the same candidates: the same winner.
        touched = {rules.by_id[rid].target for rid in again}
        winners = {t: w for t, w in reuse.winners.items() if t not in touched}
    for rule in rules.in_order:
        rank = (rule.priority, rule.specificity)
        old = kept.get(rule.id)
        if old is not None:
            assert reuse is not None
            if rule.enabled:
                _keep_timers(ctx, rule, reuse.at)
            traces.append(old)
            if old.state in ("active", "fallback") and rule.target not in winners:
                assert old.value is not None
                candidates.setdefault(rule.target, []).append((rank, rule.id, old.value, _reason(old)))
            continue
        if not rule.enabled:
            traces.append(RuleTrace(rule.id, rule.target, "disabled", None, ("rule is disabled",), (), *rank))
            continue
        lines: list[str] = []
        inputs: list[tuple[str, float | None, float | None]] = []
        statuses: list[Status] = []
        for i, c in enumerate(rule.when):
            st, words, used = _condition(ctx, rule, i, c)
            statuses.append(st)
            lines.append(words)
            inputs.extend(used)
        if "false" in statuses:
            traces.append(RuleTrace(rule.id, rule.target, "inactive", None, tuple(lines), tuple(inputs), *rank))
            continue
        value: float | None = None
        fallback = "unknown" in statuses
        if not fallback:
            value, words, used = _action(ctx, rule.set)
            lines.append(words)
            inputs.extend(used)
            fallback = value is None
        if fallback:
            waiting = [i.key for i in rule.inputs() if view.value(i, now)[0] is None and view.warming_up(i, now)]
            if waiting:
                lines.append(f"waiting for first readings of {', '.join(waiting)} since start: no action yet")
                traces.append(RuleTrace(rule.id, rule.target, "silent", None, tuple(lines), tuple(inputs), *rank))
                continue
            if rule.safe_value is None:
                lines.append("inputs unknown and no safe_value: this rule stays silent")
                traces.append(RuleTrace(rule.id, rule.target, "silent", None, tuple(lines), tuple(inputs), *rank))
                continue
            value = rule.safe_value
            lines.append(f"inputs unknown: safe value {value:g}")
        assert value is not None
        trace = RuleTrace(
            rule.id, rule.target, "fallback" if fallback else "active", value, tuple(lines), tuple(inputs), *rank
        )
        traces.append(trace)
        candidates.setdefault(rule.target, []).append((rank, rule.id, value, _reason(trace)))

    for target, cands in candidates.items():
        # Highest (priority, specificity); ties broken by the lowest rule id — never by file order.
        best = min(cands, key=lambda c: (-c[0][0], -c[0][1], c[1]))
        _, rule_id, value, reason = best
        losers = sorted((c for c in cands if c[1] != rule_id), key=lambda c: c[1])
        if losers:
            why = ", ".join(f"{c[1]} ({lost_because(best[0], best[1], c[0], c[1])})" for c in losers)
            reason = Reason(
                rule=reason.rule,
                text=reason.text + f" (won over {why})",
                inputs=reason.inputs,
                fallback=reason.fallback,
            )
        winners[target] = (rule_id, value, reason)

    decisions: dict[str, Decision] = {}
    for target in rules.targets:  # one order whether a winner was reused or not
        won = winners.get(target)
        if won is None:
            continue
        rule_id, value, reason = won
        rule = rules.by_id[rule_id]
        prev = mem.outputs.get(target)
        if rule.ramp_per_minute is not None and prev is not None and not reason.fallback:
            step = rule.ramp_per_minute * max(0.0, now - prev[1]) / 60.0
            ramped = prev[0] + max(-step, min(step, value - prev[0]))
            if ramped != value:
                ctx.due_at(now)  # still on its way: the next tick moves it on
                reason = Reason(
                    rule=reason.rule,
                    text=reason.text + f"; ramping at {rule.ramp_per_minute:g}/min towards {value:.4g}",
                    inputs=reason.inputs,
                    held_by="ramp",
                )
            value = ramped
        decisions[target] = _decision(target, value, reason, now, limits)

    for target, ov in list(mem.overrides.items()):
        if now >= ov.until:
            del mem.overrides[target]
            continue
        ctx.due_at(ov.until)
        until = dt.datetime.fromtimestamp(ov.until, site.tz)
        reason = Reason(rule="manual-override", text=f"manual override ({ov.source}) until {until:%H:%M}")
        decisions[target] = _decision(target, ov.value, reason, now, limits)

    for target, d in decisions.items():
        mem.outputs[target] = (d.value, now)
    # Forget timers of conditions that no longer exist (edited or removed rules).
    for store in (mem.latched, mem.since, mem.known_at):
        for key in [k for k in store if k not in ctx.live_keys]:
            del store[key]
    next_due = min(ctx.due, max(view.changes_at, now))
    return Evaluation(decisions, traces, mem, next_due, at=now, ruleset=rules, kept=frozenset(kept), winners=winners)


def _reason(trace: RuleTrace) -> Reason:
    """The reason an acting rule (active, or on its safe value) gives for its value: its trace's words."""
    return Reason(trace.rule, "; ".join(trace.lines), trace.inputs, fallback=trace.state == "fallback")


def _keep_timers(ctx: _Ctx, rule: Rule, then: float) -> None:
    """A kept rule's timers, as evaluating it again would leave them: its inputs are as they were at
    ``then``, so an input known then is known now (``known_at`` moves on), and latches and ``for``
    start times stand."""
    known_at = ctx.mem.known_at
    for key in ctx.rules.numeric_keys[rule.id]:
        ctx.live_keys.add(key)
        if known_at.get(key) == then:
            known_at[key] = ctx.now


def _decision(target: str, value: float, reason: Reason, now: float, limits: Mapping[str, PointLimits]) -> Decision:
    device, point = target.split(".", 1)
    lim = limits.get(target)
    if lim is not None:
        clamped = lim.clamp(value)
        if clamped != value:
            reason = Reason(
                rule=reason.rule,
                text=reason.text + f"; clamped {value:.4g} to {clamped:.4g} (device range)",
                inputs=reason.inputs,
                held_by=reason.held_by,
                fallback=reason.fallback,
            )
            value = clamped
    return Decision(device=device, point=point, value=value, reason=reason, ts=now)
