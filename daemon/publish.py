"""The daemon's own MQTT topics: decisions, device states and availability, the rules' status.

Control never waits on publishing: :meth:`Publisher.soon` queues and returns; :meth:`Publisher.run`
sends in the background. Per topic only the latest payload is kept, so the queue is bounded by the
number of topics however fast values change or however long the broker is away (the link keeps the
retained ones until it is back).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from daemon.model import Decision, WriteResult

__all__ = ["Publisher", "Sender"]


class Sender(Protocol):
    """What the publisher needs of the MQTT link: a best-effort publish that never raises."""

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0) -> Awaitable[None]: ...


class Publisher:
    """Topics under ``lobbyd/<branch>/``, sent by one background task."""

    def __init__(self, branch: str, link: Sender, *, to_wall: Callable[[float], float] | None = None) -> None:
        self.prefix = f"lobbyd/{branch}"
        self._link = link
        self._to_wall = to_wall  # the callers' times (the daemon's steady line) → the wall clock
        self._pending: dict[str, tuple[str, bool]] = {}
        self._states: dict[str, dict[str, Any]] = {}  # state topic -> its last payload (one per point)
        self._wake = asyncio.Event()
        self._stopping = False

    def _wall(self, ts: float) -> float:
        return ts if self._to_wall is None else self._to_wall(ts)

    def soon(self, topic: str, payload: str, *, retain: bool) -> None:
        """Queue a publish without waiting; a newer payload for the same topic replaces the older."""
        self._pending.pop(topic, None)
        self._pending[topic] = (payload, retain)
        self._wake.set()

    def decision(self, d: Decision) -> None:
        payload = {"value": d.value, "rule": d.reason.rule, "reason": d.reason.text, "fallback": d.reason.fallback}
        self.soon(
            f"{self.prefix}/decision/{d.device}/{d.point}", json.dumps({**payload, "ts": self._wall(d.ts)}), retain=True
        )

    def device_state(
        self, result: WriteResult, rule: str, ts: float, *, state: str | None = None, error: str | None = None
    ) -> None:
        """A setpoint's last write. ``state``: the outcome, or for a read-back mismatch ``retrying`` while
        it is retried and ``mismatch`` once the retries are spent (then it is not written again)."""
        payload: dict[str, Any] = {
            "desired": result.value,
            "readback": result.readback,
            "outcome": str(result.outcome),
            "state": state or str(result.outcome),
            "rule": rule,
            "error": error,
            "ts": self._wall(ts),
        }
        topic = f"{self.prefix}/device/{result.device}/{result.point}/state"
        self._states[topic] = payload
        self.soon(topic, json.dumps(payload), retain=True)

    def point_error(self, device: str, point: str, error: str | None, ts: float) -> None:
        """The point's error state changed: its state topic again, with ``error`` (None: cleared)."""
        topic = f"{self.prefix}/device/{device}/{point}/state"
        payload = {**self._states.get(topic, {}), "error": error, "ts": self._wall(ts)}
        self._states[topic] = payload
        self.soon(topic, json.dumps(payload), retain=True)

    def status_value(self, device: str, point: str, value: float, ts: float) -> None:
        """A polled status point's value (actual fan level, filter alarm, fault code), on its state topic."""
        payload = {"value": value, "ts": self._wall(ts)}
        self.soon(f"{self.prefix}/device/{device}/{point}/state", json.dumps(payload), retain=True)

    def availability(self, device: str, online: bool) -> None:
        self.soon(f"{self.prefix}/device/{device}/availability", "online" if online else "offline", retain=True)

    def rules_status(self, errors: list[str], ts: float) -> None:
        payload = {"ok": not errors, "errors": errors, "ts": self._wall(ts)}
        self.soon(f"{self.prefix}/rules/status", json.dumps(payload), retain=True)

    def stop(self) -> None:
        """End :meth:`run` after the publish it is doing (shutdown)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Send what is queued, oldest topic first, until :meth:`stop`."""
        # Ends on the stop flag as well as on cancellation: aiomqtt waits with asyncio.wait_for, which on
        # Python 3.11 can swallow a cancellation that arrives as the publish completes.
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and not self._stopping:
                topic = next(iter(self._pending))
                payload, retain = self._pending.pop(topic)
                await self._link.publish(topic, payload, retain=retain)
