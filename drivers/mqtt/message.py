"""The one value type that crosses from the MQTT link to the intake."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Message"]


class Message(NamedTuple):
    """An MQTT message as received: ``ts`` is the injected clock's time of arrival (a named tuple: one
    is built per message)."""

    topic: str
    payload: bytes
    retain: bool
    ts: float
