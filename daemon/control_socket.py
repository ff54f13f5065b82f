"""Local control socket: ``lobbyd status``, ``why`` and ``reload`` ask the running daemon here.

A unix socket in the state directory, mode 0660 (owner and group only). One JSON request per
connection (``{"cmd": "status"}``, ``{"cmd": "why", "target": "fresh_air.fan_speed"}``,
``{"cmd": "reload"}``, ``{"cmd": "counters"}``: messages received, readings accepted, rejections by
reason, rule evaluations and clock ticks — cheap enough to poll), one JSON answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from daemon.introspect import collect_counters, collect_status
from daemon.parts import Parts

__all__ = ["ControlServer", "commands", "request"]

_LOG = logging.getLogger("lobbyd.control")
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_REQUEST = 64 * 1024


def commands(p: Parts) -> Handler:
    """The daemon's answers: ``status``, ``counters``, ``reload``, ``why`` (a ValueError is the client's)."""

    async def handle(req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return collect_status(p)
        if cmd == "counters":
            return collect_counters(p)
        if cmd == "reload":
            return await p.reload.reload("requested")
        if cmd == "why":
            return {"points": p.control.why(str(req.get("target", "")))}
        raise ValueError(f"unknown command {cmd!r}")

    return handle


class ControlServer:
    """Serves one JSON request per connection on a unix socket (mode 0660), until cancelled."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler

    async def run(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST)
        self.path.chmod(0o660)
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await asyncio.wait_for(reader.readline(), timeout=5)
            try:
                req = json.loads(raw)
                if not isinstance(req, dict):
                    raise TypeError("request must be a JSON object")
                answer = await self._handler(req)
            except (ValueError, TypeError, KeyError) as exc:
                answer = {"error": str(exc)}
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError) as exc:
            _LOG.debug("control client: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def request(path: Path, req: dict[str, Any], *, timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to a running daemon; raises ``OSError`` when none is listening."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=16 * 1024 * 1024), timeout)
    try:
        writer.write(json.dumps(req).encode() + b"\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    answer: dict[str, Any] = json.loads(raw)
    return answer
