"""Waiting for an in-process daemon on a virtual clock, shared by the simulation and the replayer."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.app import Daemon

__all__ = ["settle"]


async def settle(
    daemon: Daemon,
    daemon_task: asyncio.Task[None],
    expected: int,
    *,
    during: str,
    error: type[RuntimeError] = RuntimeError,
) -> None:
    """Until the daemon received ``expected`` messages, handled the ticks due by the clock's time and is
    idle (no sleeps: the condition is polled each loop turn). The caller bounds the wait."""
    while not (daemon.parts.link.received >= expected and daemon.caught_up() and daemon.idle()):
        if daemon_task.done():
            raise error(f"the daemon stopped during the {during}")
        await asyncio.sleep(0)
