"""Clocks: the only place lobbyd reads the time.

Everything that depends on time takes a :class:`Clock`, so tests, replay and simulations can run a
whole day in seconds on a :class:`VirtualClock` while production uses :class:`SystemClock`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

__all__ = ["Clock", "OffsetClock", "SystemClock", "VirtualClock"]


class Clock(Protocol):
    """Wall-clock time in POSIX seconds and a sleep that follows the same time."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real time."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """A clock that only moves when told to; sleepers wake in deadline order as it advances."""

    def __init__(self, start: float) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    def set(self, t: float) -> None:
        """Jump to ``t`` (never backwards) and wake every sleeper whose deadline has passed."""
        self._now = max(self._now, float(t))
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def advance(self, seconds: float) -> None:
        """Move forward by ``seconds`` and let woken tasks run."""
        self.set(self._now + seconds)
        for _ in range(3):
            await asyncio.sleep(0)

    @property
    def next_deadline(self) -> float | None:
        return self._sleepers[0][0] if self._sleepers else None


class OffsetClock:
    """Real-speed time that starts at a chosen instant (demos and tests that need e.g. 'a Wednesday 10:30')."""

    def __init__(self, start: float) -> None:
        self._offset = float(start) - time.time()

    def now(self) -> float:
        return time.time() + self._offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
