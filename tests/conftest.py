"""Shared fixtures: real servers on free loopback ports (no mocks for broker, device or database)."""

from __future__ import annotations

import fcntl
import os
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``waits(seconds)`` first, longest first; tests marked ``alone`` last; the others keep
    their order.

    The ``waits`` tests spend minutes waiting in real time (the daemon runs on the wall clock).
    ./run.sh test runs the suite on pytest-xdist workers with ``--dist loadgroup``, which hands tests out
    one at a time in this order: each long wait starts at once on a worker of its own and overlaps the
    rest of the suite, instead of being left to the end where nothing else runs beside it. An ``alone``
    test waits for every other worker's test to end (see ``_alone_or_beside``), so it goes where that
    costs least: at the end, when the other workers run out of tests.
    """

    def order(item: pytest.Item) -> float:
        if item.get_closest_marker("alone") is not None:
            return float("inf")
        mark = item.get_closest_marker("waits")
        return -float(mark.args[0]) if mark is not None else 0.0

    items.sort(key=order)  # stable: equal keys keep the collection order


@pytest.fixture(autouse=True)
def _alone_or_beside(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """On pytest-xdist workers, a test marked ``alone`` runs while no other test of this run does.

    Such a test asserts wall-clock latency of the daemon (a status round trip, a parse time limit), which
    the other workers' daemons and servers would otherwise share the cores with. Every test holds a
    shared lock on a file of this run's temp root while it runs; an ``alone`` test holds it exclusively,
    so it waits for the tests running beside it to end (being last in the order, it then has the cores to
    itself). Without xdist (one process) there is nothing to wait for.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    root = tmp_path_factory.getbasetemp().parent  # shared by this run's workers (popen-gw0, popen-gw1, ...)
    alone = request.node.get_closest_marker("alone") is not None
    with (root / "alone.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
