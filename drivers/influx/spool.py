"""On-disk spool: append-only segment files of CRC-checked, length-prefixed batches.

Layout of ``spool_dir``::

    000000000001.seg   segment files, replayed in ascending order
    cursor             "<segment> <byte offset>" of the next record to replay (atomic rename)
    rejected.lp        points the server refused with 4xx (written by the writer, not here)

A segment starts with the 8-byte magic ``LBDSPL01`` followed by records::

    offset  size  field
    0       4     L = length of the body in bytes (u32, big-endian)
    4       4     CRC-32 of bytes 8 .. 20+L (count, time and body)
    8       4     number of points in the body (u32, big-endian)
    12      8     spooled_at: POSIX seconds when the batch was spooled (f64, big-endian)
    20      L     body: UTF-8 line protocol, one point per line, lines joined by "\\n"

Every record is written with one ``write(2)`` on an ``O_APPEND`` descriptor, so a killed process
loses at most the record being written; a torn or corrupt record is skipped, counted and reported,
and the records before it replay. A new process never appends to an existing segment (its tail may
be torn): it starts a new one. Budget: when the segments together exceed ``budget_bytes`` the
OLDEST segments are deleted whole and the points in their unreplayed records are counted.

fsync policy: ``always`` fsyncs each record, each cursor update and the directory on segment
creation; ``batch`` fsyncs at most once per :meth:`Spool.sync_if_dirty` call (the writer calls it
once per flush interval) and on rotation/close; ``never`` leaves it to the OS. All three survive a
killed process; only ``always`` (and ``batch`` up to one flush interval) survive a power cut.
The constructor touches no file: :meth:`Spool.open` creates the directory and reads what a previous
run left, so the caller decides when that I/O (and its errors) happens.
Replay is at-least-once: a cursor update lost to a crash replays that record again, which InfluxDB
absorbs (same series and timestamp overwrite the same point).
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..clock import Clock
from ..writefault import WriteFault
from .config import FsyncPolicy

__all__ = ["MAGIC", "Spool", "SpoolRecord"]

MAGIC = b"LBDSPL01"
_HDR = struct.Struct(">IIId")
_MAX_BODY = 1 << 30


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled batch, as read back for replay."""

    seq: int
    offset: int
    end: int
    lines: tuple[str, ...]
    spooled_at: float


class Spool:
    """The writer's durable FIFO of batches. Synchronous; used from one thread (the event loop)."""

    def __init__(
        self,
        directory: Path,
        *,
        budget_bytes: int,
        fsync: FsyncPolicy = "batch",
        clock: Clock,
        on_event: Callable[[str, str], None] | None = None,
        segment_bytes: int | None = None,
    ) -> None:
        self.directory = directory
        self._budget = budget_bytes
        self._seg_max = segment_bytes or max(4096, min(budget_bytes // 8, 16 << 20))
        self._fsync = fsync
        self._clock = clock
        self._on_event = on_event
        self.dropped_points = 0  # the oldest segments, past the budget
        self.corrupt_points = 0  # in torn or corrupt records (those their headers name)
        self.corrupt_records = 0
        self._dirty = False
        self._head: SpoolRecord | None = None
        self._active: tuple[int, int] | None = None  # (seq, fd)
        self._sizes: dict[int, int] = {}
        self._cursor = (0, 0)
        self._next_seq = 1
        self._oldest: float | None = None
        self.opened = False
        self.fault = WriteFault("the time-series spool")  # the current write problem (disk full...), if any

    def open(self) -> None:
        """Create the directory and take over what a previous run left (segments, cursor); once.

        Segments before the cursor (fully replayed, their deletion interrupted) are removed. Until this
        runs the spool looks empty; :meth:`append`, :meth:`peek` and :meth:`commit` need it.
        """
        if self.opened:
            return
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        for p in sorted(directory.glob("*.seg")):
            if p.stem.isdigit():
                self._sizes[int(p.stem)] = p.stat().st_size
        cur_seq, cur_off = self._read_cursor()
        for seq in [s for s in self._sizes if s < cur_seq]:
            self._unlink(seq)  # never raises: a read-only spool keeps it until a later start
        self._cursor = (cur_seq, cur_off)
        self._next_seq = max([cur_seq, *self._sizes]) + 1
        self.opened = True
        if self._sizes:
            head = self.peek()
            self._oldest = head.spooled_at if head else None

    # -- paths and small helpers -------------------------------------------------------------
    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:012d}.seg"

    def _event(self, text: str) -> None:
        if self._on_event is not None:
            self._on_event("spool", text)

    def _read_cursor(self) -> tuple[int, int]:
        try:
            seq, off = (self.directory / "cursor").read_text().split()
            return int(seq), int(off)
        except (OSError, ValueError):
            return 0, 0

    def _write_cursor(self) -> None:
        """Never raises: a cursor that cannot be written (disk full) lags, and replay is at-least-once."""
        tmp = self.directory / "cursor.tmp"
        try:
            with tmp.open("w") as f:
                f.write(f"{self._cursor[0]} {self._cursor[1]}\n")
                if self._fsync == "always":
                    f.flush()
                    os.fsync(f.fileno())
            tmp.replace(self.directory / "cursor")
        except OSError as exc:
            self.fault.failed(exc, self.directory / "cursor")
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        else:
            self.fault.ok()

    def retry_fault(self) -> None:
        """After a write failed (a full or read-only disk), write the cursor again: once that works the
        spool is writable and its problem clears, instead of waiting for the next point to spool (which
        a healthy database may never send)."""
        if self.fault.problem is not None:
            self._write_cursor()

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _start_of(self, seq: int) -> int:
        return self._cursor[1] if seq == self._cursor[0] else 0

    def _unlink(self, seq: int) -> None:
        """Forget segment ``seq`` and delete it; never raises (a read-only spool keeps the file, and the
        cursor, past it, has the next start delete it)."""
        if self._active is not None and self._active[0] == seq:
            with contextlib.suppress(OSError):
                os.close(self._active[1])
            self._active = None
        try:
            self._path(seq).unlink(missing_ok=True)
        except OSError as exc:
            self.fault.failed(exc, self._path(seq))
        self._sizes.pop(seq, None)
        if self._head is not None and self._head.seq == seq:
            self._head = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def pending_bytes(self) -> int:
        """Bytes on disk not yet replayed (segment headers included)."""
        return sum(self._sizes.values()) - (self._cursor[1] if self._cursor[0] in self._sizes else 0)

    def has_pending(self) -> bool:
        """True when at least one record (valid or not) waits for replay."""
        return any(size > max(self._start_of(seq), len(MAGIC)) for seq, size in self._sizes.items())

    @property
    def oldest_spooled_at(self) -> float | None:
        """When the oldest pending record was spooled (POSIX s), or None when empty."""
        return self._oldest if self.has_pending() else None

    # -- writing -------------------------------------------------------------------------------
    def append(self, lines: Sequence[str]) -> None:
        """Append one batch as one record; drop the oldest segments if past the budget.

        Raises ``OSError`` when the record cannot be written (disk full, read-only, I/O error; also in
        :attr:`fault`): nothing of it is left in the spool, which goes on with the records before it."""
        if not lines:
            return
        body = "\n".join(lines).encode("utf-8")
        if not self.opened:
            raise RuntimeError("Spool.append() before open()")
        now = self._clock.now()
        meta = struct.pack(">Id", len(lines), now)
        record = struct.pack(">II", len(body), zlib.crc32(body, zlib.crc32(meta))) + meta + body
        was_empty = not self.has_pending()
        if self._active is not None and self._sizes[self._active[0]] + len(record) > self._seg_max:
            self._rotate()
        try:
            if self._active is None:
                self._new_segment()
            assert self._active is not None
            seq, fd = self._active
            self._write_record(seq, fd, record)
        except OSError as exc:
            self.fault.failed(exc, self.directory)
            raise
        self.fault.ok()
        if was_empty:
            self._oldest = now
        self._enforce_budget()

    def _new_segment(self) -> None:
        seq = self._next_seq
        self._next_seq += 1
        fd = os.open(self._path(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        try:
            self._write_all(fd, MAGIC)
            if self._fsync == "always":
                self._fsync_dir()
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                self._path(seq).unlink()
            raise
        self._active = (seq, fd)
        self._sizes[seq] = len(MAGIC)

    def _write_record(self, seq: int, fd: int, record: bytes) -> None:
        """One record, whole or not at all: a write cut short is cut off again (or, if even that fails, the
        segment is closed: readers stop at its known size, and the next record starts a new segment)."""
        try:
            self._write_all(fd, record)
            if self._fsync == "always":
                os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, self._sizes[seq])
            except OSError:
                self._rotate()
            raise
        self._sizes[seq] += len(record)
        if self._fsync != "always":
            self._dirty = True

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def _rotate(self) -> None:
        if self._active is not None:
            _, fd = self._active
            self._active = None
            try:
                if self._fsync != "never":
                    os.fsync(fd)
            except OSError as exc:
                self.fault.failed(exc, self.directory)
            finally:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _enforce_budget(self) -> None:
        while self._sizes and sum(self._sizes.values()) > self._budget:
            seq = next(iter(self._sizes))
            points = sum(len(r.lines) for r in self._records(seq, self._start_of(seq)))
            self._unlink(seq)
            self.dropped_points += points
            self._event(
                f"spool over its budget of {self._budget} bytes: dropped the oldest segment, {points} points lost"
            )
            self._oldest = None
            head = self.peek()
            self._oldest = head.spooled_at if head else None

    @property
    def dirty(self) -> bool:
        """Records were appended since the last sync (only meaningful under policy ``batch``)."""
        return self._dirty and self._fsync == "batch"

    def sync_if_dirty(self) -> None:
        """fsync the active segment if records were appended since the last sync (policy ``batch``)."""
        if self._dirty and self._active is not None and self._fsync == "batch":
            try:
                os.fsync(self._active[1])
            except OSError as exc:
                self.fault.failed(exc, self.directory)
        self._dirty = False

    def close(self) -> None:
        """Sync (unless policy ``never``) and close the active segment."""
        self._rotate()

    # -- reading -------------------------------------------------------------------------------
    def _read(self, seq: int, off: int) -> tuple[SpoolRecord | None, int, str, int]:
        """Read the record at ``off``: (record or None if corrupt, offset after it, problem, points lost).

        The points of a torn or corrupt record are those its header names, if it is whole and plausible
        (at most one point per body byte); a torn header loses an unknown number, counted as 0."""
        size = self._sizes[seq]
        with self._path(seq).open("rb") as f:
            if off < len(MAGIC):
                if f.read(len(MAGIC)) != MAGIC:
                    return None, size, "bad segment header", 0
                off = len(MAGIC)
                if off >= size:
                    return None, off, "", 0
            f.seek(off)
            hdr = f.read(_HDR.size)
            if len(hdr) < _HDR.size:
                return None, size, "truncated record header", 0
            length, crc, count, spooled_at = _HDR.unpack(hdr)
            lost = count if count <= length + 1 else 0
            if length > _MAX_BODY or off + _HDR.size + length > size:
                return None, size, "truncated record", lost
            body = f.read(length)
        end = off + _HDR.size + length
        if zlib.crc32(body, zlib.crc32(hdr[8:])) != crc:
            return None, end, "CRC mismatch", lost
        try:
            lines = tuple(body.decode("utf-8").split("\n"))
        except UnicodeDecodeError:
            return None, end, "invalid UTF-8", lost
        if len(lines) != count:
            return None, end, "point count mismatch", lost
        return SpoolRecord(seq, off, end, lines, spooled_at), end, "", 0

    def _records(self, seq: int, off: int) -> list[SpoolRecord]:
        out: list[SpoolRecord] = []
        while off < self._sizes[seq]:
            rec, off, _, _ = self._read(seq, off)
            if rec is not None:
                out.append(rec)
        return out

    def peek(self) -> SpoolRecord | None:
        """The next record to replay (skipping and reporting corrupt ones), or None when empty."""
        if self._head is not None:
            return self._head
        while self._sizes:
            seq = next(iter(self._sizes))
            off = self._start_of(seq)
            if off >= self._sizes[seq]:
                if self._active is not None and self._active[0] == seq:
                    return None
                self._unlink(seq)
                continue
            rec, end, problem, lost = self._read(seq, off)
            if rec is not None:
                self._head = rec
                self._oldest = rec.spooled_at
                return rec
            if problem:
                self.corrupt_records += 1
                self.corrupt_points += lost
                self._event(
                    f"skipped a corrupt spool record ({problem}) in {self._path(seq).name} "
                    f"at byte {off}: {end - off} bytes lost, {lost or 'an unknown number of'} points"
                )
            self._cursor = (seq, end)
            self._write_cursor()
        return None

    def commit(self, record: SpoolRecord) -> None:
        """Mark ``record`` (the one :meth:`peek` returned) as replayed."""
        self._head = None
        self._cursor = (record.seq, record.end)
        if record.end >= self._sizes.get(record.seq, 0):
            self._unlink(record.seq)  # fully replayed (closes it first if it is the active one)
        self._write_cursor()
        nxt = self.peek() if self.has_pending() else None
        self._oldest = nxt.spooled_at if nxt else None


def has_pending(directory: Path, *, clock: Clock) -> bool:
    """Whether the spool at ``directory`` holds records not yet replayed (opened as its writer would)."""
    spool = Spool(directory, budget_bytes=1 << 62, fsync="never", clock=clock)
    spool.open()
    return spool.has_pending()
