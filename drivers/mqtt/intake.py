"""Sensor intake: topic routing, reject counting and rate-limited logging around :func:`decode`.

``MessageDecoder.process_message(message)`` is the one call the daemon makes per MQTT message: route the topic,
decode, count, log (a repeated identical problem is logged once per interval, with a count).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from daemon.model import Reading
from drivers.clock import Clock, wall_of
from drivers.mqtt.config import SensorConfig
from drivers.mqtt.decode import DEFAULT_MAX_BYTES, TIME_REASONS, Rejected, RejectReason, decode
from drivers.mqtt.message import Message

__all__ = ["IntakeCounters", "MessageDecoder", "RateLimitedLog", "TopicRouter"]

_LOG = logging.getLogger("lobbyd.mqtt.intake")


@dataclass
class IntakeCounters:
    """How many readings were accepted and how many payloads/fields were rejected, by reason.

    The ``time_*`` reasons count payload times not used: their readings are among the accepted."""

    accepted: int = 0
    rejected: Counter[RejectReason] = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        """All rejections, whatever the reason."""
        return sum(self.rejected.values())

    def snapshot(self) -> dict[str, int]:
        """Flat counts for health reporting: ``accepted`` and one key per reason (zeros included)."""
        out = {"accepted": self.accepted}
        out.update({r.value: self.rejected.get(r, 0) for r in RejectReason})
        return out


class RateLimitedLog:
    """Log a message at most once per ``interval_s`` per key; report how many were held back.

    The first occurrence of a key is logged at once; repeats within the interval are counted and
    the count is attached to the next message logged for that key after the interval. At most
    ``max_keys`` keys are remembered (keys may come from topics a client chose): past that the
    oldest is forgotten, and its next occurrence is logged as a first one.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval_s: float,
        clock: Clock,
        level: int = logging.WARNING,
        max_keys: int = 1024,
    ) -> None:
        self._logger = logger
        self._max_keys = max_keys
        self._interval = interval_s
        self._clock = clock
        self._level = level
        self._last: dict[str, float] = {}  # key -> when it was last logged, oldest first
        self._held: defaultdict[str, int] = defaultdict(int)
        self.emitted = 0

    def log(self, key: str, message: str) -> bool:
        """Log ``message`` unless ``key`` was logged less than ``interval_s`` ago. True if logged."""
        now = self._clock.now()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._held[key] += 1
            return False
        held = self._held.pop(key, 0)
        suffix = f" (and {held} more like it in the last {now - last:.0f}s)" if held and last else ""
        self._logger.log(self._level, "%s%s", message, suffix)
        self._last.pop(key, None)  # re-inserted last: the dict is in order of the last log per key
        self._last[key] = now
        while len(self._last) > self._max_keys:
            oldest = next(iter(self._last))
            del self._last[oldest]
            self._held.pop(oldest, None)
        self.emitted += 1
        return True


class TopicRouter:
    """Maps an incoming topic to the sensors on it and computes the subscriptions.

    Sensor topics are exact. When more than ``collapse_at`` of them share a parent level, the
    parent is subscribed with ``+`` instead (fewer subscriptions; unknown siblings are then
    rejected as ``unknown_topic``).
    """

    def __init__(self, sensors: Iterable[SensorConfig], *, collapse_at: int = 64) -> None:
        table: dict[str, list[SensorConfig]] = {}
        for s in sensors:
            table.setdefault(s.topic, []).append(s)
        self._table: dict[str, tuple[SensorConfig, ...]] = {t: tuple(v) for t, v in table.items()}
        self._collapse_at = collapse_at

    def route(self, topic: str) -> tuple[SensorConfig, ...]:
        """The sensors configured on ``topic`` (empty if none)."""
        return self._table.get(topic, ())

    @property
    def topics(self) -> list[str]:
        """Every configured topic, sorted."""
        return sorted(self._table)

    def subscriptions(self) -> list[tuple[str, int]]:
        """(topic filter, QoS) pairs: the highest QoS any sensor asks for on that filter."""
        by_parent: dict[str, list[str]] = {}
        for topic in self._table:
            parent, sep, _ = topic.rpartition("/")
            by_parent.setdefault(parent + sep if sep else "", []).append(topic)
        subs: dict[str, int] = {}
        for parent, topics in by_parent.items():
            collapse = bool(parent) and len(topics) > self._collapse_at
            for topic in topics:
                qos = max(s.qos for s in self._table[topic])
                key = parent + "+" if collapse else topic
                subs[key] = max(qos, subs.get(key, 0))
        return sorted(subs.items())


class MessageDecoder:
    """Route, decode, count and log; returns the readings of one message."""

    def __init__(
        self,
        sensors: Sequence[SensorConfig],
        *,
        clock: Clock,
        max_bytes: int = DEFAULT_MAX_BYTES,
        log_interval_s: float = 60.0,
        logger: logging.Logger = _LOG,
    ) -> None:
        self.router = TopicRouter(sensors)
        self.counters = IntakeCounters()
        self._max_bytes = max_bytes
        self._clock = clock
        self._log = RateLimitedLog(logger, interval_s=log_interval_s, clock=clock)

    def process_message(self, message: Message) -> tuple[list[Reading], list[Rejected]]:
        """:meth:`process` for a :class:`Message` from :class:`~drivers.mqtt.link.MqttLink`."""
        return self.process(message.topic, message.payload, ts=message.ts, retained=message.retain)

    def process(self, topic: str, payload: bytes, *, ts: float, retained: bool) -> tuple[list[Reading], list[Rejected]]:
        """Decode one message. Unknown topics are rejected here (the decoder never sees them)."""
        sensors = self.router.route(topic)
        if not sensors:
            rejects = [Rejected(topic, RejectReason.UNKNOWN_TOPIC, "no sensor on this topic", None, ts)]
            readings: list[Reading] = []
        else:
            readings, rejects = decode(
                sensors,
                payload,
                ts=ts,
                retained=retained,
                topic=topic,
                max_bytes=self._max_bytes,
                wall=wall_of(self._clock, ts),  # a payload's time is wall time; ts is on the clock's line
            )
        self.counters.accepted += len(readings)
        for r in rejects:
            self.counters.rejected[r.reason] += 1
            # Unknown topics share one key: a sender inventing topics would otherwise get one log line,
            # and one remembered key, per topic.
            key = r.reason.value if r.reason is RejectReason.UNKNOWN_TOPIC else f"{r.topic}\0{r.sensor}\0{r.reason}"
            what = f"{r.reason.value} on {_shown(r.topic)}" + (f" for sensor {r.sensor}" if r.sensor else "")
            if r.reason in TIME_REASONS:
                self._log.log(key, f"payload time not used ({what}): {r.detail}; the reading is stamped on receipt")
            else:
                self._log.log(key, f"rejected {what}: {r.detail}")
        return readings, rejects


def _shown(topic: str, limit: int = 120) -> str:
    """A topic for a log line: as it is when short and printable, else quoted and cut (no forged lines)."""
    return (
        topic
        if len(topic) <= limit and topic.isprintable()
        else repr(topic[:limit]) + ("…" if len(topic) > limit else "")
    )
