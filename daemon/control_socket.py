"""Local control socket: ``lobbyd status``, ``why`` and ``reload`` ask the running daemon here.

A unix socket in the state directory, mode 0660 (owner and group only). One JSON request per
connection (``{"cmd": "status"}``, ``{"cmd": "why", "target": "fresh_air.fan_speed"}``,
``{"cmd": "reload"}``, ``{"cmd": "counters"}``: messages received, readings accepted, rejections by
reason, rule evaluations and clock ticks — cheap enough to poll; ``{"cmd": "override", "target":
"fresh_air.fan_speed", "value": 2, "duration": "30m"}`` or ``..., "clear": true}``), one JSON answer.
An override records the local user who asked, from the kernel (SO_PEERCRED), never from the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pwd
import socket
import struct
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Protocol

from daemon.introspect import collect_counters, collect_status
from daemon.parts import Parts
from drivers.writefault import describe

__all__ = ["ControlServer", "commands", "request"]

_LOG = logging.getLogger("lobbyd.control")
MAX_REQUEST = 64 * 1024


class Handler(Protocol):
    def __call__(self, req: dict[str, Any], peer: str = ...) -> Awaitable[dict[str, Any]]: ...


def peer_of(writer: asyncio.StreamWriter) -> str:
    """``user alice (uid 1000)``: who is at the other end of a unix socket connection, as the kernel says."""
    sock = writer.get_extra_info("socket")
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except (AttributeError, OSError):
        return "an unknown local user"
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def commands(p: Parts) -> Handler:
    """The daemon's answers: ``status``, ``counters``, ``reload``, ``why``, ``override`` (a ValueError is the
    client's)."""

    async def handle(req: dict[str, Any], peer: str = "an unknown local user") -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return collect_status(p)
        if cmd == "counters":
            return collect_counters(p)
        if cmd == "reload":
            return await p.reload.reload_all("lobbyd reload", p.loaded.path)
        if cmd == "why":
            return {"points": p.control.why(str(req.get("target", "")))}
        if cmd == "override":
            fields = {k: v for k, v in req.items() if k not in ("cmd", "target")}
            text = p.overrides.request(str(req.get("target", "")), fields, f"control socket, {peer}")
            return {"ok": True, "text": text}
        raise ValueError(f"unknown command {cmd!r}")

    return handle


class ControlServer:
    """Serves one JSON request per connection on a unix socket (mode 0660), until cancelled."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler

    async def run(self) -> None:
        """Serve until cancelled. A socket that cannot be created (a read-only or full state directory)
        is logged and leaves the daemon running without one: controlling the lobby matters more."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST)
            self.path.chmod(0o660)
        except OSError as exc:
            _LOG.error("no control socket (lobbyd status cannot reach this daemon): %s", describe(exc, self.path))
            return
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(OSError):  # gone already, or the disk went read-only meanwhile
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await asyncio.wait_for(reader.readline(), timeout=5)
            try:
                req = json.loads(raw)
                if not isinstance(req, dict):
                    raise TypeError("request must be a JSON object")
                answer = await self._handler(req, peer_of(writer))
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
