"""The time-series writer's counters, as :meth:`drivers.influx.InfluxWriter.stats` reports them."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["WriterStats"]


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A snapshot of the writer's counters (points unless stated otherwise)."""

    queue_depth: int  # points in memory, waiting for a batch
    sent_points: int  # accepted by the server (direct and replayed)
    replayed_points: int  # of which came from the spool
    spooled_points: int  # written to the spool by this process
    spooled_bytes: int  # spool bytes waiting for replay
    spool_oldest_s: float  # age of the oldest waiting spool record (0 when empty)
    dropped_points: int  # lost: past the spool budget, in corrupt spool records, or spool write failures
    rejected_points: int  # refused by the server with 4xx and set aside in rejected.lp
    corrupt_records: int  # torn or corrupt spool records skipped
    last_error: str | None  # the failure going on (None once a write succeeds again), never containing a secret
    requests: int = 0  # write requests the server accepted (a steady trickle: one per flush interval)
    # dropped_points by reason: "spool budget", or why the spool could not be written ("disk full", ...)
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    last_error_at: float | None = None  # clock time of the last failure (kept after recovery)
    spool_problem: str | None = None  # the spool cannot be written now, in plain words ("disk full: <dir>")
