"""Evaluation: (rules, sensor view, now, memory) → a decision with its reason per point, and new memory.

Pure: no I/O, no sleeping, no reading of the time, and the arguments are never changed (the memory
that comes back is a new one). Semantics, in short (``rules/README.md`` says the same for staff):

* A rule acts while all its ``when`` conditions hold; the winner per point is the highest ``priority``,
  then the more specific rule (more conditions), then the lowest rule id — never file order.
* A numeric condition with a stale or missing input is *unknown*. A rule with no false condition and at
  least one unknown one does not act on old values: it asks for its ``safe_value`` (a *fallback*) or,
  without one, stays silent — or, right after a start, waits for a sensor's first reading.
* A manual override wins until it expires. Every output is clamped to the point's range (into
  ``min..max`` first, then to the nearest allowed value, ties downwards — as the profile does). A rule
  with ``ramp_per_minute`` moves its point towards its value no faster than that; a point with a ramp in the
  config's ``safety:`` block (:attr:`PointLimits.ramp_per_minute`) moves so on every change the rules make
  (a new winner at a schedule edge, a fallback, the end of an override). An override applies at once.
* Readings may come faster than evaluations are worth making. :func:`advance` moves only the memory
  (latches, ``for:`` starts, until when inputs are known) on to a reading's time; evaluating after a
  burst of advanced readings ends in the same memory and decisions as evaluating after each one
  (tests/engine/test_coalescing.py). The one exception is a ramp: its output moves at its rate towards
  the value asked for at the evaluation, not towards each value asked for in between.
* Two clocks: ``now`` is the daemon's steady time line (readings, ``for:``, ramps, overrides and
  staleness are measured on it; a wall-clock step does not move it) and ``wall`` the wall clock, which
  schedules, time windows, cron, the sun and the words about them follow. Without ``wall`` both are
  ``now``. When something is due is returned on the ``now`` line.
* A daemon that was down did not see its inputs meanwhile: it loads its memory with
  :meth:`EngineMemory.seen_until` the time it was saved, so the time it was down counts as a gap.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import NamedTuple

from daemon.engine.actions import action_value
from daemon.engine.conditions import (
    Clock,
    NumericOutcome,
    Status,
    clock_condition,
    numeric_sources,
    numeric_words,
    step_numeric,
)
from daemon.engine.explain import lost_because
from daemon.engine.ruleset import RuleSet
from daemon.engine.types import EngineMemory, Evaluation, PointLimits, RuleTrace, TraceState
from daemon.engine.view import SensorView, Used
from daemon.model import Decision, Quantity, Reason
from daemon.rules.model import Input, Rule
from daemon.sun import Site

__all__ = ["RAMP_MINUTE_S", "Advanced", "advance", "evaluate", "ramp_clears_deadband"]

#: A ramp's rate is per minute: within each minute the output stays within the rate of where it began.
RAMP_MINUTE_S = 60.0


def ramp_clears_deadband(rate: float, deadband: float) -> bool:
    """Whether every step of a ramp at ``rate`` is larger than ``deadband``. A ramp moves in equal steps
    of at most the rate (:func:`_ramp`), so a step can be as small as just over half of it."""
    return rate > 2 * deadband


class Advanced(NamedTuple):
    """The memory after :func:`advance`, and when the next one must step every condition again."""

    memory: EngineMemory
    stale_at: float


class _Candidate(NamedTuple):
    rank: tuple[int, int]  # (priority, specificity)
    rule: str
    value: float
    reason: Reason


def _step(
    rules: RuleSet, view: SensorView, now: float, memory: EngineMemory, resume_grace_s: float
) -> tuple[EngineMemory, dict[str, NumericOutcome]]:
    mem = memory.copy()
    seen = {
        n.key: step_numeric(mem, n.key, n.condition, view, now, resume_grace_s=resume_grace_s) for n in rules.numeric
    }
    for store in (mem.latched, mem.since, mem.known_until):  # timers of edited or removed conditions
        for key in [k for k in store if k not in seen]:
            del store[key]
    return mem, seen


def advance(
    rules: RuleSet,
    view: SensorView,
    now: float,
    memory: EngineMemory,
    *,
    sensor: str | None = None,
    stale_at: float = -math.inf,
    resume_grace_s: float = 120.0,
) -> Advanced:
    """The memory after a new reading of ``sensor`` in ``view`` at ``now``, without deciding anything.

    The numeric conditions that read ``sensor`` step exactly as in :func:`evaluate` (the same
    :func:`step_numeric`), so no reading is skipped: a later evaluation sees every crossing it caused.
    The others cannot have changed, unless ``now`` has reached ``stale_at`` (from the last evaluation,
    then from the last advance): then every condition steps, as an evaluation would. With no
    ``sensor``, every condition steps. Timers of conditions that no longer exist are left for
    :func:`evaluate` to forget; outputs and overrides are shared, unchanged.
    """
    info = view.sensors.get(sensor) if sensor is not None else None
    everything = info is None or now >= stale_at
    stepped = rules.numeric if info is None or everything else rules.numeric_reading(info)
    if not stepped:  # e.g. a reading that only a curve or a step table reads: nothing to remember
        return Advanced(memory, math.inf if everything else stale_at)
    mem = EngineMemory(
        dict(memory.latched),
        dict(memory.since),
        dict(memory.known_until),
        memory.outputs,
        memory.overrides,
        memory.held,
        memory.acted,
        memory.ramp_from,
    )
    edge = math.inf if everything else stale_at
    for n in stepped:
        out = step_numeric(mem, n.key, n.condition, view, now, resume_grace_s=resume_grace_s)
        edge = min(edge, out.changes_at)
    return Advanced(mem, edge)


def evaluate(
    rules: RuleSet,
    view: SensorView,
    now: float,
    memory: EngineMemory,
    *,
    site: Site,
    limits: Mapping[str, PointLimits],
    resume_grace_s: float = 120.0,
    wall: float | None = None,
) -> Evaluation:
    """Evaluate every rule at ``now`` (the wall clock reading ``wall``): the winning decision per point,
    a trace per rule, new memory."""
    mem, seen = _step(rules, view, now, memory, resume_grace_s)
    stale_at = min((out.changes_at for out in seen.values()), default=math.inf)
    skew = 0.0 if wall is None else wall - now  # wall clock minus the steady line
    clock = Clock.at(site, now + skew)
    due = math.inf
    traces: list[RuleTrace] = []
    candidates: dict[str, list[_Candidate]] = {}
    for rule in rules.in_order:
        rank = (rule.priority, rule.specificity)
        if not rule.enabled:
            traces.append(RuleTrace(rule.id, rule.target, "disabled", None, ("rule is disabled",), (), *rank))
            continue
        lines: list[str] = []
        inputs: list[Used] = []
        statuses: list[Status] = []
        for i, c in enumerate(rule.when):
            if c.is_numeric:
                out = seen[rules.numeric_by_place[(rule.id, i)].key]
                statuses.append(out.status)
                lines.append(numeric_words(c, out, _quantity_of(c.input, view), now))
                inputs.extend(numeric_sources(c, out, view, now))
                due = min(due, out.changes_at)
            else:
                status, words, when = clock_condition(rules, clock, c)
                statuses.append(status)
                lines.append(words)
                due = min(due, when - skew)
        if "false" in statuses:
            kept = _released(rule, mem, now, skew, site)
            if kept is None:
                traces.append(RuleTrace(rule.id, rule.target, "inactive", None, tuple(lines), tuple(inputs), *rank))
                continue
            due = min(due, kept[2])
            lines.append(kept[1])
            traces.append(RuleTrace(rule.id, rule.target, "active", kept[0], tuple(lines), tuple(inputs), *rank))
            reason = Reason(rule.id, "; ".join(lines), tuple(inputs))
            candidates.setdefault(rule.target, []).append(_Candidate(rank, rule.id, kept[0], reason))
            continue
        value: float | None = None
        fallback = "unknown" in statuses
        if not fallback:
            asked = action_value(rule.set, view, site, now, sun_at=now + skew, row=mem.held.get(rule.id))
            if asked.row is not None:
                mem.held[rule.id] = asked.row
            lines.append(asked.words)
            inputs.extend(asked.used)
            due = min(due, asked.due)
            value = asked.value
            fallback = value is None
        if fallback:
            waiting, until = _waiting(rule, view, now)
            due = min(due, until)
            if waiting:
                lines.append(f"waiting for first readings of {', '.join(waiting)} since start: no action yet")
            elif rule.safe_value is None:
                lines.append("inputs unknown and no safe_value: this rule stays silent")
            else:
                value = rule.safe_value
                lines.append(f"inputs unknown: safe value {value:g}")
            if waiting or rule.safe_value is None:
                traces.append(RuleTrace(rule.id, rule.target, "silent", None, tuple(lines), tuple(inputs), *rank))
                continue
        assert value is not None
        if rule.release_after > 0 and not fallback:
            mem.acted[rule.id] = (value, now)
        state: TraceState = "fallback" if fallback else "active"
        trace = RuleTrace(rule.id, rule.target, state, value, tuple(lines), tuple(inputs), *rank)
        traces.append(trace)
        reason = Reason(rule.id, "; ".join(lines), tuple(inputs), fallback=fallback)
        candidates.setdefault(rule.target, []).append(_Candidate(rank, rule.id, value, reason))

    decisions: dict[str, Decision] = {}
    ramp_minutes: dict[str, tuple[float, float]] = {}
    for target in rules.targets:
        cands = candidates.get(target)
        if not cands:
            continue
        winner, lim = _arbitrate(cands), limits.get(target)
        value, reason = _clamp(winner.value, winner.reason, lim)  # a ramp heads for what is reachable
        winner = winner._replace(value=value, reason=reason)
        ramp = _ramp_rate(rules.by_id[winner.rule], winner.reason, lim)
        value, reason, minute = _ramp(ramp, mem.outputs.get(target), mem.ramp_from.get(target), winner, now)
        if minute is not None:
            ramp_minutes[target] = minute
            if reason.held_by == "ramp":
                due = min(due, minute[1] + RAMP_MINUTE_S)  # still on its way: the next minute moves it on
        if value != winner.value:  # a ramp's step, from an output remembered maybe before the range changed
            value, reason = _clamp(value, reason, lim)
        decisions[target] = _decision(target, value, reason, now)

    overrides = {t: ov for t, ov in mem.overrides.items() if now < ov.until}
    for target, ov in overrides.items():
        due = min(due, ov.until)
        ends = _clock_time(ov.until + skew, site)
        reason = Reason(rule="manual-override", text=f"manual override ({ov.source}) until {ends}")
        decisions[target] = _decision(target, *_clamp(ov.value, reason, limits.get(target)), now)
    mem.overrides = overrides
    for store in (mem.held, mem.acted):  # rules removed or renamed
        for rule_id in [r for r in store if r not in rules.by_id]:
            del store[rule_id]
    for target, d in decisions.items():
        minute = None if target in overrides else ramp_minutes.get(target)
        if minute is None:  # not ramped: the output, as of now
            mem.outputs[target] = (d.value, now)
            mem.ramp_from.pop(target, None)
        else:  # ramped: the output, the time its minute began, and the value it began from
            mem.outputs[target] = (d.value, minute[1])
            mem.ramp_from[target] = minute[0]
    return Evaluation(decisions, tuple(traces), mem, now, max(due, now), stale_at)


def _released(rule: Rule, mem: EngineMemory, now: float, skew: float, site: Site) -> tuple[float, str, float] | None:
    """The value a rule whose conditions stopped holding keeps for its ``release_after``, its words, until when."""
    last = mem.acted.get(rule.id)
    if rule.release_after <= 0 or last is None:
        return None
    until = last[1] + rule.release_after
    if not now < until:
        del mem.acted[rule.id]
        return None
    ends = _clock_time(until + skew, site)
    return last[0], f"conditions no longer hold: keeps {last[0]:g} until {ends} (release_after)", until


def _clock_time(t: float, site: Site) -> str:
    """``HH:MM`` local; never raises (overrides are bounded on the way in, but not in an old memory file)."""
    try:
        return f"{dt.datetime.fromtimestamp(t, site.tz):%H:%M}"
    except (OverflowError, OSError, ValueError):
        return "an unrepresentable time"


def _waiting(rule: Rule, view: SensorView, now: float) -> tuple[list[str], float]:
    """The unknown inputs of ``rule`` that are only not yet known since start, and until when."""
    waiting: list[str] = []
    until = math.inf
    for inp in rule.inputs():
        if view.value(inp, now).value is None:
            ends = view.warming_up(inp, now)
            if ends is not None:
                waiting.append(inp.key)
                until = min(until, ends)
    return waiting, until


def _arbitrate(cands: list[_Candidate]) -> _Candidate:
    """Highest (priority, specificity), ties broken by the lowest rule id; the reason names each loser."""
    best = min(cands, key=lambda c: (-c.rank[0], -c.rank[1], c.rule))
    losers = sorted((c for c in cands if c.rule != best.rule), key=lambda c: c.rule)
    if not losers:
        return best
    why = ", ".join(f"{c.rule} ({lost_because(best.rank, best.rule, c.rank, c.rule)})" for c in losers)
    r = best.reason
    return best._replace(reason=Reason(r.rule, r.text + f" (won over {why})", r.inputs, fallback=r.fallback))


def _ramp_rate(rule: Rule, reason: Reason, lim: PointLimits | None) -> tuple[float, str] | None:
    """The ramp that applies: the rule's own (not to its fallback), else the point's from ``safety:``."""
    if rule.ramp_per_minute is not None and not reason.fallback:
        return rule.ramp_per_minute, "the rule's ramp"
    if lim is not None and lim.ramp_per_minute is not None:
        return lim.ramp_per_minute, "the point's safety ramp"
    return None


def _ramp(
    ramp: tuple[float, str] | None,
    prev: tuple[float, float] | None,
    start: float | None,
    winner: _Candidate,
    now: float,
) -> tuple[float, Reason, tuple[float, float] | None]:
    """Move from the point's previous output (a rule's, a fallback's or an override's) towards the
    winner's value, at most ``rate`` away from where the current minute of ramping began (``start``, at
    ``prev``'s time; a new minute begins from the output when the last one is over). So a change no
    larger than the rate is made at once, in one write, and a larger one in equal steps, one a minute:
    4500 → 2700 at 250/min is 8 steps of 225, and 336 is 2 of 168, not 250 and a last 86 that the point's
    deadband (100) would never write, leaving the device 86 away and the next change 336 large. Returns
    the value, its reason, and the minute's start value and time (None: no ramp applies, or the output
    is where the minute began, so a change that comes later starts a minute of its own)."""
    value, reason = winner.value, winner.reason
    if ramp is None or prev is None:
        return value, reason, None
    rate, whose = ramp
    out, began = prev
    if start is None or not began <= now < began + RAMP_MINUTE_S:
        start, began = out, now
    delta = value - start
    steps = math.ceil(abs(delta) / rate - 1e-9)  # equal steps: none so small that a deadband swallows it
    ramped = value if steps <= 1 else start + delta / steps
    if ramped == start:  # not moving: no minute in progress, the next change starts one
        return value, reason, None
    if ramped == value:
        return value, reason, (start, began)
    text = reason.text + f"; ramping at {rate:g}/min ({whose}) towards {value:.4g}"
    return ramped, Reason(reason.rule, text, reason.inputs, held_by="ramp", fallback=reason.fallback), (start, began)


def _decision(target: str, value: float, reason: Reason, now: float) -> Decision:
    device, point = target.split(".", 1)
    return Decision(device=device, point=point, value=value, reason=reason, ts=now)


def _clamp(value: float, reason: Reason, lim: PointLimits | None) -> tuple[float, Reason]:
    """``value`` within the point's range (and allowed values), with words when that changed it."""
    if lim is None:
        return value, reason
    clamped = lim.clamp(value)
    if clamped == value:
        return value, reason
    text = reason.text + f"; clamped {value:.4g} to {clamped:.4g} (device range)"
    return clamped, Reason(reason.rule, text, reason.inputs, held_by=reason.held_by, fallback=reason.fallback)


def _quantity_of(inp: Input, view: SensorView) -> Quantity | None:
    if inp.quantity is not None:
        return inp.quantity
    info = view.sensors.get(inp.sensor or "")
    return info.quantity if info else None
