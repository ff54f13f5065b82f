"""The writer keeps at most the transport's ``max_in_flight`` requests going (a fake transport: pure logic)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from drivers.influx import InfluxV2Config, InfluxWriter
from tests.polling import eventually


class GatedTransport:
    """Each write waits until the test lets it finish; records how many ran at once."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.peak = 0
        self.written: list[list[str]] = []
        self.gate = asyncio.Event()

    async def write(self, lines: Sequence[str]) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.gate.wait()
            self.written.append(list(lines))
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        pass


async def test_a_backlog_is_sent_with_at_most_max_in_flight_requests(tmp_path: Path) -> None:
    cfg = InfluxV2Config(url="http://127.0.0.1:9", org="o", bucket="b", batch_size=10, flush_interval_s=60)
    fake = GatedTransport(max_in_flight=2)
    w = InfluxWriter(cfg, spool_dir=tmp_path / "spool", transport=fake)
    lines = [f"m v={i} {i}" for i in range(50)]
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(w.run())
        for line in lines:
            w.submit(line)
        await eventually(lambda: fake.in_flight == 2, what="two requests in flight")
        assert w.stats().queue_depth == 30  # the third batch waits for a free slot
        fake.gate.set()
        await eventually(lambda: w.stats().sent_points == 50, what="the backlog sent")
        task.cancel()
    assert fake.peak == 2
    assert sorted(line for batch in fake.written for line in batch) == sorted(lines)
    assert [len(b) for b in fake.written] == [10] * 5
