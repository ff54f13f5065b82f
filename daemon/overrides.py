"""Manual overrides: ``lobbyd override`` on the control socket, or MQTT ``lobbyd/<branch>/device/<device>/<point>/set``.

Payload ``{"value": 3, "duration": "30m"}`` (duration defaults to one hour, or the configured maximum
if that is shorter), a plain number (one hour), or ``{"clear": true}``; an optional ``"by": "name"`` is
recorded as what the sender *says* it is (nothing authenticates it). An override wins over every rule
until it expires.

Everything is checked before it reaches the engine, and a request that fails a check is rejected with
a reason, never repaired: the value must be a finite number the point takes (its range, or one of its
enum values: nothing is rounded or clamped); the duration finite, longer than zero and at most
``overrides.max_duration_s``; and a point accepts at most half of its ``max_writes_per_hour`` in
overrides per hour, so the rules always keep the other half of its write budget. Over MQTT overrides
are off unless ``overrides.mqtt`` is true, and a retained one is refused (an override must be sent
live, so a stale one left on the broker cannot take over after a restart). Every rejection is counted
by kind and logged with its reason; the daemon goes on.

Each override records where it came from: the MQTT topic (MQTT does not tell a subscriber who
published), or the local user of the control socket (the kernel's SO_PEERCRED).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from daemon.config import OverridesConfig, SafetyConfig
from daemon.engine import EngineMemory, Override, PointLimits
from daemon.rules.durations import parse_duration
from daemon.telemetry import Recorder
from drivers.clock import Clock, wall_of
from drivers.mqtt import Message

__all__ = [
    "DEFAULT_DURATION_S",
    "MAX_PAYLOAD",
    "OverrideRejected",
    "OverrideRequest",
    "Overrides",
    "format_seconds",
    "parse_fields",
    "parse_override",
    "target_of",
]

_LOG = logging.getLogger("lobbyd")

DEFAULT_DURATION_S = 3600.0
MAX_PAYLOAD = 512  # bytes: the longest sensible override is some 80
MAX_BY = 64  # characters of the optional "by"
HOUR = 3600.0
KEYS = ("value", "duration", "clear", "by")
#: Why an override was rejected: the counters' names (a fixed set, so the counters stay bounded).
REJECTION_KINDS = ("disabled", "retained", "malformed", "value", "duration", "unknown_point", "out_of_range", "rate")


class OverrideRejected(ValueError):
    """An override refused; ``kind`` is one of :data:`REJECTION_KINDS`, the message the reason in words."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class OverrideRequest:
    clear: bool
    value: float | None = None
    duration_s: float = DEFAULT_DURATION_S
    by: str | None = None  # who the sender says it is (not authenticated)


def target_of(topic: str, prefix: str) -> str | None:
    """``device.point`` for ``<prefix><device>/<point>/set``, else ``None``."""
    if not (topic.startswith(prefix) and topic.endswith("/set")):
        return None
    parts = topic[len(prefix) :].split("/")
    return f"{parts[0]}.{parts[1]}" if len(parts) == 3 and parts[0] and parts[1] else None


def format_seconds(s: float) -> str:
    """``90s``, ``30m``, ``1h30m``, ``8h``."""
    h, rem = divmod(round(s), 3600)
    m, sec = divmod(rem, 60)
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{sec}s" if sec else "")
    return text or "0s"


def _short(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_override(
    payload: bytes, *, retained: bool, max_duration_s: float = OverridesConfig().max_duration_s
) -> OverrideRequest | None:
    """The request in an MQTT payload; ``None`` for an empty retained message (a cleared retained topic).

    Raises :class:`OverrideRejected` with a reason for anything else that is not a valid override.
    """
    if len(payload) > MAX_PAYLOAD:
        raise OverrideRejected("malformed", f"payload of {len(payload)} bytes; an override is at most {MAX_PAYLOAD}")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise OverrideRejected("malformed", "payload is not UTF-8 text") from None
    if not text:
        if retained:
            return None
        raise OverrideRejected("malformed", 'empty payload; send {"value": 3, "duration": "30m"} or {"clear": true}')
    if retained:
        raise OverrideRejected("retained", "retained override ignored (an override must be sent live, with a duration)")
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise OverrideRejected("malformed", "payload is not valid JSON") from None
        if not isinstance(data, dict):
            raise OverrideRejected("malformed", "payload must be a JSON object")
    else:
        data = {"value": text}
    return parse_fields(data, max_duration_s=max_duration_s)


def parse_fields(data: Mapping[str, Any], *, max_duration_s: float) -> OverrideRequest:
    """The request in decoded fields (an MQTT payload's JSON object, or a control socket request's)."""
    unknown = set(data) - set(KEYS)
    if unknown:
        shown = sorted(_short(k) for k in unknown)[:5]
        raise OverrideRejected("malformed", f"unknown key(s) {', '.join(shown)}; use value, duration, clear or by")
    by = _by(data.get("by"))
    if "clear" in data:
        if data["clear"] is not True:
            raise OverrideRejected("malformed", f"'clear' must be true, got {_short(data['clear'])}")
        if "value" in data:
            raise OverrideRejected("malformed", "send either 'value' or 'clear', not both")
        return OverrideRequest(clear=True, by=by)
    if "value" not in data:
        raise OverrideRejected("value", "missing 'value'")
    raw = data["value"]
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise OverrideRejected("value", f"'value' must be a number, got {_short(raw)}")
    try:
        value = float(raw)
    except (ValueError, OverflowError):  # OverflowError: an integer too large for a float
        raise OverrideRejected("value", f"'value' must be a number, got {_short(raw)}") from None
    if not math.isfinite(value):
        raise OverrideRejected("value", f"'value' must be a finite number, got {_short(raw)}")
    duration = _duration(data.get("duration", min(DEFAULT_DURATION_S, max_duration_s)), max_duration_s)
    return OverrideRequest(clear=False, value=value, duration_s=duration, by=by)


def _duration(raw: object, max_duration_s: float) -> float:
    try:
        duration = parse_duration(raw)
    except (ValueError, OverflowError) as exc:
        raise OverrideRejected("duration", f"'duration': {exc}") from None
    if not math.isfinite(duration):
        raise OverrideRejected("duration", f"'duration' must be finite, got {_short(raw)}")
    if duration <= 0:
        raise OverrideRejected("duration", "'duration' must be longer than zero")
    if duration > max_duration_s:
        raise OverrideRejected(
            "duration",
            f"'duration' {_short(raw)} is longer than the longest override allowed, "
            f"{format_seconds(max_duration_s)} (overrides.max_duration_s)",
        )
    return duration


def _by(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_BY or not raw.isprintable():
        raise OverrideRejected("malformed", f"'by' must be a name of 1 to {MAX_BY} printable characters")
    return raw.strip()


class OverrideSink(Protocol):
    """Where an accepted override goes, and what is in force (:class:`daemon.control.ControlLoop`)."""

    @property
    def memory(self) -> EngineMemory: ...

    def set_override(self, target: str, override: Override | None) -> None: ...


class Overrides:
    """Manual overrides from MQTT and the control socket: validated, rate-limited, counted, recorded, put in
    force."""

    def __init__(
        self,
        limits: Mapping[str, PointLimits],
        *,
        sink: OverrideSink,
        recorder: Recorder,
        clock: Clock,
        config: OverridesConfig,
        safety_for: Callable[[str], SafetyConfig],
        tz: dt.tzinfo | None = None,
    ) -> None:
        self._limits = limits
        self._sink = sink
        self._recorder = recorder
        self._clock = clock
        self.config = config
        self._safety_for = safety_for
        self._tz = tz
        self.accepted = 0
        self.rejected = 0
        self.rejected_by: dict[str, int] = dict.fromkeys(REJECTION_KINDS, 0)
        self._recent: dict[str, deque[float]] = {}  # known point → accepted overrides within the last hour

    def on_message(self, target: str, m: Message) -> None:
        """An MQTT override request for ``target`` (``device.point``); a bad one is counted and logged."""
        source = f"mqtt {m.topic}"
        try:
            if not self.config.mqtt:
                raise OverrideRejected(
                    "disabled", "overrides over MQTT are off (overrides.mqtt in the config; see docs/install.md)"
                )
            req = parse_override(m.payload, retained=m.retain, max_duration_s=self.config.max_duration_s)
            if req is not None:
                self._apply(target, req, source)
        except OverrideRejected as exc:
            self._reject(target, source, exc)

    def request(self, target: str, fields: Mapping[str, Any], source: str) -> str:
        """An override asked for on the control socket; what was done, in words.

        Raises :class:`OverrideRejected` (counted and logged) when it is refused."""
        try:
            req = parse_fields(fields, max_duration_s=self.config.max_duration_s)
            return self._apply(target, req, source)
        except OverrideRejected as exc:
            self._reject(target, source, exc)
            raise

    def snapshot(self) -> dict[str, Any]:
        """Counters and the overrides in force, for ``lobbyd status``."""
        now = self._clock.now()
        return {
            "mqtt": self.config.mqtt,
            "max_duration_s": self.config.max_duration_s,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejected_by": {k: v for k, v in self.rejected_by.items() if v},
            "in_force": {
                t: {
                    "value": o.value,
                    "until": wall_of(self._clock, o.until),
                    "ends_in_s": o.until - now,
                    "source": o.source,
                }
                for t, o in sorted(self._sink.memory.overrides.items())
                if o.until > now
            },
        }

    # ---- checks --------------------------------------------------------------------------------------
    def _apply(self, target: str, req: OverrideRequest, source: str) -> str:
        lim = self._limits.get(target)
        if lim is None:
            known = ", ".join(sorted(self._limits)) or "none"
            raise OverrideRejected("unknown_point", f"unknown device point {_short(target)} (points: {known})")
        if req.by is not None:
            source += f" (says by {req.by!r}; not authenticated)"
        device, point = target.split(".", 1)
        now = self._clock.now()
        if req.clear:
            if target not in self._sink.memory.overrides:
                return f"{target}: no manual override in force; nothing to clear"
            self._within_rate(target, now)
            self._sink.set_override(target, None)
            text = f"{target}: manual override cleared by {source}"
        else:
            assert req.value is not None
            _check_value(target, lim, req.value)
            self._within_rate(target, now)
            until = now + req.duration_s
            self._sink.set_override(target, Override(req.value, until, source))
            text = (
                f"{target}: manual override {req.value:g} for {format_seconds(req.duration_s)}"
                f" (until {self._at(until)}) by {source}"
            )
        self.accepted += 1
        self._recorder.event("override", text, now, device=device, point=point)
        _LOG.info("%s", text)
        return text

    def _within_rate(self, target: str, now: float) -> None:
        """Count one override on ``target``, or reject it when the point's share of its write budget is used."""
        budget = self._safety_for(target).max_writes_per_hour
        cap = budget // 2
        if cap == 0:
            raise OverrideRejected(
                "rate", f"{target} may be written {budget} time(s) an hour; that is all the rules' (they keep half)"
            )
        recent = self._recent.setdefault(target, deque())
        while recent and not 0 <= now - recent[0] < HOUR:  # a time before now too: the clock was set back
            recent.popleft()
        if len(recent) >= cap:
            wait = format_seconds(recent[0] + HOUR - now)
            raise OverrideRejected(
                "rate",
                f"{len(recent)} overrides on {target} within the last hour already, the most allowed (half of its "
                f"{budget} writes an hour; the rules keep the other half); the next is accepted in {wait}",
            )
        recent.append(now)

    def _reject(self, target: str, source: str, exc: OverrideRejected) -> None:
        self.rejected += 1
        self.rejected_by[exc.kind] = self.rejected_by.get(exc.kind, 0) + 1
        _LOG.warning("override of %s from %s rejected: %s", target[:100], source[:200], str(exc))

    def _at(self, t: float) -> str:
        return f"{dt.datetime.fromtimestamp(wall_of(self._clock, t), self._tz):%Y-%m-%d %H:%M}"


def _check_value(target: str, lim: PointLimits, value: float) -> None:
    """Reject a value the point does not take; nothing is rounded or clamped."""
    if lim.allowed:
        if value not in lim.allowed:
            raise OverrideRejected(
                "out_of_range", f"{target} takes {lim.describe()}; {value:g} is not one of them (nothing is rounded)"
            )
        return
    if (lim.min is not None and value < lim.min) or (lim.max is not None and value > lim.max):
        raise OverrideRejected(
            "out_of_range", f"{target} takes {lim.describe()}; {value:g} is outside that range (nothing is clamped)"
        )
