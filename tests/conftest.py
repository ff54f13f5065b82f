"""Shared fixtures: real servers on free loopback ports (no mocks for broker, device or database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.servers import InfluxServer, MosquittoServer, VictoriaMetricsServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoServer]:
    server = MosquittoServer(tmp_path / "mosquitto")
    server.start()
    yield server
    server.close()


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[InfluxServer]:
    server = InfluxServer(tmp_path / "influxd")
    server.start()
    yield server
    server.close()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetricsServer]:
    server = VictoriaMetricsServer(tmp_path / "vm")
    server.start()
    yield server
    server.close()
