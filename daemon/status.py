"""``lobbyd status``: turn the daemon's status answer into a verdict and a screenful of text."""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["SPOOL_ATTENTION_S", "format_status", "needs_attention"]

#: The broker link's health in the ``mqtt`` section (not message counts).
_MQTT_LINK = (
    "down_for_s",
    "last_disconnect",
    "last_disconnect_s_ago",
    "last_error",
    "last_error_s_ago",
    "connect_attempts",
    "connect_attempts_total",
)

#: A spool older than this means InfluxDB has been away long enough for someone to look.
SPOOL_ATTENTION_S = 600.0


def needs_attention(st: dict[str, Any]) -> list[str]:
    """Everything an operator should look at; empty when all is well (exit 0)."""
    problems: list[str] = [f"degraded: {d}" for d in st.get("degraded", [])]
    if not st["mqtt"]["connected"]:
        problems.append("MQTT broker not connected" + _mqtt_down(st["mqtt"], st.get("wall_time")))
    if st["mqtt"].get("discarded"):
        problems.append(f"MQTT: {st['mqtt']['discarded']} incoming messages discarded (the daemon fell behind a flood)")
    if st["rules"].get("degraded"):
        problems.append(f"rules degraded: {st['rules']['degraded']}")
    problems += [f"rules: {e}" for e in st["rules"]["errors"]]
    problems += [f"sensor {s['sensor']} is stale" for s in st["sensors"] if not s["fresh"] and not s.get("warming_up")]
    problems += [
        f"sensor {s['sensor']} is stuck at {s.get('raw') if s.get('raw') is not None else s['value']:g}: "
        "the rules treat it as unavailable until it moves"
        for s in st["sensors"]
        if s.get("stuck")
    ]
    problems += [f"device {d['name']} offline: {d['last_error']}" for d in st["devices"] if not d["online"]]
    problems += [f"{t}: {p['held_by']}" for t, p in st["points"].items() if p.get("mismatch")]
    problems += [f"{t}: {p['error']}" for t, p in st["points"].items() if p.get("error")]
    for key, what in (("influx", "time series"), ("influx_daemon", "daemon's own series")):
        influx = st.get(key)
        if not influx:
            continue
        if influx.get("dropped_points"):
            problems.append(f"{what}: {influx['dropped_points']} points dropped ({_reasons(influx)})")
        if influx.get("rejected_points"):
            problems.append(f"{what}: {influx['rejected_points']} points rejected by the server (see rejected.lp)")
        if influx.get("spool_oldest_s", 0) > SPOOL_ATTENTION_S:
            problems.append(
                f"{what}: InfluxDB unreachable, {influx['spooled_bytes']} bytes spooled, "
                f"oldest {_age(influx['spool_oldest_s'])}"
            )
    return problems


_MQTT_NOT_REJECTS = {
    "connected", "subscribed", "connects", "silent_for_s", "accepted", "discarded", "out_of_order", *_MQTT_LINK
}  # fmt: skip


def _mqtt_down(m: dict[str, Any], wall_time: float | None) -> str:
    """Since when and why the broker link is down, in plain words ("" for an older daemon's answer)."""
    if m.get("down_for_s") is None:
        return ""
    text = f" for {_span(m['down_for_s'])}"
    if wall_time is not None:
        text = f" since {datetime.fromtimestamp(wall_time - m['down_for_s']):%H:%M:%S} ({_span(m['down_for_s'])})"
    ago = m.get("last_disconnect_s_ago")
    if m.get("last_disconnect") and ago is not None and abs(ago - m["down_for_s"]) < 1.0:  # this outage's
        text += f": {m['last_disconnect']}"
    attempts = m.get("connect_attempts", 0)
    if attempts:
        text += f"; {attempts} attempt{'s' if attempts != 1 else ''} to reconnect"
        if m.get("last_error"):
            text += f", the last failed: {m['last_error']}"
    return text


def _mqtt_lines(m: dict[str, Any], wall_time: float | None) -> list[str]:
    if not m["connected"]:
        return [f"       down{_mqtt_down(m, wall_time)}"] if m.get("down_for_s") is not None else []
    if m.get("last_disconnect") and m.get("last_disconnect_s_ago") is not None:
        return [f"       last disconnect {_age(m['last_disconnect_s_ago'])}: {m['last_disconnect']}"]
    return []


def _span(v: float) -> str:
    return f"{v:.0f}s" if v < 120 else f"{v / 60:.0f}m" if v < 7200 else f"{v / 3600:.1f}h"


def _reasons(influx: dict[str, Any]) -> str:
    """Dropped points by reason: "spool budget 12, disk full 40"."""
    by = influx.get("dropped_by_reason") or {"reason unknown": influx["dropped_points"]}
    return ", ".join(f"{why} {n}" for why, n in sorted(by.items()))


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
        *_mqtt_lines(st["mqtt"], st.get("wall_time")),
        "sensors:",
    ]
    for s in st["sensors"]:
        val = "—" if s["value"] is None else f"{s['value']:.4g}"
        state = "STUCK" if s.get("stuck") else "fresh" if s["fresh"] else "STALE"
        if state == "STALE" and s.get("warming_up"):
            state = "warming up"  # a trend filling its window since the start
        raw = f"  (raw {s['raw']:.4g}, filtered)" if s.get("raw") is not None else ""
        lines.append(f"  {s['sensor']:<28} {val:>9}  {_age(s['age_s']):>9}  {state}{raw}")
    for sid, d in st.get("daylight", {}).items():
        if d["lamps"] is None:
            lines.append(f"  {sid}: daylight = {d['source']}")
        else:
            k = "not yet measured" if d["lux_per_percent"] is None else f"{d['lux_per_percent']:.3g} lx per %"
            lines.append(f"  {sid}: daylight = {d['source']} − lamps ({d['lamps']}, {k})")
    lines.append("devices:")
    for d in st["devices"]:
        lines.append(
            f"  {d['name']:<28} {'online' if d['online'] else 'OFFLINE'}"
            + (f"  last error: {d['last_error']}" if d["last_error"] else "")
        )
        for point, v in d.get("status", {}).items():
            lines.append(f"    {point:<26} {v['value']:>9.4g}  {_age(v['age_s']):>9}")
    lines.append("points:")
    for t, p in st["points"].items():
        held = f"  held by {p['held_by']}" if p["held_by"] else ""
        held += f"  ERROR: {p['error']}" if p.get("error") else ""
        lines.append(
            f"  {t:<28} desired {p['desired']:g} ({p['rule']}{', FALLBACK' if p['fallback'] else ''}), "
            f"device {p['known'] if p['known'] is not None else 'unknown'}{held}"
        )
    w = st["writes"]
    lines.append(f"writes ok {w['ok']}, failed {w['failed']}, mismatch {w['mismatch']}")
    rejected = {k: v for k, v in st["mqtt"].items() if k not in _MQTT_NOT_REJECTS and v}
    lines.append("mqtt rejected: " + (", ".join(f"{k} {v}" for k, v in sorted(rejected.items())) or "none"))
    if st["mqtt"].get("out_of_order"):
        lines.append(
            f"readings older than the one held: {st['mqtt']['out_of_order']} (recorded in the time series, not used"
            " by the rules)"
        )
    i = st.get("influx")
    if i:
        why = f" ({_reasons(i)})" if i["dropped_points"] else ""
        lines.append(
            f"time series: queue {i['queue_depth']}, sent {i['sent_points']}, spool {i['spooled_bytes']} bytes"
            f" (oldest {_age(i['spool_oldest_s']) if i['spooled_bytes'] else '—'}), dropped {i['dropped_points']}{why},"
            f" rejected {i['rejected_points']}" + (f", last error: {i['last_error']}" if i.get("last_error") else "")
        )
    else:
        lines.append("time series: not configured")
    lines += _overrides(st.get("overrides"))
    lines.append("OK" if not problems else "NEEDS ATTENTION:\n  " + "\n  ".join(problems))
    return "\n".join(lines)


def _overrides(o: dict[str, Any] | None) -> list[str]:
    if not o:
        return []
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(o["rejected_by"].items()))
    lines = [
        f"overrides: {o['accepted']} accepted, {o['rejected']} rejected"
        + (f" ({rejected})" if rejected else "")
        + f"; over MQTT {'on' if o['mqtt'] else 'off'}"
    ]
    for t, ov in o["in_force"].items():
        lines.append(f"  {t:<28} {ov['value']:g} for {_duration(ov['ends_in_s'])} more, by {ov['source']}")
    return lines
