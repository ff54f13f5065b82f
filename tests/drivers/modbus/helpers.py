"""Helpers for the Modbus tests: a virtual clock/sleep, a condition poller, profiles, a socat pty pair."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.modbus import DeviceProfile, load_profile

ROOT = Path(__file__).resolve().parents[3]
DEVICES = ROOT / "config" / "devices"


class VirtualClock:
    """``clock()`` returns virtual POSIX seconds; ``await sleep(dt)`` advances them and yields once."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, dt: float) -> None:
        self.sleeps.append(dt)
        self.now += max(0.0, dt)
        await asyncio.sleep(0)

    def advance(self, dt: float) -> None:
        self.now += dt


async def eventually(predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` (real time) until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def profile(name: str) -> DeviceProfile:
    return load_profile(DEVICES / f"{name}.yaml")


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals (``socat``): a serial line without hardware."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat not installed")
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    proc = subprocess.Popen(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("socat did not create the pty pair")
            time.sleep(0.01)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
