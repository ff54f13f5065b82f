"""``lobbyd status``: turn the daemon's status answer into a verdict and a screenful of text."""

from __future__ import annotations

from typing import Any

__all__ = ["SPOOL_ATTENTION_S", "format_status", "needs_attention"]

#: A spool older than this means InfluxDB has been away long enough for someone to look.
SPOOL_ATTENTION_S = 600.0


def needs_attention(st: dict[str, Any]) -> list[str]:
    """Everything an operator should look at; empty when all is well (exit 0)."""
    problems: list[str] = []
    if not st["mqtt"]["connected"]:
        problems.append("MQTT broker not connected")
    if st["mqtt"].get("discarded"):
        problems.append(f"MQTT: {st['mqtt']['discarded']} incoming messages discarded (the daemon fell behind a flood)")
    if st["rules"].get("degraded"):
        problems.append(f"rules degraded: {st['rules']['degraded']}")
    problems += [f"rules: {e}" for e in st["rules"]["errors"]]
    problems += [f"sensor {s['sensor']} is stale" for s in st["sensors"] if not s["fresh"]]
    problems += [f"device {d['name']} offline: {d['last_error']}" for d in st["devices"] if not d["online"]]
    influx = st.get("influx")
    if influx:
        if influx.get("dropped_points"):
            problems.append(f"time series: {influx['dropped_points']} points dropped (spool budget)")
        if influx.get("rejected_points"):
            problems.append(f"time series: {influx['rejected_points']} points rejected by the server (see rejected.lp)")
        if influx.get("spool_oldest_s", 0) > SPOOL_ATTENTION_S:
            problems.append(
                f"time series: InfluxDB unreachable, {influx['spooled_bytes']} bytes spooled, "
                f"oldest {_age(influx['spool_oldest_s'])}"
            )
    return problems


_MQTT_NOT_REJECTS = {"connected", "subscribed", "connects", "silent_for_s", "accepted", "discarded"}


def _age(v: float | None) -> str:
    if v is None:
        return "never"
    return f"{v:.0f}s ago" if v < 120 else f"{v / 60:.0f}m ago"


def _duration(s: float) -> str:
    d, rem = divmod(int(s), 86400)
    h, rem = divmod(rem, 3600)
    return (f"{d}d " if d else "") + f"{h}h {rem // 60:02d}m"


def format_status(st: dict[str, Any], problems: list[str]) -> str:
    lines = [
        f"lobbyd {st['version']}  branch {st['branch']}  up {_duration(st['uptime_s'])}",
        f"config {st['config']}",
        f"rules  {st['rules']['count']} loaded{', DEGRADED' if st['rules'].get('degraded') else ''}; "
        f"last reload: {st['rules']['last_reload']}",
        f"mqtt   {'connected' if st['mqtt']['connected'] else 'DISCONNECTED'} ({st['mqtt']['connects']} connects), "
        f"{st['mqtt']['accepted']} readings accepted, {st['mqtt'].get('discarded', 0)} messages discarded",
        "sensors:",
    ]
    for s in st["sensors"]:
        val = "—" if s["value"] is None else f"{s['value']:.4g}"
        lines.append(f"  {s['sensor']:<28} {val:>9}  {_age(s['age_s']):>9}  {'fresh' if s['fresh'] else 'STALE'}")
    lines.append("devices:")
    for d in st["devices"]:
        lines.append(
            f"  {d['name']:<28} {'online' if d['online'] else 'OFFLINE'}"
            + (f"  last error: {d['last_error']}" if d["last_error"] else "")
        )
    lines.append("points:")
    for t, p in st["points"].items():
        held = f"  held by {p['held_by']}" if p["held_by"] else ""
        lines.append(
            f"  {t:<28} desired {p['desired']:g} ({p['rule']}{', FALLBACK' if p['fallback'] else ''}), "
            f"device {p['known'] if p['known'] is not None else 'unknown'}{held}"
        )
    w = st["writes"]
    lines.append(f"writes ok {w['ok']}, failed {w['failed']}, mismatch {w['mismatch']}")
    rejected = {k: v for k, v in st["mqtt"].items() if k not in _MQTT_NOT_REJECTS and v}
    lines.append("mqtt rejected: " + (", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none"))
    i = st.get("influx")
    if i:
        lines.append(
            f"time series: queue {i['queue_depth']}, sent {i['sent_points']}, spool {i['spooled_bytes']} bytes"
            f" (oldest {_age(i['spool_oldest_s']) if i['spooled_bytes'] else '—'}), dropped {i['dropped_points']},"
            f" rejected {i['rejected_points']}" + (f", last error: {i['last_error']}" if i.get("last_error") else "")
        )
    else:
        lines.append("time series: not configured")
    lines.append("OK" if not problems else "NEEDS ATTENTION:\n  " + "\n  ".join(problems))
    return "\n".join(lines)
