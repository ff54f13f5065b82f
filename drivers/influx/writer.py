"""The time-series writer: batches points, never blocks the caller, never loses a point silently.

Paths a point can take::

    submit() ─► memory queue ─► batch ─► server                      (normal)
                     │             └──► spool ─► replay ─► server    (server down, or spool not empty)
                     └─ full ─────────► spool                        (queue overflow)

While anything waits in the spool, new batches are appended behind it, so points reach the server
in the order they were submitted. The replayer retries the oldest record with bounded exponential
backoff and jitter. A 4xx answer means a bad point: the batch is split in halves until the bad
line(s) are found; those are logged, appended to ``rejected.lp`` in the spool directory (with the
server's message as a ``#`` comment) and counted, and the rest is written.

Events for the daemon's annotations go to ``on_event(kind, text)``: ``spool`` (left by a previous run,
spooling started, replay finished, a corrupt record skipped, the oldest dropped past the budget, the
spool unwritable — disk full... — and writable again, once per episode) and ``rejected`` (a point set
aside). Lost points are counted by reason. ``last_error`` clears on success; ``last_error_at`` stays.

The constructor does no I/O. :meth:`InfluxWriter.open` reads the secret (a missing one stops the start
with its own error, not from a task) and takes over the spool a previous run left; the composition
root calls it once ``on_event`` is wired. ``run()`` and ``flush()`` open a writer not yet opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from ..backoff import Backoff
from ..clock import Clock, SystemClock, Timer
from ..timegrid import next_slot
from ..writefault import reason_of
from .config import InfluxV1Config, InfluxV2Config, redact_url, resolve_secret
from .errors import InfluxRejected, InfluxUnavailable
from .spool import Spool
from .stats import WriterStats
from .transport import Transport, open_transport

__all__ = ["InfluxWriter", "WriterStats"]

_log = logging.getLogger("drivers.influx")


class InfluxWriter:
    """Batched, spooling line-protocol writer for InfluxDB v1 / v2 APIs.

    :meth:`open` it (I/O: secret, spool), run :meth:`run` in the daemon's TaskGroup, call :meth:`submit`
    from the event-loop thread; on shutdown await :meth:`flush`. Time, the flush slots and the replay
    backoff follow ``clock``; ``rng`` seeds the backoff's jitter; ``transport`` replaces the HTTP
    transport the config names (tests).
    """

    def __init__(
        self,
        config: InfluxV2Config | InfluxV1Config,
        *,
        spool_dir: Path,
        clock: Clock | None = None,
        on_event: Callable[[str, str], None] | None = None,
        rng: random.Random | None = None,
        transport: Transport | None = None,
    ) -> None:
        self._cfg = config
        self._queue_size, self._batch_size = config.queue_size, config.batch_size  # read on every submit
        self._secret: SecretStr | None = None
        self._opened = False
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._backoff = Backoff(config.retry_initial_s, config.retry_max_s, rng=rng)
        self._on_event = on_event
        self._buf: deque[str] = deque()
        self._wake = asyncio.Event()
        self._spooled = asyncio.Event()
        self._transport = transport  # None: opened from the config by run()
        self._sent = self._replayed = self._spooled_points = self._rejected = self._requests = 0
        self._io_dropped: dict[str, int] = {}  # points the spool could not take, by reason ("disk full")
        self._spool_seen = (0, True)  # the spool's fault (episodes, cleared) as last reported in an event
        self._last_error: str | None = None
        self._last_error_at: float | None = None  # kept when the error is cleared
        self._failing = False
        self._head_done: tuple[int, int, int] = (-1, -1, 0)  # (seq, offset, lines already sent)
        self._last_sync = self._clock.monotonic()  # fsync pacing: a wall-clock step must not stall it
        self._rejected_path = spool_dir / "rejected.lp"
        budget = int(config.spool_budget_mb * 1024 * 1024)
        self._spool = Spool(spool_dir, budget_bytes=budget, fsync=config.fsync, clock=self._clock, on_event=self._event)

    def __repr__(self) -> str:
        return f"InfluxWriter(api={self._cfg.api}, url={redact_url(self._cfg.url)})"

    # -- opening ---------------------------------------------------------------------------------
    def open(self) -> None:
        """Read the secret and take over the spool a previous run left (reported as a ``spool`` event).
        Idempotent. Raises :class:`~drivers.influx.errors.InfluxConfigError` when the secret cannot be
        read; a spool that cannot be opened (disk full...) is tried again when points must be spooled."""
        if self._opened:
            return
        cfg = self._cfg
        if isinstance(cfg, InfluxV2Config):
            self._secret = resolve_secret(cfg.token_env, cfg.token_file, "influx token")
        else:
            self._secret = resolve_secret(cfg.password_env, cfg.password_file, "influx password")
        with contextlib.suppress(OSError):  # a full or read-only disk: no spool until it can be opened
            self._open_spool()
        self._opened = True

    def _open_spool(self) -> None:
        if self._spool.opened:
            return
        try:
            self._spool.open()
        except OSError as e:
            self._spool.fault.failed(e, self._spool.directory)
            self._spool_fault_changed()
            raise
        if self._spool.has_pending():
            self._spooled.set()
            self._event("spool", f"{self._spool.pending_bytes} bytes left in the spool by a previous run")

    # -- producer side -------------------------------------------------------------------------
    def submit(self, line: str) -> None:
        """Queue one line of line protocol. Never blocks, never raises; a full queue goes to disk."""
        buf = self._buf
        n = len(buf)
        if n >= self._queue_size:
            lines = [*buf, line]
            buf.clear()
            self._to_spool(lines, "memory queue full")
            self._wake.set()  # so the batcher syncs the spool within the flush interval
            return
        buf.append(line)
        if n == 0 or n + 1 == self._batch_size:  # the first point starts the flush interval; a full batch ends it
            self._wake.set()

    def stats(self) -> WriterStats:
        """Current counters."""
        oldest = self._spool.oldest_spooled_at
        by_reason = {"spool budget": self._spool.dropped_points, "corrupt spool record": self._spool.corrupt_points}
        by_reason |= self._io_dropped
        return WriterStats(
            queue_depth=len(self._buf),
            sent_points=self._sent,
            replayed_points=self._replayed,
            spooled_points=self._spooled_points,
            spooled_bytes=self._spool.pending_bytes if self._spool.has_pending() else 0,
            spool_oldest_s=max(0.0, self._clock.now() - oldest) if oldest is not None else 0.0,
            dropped_points=sum(by_reason.values()),
            rejected_points=self._rejected,
            corrupt_records=self._spool.corrupt_records,
            last_error=self._last_error,
            requests=self._requests,
            last_error_at=self._last_error_at,
            dropped_by_reason={why: n for why, n in by_reason.items() if n},
            spool_problem=self._spool.fault.problem,
        )

    # -- lifecycle -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Batch, send, spool and replay until cancelled; on the way out, memory goes to the spool."""
        self.open()
        if self._transport is None:
            self._transport = open_transport(self._cfg, self._secret)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._batcher(tg), name="influx-batcher")
                tg.create_task(self._replayer(), name="influx-replayer")
        finally:
            self._to_spool(list(self._buf), "shutdown")
            self._buf.clear()
            self._spool.close()
            transport, self._transport = self._transport, None
            if transport is not None:
                transport.close()

    async def flush(self, timeout: float) -> None:
        """Send what is queued within ``timeout`` seconds, or spool it; fsync the spool. The spool itself
        is not replayed here (that is :meth:`run`'s job, now or at the next start)."""
        self.open()
        own = self._transport is None
        transport = open_transport(self._cfg, self._secret) if own else self._transport
        assert transport is not None
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while self._buf and not self._spool.has_pending():
                        batch = self._take()
                        if not await self._send_or_spool(transport, batch):
                            break
        finally:
            self._to_spool(list(self._buf), "shutdown")
            self._buf.clear()
            self._spool.close()
            if own:
                transport.close()

    # -- internals -----------------------------------------------------------------------------
    def _event(self, kind: str, text: str) -> None:
        _log.info("%s: %s", kind, text)
        if self._on_event is not None:
            try:
                self._on_event(kind, text)
            except Exception:
                _log.exception("on_event callback failed")

    def _error(self, text: str) -> None:
        self._last_error, self._last_error_at = text, self._clock.now()

    def _take(self) -> list[str]:
        buf = self._buf
        if len(buf) <= self._batch_size:  # the usual case: everything queued fits one request
            batch = list(buf)
            buf.clear()
            return batch
        return [buf.popleft() for _ in range(self._batch_size)]

    def _spool_fault_changed(self) -> None:
        """One event when the spool stops taking points (disk full...), one when it takes them again."""
        fault = self._spool.fault
        seen, self._spool_seen = self._spool_seen, (fault.episodes, fault.problem is None)
        if seen == self._spool_seen:
            return
        if fault.problem is not None:
            self._error(f"cannot write the spool: {fault.problem}")
            self._event("spool", f"cannot write the spool ({fault.problem}): points that must be spooled are dropped")
        else:
            lost = ", ".join(f"{n} ({why})" for why, n in self._io_dropped.items())
            self._event("spool", f"the spool is written again; points lost so far: {lost or 'none'}")

    def _drop(self, n: int, e: OSError) -> None:
        self._io_dropped[reason_of(e)] = self._io_dropped.get(reason_of(e), 0) + n

    def _to_spool(self, lines: Sequence[str], why: str) -> None:
        if not lines:
            return
        try:
            self._open_spool()  # a queue overflowing before open(): the spool still takes it
        except OSError as e:
            self._drop(len(lines), e)
            return
        was_empty = not self._spool.has_pending()
        for i in range(0, len(lines), self._batch_size):
            chunk = lines[i : i + self._batch_size]
            try:
                self._spool.append(chunk)
                self._spooled_points += len(chunk)
            except OSError as e:
                self._drop(len(chunk), e)
        self._spool_fault_changed()
        if was_empty and self._spool.has_pending():
            self._event("spool", f"spooling to disk: {why}")
        if self._spool.has_pending():  # not for nothing: the replayer would end the outage it found
            self._spooled.set()

    def _set_aside(self, line: str, err: InfluxRejected) -> None:
        self._rejected += 1
        self._error(f"point rejected: HTTP {err.status}: {err.message}")
        _log.warning("influx rejected a point (HTTP %s: %s): %.300s", err.status, err.message, line)
        stamp = datetime.fromtimestamp(self._clock.now(), UTC).isoformat(timespec="seconds")
        note = err.message.replace("\n", " ")
        try:
            with self._rejected_path.open("a", encoding="utf-8") as f:
                f.write(f"# {stamp} HTTP {err.status}: {note}\n{line}\n")
        except OSError as e:
            _log.error("cannot write %s: %s", self._rejected_path, e.strerror)
        self._event("rejected", f"point set aside after HTTP {err.status}: {note[:200]}")

    async def _deliver(self, transport: Transport, lines: Sequence[str], done: list[int]) -> None:
        """Write ``lines``; bisect on 4xx to set aside only the bad ones. ``done[0]`` counts the
        prefix handled (written or set aside) so a failure part-way resumes where it stopped."""
        try:
            await transport.write(lines)
        except InfluxRejected as e:
            if len(lines) == 1:
                self._set_aside(lines[0], e)
                done[0] += 1
                return
            mid = len(lines) // 2
            await self._deliver(transport, lines[:mid], done)
            await self._deliver(transport, lines[mid:], done)
            return
        done[0] += len(lines)
        self._sent += len(lines)
        self._requests += 1
        self._last_error = None  # recovered; its time stays in last_error_at

    def _unavailable(self, err: InfluxUnavailable) -> None:
        self._error(str(err))
        if not self._failing:
            _log.warning("influx unavailable, spooling: %s", err)
            self._failing = True

    async def _send_or_spool(self, transport: Transport, batch: list[str]) -> bool:
        """Send a batch directly; what is not sent goes to the spool. True if all was sent."""
        done = [0]
        try:
            await self._deliver(transport, batch, done)
        except InfluxUnavailable as e:
            self._unavailable(e)
            self._to_spool(batch[done[0] :], str(e))
            return False
        except BaseException:
            self._to_spool(batch[done[0] :], "shutdown")
            raise
        self._failing = False
        return True

    async def _send_in_slot(self, batch: list[str], slots: asyncio.Semaphore) -> None:
        try:
            assert self._transport is not None
            await self._send_or_spool(self._transport, batch)
        finally:
            slots.release()

    async def _batcher(self, tg: asyncio.TaskGroup) -> None:
        # Idle (nothing queued) it sleeps until the first point; then it waits until a batch is full or
        # the next flush slot (a multiple of flush_interval_s on the clock: at most one interval after
        # that point), sends, and starts over: one request per interval at a steady trickle, no wake-ups
        # at all when nothing is recorded. Under a backlog up to the transport's max_in_flight requests
        # run at once (tasks of the writer's own TaskGroup).
        cfg = self._cfg
        assert self._transport is not None
        slots = asyncio.Semaphore(self._transport.max_in_flight)
        while True:
            await self._wake.wait()
            self._wake.clear()
            if len(self._buf) < cfg.batch_size:
                await self._until_full_or_slot()
            if self._buf and not self._spool.has_pending():
                await slots.acquire()  # before taking: what waits for a slot still counts as queued
                batch = self._take()
                if batch:
                    tg.create_task(self._send_in_slot(batch, slots), name="influx-send")
                else:
                    slots.release()
            if self._buf and self._spool.has_pending():
                self._to_spool(self._take(), "behind the spool")
            now = self._clock.monotonic()
            if now - self._last_sync >= cfg.flush_interval_s:  # policy "batch": at most once per interval
                self._spool.sync_if_dirty()
                self._spool.retry_fault()
                self._last_sync = now
            if self._buf or self._spool.dirty:
                self._wake.set()  # more to send, or spooled records still to sync: another round

    async def _until_full_or_slot(self) -> None:
        """Wait until a batch is full or the next flush slot (drivers/timegrid.py) on the clock: at most
        one interval after the first point, and in the same wake-up as the daemon's other periodic work."""
        due = False

        def slot() -> None:
            nonlocal due
            due = True
            self._wake.set()

        timer: Timer = self._clock.call_at(next_slot(self._clock.now(), self._cfg.flush_interval_s), slot)
        try:
            while not due and len(self._buf) < self._cfg.batch_size:
                await self._wake.wait()
                self._wake.clear()
        finally:
            timer.cancel()

    async def _replayer(self) -> None:
        replayed_this_outage = 0
        while True:
            await self._spooled.wait()
            rec = self._spool.peek()
            if rec is None:
                self._spooled.clear()
                if replayed_this_outage:
                    self._event("spool", f"spool replayed: {replayed_this_outage} points written")
                    replayed_this_outage = 0
                self._failing = False
                continue
            seq, off, skip = self._head_done
            skip = skip if (seq, off) == (rec.seq, rec.offset) else 0
            done = [0]
            assert self._transport is not None
            try:
                await self._deliver(self._transport, rec.lines[skip:], done)
            except InfluxUnavailable as e:
                self._head_done = (rec.seq, rec.offset, skip + done[0])
                self._replayed += done[0]
                replayed_this_outage += done[0]
                self._unavailable(e)
                await self._clock.sleep(self._backoff.next_delay())
                continue
            self._replayed += done[0]
            replayed_this_outage += done[0]
            self._head_done = (-1, -1, 0)
            self._spool.commit(rec)
            self._spool_fault_changed()
            self._backoff.reset()
