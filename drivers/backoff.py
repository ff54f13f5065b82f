"""The one backoff of lobbyd: every reconnect loop, offline probe and retry waits with it.

Exponential, capped, with "equal jitter": the delay after the n-th consecutive failure lies in
[d/2, d] with d = min(max_s, initial_s·2ⁿ). Half of it is certain, so a retry never comes sooner than
half the ceiling; the random half keeps many gateways from reconnecting in step after a central
outage.

This is a small class of our own rather than a retry library: lobbyd's waits are not retries of one
call but long-lived loops (reconnect, probe an offline device, replay a spool) that must sleep on the
injected :class:`drivers.clock.Clock`, so that tests and simulations run them on virtual time.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays for consecutive failures; :meth:`reset` after a success."""

    def __init__(self, initial_s: float, max_s: float, *, rng: random.Random | None = None) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"backoff needs 0 < initial_s <= max_s, got {initial_s} and {max_s}")
        self.initial_s = initial_s
        self.max_s = max_s
        self._rng = rng if rng is not None else random.Random()
        self.attempt = 0  # consecutive failures so far

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay after the ``attempt``-th consecutive failure (0-based)."""
        return min(self.max_s, self.initial_s * 2.0 ** min(attempt, 62))

    def next_delay(self) -> float:
        """The delay before the next attempt, in [ceiling/2, ceiling]; counts one more failure."""
        d = self.ceiling(self.attempt)
        self.attempt += 1
        return d / 2 + self._rng.random() * d / 2

    def reset(self) -> None:
        """Start again from ``initial_s``."""
        self.attempt = 0
