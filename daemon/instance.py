"""One daemon per state directory: an exclusive ``flock`` on ``<state_dir>/lobbyd.lock``.

``lobbyd run`` takes the lock before it touches anything else (rules' last good copies, state files,
spool, control socket). A second daemon on the same state directory finds the lock held and exits
without touching any of them, naming the holder's pid. The kernel releases the lock when the holder
exits, however it exits, so a stale lock file never blocks a start.

Where the lock file cannot be created (a read-only state directory), the directory itself is locked:
a read-only disk degrades the daemon but must not stop it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
from pathlib import Path

from drivers.writefault import describe

__all__ = ["LOCK_FILE", "AlreadyRunning", "StateLock"]

_LOG = logging.getLogger("lobbyd")
LOCK_FILE = "lobbyd.lock"


class AlreadyRunning(Exception):
    """Another process holds the state directory's lock; the message says which."""


class StateLock:
    """The state directory's lock: :meth:`acquire` it once, before any other I/O; held until the
    process exits (or :meth:`release`)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`AlreadyRunning`. A state directory that cannot be created or
        locked at all (a full or read-only disk) is logged, and the daemon runs unlocked."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _LOG.error("cannot create the state directory, running without its lock: %s", describe(exc))
            return
        fd = self._open()
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                pid = self._holder()
                who = f"pid {pid}" if pid is not None else "pid unknown"
                raise AlreadyRunning(f"another lobbyd ({who}) holds {self.state_dir}") from None
            _LOG.error("cannot lock the state directory, running without its lock: %s", describe(exc))
            return
        self._fd = fd
        with contextlib.suppress(OSError):  # the pid is for the message of a second daemon; best effort
            self.path.write_text(f"{os.getpid()}\n")

    def _open(self) -> int | None:
        """The lock file (created if need be), or the directory where the file cannot be created. Opened
        read-only, so that holding it never keeps an operator from remounting the disk read-only."""
        for target, flags in ((self.path, os.O_CREAT), (self.state_dir, 0)):
            with contextlib.suppress(OSError):
                return os.open(target, os.O_RDONLY | os.O_CLOEXEC | flags, 0o644)
        _LOG.error("cannot open %s, running without the state directory's lock", self.path)
        return None

    def _holder(self) -> int | None:
        """The pid the lock file names, else the one /proc/locks gives for its inode (or the directory's)."""
        with contextlib.suppress(OSError, ValueError):
            text = self.path.read_text().strip()
            if text:
                return int(text)
        with contextlib.suppress(OSError, ValueError):
            for target in (self.path, self.state_dir):
                st = target.stat()
                key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
                for line in Path("/proc/locks").read_text().splitlines():
                    fields = line.split()
                    if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == key:
                        return int(fields[4])
        return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None
