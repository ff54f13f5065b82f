"""Running under systemd: readiness, a health-gated watchdog, status text, reload and signals.

* :class:`Notifier` speaks the ``sd_notify`` protocol (one datagram per message on the AF_UNIX socket
  named by ``$NOTIFY_SOCKET``); outside systemd it does nothing.
* :class:`Supervisor` samples the daemon from inside its event loop (:mod:`daemon.health` judges), so a
  wedged loop sends nothing and systemd restarts the service after ``WatchdogSec``.
* :func:`serve` runs a :class:`daemon.app.Daemon` with the supervisor; :func:`reload` is SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from daemon.app import Daemon
from daemon.health import Health, HealthPolicy, sample
from daemon.status import needs_attention

__all__ = [
    "TEST_HOOK_ENV",
    "Notifier",
    "Supervisor",
    "install_signal_handlers",
    "reload",
    "serve",
    "status_line",
    "watchdog_seconds",
]

_LOG = logging.getLogger("lobbyd.service")

#: Test-only hook: when this variable names a file, the daemon polls for it and, when it appears,
#: blocks its event loop synchronously for the number of seconds written in it (then deletes it).
#: This is how the tests wedge the loop; it is inert unless the variable is set.
TEST_HOOK_ENV = "LOBBYD_TEST_BLOCK_LOOP_FILE"


class Notifier:
    """``sd_notify`` client: one datagram per message to ``$NOTIFY_SOCKET``; a no-op without it.

    Never raises: a lost notification must not take the daemon down (systemd notices silence anyway).
    """

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self.sent = 0
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """The notifier systemd asked for (``NOTIFY_SOCKET``), or a disabled one."""
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; True if it was handed to the socket."""
        if self._sock is None or self.address is None:
            return False
        addr = self.address
        if addr.startswith("@"):  # abstract namespace
            addr = "\0" + addr[1:]
        try:
            self._sock.sendto("\n".join(fields).encode("utf-8"), addr)
        except OSError as exc:
            _LOG.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def extend_timeout(self, seconds: float) -> bool:
        return self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]


def watchdog_seconds(environ: Mapping[str, str] = os.environ) -> float | None:
    """``WatchdogSec`` as systemd passed it (``WATCHDOG_USEC``, for this pid), or None."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec) / 1e6
    except ValueError:
        return None
    return value if value > 0 else None


def status_line(daemon: Daemon) -> str:
    """One line for ``systemctl status``: the verdict of ``lobbyd status`` in short."""
    if not daemon.ready.is_set():
        link, mqtt = daemon.parts.link, daemon.parts.loaded.config.mqtt
        err = f"; last error: {link.last_error}" if link.last_error is not None else ""
        return (
            f"starting: waiting for MQTT broker {mqtt.host}:{mqtt.port} "
            f"({sum(link.failures.values())} failed attempts{err})"
        )
    st = daemon.status()
    problems = needs_attention(st)
    fresh = sum(1 for s in st["sensors"] if s["fresh"])
    online = sum(1 for d in st["devices"] if d["online"])
    head = (
        "OK"
        if not problems
        else f"ATTENTION: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
    )
    return (
        f"{head}; sensors {fresh}/{len(st['sensors'])} fresh, devices {online}/{len(st['devices'])} online, "
        f"{st['rules']['count']} rules, {st['evaluations']} evaluations"
    )


class Supervisor:
    """Feeds the watchdog while healthy, says READY when the daemon is, keeps STATUS current."""

    def __init__(
        self,
        daemon: Daemon,
        notifier: Notifier,
        *,
        watchdog_s: float | None,
        policy: HealthPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.daemon = daemon
        self.notifier = notifier
        self.watchdog_s = watchdog_s
        self.period_s = min(watchdog_s / 4, 5.0) if watchdog_s else 5.0
        self.policy = policy or HealthPolicy.for_config(daemon.parts.loaded.config, watchdog_s=watchdog_s)
        self._monotonic = monotonic
        self._sleep = sleep
        self.pings = 0
        self.last_health = Health(True)
        self._status = ""
        self._readied = False

    def step(self, lag: float) -> Health:
        """One observation: judge, ping if healthy, announce READY/STATUS when they change."""
        health = self.policy.assess(sample(self.daemon.parts, self._monotonic(), lag))
        if health.problems != self.last_health.problems:
            for p in health.problems:
                _LOG.error("unhealthy, not feeding the watchdog: %s", p)
            if not health.problems and self.last_health.problems:
                _LOG.info("healthy again")
        self.last_health = health
        if health.ok and self.watchdog_s:
            self.notifier.watchdog()
            self.pings += 1
        text = status_line(self.daemon) if health.ok else "UNHEALTHY: " + "; ".join(health.problems)
        if self.daemon.ready.is_set() and not self._readied:
            self._readied = True
            self.notifier.ready(text)
            self._status = text
        elif not self._readied and health.ok:
            self.notifier.extend_timeout(self.period_s * 3)  # still starting, and visibly trying
        if text != self._status:
            self._status = text
            self.notifier.status(text)
        return health

    async def run(self) -> None:
        """Forever: wake every ``period_s`` (or at once on READY), measure the loop's lag, step."""
        lag = 0.0
        while True:
            self.step(lag)
            start = self._monotonic()
            if self._readied:
                await self._sleep(self.period_s)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.daemon.ready.wait(), self.period_s)
            lag = max(0.0, self._monotonic() - start - self.period_s)


def _block_if_asked(path: Path) -> None:
    """The synchronous half of the test hook: blocking the thread (and so the loop) is its purpose."""
    try:
        seconds = float(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return
    path.unlink(missing_ok=True)
    _LOG.warning("test hook: blocking the event loop for %.1fs", seconds)
    time.sleep(seconds)


async def _test_hook_block_loop(path: Path) -> None:
    """See :data:`TEST_HOOK_ENV`. Blocks the whole event loop on purpose, as a wedged daemon would."""
    while True:
        await asyncio.sleep(0.1)
        _block_if_asked(path)


async def reload(daemon: Daemon, notifier: Notifier, config_path: Path) -> dict[str, Any]:
    """SIGHUP: reload the rules (safe at any time; a bad file keeps its last good version) and say
    which parts of the config file changed and need ``systemctl restart lobbyd`` to take effect."""
    notifier.reloading()
    answer = await daemon.parts.reload.reload_all("SIGHUP", config_path)
    notifier.ready(f"reloaded: {answer['text']}")
    return answer


def install_signal_handlers(daemon: Daemon, notifier: Notifier, config_path: Path) -> None:
    """SIGTERM/SIGINT: stop (STOPPING=1 first); SIGHUP: :func:`reload`."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        notifier.stopping()
        daemon.stop()

    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    reloads: set[asyncio.Task[dict[str, Any]]] = set()  # strong references while they run

    def hup() -> None:
        task = loop.create_task(reload(daemon, notifier, config_path), name="reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, hup)


async def serve(daemon: Daemon, notifier: Notifier, *, environ: Mapping[str, str] = os.environ) -> None:
    """Run ``daemon`` with the systemd supervisor (when under systemd) and the test hook (when set)."""
    async with asyncio.TaskGroup() as tg:
        helpers: list[asyncio.Task[None]] = []
        if notifier.enabled:
            sup = Supervisor(daemon, notifier, watchdog_s=watchdog_seconds(environ))
            helpers.append(tg.create_task(sup.run(), name="systemd-supervisor"))
        hook = environ.get(TEST_HOOK_ENV)
        if hook:
            helpers.append(tg.create_task(_test_hook_block_loop(Path(hook)), name="test-hook"))
        try:
            await daemon.run()
        finally:
            for t in helpers:
                t.cancel()
