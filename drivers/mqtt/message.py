"""The one value type that crosses from the MQTT link to the intake."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Message"]


@dataclass(frozen=True, slots=True)
class Message:
    """An MQTT message as received: ``ts`` is the injected clock's time of arrival."""

    topic: str
    payload: bytes
    retain: bool
    ts: float
