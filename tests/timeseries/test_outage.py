"""Issue 5's outage claims, through the real daemon subprocess: an InfluxDB outage (v1 API against
influxd, v2 API against VictoriaMetrics) and a SIGKILL during an outage lose no reading and store
none twice.

The harness's periodic sensor simulator is silenced; the test publishes every reading itself, each
with a value that identifies it, and checks point by point that the multiset of values per sensor
read back equals what was published, and that no (series, timestamp) appears twice. Torn or corrupt
spool records and the disk budget are covered at writer level (tests/drivers/influx/test_spool.py,
test_writer.py) and not repeated here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from simulators.servers import InfluxServer, VictoriaMetricsServer
from tests.e2e.harness import Lobby, lobby
from tests.timeseries.helpers import KnownPublisher, influx_query, influx_readings, multiset, vm_readings

pytestmark = pytest.mark.servers

ROUNDS = 3  # rounds of every sensor per phase


def _fast_retry(data: dict[str, Any]) -> None:
    data["influx"].update(retry_initial_s=0.1, retry_max_s=0.4, timeout_s=1.0, flush_interval_s=0.2)


async def _phase(lob: Lobby, pub: KnownPublisher, *, base: int = 0) -> None:
    """Publish ``ROUNDS`` rounds; each is accepted by the daemon before the next (≥ 2 ms apart, so
    even VictoriaMetrics' millisecond timestamps keep them apart)."""
    for _ in range(ROUNDS):
        before = float((await lob.status())["time"])
        await pub.round()

        def taken(s: dict[str, Any], t: float = before) -> bool:
            return bool(s["mqtt"]["accepted"] == pub.readings - base and s["time"] > t + 0.002)

        await lob.wait_status(taken)


def _assert_exactly_once(got: dict[str, list[tuple[int, float]]], pub: KnownPublisher) -> None:
    assert sorted(got) == sorted(pub.sent)
    for sensor, points in got.items():
        dup = [k for k, n in Counter(t for t, _ in points).items() if n > 1]
        assert not dup, f"{sensor}: timestamps stored twice: {dup}"
        assert multiset(v for _, v in points) == multiset(pub.sent[sensor]), sensor
    assert sum(len(p) for p in got.values()) == pub.readings


async def _start(lob: Lobby, client: aiomqtt.Client, *, start_at: str = "2026-06-03T10:30") -> None:
    """Start the daemon and return once it is subscribed: after its SUBACK it publishes each device's
    availability, which reaches this (already subscribed) client as a live, non-retained message."""
    await client.subscribe(f"lobbyd/{lob.loaded.config.branch}/device/+/availability")
    lob.start_daemon(start_at=start_at)
    async with asyncio.timeout(20):
        async for m in client.messages:
            if not m.retain:
                break
    await client.unsubscribe(f"lobbyd/{lob.loaded.config.branch}/device/+/availability")


async def _outage(lob: Lobby, pub: KnownPublisher, server: InfluxServer | VictoriaMetricsServer) -> dict[str, Any]:
    """Readings before, during and after the time-series server is away; returns the status once the
    spool has replayed."""
    await _phase(lob, pub)
    await asyncio.to_thread(server.stop)
    await _phase(lob, pub)
    await lob.wait_status(lambda s: s["influx"]["spooled_bytes"] > 0)
    await _phase(lob, pub)  # behind the spool
    await asyncio.to_thread(server.start)
    await _phase(lob, pub)  # while the spool replays
    return await lob.wait_status(lambda s: s["influx"]["spooled_bytes"] == 0 and s["influx"]["replayed_points"] > 0)


async def test_v1_influxd_outage_every_reading_once(tmp_path: Path) -> None:
    async with lobby(tmp_path, edit=_fast_retry) as lob:
        lob.sensors.silent = set(lob.sensors.signals)
        idb = lob.influx
        assert idb is not None
        async with aiomqtt.Client("127.0.0.1", lob.mosquitto.port, identifier="outage-test") as client:
            await _start(lob, client)
            pub = KnownPublisher(lob.loaded.config.sensors, client)
            st = await _outage(lob, pub, idb)
        assert await lob.stop_daemon() == 0
        _assert_exactly_once(influx_readings(idb), pub)
    assert st["influx"]["dropped_points"] == 0 and st["influx"]["corrupt_records"] == 0
    assert pub.readings == 4 * ROUNDS * 5


async def test_v2_victoria_metrics_outage_every_reading_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = VictoriaMetricsServer(tmp_path / "vm")
    vm.start()
    monkeypatch.setenv("LOBBYD_TEST_INFLUX_TOKEN", "not-a-real-token")

    def v2(data: dict[str, Any]) -> None:
        data["influx"] = {
            "api": "v2",
            "url": vm.url,
            "org": "bank",
            "bucket": "lobbyd",
            "token_env": "LOBBYD_TEST_INFLUX_TOKEN",
        }
        _fast_retry(data)

    try:
        async with lobby(tmp_path, influx=False, edit=v2) as lob:
            lob.sensors.silent = set(lob.sensors.signals)
            # Real time: VictoriaMetrics drops samples older than its retention (1 month by default).
            async with aiomqtt.Client("127.0.0.1", lob.mosquitto.port, identifier="outage-test") as client:
                await _start(lob, client, start_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
                pub = KnownPublisher(lob.loaded.config.sensors, client)
                st = await _outage(lob, pub, vm)
            assert await lob.stop_daemon() == 0
        assert st["influx"]["dropped_points"] == 0
        # VictoriaMetrics (no -dedup.minScrapeInterval) keeps a resent sample as a second sample, so
        # the raw export shows whether anything was sent twice: here nothing may be.
        _assert_exactly_once(await asyncio.to_thread(vm_readings, vm, min_rows=pub.readings), pub)
    finally:
        vm.close()


async def test_sigkill_during_outage_spool_replays_after_restart(tmp_path: Path) -> None:
    async with lobby(tmp_path, edit=_fast_retry) as lob:
        lob.sensors.silent = set(lob.sensors.signals)
        idb = lob.influx
        assert idb is not None
        async with aiomqtt.Client("127.0.0.1", lob.mosquitto.port, identifier="outage-test") as client:
            await _start(lob, client)
            pub = KnownPublisher(lob.loaded.config.sensors, client)
            await _phase(lob, pub)
            await asyncio.to_thread(idb.stop)
            await _phase(lob, pub)
            # With the spool non-empty, a batch goes from memory to the spool in one step, so an empty
            # memory queue means every accepted reading is on disk.
            spooled = await lob.wait_status(
                lambda s: (
                    s["mqtt"]["accepted"] == pub.readings
                    and s["influx"]["spooled_bytes"] > 0
                    and s["influx"]["queue_depth"] == 0
                )
            )
            assert await lob.stop_daemon(signal.SIGKILL) == -signal.SIGKILL
            await asyncio.to_thread(idb.start)
            base = pub.readings
            await _start(lob, client, start_at="2026-06-03T11:00")  # later than anything of the first run
            await _phase(lob, pub, base=base)
            st = await lob.wait_status(
                lambda s: s["influx"]["spooled_bytes"] == 0 and s["influx"]["replayed_points"] > 0
            )
        assert await lob.stop_daemon() == 0
        _assert_exactly_once(influx_readings(idb), pub)
        events = influx_query(idb, 'SELECT "text" FROM "event" WHERE "kind" = \'spool\'').get("series", [])
        texts = [row[1] for series in events for row in series["values"]]
    assert spooled["influx"]["spooled_points"] > 0
    assert st["influx"]["replayed_points"] >= spooled["influx"]["spooled_points"]
    assert st["influx"]["dropped_points"] == 0 and st["influx"]["corrupt_records"] == 0
    # The writer reports the spool it found at start (from its constructor); the daemon records it.
    assert any("left in the spool by a previous run" in t for t in texts), texts
