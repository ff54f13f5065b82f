"""The tests' one way to wait for something that has no event to await: poll it, with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["eventually"]


async def eventually(
    predicate: Callable[[], bool], *, timeout: float = 20.0, what: str = "condition", every: float = 0.02
) -> None:
    """Poll ``predicate`` on the event loop until it holds; fail naming ``what`` after ``timeout`` seconds.

    For conditions fed from outside the loop (a server, another process, paho's thread). A condition
    that some code of ours sets should be awaited on that code's own event instead.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(every)
