"""Benchmark of drivers.influx.InfluxWriter against real influxd 1.6 and VictoriaMetrics.

Run: ``.venv/bin/python bench/bench_influx.py [--points N]``. Not a test: it prints a markdown table of
points/s for each path, and the ratio against a plain line-protocol POST of the same points (same
batch size, one kept-alive connection, no writer) measured in the same run on the same server.

For v2 the bare library is measured too: influxdb-client alone, one pre-joined body per batch.

Paths: ``direct`` (queue → batch → server), ``via spool`` (a tiny queue so every batch is spooled to
disk and replayed: the worst case while an outage drains), ``replay`` (a spool written by an earlier
writer during an outage, replayed by a new one at start-up).

Throughput is sustained: the plain POST, influxdb-client and the direct writer are each timed after
their connection is open (the writer sends one warm-up point first), and each is the best of
``--repeat`` runs, because one run of 100 000 points to VictoriaMetrics lasts only 50–100 ms and a
single run varies by ±30 % on a shared machine. A replay includes the writer's start-up: that is what
a restart after an outage costs.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.influx import InfluxV1Config, InfluxV2Config, InfluxWriter, line
from simulators.servers import InfluxServer, VictoriaMetricsServer, free_port

BATCH = 5000  # the writer's default (InfluxDB's recommended batch size)


def make_points(n: int, base_ns: int) -> list[str]:
    """Points shaped like the daemon's readings, 1 ms apart."""
    return [
        line(
            "reading",
            {"branch": "b001", "zone": f"z{i % 4}", "sensor": f"s{i % 16}", "quantity": "temperature"},
            {"value": 20.0 + (i % 100) / 10},
            base_ns + i * 1_000_000,
        )
        for i in range(n)
    ]


def plain_post(url: str, path: str, pts: list[str]) -> float:
    """Seconds to POST ``pts`` in batches of BATCH over one kept-alive connection (opened before)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=30)
    conn.connect()
    t0 = time.perf_counter()
    for i in range(0, len(pts), BATCH):
        conn.request("POST", path, body="\n".join(pts[i : i + BATCH]).encode())
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 204, resp.status
    dt = time.perf_counter() - t0
    conn.close()
    return dt


def client_post(url: str, pts: list[str]) -> float:
    """Seconds for influxdb-client alone (SYNCHRONOUS write_api, one pre-joined body per batch): the bare
    library under the v2 writer, in the same run."""
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS
    from influxdb_client.domain.write_precision import WritePrecision

    bodies = ["\n".join(pts[i : i + BATCH]).encode() for i in range(0, len(pts), BATCH)]
    with InfluxDBClient(url=url, token="", org="o") as client:
        api = client.write_api(write_options=SYNCHRONOUS)
        t0 = time.perf_counter()
        for body in bodies:
            api.write(bucket="b", org="o", record=body, write_precision=WritePrecision.NS)
        return time.perf_counter() - t0


async def _drive(
    w: InfluxWriter, pts: list[str], done: Callable[[], bool], paced: int = 0, warm: str | None = None
) -> float:
    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(w.run())
        if warm is not None:  # steady state: the writer's connection is open before the clock starts
            w.submit(warm)
            async with asyncio.timeout(30):
                while w.stats().sent_points < 1:  # noqa: ASYNC110 - polling counters is the measurement
                    await asyncio.sleep(0.001)
            t0 = time.perf_counter()
        cap = w.stats  # pace the producer at half the queue, so "direct" stays direct
        for i in range(0, len(pts), BATCH):
            while paced and cap().queue_depth > paced:  # noqa: ASYNC110 - polling counters is the measurement
                await asyncio.sleep(0.001)
            for p in pts[i : i + BATCH]:
                w.submit(p)
            await asyncio.sleep(0)
        while not done():  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        dt = time.perf_counter() - t0
        task.cancel()
    return dt


async def writer_run(cfg: InfluxV1Config | InfluxV2Config, pts: list[str], spool: Path, warm: str) -> float:
    """Seconds from the first submit until the server has accepted every point (after a warm-up point)."""
    w = InfluxWriter(cfg, spool_dir=spool)
    paced = cfg.queue_size // 2 if cfg.queue_size > BATCH else 0
    return await _drive(w, pts, lambda: w.stats().sent_points >= len(pts) + 1, paced, warm)


async def replay_run(cfg: InfluxV1Config | InfluxV2Config, pts: list[str], spool: Path) -> float:
    """Spool ``pts`` against a dead server, then time a fresh writer replaying them."""
    dead = cfg.model_copy(update={"url": f"http://127.0.0.1:{free_port()}"})
    w0 = InfluxWriter(dead, spool_dir=spool)
    for p in pts:
        w0.submit(p)
    await w0.flush(30)
    assert w0.stats().spooled_points == len(pts)
    w = InfluxWriter(cfg, spool_dir=spool)
    return await _drive(w, [], lambda: w.stats().replayed_points >= len(pts))


async def bench(n: int, repeat: int) -> list[tuple[str, str, float, float]]:
    rows: list[tuple[str, str, float, float]] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-influx-"))
    influxd = InfluxServer(tmp / "influxd")
    vm = VictoriaMetricsServer(tmp / "vm")
    influxd.start()
    vm.start()
    try:
        influxd.create_database("bench")
        base = (time.time_ns() // 1_000_000 - 3_600_000) * 1_000_000
        common = {"batch_size": BATCH, "flush_interval_s": 0.05, "queue_size": 10 * BATCH}
        targets: list[tuple[str, str, str, str, InfluxV1Config | InfluxV2Config]] = [
            (
                "v1",
                "influxd 1.6",
                influxd.url,
                "/write?db=bench&precision=ns",
                InfluxV1Config(url=influxd.url, database="bench", **common),
            ),
            (
                "v2",
                "victoria-metrics",
                vm.url,
                "/api/v2/write?org=o&bucket=b&precision=ns",
                InfluxV2Config(url=vm.url, org="o", bucket="b", **common),
            ),
        ]
        for k, (api, server, url, path, cfg) in enumerate(targets):
            off = k * 10 * n * 1_000_000
            plain_post(url, path, make_points(min(n, 5 * BATCH), base - 1_000_000_000_000))  # warm-up
            pts = [make_points(n, base + off + j * n * 1_000_000) for j in range(5)]
            warm = make_points(1, base - 5_000_000_000_000)[0]
            # warm-up: the first v2 writer imports influxdb-client (~0.2 s once per process)
            await writer_run(cfg, make_points(2 * BATCH, base - 2_000_000_000_000), tmp / f"w-{api}", warm)
            t_plain = min(plain_post(url, path, pts[0]) for _ in range(repeat))
            rows.append((f"plain POST ({api})", server, n / t_plain, 1.0))
            if api == "v2":
                client_post(url, make_points(2 * BATCH, base - 3_000_000_000_000))  # warm-up
                t = min(client_post(url, pts[4]) for _ in range(repeat))
                rows.append(("influxdb-client alone (write_api, joined bodies, no writer)", server, n / t, t_plain / t))
            t = min([await writer_run(cfg, pts[1], tmp / f"s-{api}-direct-{r}", warm) for r in range(repeat)])
            rows.append((f"InfluxWriter {api} direct", server, n / t, t_plain / t))
            tiny = cfg.model_copy(update={"queue_size": BATCH})
            t = await writer_run(tiny, pts[2], tmp / f"s-{api}-spool", warm)
            rows.append((f"InfluxWriter {api} via spool (queue overflow)", server, n / t, t_plain / t))
            t = await replay_run(cfg, pts[3], tmp / f"s-{api}-replay")
            rows.append((f"spool replay {api} (restart after outage)", server, n / t, t_plain / t))
    finally:
        influxd.close()
        vm.close()
    return rows


def main() -> None:
    global BATCH  # noqa: PLW0603 - one knob for every function of this script
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=BATCH, help="points per request, writer and plain POST alike")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each sustained measurement; the best counts")
    args = ap.parse_args()
    BATCH = args.batch
    rows = asyncio.run(bench(args.points, args.repeat))
    print(f"\n{args.points} points, batches of {BATCH}, best of {args.repeat} runs (replay: one run)\n")
    print("| path | server | points/s | ratio vs plain POST |")
    print("|---|---|---:|---:|")
    for name, server, rate, ratio in rows:
        print(f"| {name} | {server} | {rate:,.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
