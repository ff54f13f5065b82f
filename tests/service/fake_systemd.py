"""Plays systemd's side of ``sd_notify``: a datagram socket the daemon sends READY/STATUS/WATCHDOG to."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Notification:
    """One datagram: its fields (``KEY=value`` lines) and when it arrived (monotonic seconds)."""

    fields: dict[str, str]
    at: float
    raw: bytes = b""


@dataclass
class FakeSystemd:
    """Collects notifications; ``env()`` is what systemd would put in the service's environment."""

    path: Path
    sock: socket.socket
    watchdog_s: float | None = None
    received: list[Notification] = field(default_factory=list)
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    def env(self) -> dict[str, str]:
        out = {"NOTIFY_SOCKET": str(self.path)}
        if self.watchdog_s is not None:
            out["WATCHDOG_USEC"] = str(int(self.watchdog_s * 1e6))
        return out

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 65536)
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            self.received.append(Notification(fields, time.monotonic(), data))
            self._new.set()

    def with_key(self, key: str, value: str | None = None) -> list[Notification]:
        return [n for n in self.received if key in n.fields and (value is None or n.fields[key] == value)]

    def statuses(self) -> list[str]:
        return [n.fields["STATUS"] for n in self.with_key("STATUS")]

    async def wait_for(
        self, predicate: Callable[[Notification], bool], *, after: int = 0, timeout: float = 30.0
    ) -> Notification:
        """The first notification (index >= ``after``) satisfying ``predicate``; waits for it."""
        async with asyncio.timeout(timeout):
            seen = after
            while True:
                for n in self.received[seen:]:
                    if predicate(n):
                        return n
                seen = max(seen, len(self.received))
                self._new.clear()
                await self._new.wait()

    async def wait_key(
        self, key: str, value: str | None = None, *, after: int = 0, timeout: float = 30.0
    ) -> Notification:
        return await self.wait_for(
            lambda n: key in n.fields and (value is None or n.fields[key] == value), after=after, timeout=timeout
        )


@contextlib.asynccontextmanager
async def fake_systemd(*, watchdog_s: float | None = None) -> AsyncIterator[FakeSystemd]:
    """Bind the notify socket in a short temp directory (AF_UNIX paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sdn-", dir="/tmp") as d:
        path = Path(d) / "notify"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.setblocking(False)
        fake = FakeSystemd(path, sock, watchdog_s)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(fake._pump(), name="fake-systemd")
            try:
                yield fake
            finally:
                task.cancel()
                sock.close()
