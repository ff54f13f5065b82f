"""``lobbyd status``: turn the daemon's status answer into a verdict and a screenful of text."""

from __future__ import annotations

from typing import Any

__all__ = ["format_status", "needs_attention"]


def needs_attention(st: dict[str, Any]) -> list[str]:
    """Everything an operator should look at; empty when all is well (exit 0)."""
    problems: list[str] = []
    if not st["mqtt"]["connected"]:
        problems.append("MQTT broker not connected")
    problems += [f"rules: {e}" for e in st["rules"]["errors"]]
    problems += [f"sensor {s['sensor']} is stale" for s in st["sensors"] if not s["fresh"]]
    problems += [f"device {d['name']} offline: {d['last_error']}" for d in st["devices"] if not d["online"]]
    influx = st.get("influx")
    if influx:
        if influx.get("dropped"):
            problems.append(f"time series: {influx['dropped']} points dropped (spool budget)")
        if influx.get("spool_bytes"):
            problems.append(f"time series: {influx['spool_bytes']} bytes waiting in the spool")
    return problems


def _age(v: float | None) -> str:
    if v is None:
        return "never"
    return f"{v:.0f}s ago" if v < 120 else f"{v / 60:.0f}m ago"


def format_status(st: dict[str, Any], problems: list[str]) -> str:
    lines = [
        f"lobbyd {st['version']}  branch {st['branch']}  up {st['uptime_s'] / 3600:.1f} h",
        f"config {st['config']}",
        f"rules  {st['rules']['count']} loaded; last reload: {st['rules']['last_reload']}",
        f"mqtt   {'connected' if st['mqtt']['connected'] else 'DISCONNECTED'} ({st['mqtt']['connects']} connects), "
        f"{st['mqtt']['accepted']} readings accepted",
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
    if st.get("influx"):
        i = st["influx"]
        lines.append("time series: " + ", ".join(f"{k} {v}" for k, v in i.items() if v not in (None, "")))
    lines.append("OK" if not problems else "NEEDS ATTENTION:\n  " + "\n  ".join(problems))
    return "\n".join(lines)
