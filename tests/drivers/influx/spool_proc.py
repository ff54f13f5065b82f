"""A writer in its own process, for the kill -9 tests: writes to a dead server, so everything spools.

Usage: python -m tests.drivers.influx.spool_proc SPOOL_DIR URL BASE_NS N|forever

Prints "spooled <k>" (flushed) each time the spooled-point count grows; with N it stops
submitting after N points and keeps running until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from drivers.influx import InfluxV1Config, InfluxWriter, line
from tests.drivers.influx.helpers import FastBackoffClock


async def main(spool_dir: Path, url: str, base_ns: int, count: str) -> None:
    cfg = InfluxV1Config(url=url, database="lobby", batch_size=20, flush_interval_s=0.01, fsync="never")

    w = InfluxWriter(cfg, spool_dir=spool_dir, clock=FastBackoffClock())
    limit = None if count == "forever" else int(count)
    reported = 0
    async with asyncio.TaskGroup() as tg:
        tg.create_task(w.run())
        i = 0
        while True:
            if limit is None or i < limit:
                for _ in range(20 if limit is None else limit):
                    w.submit(line("reading", {"sensor": "k"}, {"value": float(i)}, base_ns + i * 1_000_000))
                    i += 1
                    if limit is not None and i >= limit:
                        break
            await asyncio.sleep(0.005)
            k = w.stats().spooled_points
            if k > reported:
                reported = k
                print(f"spooled {k}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]))
