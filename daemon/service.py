"""Running under systemd: readiness, a health-gated watchdog, status text, reload and log rate limits.

* :class:`Notifier` speaks the ``sd_notify`` protocol (one datagram per message on the AF_UNIX socket
  named by ``$NOTIFY_SOCKET``); outside systemd it does nothing.
* :class:`HealthPolicy` decides from a :class:`Sample` whether the daemon deserves a ``WATCHDOG=1``:
  the event loop is responsive, the MQTT session is up and subscribed (or its reconnect loop is visibly
  retrying — a restart cannot fix a broker that is down), and rule evaluations keep progressing.
* :class:`Supervisor` samples the daemon from inside its event loop, so a wedged loop sends nothing and
  systemd restarts the service after ``WatchdogSec``.
* :func:`serve` runs a :class:`daemon.app.Daemon` with all of the above; :func:`reload` is SIGHUP.
* :class:`RepeatFilter` rate-limits repeated log lines of level WARNING and above.
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.status import needs_attention

if TYPE_CHECKING:
    from daemon.app import Daemon

__all__ = [
    "TEST_HOOK_ENV",
    "Health",
    "HealthPolicy",
    "Notifier",
    "RepeatFilter",
    "Sample",
    "Supervisor",
    "config_changes",
    "install_log_rate_limit",
    "install_signal_handlers",
    "reload",
    "serve",
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


# ---- health ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """What the supervisor observed at one instant (``at`` in monotonic seconds)."""

    at: float
    loop_lag_s: float
    mqtt_connected: bool
    mqtt_subscribed: bool
    mqtt_attempts: int  # successful connects + failed attempts: grows while the link retries
    evaluations: int


@dataclass(frozen=True)
class Health:
    """The verdict: ``ok`` means feed the watchdog."""

    ok: bool
    problems: tuple[str, ...] = ()


class HealthPolicy:
    """Stateful judge of successive :class:`Sample` s (progress is measured between samples)."""

    def __init__(self, *, max_loop_lag_s: float, max_eval_gap_s: float, max_mqtt_retry_gap_s: float) -> None:
        self.max_loop_lag_s = max_loop_lag_s
        self.max_eval_gap_s = max_eval_gap_s
        self.max_mqtt_retry_gap_s = max_mqtt_retry_gap_s
        self._evals: tuple[int, float] | None = None
        self._attempts: tuple[int, float] | None = None

    @classmethod
    def for_daemon(cls, daemon: Daemon, *, watchdog_s: float | None) -> HealthPolicy:
        """Bounds derived from the daemon's config (evaluation tick, MQTT backoff and timeouts)."""
        mqtt = daemon.cfg.mqtt
        return cls(
            max_loop_lag_s=(watchdog_s / 2) if watchdog_s else 10.0,
            max_eval_gap_s=max(30.0, 10 * daemon.cfg.evaluate_every_s),
            max_mqtt_retry_gap_s=2 * (mqtt.reconnect_max_s + mqtt.timeout_s) + 10.0,
        )

    def assess(self, s: Sample) -> Health:
        problems: list[str] = []
        if s.loop_lag_s > self.max_loop_lag_s:
            problems.append(f"event loop was blocked for {s.loop_lag_s:.1f}s")
        if self._evals is None or s.evaluations != self._evals[0]:
            self._evals = (s.evaluations, s.at)
        elif s.at - self._evals[1] > self.max_eval_gap_s:
            problems.append(f"no rule evaluation for {s.at - self._evals[1]:.0f}s")
        if self._attempts is None or s.mqtt_attempts != self._attempts[0]:
            self._attempts = (s.mqtt_attempts, s.at)
        if not (s.mqtt_connected and s.mqtt_subscribed) and s.at - self._attempts[1] > self.max_mqtt_retry_gap_s:
            problems.append(f"MQTT link neither subscribed nor retrying for {s.at - self._attempts[1]:.0f}s")
        return Health(not problems, tuple(problems))


# ---- the supervisor -------------------------------------------------------------------------------
def _sample(daemon: Daemon, at: float, lag: float) -> Sample:
    link = daemon.link
    return Sample(
        at=at,
        loop_lag_s=lag,
        mqtt_connected=link.connected,
        mqtt_subscribed=daemon.subscribed.is_set(),
        mqtt_attempts=link.connects + sum(link.failures.values()),
        evaluations=daemon.stats.evaluations,
    )


def status_line(daemon: Daemon) -> str:
    """One line for ``systemctl status``: the verdict of ``lobbyd status`` in short."""
    if not daemon.ready.is_set():
        link = daemon.link
        err = f"; last error: {link.last_error}" if link.last_error is not None else ""
        return (
            f"starting: waiting for MQTT broker {daemon.cfg.mqtt.host}:{daemon.cfg.mqtt.port} "
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
        self.policy = policy or HealthPolicy.for_daemon(daemon, watchdog_s=watchdog_s)
        self._monotonic = monotonic
        self._sleep = sleep
        self.pings = 0
        self.last_health = Health(True)
        self._status = ""
        self._readied = False

    def step(self, lag: float) -> Health:
        """One observation: judge, ping if healthy, announce READY/STATUS when they change."""
        health = self.policy.assess(_sample(self.daemon, self._monotonic(), lag))
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


# ---- reload and signals ---------------------------------------------------------------------------
def config_changes(daemon: Daemon, path: Path) -> list[str]:
    """Top-level config sections (and device profiles) that differ on disk from the running ones.

    These need a restart: sensors, MQTT, devices, InfluxDB and paths are wired into live connections.
    Raises :class:`daemon.yamlsource.ConfigError` if the file on disk is invalid now.
    """
    from daemon.config import load_config

    new = load_config(path)
    old_cfg, new_cfg = daemon.cfg, new.config
    changed = [name for name in type(old_cfg).model_fields if getattr(old_cfg, name) != getattr(new_cfg, name)]
    old_profiles = daemon.loaded.profiles
    changed += [f"device profile of {n}" for n in sorted(new.profiles) if new.profiles[n] != old_profiles.get(n)]
    return changed


def reload(daemon: Daemon, notifier: Notifier, config_path: Path) -> dict[str, Any]:
    """SIGHUP: reload the rules (safe at any time; a bad file keeps its last good version) and say
    which parts of the config file changed and need ``systemctl restart lobbyd`` to take effect."""
    from daemon.yamlsource import ConfigError

    notifier.reloading()
    answer = daemon.reload_rules("SIGHUP")
    try:
        changed = config_changes(daemon, config_path)
        note = (
            "config unchanged"
            if not changed
            else "config changed in " + ", ".join(changed) + ": NOT applied, needs a restart"
        )
    except ConfigError as exc:
        changed = []
        note = f"config file is invalid now, running config kept: {str(exc).splitlines()[0]}"
    (_LOG.warning if "NOT applied" in note or "invalid" in note else _LOG.info)("reload: %s", note)
    daemon.stats.last_reload = f"{answer['text']}; {note}"
    notifier.ready(f"reloaded: {daemon.stats.last_reload}")
    return {**answer, "text": daemon.stats.last_reload, "needs_restart": changed}


def install_signal_handlers(daemon: Daemon, notifier: Notifier, config_path: Path) -> None:
    """SIGTERM/SIGINT: stop (STOPPING=1 first); SIGHUP: :func:`reload`."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        notifier.stopping()
        daemon.stop()

    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    loop.add_signal_handler(signal.SIGHUP, lambda: reload(daemon, notifier, config_path))


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


# ---- log rate limiting ----------------------------------------------------------------------------
class RepeatFilter(logging.Filter):
    """Let a repeated WARNING/ERROR line through at most once per ``interval_s``.

    Lines are "the same" when their format string and non-numeric arguments match (so "no sensor
    message for 130s" and "…140s" are one line). The first line after a quiet interval says how many
    were suppressed. Lower levels pass untouched.
    """

    def __init__(self, interval_s: float = 60.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._seen: dict[tuple[object, ...], tuple[float, int]] = {}
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.name, record.levelno, str(record.msg), *(a for a in args if not isinstance(a, int | float)))
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.interval_s:
            self._seen[key] = (last[0], last[1] + 1)
            self.suppressed += 1
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} [{last[1]} similar suppressed in {self.interval_s:.0f}s]"
        if len(self._seen) >= 4096:  # bounded: forget the oldest
            self._seen.pop(next(iter(self._seen)))
        self._seen.pop(key, None)
        self._seen[key] = (now, 0)
        return True


def install_log_rate_limit(interval_s: float = 60.0) -> RepeatFilter:
    """Attach one :class:`RepeatFilter` to every handler of the root logger."""
    f = RepeatFilter(interval_s)
    for h in logging.getLogger().handlers:
        h.addFilter(f)
    return f
