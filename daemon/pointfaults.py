"""What can be wrong with one device point's writes: a read-back mismatch, or a write the device failed.

Value types kept by :class:`daemon.actuation.Actuation` and shown by status and ``why``.

A failed write puts its point in error (:meth:`daemon.actuation.Actuation.point_error`, logged, recorded and published
once per change, not per retry): a value the device refuses (Modbus 01/02/03, or outside the
point's range) is not written again until the desired value changes or the device comes back; a busy
or failing device (04/05/06) is asked again after a growing wait (``BUSY_BACKOFF``); an offline
device is left to its probes (the driver sends nothing until it answers).

A value whose read-back differs from what was written is written again after 1, 2 and 4 s
(``MISMATCH_RETRIES``), then the point is marked ``mismatch`` (logged, recorded and published once)
and not written again until the desired value changes or the device comes back.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BUSY_BACKOFF", "MISMATCH_RETRIES", "Mismatch", "PointError"]

MISMATCH_RETRIES = 3  # rewrites of a value whose read-back differs, with backoff, before it is marked


@dataclass
class Mismatch:
    """A point whose read-back differs from what was written: retried with backoff, then marked."""

    desired: float
    readback: float | None
    writes: int = 0
    next_at: float = 0.0  # no rewrite before this (backoff)
    marked: bool = False  # retries spent: not written again until the value changes or the device is back

    def text(self, target: str) -> str:
        seen = "nothing readable" if self.readback is None else f"{self.readback:g}"
        return f"{target}: wrote {self.desired:g} ({self.writes} writes), device reports {seen}"


BUSY_BACKOFF = (10.0, 120.0)  # a busy or failing device is asked again after 5-10 s, 10-20 s, ... up to 2 min


@dataclass(frozen=True)
class PointError:
    """Why a point's last write failed: ``kind`` (refused, busy, unreachable, offline, no_answer) and words."""

    kind: str
    value: float
    text: str
    code: str = ""  # the Modbus exception code (hex), if the device answered one
