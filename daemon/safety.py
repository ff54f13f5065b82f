"""The safety layer between decisions and devices: deadband, minimum hold time, write rate cap.

No rule can bypass it: every decision (rule, fallback or manual override) passes :meth:`SafetyGate.admit`
before anything is written. It is pure bookkeeping on an injected time, so it is tested without devices.
A value is written only when it differs from what the device is known to hold.

The time is the daemon's steady line (:class:`drivers.clock.SteadyClock`), so a wall-clock step moves
no hold and no writes/hour window; a hold whose start lies after ``now`` counts as ended.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.config import SafetyConfig

__all__ = ["Admission", "PointTrack", "SafetyGate"]

HOUR = 3600.0


@dataclass
class PointTrack:
    """What the daemon knows about one device point's output."""

    known: float | None = None  # last verified value on the device (read at start or read back)
    last_change: float | None = None  # when the value last changed by our write
    writes: deque[float] = field(default_factory=deque)  # write attempts within the last hour


@dataclass(frozen=True, slots=True)
class Admission:
    write: bool
    value: float
    held_by: str | None = None  # which limit held the change back (None when written or nothing to do)
    retry_at: float | None = None  # when time alone lets a held change through (None: only a new value can)


class SafetyGate:
    def __init__(self) -> None:
        self.points: dict[str, PointTrack] = {}

    def track(self, target: str) -> PointTrack:
        t = self.points.get(target)  # not setdefault: that would build a PointTrack on every call
        if t is None:
            t = self.points[target] = PointTrack()
        return t

    def admit(
        self, target: str, desired: float, now: float, safety: SafetyConfig, *, manual: bool = False
    ) -> Admission:
        """Decide whether ``desired`` may be written to ``target`` now."""
        t = self.track(target)
        while t.writes and now - t.writes[0] >= HOUR:
            t.writes.popleft()
        if t.known is not None:
            if desired == t.known:
                return Admission(False, desired)
            if abs(desired - t.known) <= safety.deadband:
                return Admission(False, desired, f"deadband ±{safety.deadband:g}")
        if not manual and t.last_change is not None and 0 <= now - t.last_change < safety.min_hold_s:
            wait = safety.min_hold_s - (now - t.last_change)
            held = f"minimum hold time {safety.min_hold_s:g}s ({wait:.0f}s left)"
            return Admission(False, desired, held, t.last_change + safety.min_hold_s)
        if len(t.writes) >= safety.max_writes_per_hour:
            # The cap is at least 1, so there is an oldest write; it leaves the window an hour after it was made.
            return Admission(False, desired, f"write cap {safety.max_writes_per_hour}/h reached", t.writes[0] + HOUR)
        return Admission(True, desired)

    def wrote(self, target: str, value: float, now: float, *, ok: bool) -> None:
        """Record a write attempt; on success the device is known to hold ``value``."""
        t = self.track(target)
        t.writes.append(now)
        if ok:
            if t.known != value:
                t.last_change = now
            t.known = value

    def observed(self, target: str, value: float | None) -> None:
        """What the device was read to hold (at start, after reconnect); ``None`` forgets it."""
        self.track(target).known = value

    def to_json(self) -> dict[str, Any]:
        """Minimum-hold and write-cap bookkeeping for the state directory (``known`` is re-read at start)."""
        return {
            target: {"last_change": t.last_change, "writes": list(t.writes)}
            for target, t in sorted(self.points.items())
            if t.last_change is not None or t.writes
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SafetyGate:
        """Restore :meth:`to_json` output: a restart does not reset minimum hold times or write caps."""
        gate = cls()
        for target, entry in data.items():
            last = entry.get("last_change")
            gate.points[str(target)] = PointTrack(
                known=None,
                last_change=None if last is None else float(last),
                writes=deque(float(w) for w in entry.get("writes", [])),
            )
        return gate

    def latest(self) -> float:
        """The latest time it records a change or a write at (-inf: none)."""
        times = [w for t in self.points.values() for w in t.writes]
        times += [t.last_change for t in self.points.values() if t.last_change is not None]
        return max(times, default=-math.inf)

    def shifted(self, seconds: float) -> SafetyGate:
        """A copy with every time it records moved by ``seconds`` (from one clock's line to another's)."""
        gate = SafetyGate()
        for target, t in self.points.items():
            last = None if t.last_change is None else t.last_change + seconds
            gate.points[target] = PointTrack(t.known, last, deque(w + seconds for w in t.writes))
        return gate

    def writes_last_hour(self, target: str, now: float) -> int:
        t = self.track(target)
        return sum(1 for w in t.writes if now - w < HOUR)
