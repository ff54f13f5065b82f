"""Snapshots of the running daemon: the control socket's ``status`` and ``counters`` answers.

Read-only views over :class:`daemon.parts.Parts`; formatting for people is in :mod:`daemon.status`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from daemon.parts import Parts
from daemon.version import VERSION

__all__ = ["collect_counters", "collect_status", "degraded"]


def degraded(p: Parts) -> list[str]:
    """What the daemon cannot write to disk now, in plain words ("disk full: /var/lib/lobbyd"): it goes
    on controlling the lobby meanwhile, and each entry goes away once that write succeeds again."""
    out = [f"state not saved: {p.store.fault.problem}"] if p.store.fault.problem else []
    if p.control.rules.last_good_error:
        out.append(f"last good rules not saved: {p.control.rules.last_good_error}")
    if p.writer is not None and (spool := p.writer.stats().spool_problem):
        out.append(f"time-series spool not written: {spool}")
    return out


def collect_status(p: Parts) -> dict[str, Any]:
    """A JSON-ready snapshot of the running daemon (what ``lobbyd status`` asks for)."""
    p.control.refresh_if_override_ended()
    now = p.clock.now()
    control, actuation, rules = p.control, p.actuation, p.control.rules
    return {
        "version": VERSION,
        "branch": p.loaded.config.branch,
        "uptime_s": now - p.started_at,
        "evaluations": control.stats.evaluations,
        "ticks": control.stats.ticks,
        "time": now,
        "wall_time": time.time(),
        "config": str(p.loaded.path),
        "rules": {
            "count": len(rules.ruleset.rules),
            "errors": [str(e) for e in rules.errors],
            "kept_previous": rules.kept_previous,
            "degraded": rules.degraded,
            "last_reload": p.reload.last_reload,
            "fingerprint": rules.fingerprint(),
        },
        "mqtt": {
            "connected": p.link.connected,
            "subscribed": p.subscribed.is_set() and p.link.connected,
            "connects": p.link.connects,
            "silent_for_s": p.link.silent_for(now),
            **_link_health(p, now),
            "discarded": p.link.discarded,
            "out_of_order": p.state.out_of_order,
            **p.intake.decoder.counters.snapshot(),
        },
        "sensors": [dataclasses.asdict(s) for s in p.state.summary(now)],
        **({"daylight": p.intake.virtual.summary()} if p.intake.virtual is not None else {}),
        "devices": [
            {"name": x.name, "online": x.online, "last_error": x.last_error, "status": _polled(p, x.name, now)}
            for x in actuation.devices.values()
        ],
        "points": {
            t: {
                "desired": dec.value,
                "rule": dec.reason.rule,
                "fallback": dec.reason.fallback,
                "known": actuation.known(t),
                "held_by": actuation.held_by(t),
                "mismatch": _mismatch(p, t),
                "error": actuation.point_error(t),
            }
            for t, dec in sorted(control.desired.items())
        },
        "writes": {
            "ok": actuation.stats.writes_ok,
            "failed": actuation.stats.writes_failed,
            "mismatch": actuation.stats.writes_mismatch,
        },
        "influx": dataclasses.asdict(p.writer.stats()) if p.writer is not None else None,
        "influx_daemon": dataclasses.asdict(p.daemon_writer.stats()) if p.daemon_writer is not None else None,
        "overrides": p.overrides.snapshot(),
        "degraded": degraded(p),
    }


def _polled(p: Parts, device: str, now: float) -> dict[str, Any]:
    """The device's status points as last polled: value and age in seconds."""
    return {
        t.split(".", 1)[1]: {"value": v, "age_s": now - ts}
        for t, (v, ts) in sorted(p.actuation.polled.items())
        if t.split(".", 1)[0] == device
    }


def _mismatch(p: Parts, target: str) -> dict[str, Any] | None:
    m = p.actuation.mismatch(target)
    return None if m is None else {"desired": m.desired, "readback": m.readback, "writes": m.writes}


def _link_health(p: Parts, now: float) -> dict[str, Any]:
    """Why the broker link is (or was last) down, and since when (seconds ago)."""
    link = p.link

    def ago(t: float | None) -> float | None:
        return None if t is None else max(0.0, now - t)

    return {
        "down_for_s": ago(link.down_since),
        "last_disconnect": link.last_disconnect,
        "last_disconnect_s_ago": ago(link.last_disconnect_at),
        "last_error": str(link.last_error) if link.last_error is not None else None,
        "last_error_s_ago": ago(link.last_error_at),
        "connect_attempts": link.connect_attempts,
        "connect_attempts_total": link.connect_attempts_total,
    }


def collect_counters(p: Parts) -> dict[str, Any]:
    """A cheap poll for scripts and benchmarks: messages, readings, rejections, evaluations, ticks."""
    rejected = p.intake.decoder.counters.snapshot()
    return {
        "received": p.link.received,
        "accepted": rejected.pop("accepted"),
        "rejected": rejected,
        "evaluations": p.control.stats.evaluations,
        "ticks": p.control.stats.ticks,
        "overrides": {"accepted": p.overrides.accepted, "rejected": p.overrides.rejected},
    }
