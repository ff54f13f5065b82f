"""Snapshots of the running daemon: the control socket's ``status`` answer and the ``health`` records.

Read-only views over :class:`daemon.app.Daemon`; formatting for people is in :mod:`daemon.status`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.app import Daemon

__all__ = ["collect_status", "health_records"]


def collect_status(d: Daemon, version: str) -> dict[str, Any]:
    """A JSON-ready snapshot of the running daemon (what ``lobbyd status`` asks for)."""
    now = d.clock.now()
    return {
        "version": version,
        "branch": d.branch,
        "uptime_s": now - d.stats.started_at,
        "evaluations": d.stats.evaluations,
        "ticks": d.stats.ticks,
        "time": now,
        "wall_time": time.time(),
        "config": str(d.loaded.path),
        "rules": {
            "count": len(d.rules.ruleset.rules),
            "errors": [str(e) for e in d.rules.errors],
            "kept_previous": d.rules.kept_previous,
            "last_reload": d.stats.last_reload,
            "fingerprint": d.rules.fingerprint(),
        },
        "mqtt": {
            "connected": d.link.connected,
            "subscribed": d.subscribed.is_set() and d.link.connected,
            "connects": d.link.connects,
            "silent_for_s": d.link.silent_for(now),
            **d.intake.counters.snapshot(),
        },
        "sensors": [dataclasses.asdict(s) for s in d.state.summary(now)],
        "devices": [{"name": x.name, "online": x.online, "last_error": x.last_error} for x in d.devices.values()],
        "points": {
            t: {
                "desired": dec.value,
                "rule": dec.reason.rule,
                "fallback": dec.reason.fallback,
                "known": d.gate.track(t).known,
                "held_by": d.stats.held.get(t),
            }
            for t, dec in sorted(d.desired.items())
        },
        "writes": {"ok": d.stats.writes_ok, "failed": d.stats.writes_failed, "mismatch": d.stats.writes_mismatch},
        "influx": dataclasses.asdict(d.writer.stats()) if d.writer is not None else None,
    }


def health_records(d: Daemon) -> list[tuple[str, dict[str, float | int]]]:
    """The daemon's own health as (component, fields) for the ``health`` measurement (docs/schema.md)."""
    snapshot = d.intake.counters.snapshot()
    out: list[tuple[str, dict[str, float | int]]] = [
        (
            "engine",
            {
                "evaluations": d.stats.evaluations,
                "decisions_changed": d.stats.decisions_changed,
                "eval_ms_max": d.stats.eval_ms_max,
                "rules": len(d.rules.ruleset.rules),
                "rule_errors": len(d.rules.errors),
            },
        ),
        (
            "mqtt",
            {
                "messages_in": d.link.received,
                "accepted": snapshot.pop("accepted"),
                **{f"rejected_{k}": v for k, v in snapshot.items()},
                "connected": int(d.link.connected),
                "connects": d.link.connects,
            },
        ),
        (
            "modbus",
            {
                "requests": sum(x.requests for x in d.devices.values()),
                "errors": sum(b.stats.failures for b in d.buses.values()),
                "devices_online": sum(1 for x in d.devices.values() if x.online),
                "devices": len(d.devices),
                "writes_ok": d.stats.writes_ok,
                "writes_failed": d.stats.writes_failed,
                "writes_mismatch": d.stats.writes_mismatch,
                "write_latency_ms_max": d.stats.write_ms_max,
            },
        ),
    ]
    if d.writer is not None:
        stats = dataclasses.asdict(d.writer.stats())
        out.append(
            ("influx", {k: v for k, v in stats.items() if isinstance(v, int | float) and not isinstance(v, bool)})
        )
    return out
