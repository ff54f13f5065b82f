"""A TCP proxy on loopback that a test can cut and restore: the network between daemon and broker.

Cutting closes the listening socket and every proxied connection (both ends see a reset or EOF, as
after a pulled cable noticed by TCP); restoring listens again on the same port. The broker behind it
stays up all the while, which is the case a persistent MQTT session is for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from simulators.servers import LOOPBACK, free_port

__all__ = ["TcpProxy", "tcp_proxy"]


class TcpProxy:
    """Forwards ``LOOPBACK:port`` to ``LOOPBACK:target_port`` while up."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.connections = 0  # accepted since the start
        self.upstream_bytes = 0  # forwarded to the target since the start (client to server)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def up(self) -> bool:
        return self._server is not None

    async def restore(self) -> None:
        """Listen (again) on the same port."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, LOOPBACK, self.port, reuse_address=True)

    async def cut(self) -> None:
        """Stop listening and drop every proxied connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for w in list(self._writers):
            w.transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for src, dst, upstream in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.create_task(self._pipe(src, dst, upstream=upstream))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, upstream: bool) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                if upstream:
                    self.upstream_bytes += len(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            dst.transport.abort()
            self._writers.discard(dst)

    async def close(self) -> None:
        await self.cut()


@contextlib.asynccontextmanager
async def tcp_proxy(target_port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(target_port)
    await proxy.restore()
    try:
        yield proxy
    finally:
        await proxy.close()
