"""InfluxWriter against real influxd 1.6 and VictoriaMetrics: write, outage, 4xx, queue, secrets."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.influx import InfluxConfigError, InfluxV1Config, InfluxV2Config, InfluxWriter, line
from drivers.timegrid import next_slot, until_next_slot
from simulators.servers import InfluxServer, VictoriaMetricsServer
from tests.polling import eventually

from .helpers import FastBackoffClock, dead_url, influx_rows, running

pytestmark = pytest.mark.servers

DB = "lobby"


def v1(server_url: str, **kw: object) -> InfluxV1Config:
    return InfluxV1Config.model_validate(
        {"url": server_url, "database": DB, "flush_interval_s": 0.05, "batch_size": 50, **kw}
    )


def v2(server_url: str, **kw: object) -> InfluxV2Config:
    return InfluxV2Config.model_validate(
        {"url": server_url, "org": "o", "bucket": "b", "flush_interval_s": 0.05, "batch_size": 50, **kw}
    )


def points(n: int, base_ns: int, *, measurement: str = "reading") -> list[str]:
    # millisecond-spaced timestamps: VictoriaMetrics keeps milliseconds
    return [
        line(measurement, {"branch": "b1", "sensor": f"s{i % 3}"}, {"value": i + 0.25}, base_ns + i * 1_000_000)
        for i in range(n)
    ]


def now_ns() -> int:
    return (time.time_ns() // 1_000_000 - 600_000) * 1_000_000  # ten minutes ago, on a ms boundary


async def test_v1_write_reads_back_exact_values(influxd: InfluxServer, tmp_path: Path) -> None:
    influxd.create_database(DB)
    base = now_ns()
    w = InfluxWriter(v1(influxd.url), spool_dir=tmp_path / "spool")
    async with running(w):
        for p in points(120, base):
            w.submit(p)
        await eventually(lambda: w.stats().sent_points == 120, what="120 points sent")
    rows = influx_rows(influxd, DB, "reading")
    assert sorted((r["time"], r["sensor"], r["value"]) for r in rows) == [
        (base + i * 1_000_000, f"s{i % 3}", i + 0.25) for i in range(120)
    ]
    st = w.stats()
    assert (st.spooled_points, st.dropped_points, st.rejected_points, st.queue_depth) == (0, 0, 0, 0)


async def test_a_trickle_is_one_request_per_flush_interval_and_idle_makes_none(
    influxd: InfluxServer, tmp_path: Path
) -> None:
    """Points wait for the next flush slot (a multiple of the interval on the writer's clock, shared with
    the daemon's other periodic work): what arrives before it rides along in one request; then silence."""
    influxd.create_database(DB)
    interval = 0.5
    w = InfluxWriter(v1(influxd.url, flush_interval_s=interval, batch_size=1000), spool_dir=tmp_path / "spool")
    pts = points(10, now_ns())
    async with running(w):
        await asyncio.sleep(until_next_slot(time.time(), interval) + 0.05)  # just past a slot: the next is far
        t0 = time.time()  # the writer's clock
        slot = next_slot(t0, interval)
        for p in pts:  # well inside one interval
            w.submit(p)
            await asyncio.sleep(0)
        await eventually(lambda: w.stats().sent_points == 10, what="the trickle sent")
        assert time.time() >= slot - 0.01  # held until the slot, not sent point by point
        assert slot - t0 <= interval * (1 + 1e-3)  # and the slot is at most one interval away
        assert w.stats().requests == 1
        await asyncio.sleep(3 * interval)  # an observation window: nothing queued, nothing sent
        assert w.stats().requests == 1
        w.submit(points(1, now_ns() + 10**9)[0])  # the next point waits for its own slot
        await eventually(lambda: w.stats().sent_points == 11, what="the next point sent")
        assert w.stats().requests == 2


async def test_a_full_batch_goes_at_once(influxd: InfluxServer, tmp_path: Path) -> None:
    influxd.create_database(DB)
    w = InfluxWriter(v1(influxd.url, flush_interval_s=60, batch_size=50), spool_dir=tmp_path / "spool")
    async with running(w):
        for p in points(100, now_ns()):
            w.submit(p)
        await eventually(
            lambda: w.stats().sent_points == 100, timeout=10, what="two full batches sent long before 60 s"
        )
        assert w.stats().requests == 2


async def test_v2_write_to_victoria(victoria: VictoriaMetricsServer, tmp_path: Path) -> None:
    base = now_ns()
    w = InfluxWriter(v2(victoria.url), spool_dir=tmp_path / "spool")
    async with running(w):
        for p in points(90, base):
            w.submit(p)
        await eventually(lambda: w.stats().sent_points == 90, what="90 points sent")
    samples = vm_samples(victoria, 90)
    assert sorted(samples) == sorted((f"s{i % 3}", (base // 1_000_000) + i, i + 0.25) for i in range(90))


def vm_samples(vm: VictoriaMetricsServer, n: int) -> list[tuple[str, int, float]]:
    rows: list[Any] = vm.export('{__name__="reading_value"}', min_rows=n)
    out: list[tuple[str, int, float]] = []
    for r in rows:
        sensor = str(r["metric"]["sensor"])
        out += [(sensor, int(t), float(v)) for t, v in zip(r["timestamps"], r["values"], strict=True)]
    return out


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_outage_spools_and_replays_every_point_once(
    api: str, influxd: InfluxServer, victoria: VictoriaMetricsServer, tmp_path: Path
) -> None:
    influxd.create_database(DB)
    server: InfluxServer | VictoriaMetricsServer = influxd if api == "v1" else victoria
    cfg = v1(influxd.url) if api == "v1" else v2(victoria.url)
    clock = FastBackoffClock()
    events: list[tuple[str, str]] = []
    w = InfluxWriter(cfg, spool_dir=tmp_path / "spool", clock=clock, on_event=lambda k, t: events.append((k, t)))
    base = now_ns()
    pts = points(300, base)
    async with running(w):
        for p in pts[:100]:
            w.submit(p)
        await eventually(lambda: w.stats().sent_points == 100, what="first 100 sent")
        server.stop()
        for p in pts[100:250]:
            w.submit(p)
        await eventually(lambda: w.stats().spooled_points == 150, what="150 points spooled")
        assert w.stats().spooled_bytes > 0
        assert w.stats().last_error is not None
        server.start()
        for p in pts[250:]:
            w.submit(p)
        await eventually(lambda: w.stats().sent_points == 300, timeout=30, what="all 300 sent")
    st = w.stats()
    assert st.replayed_points >= 150
    assert (st.spooled_bytes, st.dropped_points, st.rejected_points) == (0, 0, 0)
    assert clock.delays, "the replayer backed off during the outage"
    assert any("spooling to disk" in t for _, t in events)
    assert any("spool replayed" in t for _, t in events)
    if api == "v1":
        got = sorted((int(r["time"]), float(r["value"])) for r in influx_rows(influxd, DB, "reading"))
        assert got == [(base + i * 1_000_000, i + 0.25) for i in range(300)]
    else:
        got_vm = sorted((t, v) for _, t, v in vm_samples(victoria, 300))
        assert got_vm == [((base // 1_000_000) + i, i + 0.25) for i in range(300)]  # exactly once each


async def test_backoff_is_exponential_bounded_and_jittered(tmp_path: Path) -> None:
    clock = FastBackoffClock()
    cfg = v1(dead_url(), retry_initial_s=1, retry_max_s=8)
    w = InfluxWriter(cfg, spool_dir=tmp_path / "spool", clock=clock, rng=random.Random(7))
    async with running(w):
        w.submit(points(1, now_ns())[0])
        await eventually(lambda: len(clock.delays) >= 7, what="7 retries")
    for i, d in enumerate(clock.delays[:7]):
        cap = min(8.0, 2.0**i)
        assert cap / 2 <= d <= cap, (i, d)
    assert len(set(clock.delays[4:7])) == 3, "jitter makes capped delays differ"
    assert w.stats().spooled_points == 1
    assert w.stats().sent_points == 0


def test_an_unusable_spool_directory_is_counted_not_raised_by_submit(tmp_path: Path) -> None:
    """submit() never raises, even when a queue overflowing before open() finds no usable spool."""
    (tmp_path / "file").write_text("not a directory")
    w = InfluxWriter(v1(dead_url(), queue_size=5, batch_size=5), spool_dir=tmp_path / "file" / "spool")
    for p in points(6, now_ns()):
        w.submit(p)
    st = w.stats()
    assert (st.queue_depth, st.dropped_points, st.spooled_points) == (0, 6, 0)
    assert st.last_error is not None and "cannot write the spool: not a directory" in st.last_error
    assert st.dropped_by_reason == {"not a directory": 6}
    w.open()  # a spool that cannot be opened is a degraded writer, not a failed start
    assert w.stats().spool_problem == f"not a directory: {tmp_path / 'file' / 'spool'}"


async def test_backoff_starts_over_after_a_replay(influxd: InfluxServer, tmp_path: Path) -> None:
    """A second outage is retried from retry_initial_s again, not from where the first one stopped."""
    influxd.create_database(DB)
    clock = FastBackoffClock()
    w = InfluxWriter(v1(influxd.url, retry_initial_s=1, retry_max_s=8), spool_dir=tmp_path / "spool", clock=clock)
    base = now_ns()
    async with running(w):
        influxd.stop()
        w.submit(points(1, base)[0])
        await eventually(lambda: len(clock.delays) >= 5, what="5 retries")
        influxd.start()
        await eventually(lambda: w.stats().replayed_points == 1 and not w.stats().spooled_bytes, what="replayed")
        first = len(clock.delays)
        assert clock.delays[first - 1] >= 4, "the first outage reached the 8 s ceiling"
        influxd.stop()
        w.submit(points(2, base)[1])
        await eventually(lambda: len(clock.delays) > first, what="a retry in the second outage")
        influxd.start()
    assert 0.5 <= clock.delays[first] <= 1.0, clock.delays


async def test_bad_point_is_set_aside_and_the_rest_written(influxd: InfluxServer, tmp_path: Path) -> None:
    influxd.create_database(DB)
    base = now_ns()
    good = points(40, base)
    bad = [
        f"reading,branch=b1,sensor=s0 value=oops {base + 5}",  # unparsable field value
        f"reading,branch=b1,sensor=s1 value=3i {base + 7}",  # type conflict: value is a float
    ]
    events: list[tuple[str, str]] = []
    w = InfluxWriter(v1(influxd.url), spool_dir=tmp_path / "spool", on_event=lambda k, t: events.append((k, t)))
    async with running(w):
        w.submit(good[0])
        await eventually(lambda: w.stats().sent_points == 1, what="float field created")
        for p in [*good[1:20], bad[0], *good[20:30], bad[1], *good[30:]]:
            w.submit(p)
        await eventually(lambda: w.stats().sent_points + w.stats().rejected_points == 42, what="all handled")
    st = w.stats()
    assert (st.sent_points, st.rejected_points, st.spooled_points) == (40, 2, 0)
    assert len(influx_rows(influxd, DB, "reading")) == 40
    rejected = (tmp_path / "spool" / "rejected.lp").read_text().splitlines()
    assert [r for r in rejected if not r.startswith("#")] == bad
    assert sum(1 for r in rejected if r.startswith("# ") and "HTTP 400" in r) == 2
    assert [k for k, _ in events].count("rejected") == 2


async def test_queue_full_goes_to_the_spool_nothing_dropped(influxd: InfluxServer, tmp_path: Path) -> None:
    influxd.create_database(DB)
    base = now_ns()
    w = InfluxWriter(v1(influxd.url, queue_size=10, batch_size=5), spool_dir=tmp_path / "spool")
    for p in points(100, base):  # no run() yet: nothing drains the queue
        w.submit(p)
    assert w.stats().queue_depth <= 10
    assert w.stats().spooled_points >= 90
    async with running(w):
        await eventually(lambda: w.stats().sent_points == 100, what="100 sent")
    got = sorted(int(r["time"]) for r in influx_rows(influxd, DB, "reading"))
    assert got == [base + i * 1_000_000 for i in range(100)]
    assert w.stats().dropped_points == 0


async def test_flush_on_shutdown_sends_or_spools(influxd: InfluxServer, tmp_path: Path) -> None:
    influxd.create_database(DB)
    base = now_ns()
    w = InfluxWriter(v1(influxd.url, flush_interval_s=60), spool_dir=tmp_path / "spool")
    for p in points(30, base):
        w.submit(p)
    await w.flush(5)
    assert w.stats().sent_points == 30
    assert len(influx_rows(influxd, DB, "reading")) == 30
    w2 = InfluxWriter(v1(dead_url(), flush_interval_s=60), spool_dir=tmp_path / "spool2")
    for p in points(30, base):
        w2.submit(p)
    await w2.flush(5)
    assert (w2.stats().sent_points, w2.stats().spooled_points, w2.stats().queue_depth) == (0, 30, 0)


async def test_secrets_never_logged_or_repr(
    influxd: InfluxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "s3cr3t-Pa55w0rd"
    monkeypatch.setenv("LOBBYD_TEST_SECRET", secret)
    (tmp_path / "token").write_text(secret + "\n")
    caplog.set_level(logging.DEBUG)
    cfg1 = v1(dead_url(), username="lobbyd", password_env="LOBBYD_TEST_SECRET")
    cfg2 = v2(dead_url(), token_file=tmp_path / "token")
    for cfg in (cfg1, cfg2):
        w = InfluxWriter(cfg, spool_dir=tmp_path / f"spool-{cfg.api}", clock=FastBackoffClock())
        async with running(w):
            w.submit(points(1, now_ns())[0])
            await eventually(lambda w=w: w.stats().last_error is not None, what="an error")  # type: ignore[misc]
        assert secret not in repr(w) + repr(cfg) + str(w.stats())
    assert secret not in caplog.text
    monkeypatch.delenv("LOBBYD_TEST_SECRET")
    unopened = InfluxWriter(cfg1, spool_dir=tmp_path / "x")  # the constructor reads no secret
    with pytest.raises(InfluxConfigError, match="LOBBYD_TEST_SECRET is not set"):
        unopened.open()
    with pytest.raises(InfluxConfigError, match="LOBBYD_TEST_SECRET is not set"):
        async with asyncio.timeout(10):  # bounded: a writer that ran without its secret would not return
            await unopened.run()  # run() opens a writer nobody opened: the same error, not a task failure


async def test_the_constructor_does_no_io_open_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a writer touches no file and no secret; open() does both, once, and reports the spool
    a previous run left through on_event (the daemon wires its annotations first, then opens)."""
    spool = tmp_path / "state" / "spool"
    first = InfluxWriter(v1(dead_url(), flush_interval_s=60), spool_dir=spool)
    assert not spool.exists()
    for p in points(5, now_ns()):
        first.submit(p)
    await first.flush(5)  # flush() opens it: a dead server, so the five points are spooled
    assert first.stats().spooled_points == 5

    monkeypatch.setenv("LOBBYD_TEST_TOKEN", "t")
    events: list[tuple[str, str]] = []
    cfg = v2(dead_url(), token_env="LOBBYD_TEST_TOKEN")
    second = InfluxWriter(cfg, spool_dir=spool, on_event=lambda k, t: events.append((k, t)))
    monkeypatch.delenv("LOBBYD_TEST_TOKEN")  # read at open(), not before
    assert events == [] and second.stats().spooled_bytes == 0  # nothing read yet
    with pytest.raises(InfluxConfigError, match="LOBBYD_TEST_TOKEN is not set"):
        second.open()
    monkeypatch.setenv("LOBBYD_TEST_TOKEN", "t")
    second.open()
    second.open()  # idempotent: the spool is taken over and reported once
    assert [k for k, t in events if "left in the spool by a previous run" in t] == ["spool"]
    assert second.stats().spooled_bytes == first.stats().spooled_bytes > 0
