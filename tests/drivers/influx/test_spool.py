"""The on-disk spool: kill -9, torn and corrupt records, the disk budget, restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.influx import InfluxWriter
from drivers.influx.spool import MAGIC
from simulators.servers import InfluxServer
from tests.polling import eventually

from .helpers import FastBackoffClock, dead_url, influx_rows, running
from .test_writer import DB, now_ns, points, v1

pytestmark = pytest.mark.servers
REPO = Path(__file__).resolve().parents[3]


def _proc(spool: Path, base: int, count: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.drivers.influx.spool_proc", str(spool), dead_url(), str(base), count],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], at_least: int) -> int:
    assert proc.stdout is not None
    last = 0
    while last < at_least:
        out = proc.stdout.readline()
        assert out, "writer process ended early"
        last = int(out.split()[1])
    return last


async def _replay(server: InfluxServer, spool: Path, expect: int) -> InfluxWriter:
    w = InfluxWriter(v1(server.url), spool_dir=spool, clock=FastBackoffClock())
    async with running(w):
        await eventually(lambda: w.stats().replayed_points >= expect and w.stats().spooled_bytes == 0, what="replay")
    return w


async def test_sigkill_during_outage_then_restart_replays_everything(influxd: InfluxServer, tmp_path: Path) -> None:
    influxd.create_database(DB)
    spool, base = tmp_path / "spool", now_ns()
    proc = _proc(spool, base, "500")
    try:
        _read_until(proc, 500)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    w = await _replay(influxd, spool, 500)
    got = sorted(int(r["time"]) for r in influx_rows(influxd, DB, "reading"))
    assert got == [base + i * 1_000_000 for i in range(500)]
    assert (w.stats().replayed_points, w.stats().corrupt_records) == (500, 0)


async def test_sigkill_mid_stream_loses_at_most_the_unspooled_tail(influxd: InfluxServer, tmp_path: Path) -> None:
    influxd.create_database(DB)
    spool, base = tmp_path / "spool", now_ns()
    proc = _proc(spool, base, "forever")
    try:
        confirmed = _read_until(proc, 400)  # kill while it keeps writing
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    w = await _replay(influxd, spool, confirmed)
    got = sorted(int(r["time"]) for r in influx_rows(influxd, DB, "reading"))
    assert len(got) >= confirmed
    assert got == [base + i * 1_000_000 for i in range(len(got))], "a gap-free prefix, in order"
    assert w.stats().corrupt_records <= 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "torn-header"])
async def test_damaged_tail_record_is_skipped_and_reported(damage: str, influxd: InfluxServer, tmp_path: Path) -> None:
    influxd.create_database(DB)
    spool, base = tmp_path / "spool", now_ns()
    w = InfluxWriter(v1(dead_url(), batch_size=10), spool_dir=spool)
    for p in points(30, base):
        w.submit(p)
    await w.flush(5)  # dead server: three records of 10 points in one segment
    assert w.stats().spooled_points == 30
    (seg,) = sorted(spool.glob("*.seg"))
    data = seg.read_bytes()
    assert data.startswith(MAGIC)
    if damage == "truncate":
        seg.write_bytes(data[:-7])
    elif damage == "flip":
        seg.write_bytes(data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:])
    else:
        third = _record_offsets(data)[2]
        seg.write_bytes(data[: third + 11])  # only part of the 20-byte record header
    events: list[tuple[str, str]] = []
    w2 = InfluxWriter(
        v1(influxd.url), spool_dir=spool, clock=FastBackoffClock(), on_event=lambda k, t: events.append((k, t))
    )
    async with running(w2):
        await eventually(lambda: w2.stats().replayed_points == 20 and not w2.stats().spooled_bytes, what="replay")
    got = sorted(int(r["time"]) for r in influx_rows(influxd, DB, "reading"))
    assert got == [base + i * 1_000_000 for i in range(20)]
    assert w2.stats().corrupt_records == 1
    assert sum("corrupt spool record" in t for k, t in events if k == "spool") == 1
    assert not list(spool.glob("*.seg")), "the replayed segment is removed"


def _record_offsets(data: bytes) -> list[int]:
    import struct

    offs, off = [], len(MAGIC)
    while off < len(data):
        offs.append(off)
        (length,) = struct.unpack(">I", data[off : off + 4])
        off += 20 + length
    return offs


async def test_budget_drops_oldest_with_exact_count(influxd: InfluxServer, tmp_path: Path) -> None:
    influxd.create_database(DB)
    spool, base = tmp_path / "spool", now_ns()
    events: list[tuple[str, str]] = []
    cfg = v1(dead_url(), batch_size=10, spool_budget_mb=0.02)  # ~20 KiB, 4 KiB segments
    w = InfluxWriter(cfg, spool_dir=spool, clock=FastBackoffClock(), on_event=lambda k, t: events.append((k, t)))
    n = 2000
    for p in points(n, base):
        w.submit(p)
    await w.flush(5)
    st = w.stats()
    assert st.dropped_points > 0
    assert st.spooled_bytes <= 0.02 * 1024 * 1024
    reported = sum(int(t.split(", ")[1].split()[0]) for k, t in events if k == "spool" and "points lost" in t)
    assert reported == st.dropped_points
    w2 = await _replay(influxd, spool, n - st.dropped_points)
    got = sorted(int(r["time"]) for r in influx_rows(influxd, DB, "reading"))
    assert len(got) + st.dropped_points == n, "every point is either delivered or counted as dropped"
    assert got == [base + i * 1_000_000 for i in range(st.dropped_points, n)], "the oldest went first"
    assert w2.stats().dropped_points == 0


async def test_spool_survives_restart_without_server(tmp_path: Path) -> None:
    spool, base = tmp_path / "spool", now_ns()
    w = InfluxWriter(v1(dead_url()), spool_dir=spool)
    for p in points(25, base):
        w.submit(p)
    await w.flush(5)
    events: list[tuple[str, str]] = []
    w2 = InfluxWriter(v1(dead_url()), spool_dir=spool, on_event=lambda k, t: events.append((k, t)))
    w2.open()
    assert w2.stats().spooled_bytes == w.stats().spooled_bytes > 0
    assert any("previous run" in t for _, t in events)
    assert len(list(spool.glob("*.seg"))) == 1
