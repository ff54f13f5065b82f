"""Stuck-sensor detection: a value that does not move by ``min_change`` for ``after_s`` seconds.

A sensor frozen at a plausible value passes every range check; this notices that it has stopped
moving. Bounded memory: the value it last moved to, and when.
"""

from __future__ import annotations

__all__ = ["StuckDetector"]


class StuckDetector:
    """Call :meth:`update` with each reading; :attr:`stuck` says whether the sensor counts as stuck."""

    __slots__ = ("_anchor", "_since", "after_s", "min_change", "stuck")

    def __init__(self, after_s: float, min_change: float) -> None:
        if not (after_s > 0 and min_change > 0):
            raise ValueError("after_s and min_change must be > 0")
        self.after_s = after_s
        self.min_change = min_change
        self._anchor: float | None = None
        self._since = 0.0
        self.stuck = False

    @property
    def since(self) -> float | None:
        """When the value last moved (or was first seen)."""
        return None if self._anchor is None else self._since

    def update(self, value: float, ts: float) -> bool:
        """Take one reading; return whether the stuck state changed."""
        before = self.stuck
        if self._anchor is None or abs(value - self._anchor) >= self.min_change:
            self._anchor, self._since = value, ts
            self.stuck = False
        else:
            self.stuck = ts - self._since >= self.after_s
        return self.stuck != before
