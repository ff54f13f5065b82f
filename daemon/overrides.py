"""Manual overrides over MQTT: ``lobbyd/<branch>/device/<device>/<point>/set``.

Payload ``{"value": 3, "duration": "30m"}`` (duration defaults to one hour), a plain number (one hour),
or ``{"clear": true}``. An override wins over every rule until it expires; the value is still clamped
to the point's range. A retained override is refused: an override must be sent live, so a stale one
left on the broker cannot take over after a restart. Parsing is pure (:func:`parse_override`);
:class:`Overrides` checks the target, counts, records and puts the result in force.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from daemon.engine import Override, PointLimits
from daemon.rules.durations import parse_duration
from daemon.telemetry import Recorder
from drivers.clock import Clock
from drivers.mqtt import Message

__all__ = ["DEFAULT_DURATION_S", "OverrideRequest", "Overrides", "parse_override", "target_of"]

_LOG = logging.getLogger("lobbyd")

DEFAULT_DURATION_S = 3600.0


@dataclass(frozen=True, slots=True)
class OverrideRequest:
    clear: bool
    value: float | None = None
    duration_s: float = DEFAULT_DURATION_S


def target_of(topic: str, prefix: str) -> str | None:
    """``device.point`` for ``<prefix><device>/<point>/set``, else ``None``."""
    if not (topic.startswith(prefix) and topic.endswith("/set")):
        return None
    parts = topic[len(prefix) :].split("/")
    return f"{parts[0]}.{parts[1]}" if len(parts) == 3 and parts[0] and parts[1] else None


def parse_override(payload: bytes, *, retained: bool) -> OverrideRequest | None:
    """The request in ``payload``; ``None`` for an empty retained message (a cleared retained topic).

    Raises ``ValueError`` with a reason for anything else that is not a valid override.
    """
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("payload is not UTF-8 text") from None
    if not text:
        if retained:
            return None
        raise ValueError('empty payload; send {"value": 3, "duration": "30m"} or {"clear": true}')
    if retained:
        raise ValueError("retained override ignored (an override must be sent live, with a duration)")
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError("payload is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValueError("payload must be a JSON object")
    else:
        data = {"value": text}
    unknown = set(data) - {"value", "duration", "clear"}
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; use value, duration or clear")
    if data.get("clear") is True:
        return OverrideRequest(clear=True)
    if "value" not in data:
        raise ValueError("missing 'value'")
    raw = data["value"]
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"'value' must be a number, got {raw!r}")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"'value' must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError("'value' must be a finite number")
    duration = parse_duration(data.get("duration", DEFAULT_DURATION_S))
    if duration <= 0:
        raise ValueError("'duration' must be longer than zero")
    return OverrideRequest(clear=False, value=value, duration_s=duration)


class OverrideSink(Protocol):
    """Where an accepted override goes (:class:`daemon.control.ControlLoop`)."""

    def set_override(self, target: str, override: Override | None) -> None: ...


class Overrides:
    """Manual overrides arriving over MQTT: validated, counted, recorded, put in force."""

    def __init__(
        self, limits: Mapping[str, PointLimits], *, sink: OverrideSink, recorder: Recorder, clock: Clock
    ) -> None:
        self._limits = limits
        self._sink = sink
        self._recorder = recorder
        self._clock = clock
        self.received = 0
        self.rejected = 0

    def on_message(self, target: str, m: Message) -> None:
        """An override request for ``target`` (``device.point``); a bad one is counted and logged."""
        now = self._clock.now()
        device, point = target.split(".", 1)
        try:
            if target not in self._limits:
                raise ValueError(f"unknown device point '{target}'")
            req = parse_override(m.payload, retained=m.retain)
        except ValueError as exc:
            self.rejected += 1
            _LOG.warning("override on %s rejected: %s", m.topic, exc)
            return
        if req is None:
            return
        if req.clear:
            self._sink.set_override(target, None)
            self._recorder.event("override", f"{target}: manual override cleared", now, device=device, point=point)
            return
        assert req.value is not None
        clamped = self._limits[target].clamp(req.value)
        self._sink.set_override(target, Override(clamped, now + req.duration_s, "mqtt"))
        self.received += 1
        text = f"{target}: manual override {clamped:g} for {req.duration_s:.0f}s"
        self._recorder.event("override", text, now, device=device, point=point)
