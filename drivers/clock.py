"""Clocks: the only place lobbyd reads the time (drivers and daemon alike).

Everything that depends on time takes a :class:`Clock`, so tests, replay and simulations can run a
whole day in seconds on a :class:`VirtualClock` while production uses :class:`SystemClock`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "OffsetClock", "SystemClock", "Timer", "VirtualClock"]


class Timer(Protocol):
    """A callback scheduled with :meth:`Clock.call_at` (``asyncio.TimerHandle`` is one)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Wall-clock time in POSIX seconds, and a sleep and timers that follow the same time."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def call_at(self, t: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` from the event loop once the clock reads ``t`` (soon, if it already does)."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def call_at(self, t: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, t - self.now()), callback)


class _VirtualTimer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """A clock that only moves when told to; sleepers and timers fire in deadline order as it advances."""

    def __init__(self, start: float) -> None:
        self._now = float(start)
        self._timers: list[tuple[float, int, _VirtualTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.call_at(self._now + seconds, lambda: None if fut.done() else fut.set_result(None))
        await fut

    def call_at(self, t: float, callback: Callable[[], None]) -> Timer:
        timer = _VirtualTimer(callback)
        if t <= self._now:
            asyncio.get_running_loop().call_soon(self._fire, timer)
        else:
            heapq.heappush(self._timers, (t, next(self._seq), timer))
        return timer

    @staticmethod
    def _fire(timer: _VirtualTimer) -> None:
        if not timer.cancelled:
            timer.callback()

    def set(self, t: float) -> None:
        """Jump to ``t`` (never backwards) and fire every timer (wake every sleeper) whose deadline has passed."""
        self._now = max(self._now, float(t))
        while self._timers and self._timers[0][0] <= self._now:
            _, _, timer = heapq.heappop(self._timers)
            self._fire(timer)

    async def advance(self, seconds: float) -> None:
        """Move forward by ``seconds`` and let woken tasks run."""
        self.set(self._now + seconds)
        for _ in range(3):
            await asyncio.sleep(0)

    @property
    def next_deadline(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None


class OffsetClock(SystemClock):
    """Real-speed time that starts at a chosen instant (demos and tests that need e.g. 'a Wednesday 10:30').

    Sleeps and timers are the real clock's: only :meth:`now` is shifted.
    """

    def __init__(self, start: float) -> None:
        self._offset = float(start) - time.time()

    def now(self) -> float:
        return time.time() + self._offset
