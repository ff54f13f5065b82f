"""Manual overrides over MQTT: ``lobbyd/<branch>/device/<device>/<point>/set``.

Payload ``{"value": 3, "duration": "30m"}`` (duration defaults to one hour), a plain number (one hour),
or ``{"clear": true}``. An override wins over every rule until it expires; the value is still clamped
to the point's range. A retained override is refused: an override must be sent live, so a stale one
left on the broker cannot take over after a restart. Parsing is pure; the daemon applies the result.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from daemon.rules.durations import parse_duration

__all__ = ["DEFAULT_DURATION_S", "OverrideRequest", "parse_override", "target_of"]

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
