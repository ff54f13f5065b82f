"""``lobbyd record``: write what arrives on the config's sensor topics to a feed file.

JSONL (one ``{"ts", "topic", "payload", "retain"}`` object per line) or CSV (``ts,topic,payload``,
chosen by the ``.csv`` suffix). ``ts`` is the injected clock's time of arrival in POSIX seconds. The
same format is read by :mod:`simulators.replay` and ``lobbyd check --replay`` (:mod:`daemon.whatif`).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from pathlib import Path
from typing import IO

import aiomqtt

from drivers.clock import Clock, SystemClock
from drivers.mqtt import TopicRouter
from drivers.mqtt.config import MqttConfig, SensorConfig

__all__ = ["FeedWriter", "record"]


class FeedWriter:
    """Appends messages to a JSONL or CSV feed, one line each, flushed as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.csv = path.suffix.lower() == ".csv"
        self.count = 0
        self._f: IO[str] | None = None

    def __enter__(self) -> FeedWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("w", encoding="utf-8", newline="")
        if self.csv:
            self._f.write("ts,topic,payload\n")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def write(self, ts: float, topic: str, payload: bytes, retain: bool) -> None:
        """One message (payload decoded as UTF-8, undecodable bytes replaced)."""
        assert self._f is not None, "use FeedWriter as a context manager"
        text = payload.decode("utf-8", errors="replace")
        if self.csv:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerow([f"{ts:.3f}", topic, text])
            self._f.write(buf.getvalue())
        else:
            self._f.write(json.dumps({"ts": round(ts, 3), "topic": topic, "payload": text, "retain": retain}) + "\n")
        self._f.flush()
        self.count += 1


async def record(
    mqtt: MqttConfig,
    sensors: tuple[SensorConfig, ...],
    out: Path,
    *,
    duration_s: float | None = None,
    max_messages: int | None = None,
    clock: Clock | None = None,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Subscribe to the sensors' topics and write each message to ``out`` until ``duration_s`` (real
    time) passes, ``max_messages`` were written or ``stop`` is set. Returns how many were written."""
    clock = clock if clock is not None else SystemClock()
    password = mqtt.password()
    stop = stop or asyncio.Event()
    with FeedWriter(out) as feed, contextlib.suppress(TimeoutError):
        async with (
            asyncio.timeout(duration_s),
            aiomqtt.Client(
                mqtt.host,
                mqtt.port,
                username=mqtt.username,
                password=password.get_secret_value() if password is not None else None,
                identifier=f"lobbyd-record-{int(clock.now())}",
            ) as client,
        ):
            await client.subscribe(TopicRouter(sensors).subscriptions())
            if ready is not None:
                ready.set()

            async def consume() -> None:
                async for m in client.messages:
                    payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                    feed.write(clock.now(), m.topic.value, payload, m.retain)
                    if max_messages is not None and feed.count >= max_messages:
                        return

            consumer = asyncio.ensure_future(consume())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (consumer, stopper):
                    task.cancel()
                await asyncio.gather(consumer, stopper, return_exceptions=True)
        return feed.count
    return feed.count
