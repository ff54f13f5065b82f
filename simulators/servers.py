"""Start real local servers (mosquitto, influxd 1.x, victoria-metrics) on free loopback ports.

Used by the test-suite, the demo and the benchmarks. Each server gets its own temporary
directory and config; nothing listens outside 127.0.0.1. Readiness is awaited by polling
the server's own port/endpoint with a deadline (never a fixed sleep).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "InfluxServer",
    "MosquittoServer",
    "ServerError",
    "VictoriaMetricsServer",
    "free_port",
    "wait_until",
]

LOOPBACK = "127.0.0.1"


class ServerError(RuntimeError):
    """A local server could not be started."""


def free_port() -> int:
    """Return a TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], *, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; raise ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((LOOPBACK, port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return bool(200 <= resp.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def _require(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if path is None:
        raise ServerError(f"{binary} is not installed (apt-get install it; see README)")
    return path


@dataclass
class _Process:
    name: str
    argv: list[str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / f"{self.name}.log"

    def spawn(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class _Server:
    """Common start/stop/restart behaviour; subclasses build argv and readiness."""

    name = "server"

    def __init__(self, workdir: Path | None = None) -> None:
        self._own_tmp = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"lobbyd-{self.name}-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._p: _Process | None = None

    # -- to override -------------------------------------------------------------------------
    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        return _port_open(self.port)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, *, timeout: float = 30.0) -> None:
        self._p = _Process(self.name, self._argv(), self.workdir)
        self._p.spawn()
        p = self._p

        def ready() -> bool:
            if not p.alive():
                raise ServerError(f"{self.name} exited during start:\n{p.log_tail()}")
            return self._ready()

        wait_until(ready, timeout=timeout, what=f"{self.name} on port {self.port}")

    def stop(self, *, kill: bool = False) -> None:
        if self._p is not None:
            self._p.terminate(kill=kill)
            self._p = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._p is not None and self._p.alive()

    @property
    def pid(self) -> int:
        """The server process's id (for CPU and memory samples); raises when it is not running."""
        if self._p is None or self._p.proc is None:
            raise ServerError(f"{self.name} is not running")
        return self._p.proc.pid

    def log_tail(self, n: int = 30) -> str:
        return self._p.log_tail(n) if self._p else ""

    def close(self) -> None:
        self.stop()
        if self._own_tmp:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MosquittoServer(_Server):
    """A mosquitto broker with its own config.

    ``users`` creates a password file (and disables anonymous access); ``acl`` is the text of an
    ACL file; ``tls`` is a tuple (cafile, certfile, keyfile) for a TLS listener on ``port``;
    ``persistence`` keeps sessions, subscriptions and queued messages in ``workdir`` across a
    restart (saved when mosquitto stops, as a broker's ``systemctl restart`` does).
    """

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: tuple[Path, Path, Path] | None = None,
        extra_config: str = "",
        persistence: bool = False,
    ) -> None:
        super().__init__(workdir)
        self.persistence = persistence
        self.users = users
        self.acl = acl
        self.tls = tls
        self.extra_config = extra_config
        self.host = LOOPBACK

    def _argv(self) -> list[str]:
        binary = _require("mosquitto")
        lines = [
            f"listener {self.port} {LOOPBACK}",
            *(
                ["persistence true", f"persistence_location {self.workdir}/"]
                if self.persistence
                else ["persistence false"]
            ),
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0 and not any(ln.strip().startswith("user ") for ln in self.extra_config.splitlines()):
            # As root mosquitto drops to the 'mosquitto' user before reading password, ACL and key files,
            # which live in a root-only temporary directory: stay root (loopback-only test broker).
            lines.append("user root")
        if self.users:
            pw = self.workdir / "passwd"
            pw.write_text("")
            pw.chmod(0o600)
            for user, password in self.users.items():
                subprocess.run(
                    [_require("mosquitto_passwd"), "-b", str(pw), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += [f"password_file {pw}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl = self.workdir / "acl"
            acl.write_text(self.acl)
            lines.append(f"acl_file {acl}")
        if self.tls is not None:
            ca, cert, key = self.tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        lines.append(self.extra_config)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return [binary, "-c", str(conf)]


class InfluxServer(_Server):
    """Debian's influxd 1.x with data in a private directory; HTTP API on ``port``."""

    name = "influxd"

    def __init__(self, workdir: Path | None = None, *, auth: tuple[str, str] | None = None) -> None:
        super().__init__(workdir)
        self.rpc_port = free_port()
        self.auth = auth

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _argv(self) -> list[str]:
        binary = _require("influxd")
        d = self.workdir
        conf = d / "influxdb.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "{LOOPBACK}:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[http]
  enabled = true
  bind-address = "{LOOPBACK}:{self.port}"
  log-enabled = false
  auth-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""
        )
        return [binary, "-config", str(conf)]

    def _ready(self) -> bool:
        return _http_ok(f"{self.url}/ping")

    def query(self, q: str, *, db: str) -> dict[str, object]:
        """Run an InfluxQL query; return the decoded JSON answer."""
        import json
        import urllib.parse

        data = urllib.parse.urlencode({"q": q, "db": db, "epoch": "ns"}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10) as resp:
            answer: dict[str, object] = json.loads(resp.read())
        return answer

    def create_database(self, db: str) -> None:
        self.query(f'CREATE DATABASE "{db}"', db=db)


class VictoriaMetricsServer(_Server):
    """Debian's victoria-metrics single node; accepts influx line protocol on /write and /api/v2/write."""

    name = "victoria-metrics"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def _argv(self) -> list[str]:
        binary = _require("victoria-metrics")
        return [
            binary,
            f"-httpListenAddr={LOOPBACK}:{self.port}",
            f"-storageDataPath={self.workdir}/data",
            "-loggerLevel=ERROR",
            "-search.latencyOffset=0s",
            "-search.disableCache",
        ]

    def _ready(self) -> bool:
        return _http_ok(f"{self.url}/health")

    def rows_added(self) -> int:
        """How many samples the storage has taken in (VictoriaMetrics buffers ~1 s before adding)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith("vm_rows_added_to_storage_total "):
                    return int(float(line.split()[1]))
        return 0

    def export(
        self, match: str = '{__name__!=""}', *, min_rows: int = 1, timeout: float = 15.0
    ) -> list[dict[str, object]]:
        """Every raw sample matching ``match`` (JSON lines from /api/v1/export).

        Waits until the storage has taken in at least ``min_rows`` samples and made them searchable.
        """
        import json
        import urllib.parse

        url = f"{self.url}/api/v1/export?" + urllib.parse.urlencode({"match[]": match})
        rows: list[dict[str, object]] = []

        def enough() -> bool:
            nonlocal rows
            with contextlib.suppress(urllib.error.URLError, OSError):
                urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5).close()
            with urllib.request.urlopen(url, timeout=10) as resp:
                rows = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
            return sum(len(r["values"]) for r in rows) >= min_rows  # type: ignore[arg-type,misc,unused-ignore]

        with contextlib.suppress(TimeoutError):
            wait_until(enough, timeout=timeout, what=f"{min_rows} samples in VictoriaMetrics")
        return rows


@contextlib.contextmanager
def running(server: _Server) -> Iterator[_Server]:
    """Start ``server``; stop it and remove its files afterwards."""
    server.start()
    try:
        yield server
    finally:
        server.close()
