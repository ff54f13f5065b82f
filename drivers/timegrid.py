"""Periodic work on a shared time grid, so that one wake-up serves every periodic loop.

A process that sleeps a few hundred milliseconds pays for its next wake-up (on a virtual machine the
vCPU was halted and its caches went cold; docs/BENCHMARKS.md has the figures). Loops that each sleep
"interval seconds from now" wake at scattered instants and each pay that price. Loops that sleep until
the next multiple of their interval on the same clock (the rules ticker, retries of held writes, the
Modbus status polls, the time-series flush, health records) wake together instead.
"""

from __future__ import annotations

import math

__all__ = ["next_slot", "until_next_slot"]

# A wake-up a hair before its slot (wall and monotonic time are not the same clock) still counts as on it.
_SLACK = 1e-3


def next_slot(now: float, period: float) -> float:
    """The first multiple of ``period`` after ``now`` (a ``now`` just short of a multiple is taken as on it)."""
    if period <= 0:
        return now
    return (math.floor(now / period + _SLACK) + 1) * period


def until_next_slot(now: float, period: float) -> float:
    """Seconds from ``now`` to :func:`next_slot`."""
    return next_slot(now, period) - now
