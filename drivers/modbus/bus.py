"""One :class:`ModbusBus` per physical link: a serialised, fair request queue and one reconnect loop.

Requests from several devices (unit ids) on the same TCP gateway or RS-485 line are taken in
round-robin order per unit id, so a unit that keeps timing out costs the others at most one of its
timeouts per turn. While the link is down, requests fail fast with :class:`ConnectionLost`; a single
connector task reconnects, waiting between attempts with :class:`drivers.backoff.Backoff` on the
injected clock. The wire itself (framing, matching answers to requests) is pymodbus's, in ``link``.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType

from ..backoff import Backoff
from ..clock import Clock, SystemClock
from .config import RtuOverTcpTransport, RtuTransport, TcpTransport
from .errors import ConnectionLost, DeviceException, ModbusError, ProtocolError
from .link import Link, Request, check_timeout
from .profile import RegisterType

__all__ = ["BusStats", "ModbusBus"]

RECENT_ATTEMPTS = 16  # connect attempt times kept in BusStats.recent_attempts
QUICK_RECONNECT_S = 1.0  # reconnect this often (with jitter: every 0.5-1 s) ...
QUICK_RECONNECT_FOR_S = 60.0  # ... for this long after the last answer, then on the growing backoff


@dataclass(slots=True)
class BusStats:
    """Counters of one bus, for tests, health and the time series (bounded: no list grows with uptime)."""

    requests: int = 0  # sent to the link
    failures: int = 0  # failed without an answer (timeout, lost link, bad answer, queue full)
    connections: int = 0  # successful connects
    connect_attempts: int = 0  # in total
    attempts_since_connect: int = 0  # failed attempts since the last successful connect
    recent_attempts: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_ATTEMPTS))  # clock times


@dataclass(slots=True)
class _Job:
    unit_id: int
    request: Request
    timeout_s: float
    future: asyncio.Future[list[int]]


class ModbusBus:
    """Serialises all requests on one link. Use as ``async with ModbusBus(transport) as bus``."""

    def __init__(
        self,
        transport: TcpTransport | RtuTransport | RtuOverTcpTransport,
        *,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 3.0,
        max_pending: int = 256,
        rng: random.Random | None = None,
    ) -> None:
        self.transport = transport
        self.endpoint = transport.key
        self.stats = BusStats()
        self.last_error: ModbusError | None = None
        self._link = Link(transport)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._backoff = backoff if backoff is not None else Backoff(0.5, 30.0, rng=rng)
        self._connect_timeout = check_timeout(connect_timeout)
        self._max_pending = max_pending
        self._queues: dict[int, deque[_Job]] = {}
        self._turns: deque[int] = deque()
        self._wakeup = asyncio.Event()
        self._want_connect = asyncio.Event()
        self._attempt: asyncio.Future[bool] | None = None
        self._answered = True  # an answer came since the last connect attempt: the next one is immediate
        self._quick = Backoff(QUICK_RECONNECT_S, QUICK_RECONNECT_S, rng=rng)
        self._last_answer = -float("inf")  # clock time of the last answer (quick reconnects follow it)
        self._tg: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._serving = False  # the worker holds a request (waiting for a connect attempt, or exchanging)

    @property
    def connected(self) -> bool:
        """True while the link is open."""
        return self._link.connected

    @property
    def busy(self) -> bool:
        """A request waiting or being served, or a connect attempt running (simulations on a virtual
        clock wait for this to clear: the I/O takes real time)."""
        return self._serving or self._attempt is not None or any(self._queues.values())

    async def __aenter__(self) -> ModbusBus:
        if self._tg is not None:
            raise RuntimeError("ModbusBus is already entered")
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._want_connect.set()
        self._tasks = [
            self._tg.create_task(self._connector(), name=f"modbus-connect {self.endpoint}"),
            self._tg.create_task(self._worker(), name=f"modbus-bus {self.endpoint}"),
        ]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        tg, self._tg = self._tg, None
        for task in self._tasks:
            task.cancel()
        try:
            if tg is not None:
                await tg.__aexit__(et, exc, tb)
        finally:
            self._link.close()
            for queue in self._queues.values():
                for job in queue:
                    if not job.future.done():
                        job.future.set_exception(ConnectionLost("bus closed", endpoint=self.endpoint))
            self._queues.clear()
            self._turns.clear()

    async def read(
        self, unit_id: int, register_type: RegisterType, address: int, count: int, *, timeout_s: float
    ) -> list[int]:
        """Read ``count`` registers (0..65535) or bits (0/1) of ``unit_id`` from wire ``address``, in turn."""
        return await self._submit(unit_id, Request.read(register_type, address, count), timeout_s)

    async def write(
        self, unit_id: int, register_type: RegisterType, address: int, values: list[int], *, timeout_s: float
    ) -> None:
        """Write ``values`` (holding registers or coils) to ``unit_id`` at wire ``address``, in turn."""
        await self._submit(unit_id, Request.write(register_type, address, values), timeout_s)

    async def _submit(self, unit_id: int, request: Request, timeout_s: float) -> list[int]:
        if self._tg is None:
            raise RuntimeError("use 'async with ModbusBus(...)' before sending requests")
        if not 0 <= unit_id <= 255:
            raise ValueError(f"unit id must be 0..255, not {unit_id}")
        check_timeout(timeout_s)
        if sum(len(q) for q in self._queues.values()) >= self._max_pending:
            self.stats.failures += 1
            raise ModbusError("bus queue full", endpoint=self.endpoint, unit_id=unit_id, address=request.address)
        job = _Job(unit_id, request, timeout_s, asyncio.get_running_loop().create_future())
        queue = self._queues.setdefault(unit_id, deque())
        if not queue and unit_id not in self._turns:
            self._turns.append(unit_id)
        queue.append(job)
        self._wakeup.set()
        try:
            return await job.future
        finally:
            if not job.future.done():
                job.future.cancel()  # the worker skips it

    async def _next_job(self) -> _Job:
        while True:
            while self._turns:
                unit = self._turns.popleft()
                queue = self._queues.get(unit)
                if not queue:
                    continue
                job = queue.popleft()
                if queue:
                    self._turns.append(unit)  # round robin: its next request waits for the others
                if not job.future.done():
                    return job
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _worker(self) -> None:
        while True:
            self._serving = False
            job = await self._next_job()
            self._serving = True
            if not self._link.connected:
                self._want_connect.set()
                await asyncio.sleep(0)  # let the connector start an immediate attempt if one is due
            attempt = self._attempt
            if not self._link.connected and attempt is not None:
                try:
                    await asyncio.shield(attempt)  # a connect attempt is running right now
                except asyncio.CancelledError:
                    if not attempt.cancelled():
                        raise  # this worker is being cancelled (bus closing), not the attempt

            if job.future.done():
                continue
            if not self._link.connected:
                self.stats.failures += 1
                err = self.last_error
                why = f": {err.message}" if err is not None else ""
                _fail(
                    job,
                    ConnectionLost(
                        f"link down, reconnecting{why}",
                        endpoint=self.endpoint,
                        unit_id=job.unit_id,
                        address=job.request.address,
                    ),
                )
                continue
            await self._serve(job)

    async def _serve(self, job: _Job) -> None:
        self.stats.requests += 1
        try:
            result = await self._link.execute(job.unit_id, job.request, job.timeout_s)
        except DeviceException as exc:
            self._on_answer()  # the link works: an answer came back
            _fail(job, exc)
        except Exception as exc:  # whatever escaped the edge fails this request, never the bus
            self.stats.failures += 1
            err = exc if isinstance(exc, ModbusError) else _unexpected(exc, self.endpoint, job)
            _fail(job, err)
            if not self._link.connected:
                self.last_error = err
                self._want_connect.set()
        else:
            self._on_answer()
            if not job.future.done():
                job.future.set_result(result)

    def _on_answer(self) -> None:
        self._answered = True
        self._last_answer = self._clock.now()
        self._backoff.reset()

    async def _connector(self) -> None:
        """The one reconnect loop: attempt at once, then wait a growing, jittered delay until connected.

        For the first ``QUICK_RECONNECT_FOR_S`` after the last answer it tries every second (a gateway
        back after a short outage is used within a second), then the backoff grows. The backoff starts
        again only once a request is answered: a link that connects and drops at once keeps waiting
        longer, instead of being hammered.
        """
        while True:
            await self._want_connect.wait()
            while not self._link.connected:
                if not self._answered:
                    quick = self._clock.now() - self._last_answer < QUICK_RECONNECT_FOR_S
                    await self._clock.sleep(self._quick.next_delay() if quick else self._backoff.next_delay())
                self._answered = False
                self.stats.connect_attempts += 1
                self.stats.recent_attempts.append(self._clock.now())
                self._attempt = asyncio.get_running_loop().create_future()
                try:
                    await self._link.open(self._connect_timeout)
                except ConnectionLost as exc:
                    self.last_error = exc
                    self.stats.attempts_since_connect += 1
                else:
                    self.stats.attempts_since_connect = 0
                    self.stats.connections += 1
                    self.last_error = None
                finally:
                    self._attempt.set_result(self._link.connected)
                    self._attempt = None
            self._want_connect.clear()


def _unexpected(exc: BaseException, endpoint: str, job: _Job) -> ProtocolError:
    return ProtocolError(
        f"unexpected {type(exc).__name__}: {exc}", endpoint=endpoint, unit_id=job.unit_id, address=job.request.address
    )


def _fail(job: _Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)
