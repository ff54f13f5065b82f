"""``lobbyd check --diff``: what an edit would change right now, before it is saved for real.

The rules in force are the last good copies the daemon keeps in its state directory
(``rules-last-good``, what it runs); when files are given (``lobbyd check FILE...``) and there are no
such copies, the rules directory as it stands. Both rule sets are evaluated by the pure engine
(:func:`daemon.engine.evaluate`) at the same moment on the same sensor values: those the running
daemon reports over its control socket, or, when none answers, every sensor unknown (as after a
restart with no reading yet). Both start with a fresh engine memory, so a hysteresis band or a
``for:`` timer counts from now on both sides: the diff shows what the edit changes, not where the
lobby's timers stand.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.config import LoadedConfig
from daemon.engine import EngineMemory, RuleSet, evaluate
from daemon.model import Decision, Quantity, Reading
from daemon.reload import LAST_GOOD_DIR
from daemon.rules.load import LoadedRules, load_rules, rule_files
from daemon.state import SensorState

__all__ = ["EditDiff", "diff_rules", "format_diff", "sensor_state_from_status"]


@dataclass
class EditDiff:
    """The points whose value an edit changes now, the rule changes, and what the comparison used."""

    base: str  # what the edit is compared with, in words
    sensors: str  # where the sensor values came from, in words
    rule_lines: list[str] = field(default_factory=list)
    points: dict[str, tuple[Decision | None, Decision | None]] = field(default_factory=dict)  # before, after


def _same(a: Decision | None, b: Decision | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a.value, b.value, abs_tol=1e-9)


def sensor_state_from_status(loaded: LoadedConfig, status: Mapping[str, Any]) -> tuple[SensorState, float]:
    """The running daemon's fresh sensor values (``lobbyd status``'s ``sensors``) as a sensor state."""
    now = float(status["time"])
    state = SensorState(loaded.sensor_infos(), started_at=now - float(status.get("uptime_s", 0.0)))
    infos = loaded.sensor_infos()
    for s in status.get("sensors", []):
        info = infos.get(str(s.get("sensor")))
        if info is None or s.get("value") is None or not s.get("fresh") or s.get("retained"):
            continue
        state.update(Reading(info.id, Quantity(info.quantity), float(s["value"]), now - float(s["age_s"]), info.zone))
    return state, now


def _running_status(loaded: LoadedConfig) -> Mapping[str, Any] | None:
    from daemon.control_socket import request

    try:
        return asyncio.run(request(loaded.control_socket, {"cmd": "status"}, timeout=3.0))
    except (OSError, TimeoutError, ValueError):
        return None


def diff_rules(loaded: LoadedConfig, new: LoadedRules, *, files_given: bool, status: Mapping[str, Any] | None = None,
               ask_daemon: bool = True) -> EditDiff:  # fmt: skip
    """Compare ``new`` (what ``lobbyd check`` just loaded) with the rules in force, evaluated now."""
    from daemon.reload import rule_changes

    ctx = loaded.rule_context()
    last_good = loaded.state_dir / LAST_GOOD_DIR
    if last_good.is_dir() and rule_files(last_good):
        old = load_rules(last_good, ctx, limits=loaded.config.rule_files)
        base = f"the rules in force ({last_good})"
    elif files_given and loaded.rules_dir.is_dir():
        old = load_rules(loaded.rules_dir, ctx, limits=loaded.config.rule_files)
        base = f"the rules directory as it is ({loaded.rules_dir})"
    else:
        old = LoadedRules(RuleSet())
        base = f"no rules (no last good copies in {last_good}: the daemon has not run here)"
    if status is None and ask_daemon:
        status = _running_status(loaded)
    if status is not None:
        state, now = sensor_state_from_status(loaded, status)
        known = sum(1 for s in status.get("sensors", []) if s.get("fresh"))
        sensors = f"the running daemon's sensor values ({known} fresh)"
    else:
        now = time.time()
        state = SensorState(loaded.sensor_infos(), started_at=now - 1e6)
        sensors = "every sensor unknown (no daemon answered on its control socket)"
    out = EditDiff(base, sensors, rule_changes(old, new))
    decisions = []
    for rules in (old.ruleset, new.ruleset):
        ev = evaluate(rules, state.view(), now, EngineMemory(), site=loaded.site, limits=loaded.point_limits(),
                      resume_grace_s=loaded.config.resume_grace_s)  # fmt: skip
        decisions.append(ev.decisions)
    for target in sorted(decisions[0].keys() | decisions[1].keys()):
        a, b = decisions[0].get(target), decisions[1].get(target)
        if not _same(a, b):
            out.points[target] = (a, b)
    return out


def _said(d: Decision | None) -> str:
    if d is None:
        return "no rule asks (the device keeps its value)"
    why = d.reason.text.strip().splitlines()[0] if d.reason.text.strip() else ""
    return f"{d.value:g} by rule {d.reason.rule}" + (f": {why}" if why else "")


def format_diff(diff: EditDiff) -> str:
    lines = [f"compared with {diff.base}, on {diff.sensors}:"]
    lines += [f"  {line}" for line in diff.rule_lines] or ["  no rule added, removed or changed"]
    if not diff.points:
        lines.append("right now no point would get another value")
    for target, (a, b) in diff.points.items():
        old = "nothing" if a is None else f"{a.value:g}"
        new = "nothing" if b is None else f"{b.value:g}"
        lines.append(f"{target}: {old} → {new}")
        lines.append(f"    now:  {_said(a)}")
        lines.append(f"    then: {_said(b)}")
    return "\n".join(lines)
