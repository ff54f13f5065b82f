"""Helpers for the Modbus tests: the virtual clock, a condition poller, profiles, a socat pty pair."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from drivers.clock import VirtualClock
from drivers.modbus import DeviceProfile, load_profile
from tests.polling import eventually

ROOT = Path(__file__).resolve().parents[3]
DEVICES = ROOT / "config" / "devices"
T = TypeVar("T")


async def drive(clock: VirtualClock, aw: Awaitable[T], *, waits: list[float] | None = None) -> T:
    """Await ``aw``, moving ``clock`` to each deadline it sleeps until (appended to ``waits``).

    Only for code that is the one sleeper on ``clock`` while it runs (a connected bus sleeps on it
    only to reconnect).
    """
    task = asyncio.ensure_future(aw)
    while True:
        await eventually(lambda: task.done() or clock.next_deadline is not None, what="an answer or a sleep")
        deadline = clock.next_deadline
        if task.done() or deadline is None:
            return await task
        if waits is not None:
            waits.append(deadline - clock.now())
        clock.set(deadline)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(1_700_000_000.0)


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
