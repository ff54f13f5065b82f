"""Clocks: the only place lobbyd reads the time (drivers and daemon alike).

Everything that depends on time takes a :class:`Clock`, so tests, replay and simulations can run a
whole day in seconds on a :class:`VirtualClock` while production uses :class:`SystemClock`.

Two readings: :meth:`Clock.now` is the wall clock (POSIX seconds; an RTC reset or an NTP step moves it
either way) and :meth:`Clock.monotonic` never steps. Timers and sleeps follow monotonic time, as
asyncio's do: a timer for ``now() + 60`` fires 60 s later whatever the wall clock does meanwhile.
:class:`SteadyClock` is the running daemon's time line: wall time at its start plus monotonic time
since, so holds, timers and ramps measured on it neither freeze nor jump when the wall clock steps.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "OffsetClock", "SteadyClock", "SystemClock", "Timer", "VirtualClock", "wall_of"]


class Timer(Protocol):
    """A callback scheduled with :meth:`Clock.call_at` (``asyncio.TimerHandle`` is one)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Wall-clock time in POSIX seconds, monotonic time, and a sleep and timers (on monotonic time)."""

    def now(self) -> float: ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps (its origin means nothing)."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def call_at(self, t: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` from the event loop once the clock reads ``t`` (soon, if it already does)."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

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
    """A clock that only moves when told to; sleepers and timers fire in deadline order as it advances.

    :meth:`step_wall` moves the wall clock alone (an NTP step, an RTC reset): monotonic time, and with
    it every timer and sleeper, is not moved.
    """

    def __init__(self, start: float) -> None:
        self._mono = float(start)  # monotonic time; the wall clock reads it plus _wall_offset
        self._wall_offset = 0.0
        self._timers: list[tuple[float, int, _VirtualTimer]] = []  # by monotonic deadline
        self._seq = itertools.count()

    def now(self) -> float:
        return self._mono + self._wall_offset

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.call_at(self.now() + seconds, lambda: None if fut.done() else fut.set_result(None))
        await fut

    def call_at(self, t: float, callback: Callable[[], None]) -> Timer:
        timer = _VirtualTimer(callback)
        deadline = t - self._wall_offset
        if deadline <= self._mono:
            asyncio.get_running_loop().call_soon(self._fire, timer)
        else:
            heapq.heappush(self._timers, (deadline, next(self._seq), timer))
        return timer

    @staticmethod
    def _fire(timer: _VirtualTimer) -> None:
        if not timer.cancelled:
            timer.callback()

    def set(self, t: float) -> None:
        """Jump to wall time ``t`` (never backwards) and fire every timer (wake every sleeper) whose
        deadline has passed."""
        self._run_to(float(t) - self._wall_offset)

    def _run_to(self, mono: float) -> None:
        self._mono = max(self._mono, mono)
        while self._timers and self._timers[0][0] <= self._mono:
            _, _, timer = heapq.heappop(self._timers)
            self._fire(timer)

    async def advance(self, seconds: float) -> None:
        """Move forward by ``seconds`` and let woken tasks run."""
        self._run_to(self._mono + seconds)
        for _ in range(3):
            await asyncio.sleep(0)

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock by ``seconds`` (either way) without moving monotonic time or any timer."""
        self._wall_offset += float(seconds)

    @property
    def next_deadline(self) -> float | None:
        """The earliest timer's deadline, on the wall clock as it reads now."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] + self._wall_offset if self._timers else None


class OffsetClock(SystemClock):
    """Real-speed time that starts at a chosen instant (demos and tests that need e.g. 'a Wednesday 10:30').

    Sleeps and timers are the real clock's: only :meth:`now` is shifted.
    """

    def __init__(self, start: float) -> None:
        self._offset = float(start) - time.time()

    def now(self) -> float:
        return time.time() + self._offset


class SteadyClock:
    """The running daemon's time line: ``inner``'s wall time when made, plus its monotonic time since.

    Everything the daemon measures in durations (holds, write-rate windows, ``for:`` timers, ramps,
    staleness, overrides, backoffs) runs on :meth:`now`, which a wall-clock step does not move.
    :meth:`wall` is the wall clock, for schedules and for what is recorded or persisted
    (:meth:`to_wall` converts a time of this line). Sleeps and timers are ``inner``'s.
    """

    def __init__(self, inner: Clock) -> None:
        self.inner = inner
        self._base = inner.now() - inner.monotonic()

    def now(self) -> float:
        return self.inner.monotonic() + self._base

    def monotonic(self) -> float:
        return self.inner.monotonic()

    def wall(self) -> float:
        return self.inner.now()

    def to_wall(self, t: float) -> float:
        """A time ``t`` of this line on the wall clock as it reads now."""
        return t + (self.inner.now() - self.now())

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)

    def call_at(self, t: float, callback: Callable[[], None]) -> Timer:
        return self.inner.call_at(self.inner.now() + (t - self.now()), callback)


def wall_of(clock: Clock, t: float) -> float:
    """A time ``t`` of ``clock`` on the wall clock (for words and records): converted on a
    :class:`SteadyClock`, as it is on any other."""
    return clock.to_wall(t) if isinstance(clock, SteadyClock) else t
