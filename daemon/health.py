"""The daemon's health: the verdict that feeds systemd's watchdog, and the periodic health records.

:class:`HealthPolicy` decides from a :class:`Sample` whether the daemon deserves a ``WATCHDOG=1``: the
event loop is responsive, the MQTT session is up and subscribed (or its reconnect loop is visibly
retrying — a restart cannot fix a broker that is down), and rule evaluations keep progressing.
:func:`housekeeping` writes the ``health`` records (docs/schema.md) and persists the engine's memory.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from daemon.config import DaemonConfig
from daemon.control import HEARTBEAT_S
from daemon.parts import Parts
from drivers.timegrid import until_next_slot

__all__ = ["HOUSEKEEPING_S", "Health", "HealthPolicy", "Sample", "health_records", "housekeeping", "sample"]

_LOG = logging.getLogger("lobbyd")
HOUSEKEEPING_S = 10.0


@dataclass(frozen=True)
class Sample:
    """What the supervisor observed at one instant (``at`` in monotonic seconds)."""

    at: float
    loop_lag_s: float
    mqtt_connected: bool
    mqtt_subscribed: bool
    mqtt_attempts: int  # successful connects + failed attempts: grows while the link retries
    evaluations: int


def sample(p: Parts, at: float, lag: float) -> Sample:
    link = p.link
    return Sample(
        at=at,
        loop_lag_s=lag,
        mqtt_connected=link.connected,
        mqtt_subscribed=p.subscribed.is_set(),
        mqtt_attempts=link.connects + sum(link.failures.values()),
        evaluations=p.control.stats.evaluations,
    )


@dataclass(frozen=True)
class Health:
    """The verdict: ``ok`` means feed the watchdog."""

    ok: bool
    problems: tuple[str, ...] = ()


class HealthPolicy:
    """Stateful judge of successive :class:`Sample` s (progress is measured between samples)."""

    def __init__(self, *, max_loop_lag_s: float, max_eval_gap_s: float, max_mqtt_retry_gap_s: float) -> None:
        self.max_loop_lag_s = max_loop_lag_s
        self.max_eval_gap_s = max_eval_gap_s
        self.max_mqtt_retry_gap_s = max_mqtt_retry_gap_s
        self._evals: tuple[int, float] | None = None
        self._attempts: tuple[int, float] | None = None

    @classmethod
    def for_config(cls, cfg: DaemonConfig, *, watchdog_s: float | None) -> HealthPolicy:
        """Bounds derived from the config (evaluation tick, MQTT backoff and timeouts).

        A healthy control loop evaluates at least once per heartbeat (``HEARTBEAT_S``, or half of
        ``resume_grace_s`` if shorter), rounded up to the ``evaluate_every_s`` grid; twice that is stuck."""
        heartbeat_s = min(HEARTBEAT_S, cfg.resume_grace_s / 2)
        return cls(
            max_loop_lag_s=(watchdog_s / 2) if watchdog_s else 10.0,
            max_eval_gap_s=2 * (heartbeat_s + cfg.evaluate_every_s),
            max_mqtt_retry_gap_s=2 * (cfg.mqtt.reconnect_max_s + cfg.mqtt.timeout_s) + 10.0,
        )

    def assess(self, s: Sample) -> Health:
        problems: list[str] = []
        if s.loop_lag_s > self.max_loop_lag_s:
            problems.append(f"event loop was blocked for {s.loop_lag_s:.1f}s")
        if self._evals is None or s.evaluations != self._evals[0]:
            self._evals = (s.evaluations, s.at)
        elif s.at - self._evals[1] > self.max_eval_gap_s:
            problems.append(f"no rule evaluation for {s.at - self._evals[1]:.0f}s")
        if self._attempts is None or s.mqtt_attempts != self._attempts[0]:
            self._attempts = (s.mqtt_attempts, s.at)
        if not (s.mqtt_connected and s.mqtt_subscribed) and s.at - self._attempts[1] > self.max_mqtt_retry_gap_s:
            problems.append(f"MQTT link neither subscribed nor retrying for {s.at - self._attempts[1]:.0f}s")
        return Health(not problems, tuple(problems))


def health_records(p: Parts) -> list[tuple[str, dict[str, float | int]]]:
    """The daemon's own health as (component, fields) for the ``health`` measurement (docs/schema.md)."""
    snapshot = p.intake.decoder.counters.snapshot()
    control, actuation = p.control.stats, p.actuation
    out: list[tuple[str, dict[str, float | int]]] = [
        (
            "engine",
            {
                "evaluations": control.evaluations,
                "decisions_changed": control.decisions_changed,
                "eval_ms_max": control.eval_ms_max,
                "rules": len(p.control.rules.ruleset.rules),
                "rule_errors": len(p.control.rules.errors),
            },
        ),
        (
            "mqtt",
            {
                "messages_in": p.link.received,
                "discarded": p.link.discarded,
                "accepted": snapshot.pop("accepted"),
                "out_of_order": p.state.out_of_order,
                **{f"rejected_{k}": v for k, v in snapshot.items()},
                "connected": int(p.link.connected),
                "connects": p.link.connects,
            },
        ),
        (
            "modbus",
            {
                "requests": sum(x.requests for x in actuation.devices.values()),
                "errors": sum(b.stats.failures for b in p.buses.values()),
                "devices_online": sum(1 for x in actuation.devices.values() if x.online),
                "devices": len(actuation.devices),
                "writes_ok": actuation.stats.writes_ok,
                "writes_failed": actuation.stats.writes_failed,
                "writes_mismatch": actuation.stats.writes_mismatch,
                "write_latency_ms_max": actuation.stats.write_ms_max,
            },
        ),
    ]
    for component, writer in (("influx", p.writer), ("influx_daemon", p.daemon_writer)):
        if writer is None:
            continue
        stats = dataclasses.asdict(writer.stats())
        out.append(
            (
                component,
                {
                    k: v
                    for k, v in stats.items()
                    if isinstance(v, int | float) and not isinstance(v, bool) and not k.endswith("_at")
                },
            )
        )
    return out


async def housekeeping(p: Parts) -> None:
    """Every ``housekeeping_s`` of the config (``HOUSEKEEPING_S``, 10 s, by default): health records, a
    warning when no sensor speaks, the memory persisted (a full or read-only disk degrades, see
    :attr:`daemon.persist.StateStore.fault`), and the last good rules copied again if that failed."""
    clock = p.clock
    while True:
        await clock.sleep(until_next_slot(clock.now(), p.loaded.config.housekeeping_s))
        now = clock.now()
        for component, fields in health_records(p):
            p.recorder.health(component, fields, now)
        p.control.stats.eval_ms_max = p.actuation.stats.write_ms_max = 0.0
        if p.link.is_silent(now):
            _LOG.warning("no sensor message for %.0fs", p.link.silent_for(now))
        p.store.save(p.control.memory, p.actuation.gate)
        if p.store.fault.problem is None:
            p.reload.retry_last_good()
