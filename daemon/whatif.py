"""What-if: run the rules on a recorded feed on a virtual clock, touching no device and no broker.

``lobbyd check --replay FEED`` calls :func:`replay`. The feed is what ``lobbyd record`` writes:
JSONL lines ``{"ts": 1772589600.0, "topic": "...", "payload": "...", "retain": false}`` or CSV with
the header ``ts,topic,payload``, either of them gzip-compressed (``.jsonl.gz``, ``.csv.gz``; a shipped
day is simulators/feeds/pollution-day.jsonl.gz). Payloads go through the MQTT driver's own router and decoder, the
engine runs every ``step_s`` seconds of feed time, and every decision passes the same
:class:`~daemon.safety.SafetyGate` with each point's safety limits; a write is assumed to succeed.
The report gives writes per point, the time each point spent at each value, fallbacks and what
the safety layer held back.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from daemon.config import LoadedConfig
from daemon.engine import EngineMemory, RuleSet, evaluate, format_age
from daemon.inputs import Conditioning, Derived, Trends, VirtualSensors
from daemon.safety import SafetyGate
from daemon.state import SensorState
from daemon.sun import is_dark
from drivers.mqtt import TopicRouter, decode
from drivers.mqtt.message import Message

__all__ = ["FeedError", "PointReport", "WhatIfReport", "format_report", "read_feed", "replay"]


class FeedError(ValueError):
    """The feed file cannot be read; the message names the file and line."""


@dataclass
class PointReport:
    """What one device point would have done."""

    target: str
    writes: int = 0
    time_in_value: dict[float | None, float] = field(default_factory=dict)  # None: never written yet
    fallbacks: int = 0  # times the point went into a fallback
    fallback_s: float = 0.0
    held: Counter[str] = field(default_factory=Counter)  # evaluations held back, by safety limit
    values: list[tuple[float, float]] = field(default_factory=list)  # (time, value) of each write


@dataclass
class WhatIfReport:
    feed: Path
    start: float
    end: float
    timezone: str
    messages: int = 0
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    evaluations: int = 0
    points: dict[str, PointReport] = field(default_factory=dict)


def _held_kind(text: str) -> str:
    for kind in ("deadband", "minimum hold time", "write cap"):
        if text.startswith(kind):
            return kind
    return text


def read_feed(path: Path) -> list[Message]:
    """All messages of a JSONL or CSV feed, in time order (stable for equal times)."""
    compressed = path.suffix.lower() == ".gz"
    try:
        text = (gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # gzip.BadGzipFile is an OSError
        raise FeedError(f"{path}: cannot read: {exc}") from exc
    messages: list[Message] = []
    kind = Path(path.stem).suffix.lower() if compressed else path.suffix.lower()
    if kind == ".csv" or text.startswith("ts,topic,payload"):
        rows: Iterator[list[str]] = csv.reader(text.splitlines())
        header = next(rows, None)
        if header is None or [h.strip() for h in header[:3]] != ["ts", "topic", "payload"]:
            raise FeedError(f"{path}:1: a CSV feed starts with the header ts,topic,payload")
        for n, row in enumerate(rows, start=2):
            if not row:
                continue
            try:
                retain = len(row) > 3 and row[3].strip().lower() in ("1", "true")
                messages.append(Message(row[1], row[2].encode(), retain, float(row[0])))
            except (IndexError, ValueError) as exc:
                raise FeedError(f"{path}:{n}: bad row: {exc}") from exc
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                messages.append(
                    Message(str(obj["topic"]), str(obj["payload"]).encode(), bool(obj.get("retain")), float(obj["ts"]))
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise FeedError(f"{path}:{n}: bad line: {exc}") from exc
    messages.sort(key=lambda m: m.ts)
    return messages


def replay(
    loaded: LoadedConfig,
    rules: RuleSet,
    feed: Path,
    *,
    step_s: float = 1.0,
    initial: Mapping[str, float] | None = None,
) -> WhatIfReport:
    """Run ``rules`` over ``feed`` on a virtual clock and report what would have been written.

    Readings pass through the sensors' configured filters and stuck checks, and make the daylight
    virtual sensors' readings, as in the daemon. It starts as the daemon does at the feed's first
    message: sensors not yet heard from are given
    their time to report (no fallback before), and each point in ``initial`` (``device.point`` → its
    value) is taken as what the device holds, as the daemon reads it at start (a decision equal to it
    is not a write). Without ``initial`` every point's first decision counts as a write."""
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    messages = read_feed(feed)
    start = messages[0].ts if messages else 0.0
    end = messages[-1].ts if messages else 0.0
    report = WhatIfReport(feed, start, end, loaded.site.timezone, messages=len(messages))
    router = TopicRouter(loaded.config.sensors)
    cfg = loaded.config
    conditioning = Conditioning(loaded.sensor_inputs())
    state = SensorState(loaded.sensor_infos(), started_at=start, conditioning=conditioning)
    limits = loaded.point_limits()
    site = loaded.site
    gate = SafetyGate()
    # the daylight sensors see the lamps at the level the rules would have set (calibrated as configured)
    virtual = VirtualSensors(
        cfg.daylight,
        brightness=lambda p: gate.track(p).known,
        dark=lambda: is_dark(site, t),
        stale_after_s=loaded.stale_after(),
    )
    trends = Trends(cfg.trends, stale_after_s=loaded.stale_after())
    derived = Derived(virtual, trends)
    for target, value in (initial or {}).items():
        gate.observed(target, value)
    memory = EngineMemory()
    in_fallback: dict[str, bool] = {}
    i = 0
    t = start
    while messages and t <= end:
        while i < len(messages) and messages[i].ts <= t:
            m = messages[i]
            i += 1
            sensors = router.route(m.topic)
            if not sensors:
                report.rejected["unknown_topic"] += 1
                continue
            readings, rejects = decode(sensors, m.payload, ts=m.ts, retained=m.retain, topic=m.topic)
            for r in readings:
                if state.update(r) and derived:
                    seen = state.latest(r.sensor)
                    if seen is not None:
                        derived.follow(seen, accept=state.update, stuck=state.stuck)
            report.readings += len(readings)
            for rej in rejects:
                report.rejected[rej.reason.value] += 1
        ev = evaluate(
            rules, state.view(), t, memory, site=site, limits=limits, resume_grace_s=loaded.config.resume_grace_s
        )
        memory = ev.memory
        report.evaluations += 1
        for target, d in ev.decisions.items():
            pr = report.points.setdefault(target, PointReport(target))
            if d.reason.fallback and not in_fallback.get(target, False):
                pr.fallbacks += 1
            in_fallback[target] = d.reason.fallback
            adm = gate.admit(target, d.value, t, loaded.safety_for(target), manual=d.reason.rule == "manual-override")
            if adm.write:
                gate.wrote(target, adm.value, t, ok=True)
                pr.writes += 1
                pr.values.append((t, adm.value))
            elif adm.held_by is not None:
                pr.held[_held_kind(adm.held_by)] += 1
        for target in list(in_fallback):
            if target not in ev.decisions:
                in_fallback[target] = False
        span = min(step_s, end - t)
        for target, pr in report.points.items():
            known = gate.track(target).known
            pr.time_in_value[known] = pr.time_in_value.get(known, 0.0) + span
            if in_fallback.get(target):
                pr.fallback_s += span
        t += step_s
    return report


def _clock(t: float, tz: str) -> str:
    from zoneinfo import ZoneInfo

    return f"{dt.datetime.fromtimestamp(t, ZoneInfo(tz)):%Y-%m-%d %H:%M:%S}"


def format_report(report: WhatIfReport) -> str:
    """The report in plain words, one block per point."""
    total = report.end - report.start
    rej = sum(report.rejected.values())
    lines = [
        f"what-if on {report.feed.name}: {_clock(report.start, report.timezone)} → "
        f"{_clock(report.end, report.timezone)} ({format_age(total)}), {report.messages} messages, "
        f"{report.readings} readings, {rej} rejected"
        + (" (" + ", ".join(f"{k} {v}" for k, v in sorted(report.rejected.items())) + ")" if rej else ""),
        "nothing was written to any device; this is what the rules would have done:",
    ]
    for target in sorted(report.points):
        pr = report.points[target]
        lines.append(f"{target}: {pr.writes} write(s)")
        for value, secs in sorted(pr.time_in_value.items(), key=lambda kv: (kv[0] is not None, kv[0] or 0.0)):
            shown = "not written yet" if value is None else f"{value:g}"
            share = f"{100 * secs / total:.0f}%" if total > 0 else "-"
            lines.append(f"    at {shown}: {format_age(secs)} ({share})")
        if pr.fallbacks:
            lines.append(
                f"    fallbacks (inputs unknown → safe value): {pr.fallbacks}, {format_age(pr.fallback_s)} in all"
            )
        if pr.held:
            lines.append("    held back by safety: " + ", ".join(f"{k} {v}×" for k, v in sorted(pr.held.items())))
    if not report.points:
        lines.append("no rule asked for any value")
    return "\n".join(lines)
