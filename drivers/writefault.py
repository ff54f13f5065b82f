"""Failed writes to local disk, in plain words: a full disk or a read-only one degrades, never stops.

A :class:`WriteFault` follows one kind of file (the state files, the spool, the last good rules): a
failed write starts an episode (logged once, as a warning, with the reason in plain words, e.g.
``disk full: /var/lib/lobbyd/engine-memory.json``); further failures of the same reason are only
counted; the next successful write ends the episode (logged once). :attr:`WriteFault.problem` is the
current reason, or None while writes succeed.
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

__all__ = ["WriteFault", "describe", "reason_of"]

_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk full",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "I/O error",
}


def reason_of(exc: OSError) -> str:
    """The reason of a failed write in a few plain words (``disk full``, ``read-only file system``...)."""
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return (exc.strerror or type(exc).__name__).lower()


def describe(exc: OSError, path: Path | str | None = None) -> str:
    """``<reason>: <path>``; the path is the exception's own when it names one, else ``path``."""
    where = exc.filename if exc.filename is not None else path
    return f"{reason_of(exc)}: {where}" if where is not None else reason_of(exc)


class WriteFault:
    """The health of one kind of write: the current problem, and each episode logged once."""

    def __init__(self, what: str, logger: logging.Logger | None = None) -> None:
        self.what = what  # e.g. "state", "spool", "last good rules"
        self._log = logger  # None: the owner reports episodes itself (see the return values)
        self.problem: str | None = None  # the current reason in plain words, None while writes succeed
        self._reason: str | None = None  # the reason of the current episode, without its path
        self.failures = 0  # failed writes, all episodes together
        self.episodes = 0

    def failed(self, exc: OSError, path: Path | str | None = None) -> bool:
        """Count a failed write. True when it starts an episode (or changes its reason): logged then."""
        text = describe(exc, path)
        self.failures += 1
        new = self.problem is None or reason_of(exc) != self._reason
        self.problem, self._reason = text, reason_of(exc)
        if new:
            self.episodes += 1
            if self._log is not None:
                self._log.warning("cannot write %s (%s); running on, retrying at the next write", self.what, text)
        return new

    def ok(self) -> bool:
        """A write succeeded. True when that ends an episode (logged then)."""
        if self.problem is None:
            return False
        if self._log is not None:
            self._log.warning("%s written again after %s", self.what, self.problem)
        self.problem = None
        return True
