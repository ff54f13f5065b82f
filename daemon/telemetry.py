"""Everything the daemon records for Grafana, as line protocol (schema: docs/schema.md).

One call per kind of record; each builds one line with an explicit timestamp and hands it to the
time-series writer, which never blocks (it spools to disk when InfluxDB is away). Without an
``influx:`` section the records are only counted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

from daemon.model import Decision, Reading, WriteResult
from drivers.influx import PER_SECOND, InfluxWriter, line

__all__ = ["Recorder"]

_LOG = logging.getLogger("lobbyd.telemetry")


class Recorder:
    """Readings go to ``writer``; the daemon's own series (decisions, writes, status, availability, events,
    health) to ``own`` when given (a database of their own), else to ``writer`` too. Timestamps are
    written in ``precision`` (the writers' configured one)."""

    def __init__(
        self,
        branch: str,
        writer: InfluxWriter | None,
        *,
        to_wall: Callable[[float], float] | None = None,
        own: InfluxWriter | None = None,
        precision: str = "ns",
    ) -> None:
        self.branch = branch
        self.writer = writer
        self.own = own if own is not None else writer
        self._per_second = PER_SECOND[precision]
        self._to_wall = to_wall  # the callers' times (the daemon's steady line) → the wall clock
        self.lines = 0
        self.bad = 0
        self._reading_prefix: dict[tuple[str, str, object], str] = {}

    def _emit(
        self,
        measurement: str,
        tags: Mapping[str, str],
        fields: Mapping[str, float | int | bool | str | None],
        ts: float,
    ) -> None:
        self.lines += 1
        target = self.writer if measurement == "reading" else self.own
        if target is None:
            return
        clean = {k: (v.replace("\n", " | ") if isinstance(v, str) else v) for k, v in fields.items() if v is not None}
        try:
            if self._to_wall is not None:
                ts = self._to_wall(ts)
            all_tags = {"branch": self.branch, **{k: v for k, v in tags.items() if v}}
            text = line(measurement, all_tags, clean, round(ts * self._per_second))
        except ValueError as exc:  # NaN or empty: never let a record break control
            self.bad += 1
            _LOG.warning("not recorded: %s %s: %s", measurement, dict(tags), exc)
            return
        target.submit(text)

    def reading(self, r: Reading, filtered: float | None = None) -> None:
        # The hot path (one call per accepted reading): the tag part of a sensor's line never
        # changes, so it is formatted once by ``line`` and reused; the output is byte-identical.
        if self.writer is not None and math.isfinite(r.value):
            key = (r.zone, r.sensor, r.quantity)
            prefix = self._reading_prefix.get(key)
            if prefix is None:
                tags = {"branch": self.branch, **{k: v for k, v in (("zone", r.zone), ("sensor", r.sensor),
                        ("quantity", str(r.quantity))) if v}}  # fmt: skip
                prefix = line("reading", tags, {"value": 0.0}, 0).rsplit(" ", 2)[0]
                self._reading_prefix[key] = prefix
            self.lines += 1
            ts = r.ts if self._to_wall is None else self._to_wall(r.ts)
            more = "" if filtered is None else f",filtered={float(filtered)!r}"
            self.writer.submit(f"{prefix} value={float(r.value)!r}{more} {round(ts * self._per_second)}")
            return
        fields: dict[str, float] = {"value": r.value} if filtered is None else {"value": r.value, "filtered": filtered}
        self._emit("reading", {"zone": r.zone, "sensor": r.sensor, "quantity": str(r.quantity)}, fields, r.ts)

    def decision(self, d: Decision) -> None:
        self._emit(
            "decision",
            {"device": d.device, "point": d.point, "rule": d.reason.rule},
            {"value": float(d.value), "fallback": d.reason.fallback, "text": d.reason.text},
            d.ts,
        )
        if d.reason.fallback:
            self.event("fallback", f"{d.device}.{d.point}: {d.reason.text}", d.ts, device=d.device, point=d.point)

    def write(self, w: WriteResult, rule: str, ts: float) -> None:
        self._emit(
            "device_write",
            {"device": w.device, "point": w.point, "rule": rule, "outcome": str(w.outcome)},
            {
                "value": float(w.value),
                "readback": w.readback,
                "attempts": w.attempts,
                "latency_ms": w.latency_s * 1000.0,
                "error": w.error,
            },
            ts,
        )

    def status(self, device: str, point: str, value: float, ts: float) -> None:
        self._emit("device_status", {"device": device, "point": point}, {"value": float(value)}, ts)

    def availability(self, device: str, online: bool, text: str, ts: float) -> None:
        self._emit("availability", {"device": device}, {"online": int(online), "text": text}, ts)
        self.event("availability", f"{device} {'online' if online else 'offline'}: {text}", ts, device=device)

    def event(self, kind: str, text: str, ts: float, *, device: str = "", point: str = "") -> None:
        self._emit("event", {"kind": kind, "device": device, "point": point}, {"text": text}, ts)

    def health(self, component: str, fields: Mapping[str, float | int], ts: float) -> None:
        self._emit("health", {"component": component}, dict(fields), ts)
