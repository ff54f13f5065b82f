"""Shared pieces of the benchmarks: a raw MQTT publisher, process meters, percentiles, a lobby rig.

The publisher writes pre-encoded MQTT 3.1.1 PUBLISH packets (QoS 0) straight to a socket, so the
sender is never the bottleneck and costs the same for every receiver compared against it.
Only 127.0.0.1 is ever used; every loop is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
_PAGE = os.sysconf("SC_PAGE_SIZE")


# ---- MQTT wire ---------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def connect_packet(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session and a 60 s keep-alive."""
    body = _str("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + _str(client_id)
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH."""
    body = _str(topic) + payload
    return b"\x30" + _varint(len(body)) + body


class RawPublisher:
    """A blocking MQTT publisher on one socket: ``send(blob)`` writes pre-encoded packets."""

    def __init__(self, port: int, client_id: str = "bench-pub") -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(client_id))
        ack = self.sock.recv(4)
        if len(ack) != 4 or ack[0] != 0x20 or ack[3] != 0:
            raise RuntimeError(f"CONNACK refused: {ack!r}")

    def send(self, blob: bytes) -> None:
        self.sock.sendall(blob)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")
        self.sock.close()


# ---- measuring -----------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


@dataclass
class ProcSample:
    """CPU seconds (user+system) and resident set size of one process at one instant."""

    t: float
    cpu_s: float
    rss_mb: float


def proc_sample(pid: int) -> ProcSample:
    """Read /proc/<pid>/task/*/schedstat and statm (Linux).

    CPU is the scheduler's run time of the process's threads in ns, not ``stat``'s user+system in
    clock ticks: at 0.4 % of a core a 40 s window is only 16 ticks, and one tick is 6 % of it. (A
    thread that ended between two samples takes its time with it; the daemon's threads live as long
    as it does.)
    """
    ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            ns += int((task / "schedstat").read_text().split()[0])
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return ProcSample(time.monotonic(), ns / 1e9, rss_pages * _PAGE / 1e6)


def cpu_share(a: ProcSample, b: ProcSample) -> float:
    """Fraction of one core used between two samples."""
    return (b.cpu_s - a.cpu_s) / max(1e-9, b.t - a.t)


def py(*args: str, log: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python <args>`` from the repository root (stdout+stderr to ``log`` or discarded)."""
    out: Any = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    finally:
        if log is not None:
            out.close()


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; return the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_for(pred: Callable[[], bool], *, timeout: float, what: str, every: float = 0.01) -> float:
    """Poll ``pred`` until true; return the monotonic time it became true. Raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# ---- a lobby for the daemon ----------------------------------------------------------------------
@contextlib.asynccontextmanager
async def device_sims() -> AsyncIterator[dict[str, Any]]:
    """The two standard device simulators (fresh air, lights) on free loopback ports."""
    from drivers.modbus import load_profile
    from simulators.devices import DeviceSimulator
    from simulators.servers import free_port

    profiles = REPO / "config" / "devices"
    fresh = DeviceSimulator.tcp(load_profile(profiles / "freshair-standard.yaml"), 1, port=free_port())
    lights = DeviceSimulator.tcp(load_profile(profiles / "lighting-standard.yaml"), 1, port=free_port())
    async with fresh, lights:
        yield {"fresh_air": fresh, "lights": lights}


def daemon_config(
    tmp: Path,
    *,
    mqtt_port: int,
    device_ports: dict[str, int],
    influx_url: str | None,
    database: str = "lobbyd",
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """The shipped config and rules, pointed at this run's servers (see tests/e2e/harness.py)."""
    from tests.e2e.harness import copy_rules, write_config

    tmp.mkdir(parents=True, exist_ok=True)
    rules = tmp / "rules"
    if not rules.exists():
        rules = copy_rules(tmp)

    def _edit(data: dict[str, Any]) -> None:
        if data.get("influx"):
            data["influx"]["database"] = database
        if edit is not None:
            edit(data)

    return write_config(
        tmp, mqtt_port=mqtt_port, device_ports=device_ports, influx_url=influx_url, rules_dir=rules, edit=_edit
    )


def daemon_status(control_socket: Path, cmd: str = "status") -> dict[str, Any]:
    """Ask a running daemon for its status, or its ``counters`` (cheap to poll), over its control socket."""
    import json

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(control_socket))
        s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    answer: dict[str, Any] = json.loads(buf)
    return answer


@dataclass(frozen=True)
class ReceiverRun:
    """A reference receiver's burst: messages it counted, seconds to the last, its CPU and memory."""

    count: int
    seconds: float
    cpu_s: float | None  # None when it exited before it could be sampled
    rss_mb: float | None


def receiver_run(kind: str, port: int, blob: bytes, n: int, *, topic: str | None = None) -> ReceiverRun:
    """Start ``bench.receivers`` of ``kind``, send ``blob`` (``n`` messages) to the broker, time it."""
    argv = [sys.executable, "-m", "bench.receivers", kind, "--port", str(port), "--n", str(n)]
    proc = subprocess.Popen(
        [*argv, *(["--topic", topic] if topic else [])], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{kind} receiver did not start")
        s0 = proc_sample(proc.pid)
        pub = RawPublisher(port, f"bench-pub-{kind}")
        t0 = time.monotonic()
        pub.send(blob)
        line = proc.stdout.readline()
        s1 = proc_sample(proc.pid) if proc.poll() is None else None
        pub.close()
        out = json.loads(line)
    finally:
        proc.wait(30)
    cpu = (s1.cpu_s - s0.cpu_s) if s1 else None
    return ReceiverRun(out["count"], out["t_done"] - t0, cpu, s1.rss_mb if s1 else None)


def mqtt_connected(control_socket: Path) -> bool:
    """Whether a running daemon says it is connected to its broker (False while it cannot answer yet)."""
    try:
        return bool(daemon_status(control_socket)["mqtt"]["connected"])
    except (OSError, ValueError, KeyError):
        return False
