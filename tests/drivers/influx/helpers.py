"""Shared helpers for the influx driver tests: polling with a deadline, a running writer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from drivers.clock import SystemClock
from drivers.influx import InfluxWriter
from simulators.servers import InfluxServer


@contextlib.asynccontextmanager
async def running(writer: InfluxWriter) -> AsyncIterator[InfluxWriter]:
    """Run ``writer.run()`` in a TaskGroup for the duration of the block, then cancel it."""
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(writer.run(), name="writer")
        try:
            yield writer
        finally:
            task.cancel()


class FastBackoffClock(SystemClock):
    """The real time, but a sleep (the replayer's backoff) is recorded and lasts 10 ms instead."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0.01)


def influx_rows(server: InfluxServer, db: str, measurement: str) -> list[dict[str, Any]]:
    """Every row of ``measurement`` as a dict column -> value (time in ns)."""
    answer = server.query(f'SELECT * FROM "{measurement}"', db=db)
    result = answer["results"][0]  # type: ignore[index]
    assert "error" not in result, result
    rows: list[dict[str, Any]] = []
    for series in result.get("series", []):
        cols = series["columns"]
        rows += [dict(zip(cols, values, strict=True)) for values in series["values"]]
    return rows


def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    from simulators.servers import free_port

    return f"http://127.0.0.1:{free_port()}"
