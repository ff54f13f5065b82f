"""The time series as configured: the precision of the timestamps written, and the daemon's own series
(decisions, writes, events, health) in a database or bucket of their own. Against the real influxd (v1 API)
and VictoriaMetrics (v2 API): the points land where, and at the time, the configuration says."""

from __future__ import annotations

import contextlib
import http.server
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.app import build_daemon
from daemon.config import load_config
from daemon.model import Quantity, Reading
from daemon.telemetry import Recorder
from drivers.clock import VirtualClock
from drivers.influx import InfluxV1Config, InfluxV2Config, InfluxWriter, daemon_series_config, has_pending
from drivers.influx.spool import Spool
from simulators.servers import InfluxServer, VictoriaMetricsServer
from tests.drivers.influx.helpers import influx_rows, running
from tests.e2e.harness import copy_rules, write_config
from tests.polling import eventually

pytestmark = pytest.mark.servers

PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def when() -> float:
    """Ten minutes ago on a whole second, plus a fraction that every precision but ns cuts."""
    return float(int(time.time()) - 600) + 0.123456789


def expected_ns(ts: float, precision: str) -> int:
    return round(ts * PER_SECOND[precision]) * (1_000_000_000 // PER_SECOND[precision])


def record(rec: Recorder, ts: float) -> None:
    rec.reading(Reading("hall-pm25", Quantity.PM25, 12.5, ts, "hall"))
    rec.event("reload", "rules reloaded", ts)
    rec.health("engine", {"evaluations": 7}, ts)


def writers(cfg: InfluxV1Config | InfluxV2Config, tmp_path: Path) -> tuple[InfluxWriter, InfluxWriter | None]:
    own_cfg = daemon_series_config(cfg)
    own = InfluxWriter(own_cfg, spool_dir=tmp_path / "spool-daemon") if own_cfg is not None else None
    return InfluxWriter(cfg, spool_dir=tmp_path / "spool"), own


@pytest.mark.parametrize("precision", ["s", "ms", "us", "ns"])
async def test_v1_precision_and_a_database_for_the_daemons_own_series(
    influxd: InfluxServer, tmp_path: Path, precision: str
) -> None:
    influxd.create_database("readings")
    influxd.create_database("lobbyd_daemon")
    cfg = InfluxV1Config.model_validate(
        {"url": influxd.url, "database": "readings", "daemon_database": "lobbyd_daemon",
         "precision": precision, "flush_interval_s": 0.05}
    )  # fmt: skip
    w, own = writers(cfg, tmp_path)
    assert own is not None
    ts = when()
    async with running(w), running(own):
        record(Recorder("b1", w, own=own, precision=precision), ts)
        await eventually(lambda: (w.stats().sent_points, own.stats().sent_points) == (1, 2), what="points sent")
    at = expected_ns(ts, precision)
    assert [(r["time"], r["sensor"], r["value"]) for r in influx_rows(influxd, "readings", "reading")] == [
        (at, "hall-pm25", 12.5)
    ]
    assert influx_rows(influxd, "readings", "event") == []
    assert influx_rows(influxd, "readings", "health") == []
    assert [(r["time"], r["kind"], r["text"]) for r in influx_rows(influxd, "lobbyd_daemon", "event")] == [
        (at, "reload", "rules reloaded")
    ]
    assert [(r["time"], r["evaluations"]) for r in influx_rows(influxd, "lobbyd_daemon", "health")] == [(at, 7)]
    assert influx_rows(influxd, "lobbyd_daemon", "reading") == []


async def test_v1_without_a_daemon_database_everything_goes_to_the_readings(
    influxd: InfluxServer, tmp_path: Path
) -> None:
    influxd.create_database("lobbyd")
    cfg = InfluxV1Config.model_validate({"url": influxd.url, "database": "lobbyd", "flush_interval_s": 0.05})
    w, own = writers(cfg, tmp_path)
    assert own is None
    ts = when()
    async with running(w):
        record(Recorder("b1", w), ts)
        await eventually(lambda: w.stats().sent_points == 3, what="points sent")
    for measurement in ("reading", "event", "health"):
        assert [r["time"] for r in influx_rows(influxd, "lobbyd", measurement)] == [expected_ns(ts, "ns")]


@contextlib.contextmanager
def forwarding(target: str) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A plain HTTP forwarder in front of ``target`` that notes each write's query (VictoriaMetrics
    stores no bucket: what the writer asked for is seen here, what was stored there)."""
    seen: list[dict[str, str]] = []

    class Forward(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)))
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "content-encoding")}
            req = urllib.request.Request(target + self.path, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    status, answer = resp.status, resp.read()
            except urllib.error.HTTPError as e:
                status, answer = e.code, e.read()
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, name="forwarder", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("precision", ["s", "ms", "us", "ns"])
async def test_v2_precision_and_a_bucket_for_the_daemons_own_series(
    victoria: VictoriaMetricsServer, tmp_path: Path, precision: str
) -> None:
    with forwarding(victoria.url) as (url, seen):
        await _v2_write(url, victoria, tmp_path, precision)
    assert sorted((q["bucket"], q["precision"]) for q in seen) == [
        ("lobbyd_daemon", precision),
        ("readings", precision),
    ]


async def _v2_write(url: str, victoria: VictoriaMetricsServer, tmp_path: Path, precision: str) -> None:
    cfg = InfluxV2Config.model_validate(
        {"url": url, "org": "o", "bucket": "readings", "daemon_bucket": "lobbyd_daemon",
         "precision": precision, "flush_interval_s": 0.05}
    )  # fmt: skip
    w, own = writers(cfg, tmp_path)
    assert own is not None
    ts = when()
    async with running(w), running(own):
        record(Recorder("b1", w, own=own, precision=precision), ts)
        await eventually(lambda: (w.stats().sent_points, own.stats().sent_points) == (1, 2), what="points sent")
    rows: list[Any] = victoria.export('{__name__=~"reading_value|health_evaluations"}', min_rows=2)
    got = sorted((r["metric"]["__name__"], r["timestamps"]) for r in rows)
    at_ms = expected_ns(ts, precision) // 1_000_000  # VictoriaMetrics keeps milliseconds
    assert got == [("health_evaluations", [at_ms]), ("reading_value", [at_ms])]


async def test_a_spool_left_under_another_setting_is_reported_not_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Points spooled in ms stay where they are when the precision is set back to ns (replayed as ns they
    would land in 1970), and the start says so; a drained spool of another setting is not mentioned."""
    clock = VirtualClock(time.time())
    state = tmp_path / "state"
    left = Spool(state / "spool-ms", budget_bytes=1 << 20, clock=clock)
    left.open()
    left.append(["reading,branch=b1 value=1.0 1700000000000"])
    left.close()
    drained = Spool(state / "spool-us-daemon", budget_bytes=1 << 20, clock=clock)
    drained.open()
    drained.append(['event,branch=b1 text="x" 1700000000000000'])
    record = drained.peek()
    assert record is not None
    drained.commit(record)
    drained.close()
    cfg = write_config(
        tmp_path, mqtt_port=1, device_ports={"fresh_air": 1, "lights": 1}, influx_url="http://127.0.0.1:1",
        rules_dir=copy_rules(tmp_path),
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="lobbyd"):
        build_daemon(load_config(cfg), clock=clock, watch_rules=False)
    warned = [r.getMessage() for r in caplog.records if "spooled under another" in r.getMessage()]
    assert len(warned) == 1 and "spool-ms " in warned[0]
    assert has_pending(state / "spool-ms", clock=clock)  # kept
