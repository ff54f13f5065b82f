"""Pure parts of the service: the health policy, the log rate limit, the sd_notify client."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from daemon.health import HealthPolicy, Sample
from daemon.logs import RepeatFilter
from daemon.systemd import Notifier, watchdog_seconds


def _policy() -> HealthPolicy:
    return HealthPolicy(max_loop_lag_s=5, max_eval_gap_s=30, max_mqtt_retry_gap_s=40)


def _s(at: float, *, lag: float = 0, up: bool = True, attempts: int = 1, evals: int = 0) -> Sample:
    return Sample(
        at=at, loop_lag_s=lag, mqtt_connected=up, mqtt_subscribed=up, mqtt_attempts=attempts, evaluations=evals
    )


def test_healthy_while_evaluating_and_subscribed() -> None:
    p = _policy()
    assert all(p.assess(_s(t, evals=t)).ok for t in range(0, 100, 5))


def test_stalled_evaluations_stop_the_watchdog() -> None:
    p = _policy()
    assert p.assess(_s(0, evals=7)).ok
    assert p.assess(_s(30, evals=7)).ok  # at the bound
    h = p.assess(_s(31, evals=7))
    assert not h.ok and h.problems == ("no rule evaluation for 31s",)
    assert p.assess(_s(32, evals=8)).ok  # progress again


def test_a_blocked_loop_is_unhealthy_for_that_round() -> None:
    p = _policy()
    h = p.assess(_s(0, lag=6.0))
    assert h.problems == ("event loop was blocked for 6.0s",)


@pytest.mark.parametrize(
    ("attempts_at_50", "healthy"),
    [(9, True), (3, False)],  # retrying (attempts grow) is healthy; a link that stopped trying is not
)
def test_broker_down_is_healthy_only_while_retrying(attempts_at_50: int, healthy: bool) -> None:
    p = _policy()
    assert p.assess(_s(0, up=False, attempts=3, evals=0)).ok
    assert p.assess(_s(50, up=False, attempts=attempts_at_50, evals=1)).ok is healthy


def test_connected_but_not_subscribed_counts_as_down() -> None:
    p = _policy()
    p.assess(Sample(0, 0, True, False, 1, 0))
    assert not p.assess(Sample(41, 0, True, False, 1, 1)).ok


def test_repeat_filter_passes_once_per_interval_and_counts() -> None:
    now = [0.0]
    f = RepeatFilter(60, clock=lambda: now[0])

    def rec(msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("lobbyd", level, __file__, 1, msg, args, None)

    assert f.filter(rec("no sensor message for %.0fs", 130.0))
    assert not f.filter(rec("no sensor message for %.0fs", 140.0))  # numbers do not make it new
    assert f.filter(rec("device %s offline: %s", "lights", "timeout"))  # other text: passes
    assert not f.filter(rec("device %s offline: %s", "lights", "timeout"))
    assert f.filter(rec("decision %s", "x", level=logging.INFO))  # below WARNING: never limited
    assert f.filter(rec("decision %s", "x", level=logging.INFO))
    now[0] = 61.0
    r = rec("no sensor message for %.0fs", 200.0)
    assert f.filter(r)
    assert "[1 similar suppressed in 60s]" in r.getMessage()
    assert f.suppressed == 2


def test_notifier_sends_datagrams(tmp_path: Path) -> None:
    path = tmp_path / "n"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(path))
    try:
        n = Notifier.from_env({"NOTIFY_SOCKET": str(path)})
        assert n.enabled
        assert n.ready("all\nwell")
        assert n.watchdog()
        assert srv.recv(4096) == b"READY=1\nSTATUS=all well"
        assert srv.recv(4096) == b"WATCHDOG=1"
        n.close()
    finally:
        srv.close()
    off = Notifier.from_env({})
    assert not off.enabled and not off.ready() and off.sent == 0


def test_notifier_never_raises_when_systemd_is_gone(tmp_path: Path) -> None:
    n = Notifier(str(tmp_path / "nobody-listens"))
    assert n.watchdog() is False


def test_watchdog_seconds() -> None:
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # for another pid
    assert watchdog_seconds({}) is None
