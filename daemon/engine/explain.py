"""``lobbyd why``: a point's current setpoint and its decision chain, in plain words.

Built only from an :class:`~daemon.engine.Evaluation` (decisions and per-rule traces) plus what the
output layer knows (the value the device holds, the previous setpoint, the safety limit that held a
change back), so the daemon, the what-if replay and the tests all explain the same way.
"""

from __future__ import annotations

from daemon.engine.types import Evaluation, RuleTrace

__all__ = ["explain_point", "format_age", "lost_because"]


def lost_because(win_rank: tuple[int, int], win_id: str, rank: tuple[int, int], rule_id: str) -> str:
    """Why the rule ``rule_id`` lost to ``win_id``, in words (the arbitration order, step by step)."""
    if rank[0] != win_rank[0]:
        return f"priority {rank[0]} < {win_rank[0]}"
    if rank[1] != win_rank[1]:
        return f"same priority, {rank[1]} condition(s) < {win_rank[1]}"
    return f"same priority and conditions, id sorts after '{win_id}'"


def format_age(seconds: float | None) -> str:
    """``"12 s"``, ``"5 min"``, ``"2.5 h"``; ``"?"`` for unknown."""
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _num(v: float | None) -> str:
    return "unknown" if v is None else f"{v:g}"


def _inputs(inputs: tuple[tuple[str, float | None, float | None], ...]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for name, value, age in inputs:
        if name in seen:
            continue
        seen.add(name)
        if value is None:
            out.append(f"    - {name}: no reading yet")
        else:
            out.append(f"    - {name} = {value:g}, {format_age(age)} old")
    return out


def _other(trace: RuleTrace, winner: RuleTrace | None) -> str:
    head = f"    - {trace.rule} (priority {trace.priority})"
    if trace.state == "disabled":
        return f"{head}: disabled (enabled: false)"
    if trace.state == "inactive":
        return f"{head}: not active — " + "; ".join(trace.lines)
    if trace.state == "silent":
        return f"{head}: silent — its inputs are unknown and it has no safe_value"
    asked = f"asked for {_num(trace.value)}" + (" (fallback)" if trace.state == "fallback" else "")
    if winner is None:
        return f"{head}: {asked}, but a manual override is in force"
    why = lost_because(
        (winner.priority, winner.specificity), winner.rule, (trace.priority, trace.specificity), trace.rule
    )
    return f"{head}: {asked}, lost — {why}"


def explain_point(
    target: str,
    evaluation: Evaluation,
    *,
    previous: float | None,
    known: float | None,
    held_by: str | None,
    now: float,
    error: str | None = None,
) -> str:
    """Explain ``target`` (``device.point``) at ``now``.

    ``previous`` is the setpoint asked for before this one, ``known`` what the device was last read
    or written to hold, ``held_by`` the safety limit (deadband, minimum hold, write cap) that kept the
    device from following the decision, if any; ``error`` why the device's last write failed.
    """
    decision = evaluation.decisions.get(target)
    traces = sorted((t for t in evaluation.traces if t.target == target), key=lambda t: (-t.priority, t.rule))
    lines: list[str] = []
    winner: RuleTrace | None = None
    if decision is None:
        lines.append(f"{target}: no rule asks for a value now; the device keeps what it has")
        if known is not None:
            lines.append(f"  the device holds {known:g}")
    else:
        reason = decision.reason
        lines.append(f"{target} = {decision.value:g}")
        if reason.rule == "manual-override":
            lines.append(f"  set by a {reason.text}")
            override = evaluation.memory.overrides.get(target)
            if override is not None:
                lines.append(f"  the override ends in {format_age(override.until - now)}; then the rules decide again")
        else:
            winner = next((t for t in traces if t.rule == reason.rule), None)
            state = "fallback: its inputs are unknown, so it asks for its safe value" if reason.fallback else ""
            lines.append(f"  set by rule {reason.rule}" + (f" (priority {winner.priority})" if winner else ""))
            if state:
                lines.append(f"  {state}")
            if winner is not None:
                lines.append("  because:")
                lines.extend(f"    - {line}" for line in winner.lines)
            if reason.held_by == "ramp":
                whose = "the point's safety ramp" if "(the point's safety ramp)" in reason.text else "the rule"
                lines.append(f"  ramping: {whose} limits how fast the value may change")
            clamp = next((p for p in reason.text.split("; ") if p.startswith("clamped ")), None)
            if clamp is not None:
                lines.append(f"  {clamp}")
            if reason.inputs:
                lines.append("  inputs:")
                lines.extend(_inputs(reason.inputs))
    others = [t for t in traces if winner is None or t.rule != winner.rule]
    if others:
        lines.append(f"  other rules for {target}:")
        lines.extend(_other(t, winner if decision is not None else None) for t in others)
    if decision is not None:
        facts = []
        if known is not None:
            facts.append(f"the device holds {known:g}")
        if previous is not None:
            facts.append(f"previous setpoint {previous:g}")
        if facts:
            lines.append("  " + "; ".join(facts))
    if held_by is not None:
        holding = f"; the device stays at {known:g}" if known is not None else ""
        by = "not written again" if held_by.startswith("read-back mismatch") else "held back by the safety layer"
        lines.append(f"  {by}: {held_by}{holding}")
    elif decision is not None and known is not None and known == decision.value:
        lines.append("  the device already holds this value: nothing to write")
    if error is not None:
        lines.append(f"  not written: {error}")
    return "\n".join(lines)
