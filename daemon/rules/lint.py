"""What ``lobbyd check`` adds to loading: warnings about rules that load but may not do what was meant,
and the problems of a file's valid parts when other parts of it are broken (every problem in one run).

- Two enabled rules on one point at the same priority and with as many conditions: which one wins
  is decided by the alphabet. Rules that cannot hold together (``schedule: X`` and
  ``outside_schedule: X``) are fine.
- A threshold (``above``/``below``) without hysteresis (``off_below``/``off_above``): a noisy input
  around it switches the rule on and off, and the device with it.
- A time (window, opening hours, cron hour) that falls into a daylight-saving change of the site's
  time zone: on the spring-forward day it never comes, on the fall-back day it comes twice.
- A rule's ``ramp_per_minute`` not more than twice its point's deadband: a ramp's equal steps can be
  as small as half its rate, and the deadband does not write a step inside it.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon.engine import ramp_clears_deadband
from daemon.rules.cron import normalise_cron
from daemon.rules.durations import WEEKDAYS
from daemon.rules.load import LoadedRules, RuleContext, duplicate_ids, parse_rule_file, references
from daemon.rules.model import Rule, RuleFile, Schedule
from daemon.yamlsource import DEFAULT_LIMITS, ConfigError, ErrorItem, SourceDoc, YamlLimits, load_yaml, read_text

__all__ = ["dst_warnings", "hysteresis_warnings", "more_problems", "ramp_warnings", "same_priority_warnings"]


def _exclusive(a: Rule, b: Rule) -> bool:
    def names(r: Rule, key: str) -> set[str]:
        return {getattr(c, key) for c in r.when if getattr(c, key) is not None}

    return bool(
        names(a, "schedule") & names(b, "outside_schedule") or names(a, "outside_schedule") & names(b, "schedule")
    )


def same_priority_warnings(rules: LoadedRules) -> list[ErrorItem]:
    """Ties on one point that only the alphabet breaks."""
    found: list[tuple[str, SourceDoc, int, Rule]] = [
        (name, gf.doc, i, r) for name, gf in sorted(rules.files.items()) for i, r in enumerate(gf.parsed.rules)
    ]
    live = [f for f in found if f[3].enabled]
    warnings: list[ErrorItem] = []
    for (_, da, ia, a), (_nb, db, ib, b) in itertools.combinations(live, 2):
        if a.target != b.target or a.priority != b.priority or a.specificity != b.specificity or _exclusive(a, b):
            continue
        first, second = sorted((a.id, b.id))
        line, col = da.position(("rules", ia, "priority"))
        warnings.append(
            db.error(
                ("rules", ib, "priority"),
                f"rules '{a.id}' ({Path(da.path).name}:{line}:{col}) and '{b.id}' both set {a.target} at priority "
                f"{a.priority} with {a.specificity} condition(s): when both hold, '{first}' wins over '{second}' only "
                f"by the alphabet; give the one that should win a higher priority, e.g. priority: {a.priority + 1}",
            )
        )
    return warnings


def hysteresis_warnings(rules: LoadedRules) -> list[ErrorItem]:
    """``above``/``below`` without ``off_below``/``off_above``: the rule chatters on a noisy input."""
    warnings: list[ErrorItem] = []
    for _, gf in sorted(rules.files.items()):
        for i, rule in enumerate(gf.parsed.rules):
            for j, c in enumerate(rule.when):
                for key, off, example in (("above", c.off_below, "off_below"), ("below", c.off_above, "off_above")):
                    t = getattr(c, key)
                    if not rule.enabled or t is None or off is not None:
                        continue
                    hint = (
                        f"{example}: {t * (0.8 if key == 'above' else 1.25):g}"
                        if isinstance(t, float | int)
                        else (f"{example}: {{..., times: {t.times * (0.8 if key == 'above' else 1.25):g}}}")
                    )
                    warnings.append(
                        gf.doc.error(
                            ("rules", i, "when", j, key),
                            f"'{key}' without '{example}': an input wavering around the threshold switches "
                            f"rule '{rule.id}' on and off, and {rule.target} with it; add hysteresis, e.g. {hint}",
                        )
                    )
    return warnings


def ramp_warnings(rules: LoadedRules, deadbands: Mapping[str, float]) -> list[ErrorItem]:
    """A rule's ramp whose steps the point's deadband (``safety:``) could swallow: the point would move
    in jumps of up to twice a step instead of one step a minute."""
    warnings: list[ErrorItem] = []
    for _, gf in sorted(rules.files.items()):
        for i, rule in enumerate(gf.parsed.rules):
            rate, band = rule.ramp_per_minute, deadbands.get(rule.target, 0.0)
            if rule.enabled and rate is not None and band > 0 and not ramp_clears_deadband(rate, band):
                warnings.append(
                    gf.doc.error(
                        ("rules", i, "ramp_per_minute"),
                        f"rule '{rule.id}' ramps {rule.target} at {rate:g} a minute, but the point's deadband is "
                        f"{band:g} (safety: in the config): a ramp moves in equal steps, as small as half its rate, "
                        f"and a step inside the deadband is not written, so the point would move in jumps; use "
                        f"more than twice the deadband, e.g. ramp_per_minute: {2.5 * band:g}",
                    )
                )
    return warnings


@functools.lru_cache(maxsize=16)
def _changes(zone: str, year: int) -> tuple[tuple[dt.date, dt.time, dt.time, bool], ...]:
    """The daylight-saving changes of ``zone`` in ``year`` and the next: (date, from, to, spring forward)."""
    tz = ZoneInfo(zone)
    start = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    out = []
    prev = start.astimezone(tz).utcoffset()
    for h in range(1, 2 * 366 * 24):
        t = start + dt.timedelta(hours=h)
        off = t.astimezone(tz).utcoffset()
        if off != prev and off is not None and prev is not None:
            before = (t + prev).replace(tzinfo=None)
            after = (t + off).replace(tzinfo=None)
            lo, hi = min(before, after), max(before, after)
            out.append((before.date(), lo.time(), hi.time(), off > prev))
        prev = off
    return tuple(out)


def _times(rule: Rule) -> Iterator[tuple[tuple[int | str, ...], dt.time | int]]:
    for j, c in enumerate(rule.when):
        if c.time is not None:
            for key in ("after", "before"):
                t = getattr(c.time, key)
                if t is not None and t != dt.time.max:
                    yield ("when", j, "time", key), t
        if c.cron is not None:
            _, hour, *_ = normalise_cron(c.cron)
            for part in hour.split(","):
                if part.isdigit():
                    yield ("when", j, "cron"), int(part)


def _dst_words(zone: str, t: dt.time | int, today: dt.date) -> str | None:
    spring = fall = None
    for day, lo, hi, forward in _changes(zone, today.year):
        if day < today:
            continue
        inside = lo.hour == t if isinstance(t, int) else lo <= t < hi
        if inside and forward and spring is None:
            spring = f"never comes on {day} (the clocks jump from {lo:%H:%M} to {hi:%H:%M})"
        if inside and not forward and fall is None:
            fall = f"comes twice on {day} (the clocks go back from {hi:%H:%M} to {lo:%H:%M})"
    if spring is None and fall is None:
        return None
    shown = f"{t:02d}:xx" if isinstance(t, int) else f"{t:%H:%M}"
    return (
        f"{shown} falls into a daylight-saving change in {zone}: it "
        + " and ".join(x for x in (spring, fall) if x)
        + "; so on those days this starts late or twice. Choose a time outside the change, e.g. 03:30 or 01:30"
    )


def dst_warnings(rules: LoadedRules, zone: str, today: dt.date | None = None) -> list[ErrorItem]:
    """Times in rules and opening hours that a daylight-saving change skips or repeats."""
    day = today or dt.date.today()
    warnings: list[ErrorItem] = []
    for _, gf in sorted(rules.files.items()):
        for i, rule in enumerate(gf.parsed.rules):
            if not rule.enabled:
                continue
            for loc, t in _times(rule):
                words = _dst_words(zone, t, day)
                if words:
                    warnings.append(gf.doc.error(("rules", i, *loc), words))
        for sname, sched in gf.parsed.schedules.items():
            for d in range(7):
                for k, span in enumerate(sched.spans(d)):
                    for t in span:
                        words = None if t == dt.time.max else _dst_words(zone, t, day)
                        if words:
                            warnings.append(gf.doc.error(("schedules", sname, WEEKDAYS[d], k), words))
    return list({(w.file, w.line, w.column, w.message): w for w in warnings}.values())


def more_problems(
    failed: Sequence[Path], ctx: RuleContext, schedules: Mapping[str, Schedule], limits: YamlLimits = DEFAULT_LIMITS
) -> list[ErrorItem]:
    """For files whose shape is wrong: the problems of their rules that are right in shape (unknown
    sensors, schedules, points, ids used twice), so that one run of ``check`` shows them all."""
    out: list[ErrorItem] = []
    for path in failed:
        try:
            parse_rule_file(path, limits)
            continue  # its errors were about references, and have been reported
        except ConfigError:
            pass
        try:
            doc = load_yaml(path, text=read_text(path, limits), limits=limits)
        except ConfigError:
            continue  # a YAML or encoding problem: reported, nothing more can be read
        data = doc.data
        raw = data.get("rules") if isinstance(data, dict) else None
        if not isinstance(raw, list):
            continue
        good: list[Rule] = []
        at: list[int] = []
        for i, item in enumerate(raw):
            try:
                good.append(Rule.model_validate(item))
                at.append(i)
            except ValueError:
                continue
        rf = RuleFile(rules=tuple(good))
        out += references(doc, rf, ctx, schedules, at=at)
        out += duplicate_ids(doc, good, at=at)
    return out
