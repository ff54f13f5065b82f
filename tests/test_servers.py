"""The harness itself: each real server starts on loopback and answers."""

from __future__ import annotations

import time
import urllib.request

from simulators.servers import InfluxServer, MosquittoServer, VictoriaMetricsServer


def test_influxd_write_and_query(influxd: InfluxServer) -> None:
    influxd.create_database("t")
    req = urllib.request.Request(f"{influxd.url}/write?db=t", data=b"m,a=b v=1 1000000000", method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 204
    answer = influxd.query("SELECT v FROM m", db="t")
    assert answer["results"][0]["series"][0]["values"] == [[1000000000, 1]]  # type: ignore[index]


def test_victoria_accepts_v2_write(victoria: VictoriaMetricsServer) -> None:
    ts = time.time_ns() // 1_000_000 * 1_000_000  # VictoriaMetrics rejects samples outside retention
    req = urllib.request.Request(
        f"{victoria.url}/api/v2/write?org=o&bucket=b&precision=ns",
        data=f"m,a=b v=2 {ts}".encode(),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 204
    rows = victoria.export('{__name__="m_v"}')
    assert rows and rows[0]["values"] == [2]
    assert rows[0]["timestamps"] == [ts // 1_000_000]


def test_mosquitto_starts(mosquitto: MosquittoServer) -> None:
    assert mosquitto.running
