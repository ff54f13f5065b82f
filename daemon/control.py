"""The control loop: wake on a reading the rules read or on a due timer → engine → actuation.

:meth:`ControlLoop.reading` is called for every reading a rule reads. It moves the engine's memory on
at once (:func:`daemon.engine.advance`: hysteresis latches and ``for:`` timers see every reading) and
evaluates the rules at once for a lone reading; under a flood :meth:`run` evaluates them less often
(:meth:`_evaluate_paced`). The decisions go to the actuation. :meth:`run_ticker`
evaluates when time alone can change an outcome: it sleeps until the first slot of the
``evaluate_every_s`` grid at which the last evaluation's ``next_due`` has come (a reading going stale,
a ``for:`` completing, a window edge, a ramp step, an override ending), or until the heartbeat.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from daemon.config import SafetyConfig
from daemon.engine import EngineMemory, Evaluation, Override, PointLimits, advance, evaluate, explain_point
from daemon.model import Decision
from daemon.publish import Publisher
from daemon.rules.load import LoadedRules
from daemon.state import SensorState
from daemon.sun import Site
from daemon.telemetry import Recorder
from drivers.clock import Clock, Timer
from drivers.timegrid import next_slot

__all__ = ["FLOOD_READINGS", "HEARTBEAT_S", "ControlLoop", "ControlSettings", "ControlStats", "Outputs"]

_LOG = logging.getLogger("lobbyd")
HEARTBEAT_S = 15.0  # an evaluation at least this often even when nothing is due (the watchdog wants 30 s)
FLOOD_READINGS = 4  # more readings than this since the last evaluation: a flood, the gap between evaluations grows


class Outputs(Protocol):
    """Where decisions go, and what is known of the devices (:class:`daemon.actuation.Actuation`)."""

    def desired_changed(self, decisions: Mapping[str, Decision]) -> None: ...

    def known(self, target: str) -> float | None: ...

    def held_by(self, target: str) -> str | None: ...

    def point_error(self, target: str) -> str | None: ...


@dataclass(frozen=True)
class ControlSettings:
    site: Site
    limits: Mapping[str, PointLimits]
    safety_for: Callable[[str], SafetyConfig]
    resume_grace_s: float = 120.0
    evaluate_every_s: float = 1.0
    evaluate_min_gap_s: float = 0.002
    evaluate_max_gap_s: float = 0.025


@dataclass
class ControlStats:
    evaluations: int = 0
    ticks: int = 0  # ticker wake-ups: only when something is due
    decisions_changed: int = 0
    eval_ms_max: float = 0.0  # slowest evaluation since the last health record


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class ControlLoop:
    """Owns the rules in force, the engine's memory, the last evaluation and the desired values."""

    def __init__(
        self,
        settings: ControlSettings,
        *,
        rules: LoadedRules,
        memory: EngineMemory,
        state: SensorState,
        outputs: Outputs,
        recorder: Recorder,
        publisher: Publisher,
        clock: Clock,
        wall: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` is the time line the rules' timers run on (the daemon's steady one); ``wall`` the
        wall clock that schedules follow (default: ``clock.now``)."""
        self.settings = settings
        self.rules = rules
        self.memory = memory
        self.evaluation: Evaluation | None = None
        self.desired: dict[str, Decision] = {}
        self.stats = ControlStats()
        self._state = state
        self._outputs = outputs
        self._recorder = recorder
        self._publisher = publisher
        self._clock = clock
        self._wall = wall if wall is not None else clock.now
        self._read = self._sensors_read(rules)
        self._announced: dict[str, Decision] = {}  # last decision recorded and published, per point
        self._previous: dict[str, float] = {}  # the announced value before the current one, per point
        self._dirty = asyncio.Event()
        self._readings_since_eval = 0
        self._paced_at = -math.inf  # event-loop time of the last paced evaluation (after readings)
        self._gap = settings.evaluate_min_gap_s
        self._stale_at = -math.inf  # from then on, advance() steps every condition (see engine.advance)
        self._last_eval_at = -math.inf
        self._heartbeat_s = min(HEARTBEAT_S, settings.resume_grace_s / 2)
        self._tick_at = -math.inf  # when the ticker's timer fires
        self._tick_wake: asyncio.Future[None] | None = None
        self._tick_timer: Timer | None = None

    # ---- inputs ------------------------------------------------------------------------------------
    def reading(self, sensor: str) -> None:
        """A new reading of ``sensor`` is in the sensor state: let the rules see it (a reading no rule
        reads changes no decision)."""
        if sensor not in self._read:
            return
        self._readings_since_eval += 1
        mono = asyncio.get_running_loop().time()
        if not self._dirty.is_set() and mono >= self._paced_at + self._gap:
            self._evaluate_paced(mono)  # a lone reading: decided at once (the evaluation steps every condition)
            return
        grace = self.settings.resume_grace_s
        moved = advance(
            self.rules.ruleset,
            self._state.view(),
            self._clock.now(),
            self.memory,
            sensor=sensor,
            stale_at=self._stale_at,
            resume_grace_s=grace,
        )
        self.memory, self._stale_at = moved.memory, moved.stale_at
        self._dirty.set()  # run() evaluates once the gap has passed, with whatever readings follow

    def set_override(self, target: str, override: Override | None) -> None:
        """Put a manual override in force on ``target`` (``None`` clears it)."""
        self.memory = self.memory.with_override(target, override)
        self._dirty.set()

    def refresh_if_override_ended(self) -> None:
        """Evaluate now if a decision still names a manual override that was cleared or has ended, so
        that ``status`` never shows one that is no longer in force (the ticker would only catch up at
        its next slot, a clear at the next paced evaluation)."""
        if self.evaluation is None:
            return
        now, live = self._clock.now(), self.memory.overrides
        if any(
            d.reason.rule == "manual-override" and (t not in live or live[t].until <= now)
            for t, d in self.desired.items()
        ):
            self.evaluate()

    def set_rules(self, rules: LoadedRules) -> None:
        """Evaluate from now on with ``rules`` (a reload)."""
        self.rules = rules
        self._read = self._sensors_read(rules)
        self._stale_at = -math.inf  # the new rules' conditions were never stepped
        self._dirty.set()

    def _sensors_read(self, rules: LoadedRules) -> frozenset[str]:
        return frozenset(sid for sid, info in self._state.sensors.items() if rules.ruleset.reads(info))

    # ---- deciding ------------------------------------------------------------------------------------
    def evaluate(self) -> Evaluation:
        """Evaluate every rule now; announce changed decisions and hand them to the outputs."""
        now = self._clock.now()
        t0 = time.perf_counter()
        s = self.settings
        ev = evaluate(
            self.rules.ruleset,
            self._state.view(),
            now,
            self.memory,
            site=s.site,
            limits=s.limits,
            resume_grace_s=s.resume_grace_s,
            wall=self._wall(),
        )
        self.memory = ev.memory
        self.evaluation = ev
        self._stale_at = ev.stale_at
        self._last_eval_at = now
        self._readings_since_eval = 0
        self.rearm()
        self.stats.evaluations += 1
        self.stats.eval_ms_max = max(self.stats.eval_ms_max, (time.perf_counter() - t0) * 1000.0)
        for target, d in ev.decisions.items():
            self._announce(target, d)
            self.desired[target] = d
        self._outputs.desired_changed(ev.decisions)
        return ev

    def _announce(self, target: str, d: Decision) -> None:
        """Record and publish a decision when its rule or fallback state changes, or its value moves by more
        than the point's deadband since the last one announced (a ramp, or a curve following a sensor's
        noise, would otherwise announce a decision every few seconds)."""
        old = self._announced.get(target)
        if (
            old is None
            or abs(old.value - d.value) > self.settings.safety_for(target).deadband
            or old.reason.rule != d.reason.rule
            or old.reason.fallback != d.reason.fallback
        ):
            self._announced[target] = d
            self.stats.decisions_changed += 1
            self._recorder.decision(d)
            self._publisher.decision(d)
            _LOG.info("decision %s = %g by %s: %s", target, d.value, d.reason.rule, d.reason.text)
        if old is not None and old.value != d.value:
            self._previous[target] = old.value

    def why(self, target: str) -> dict[str, str]:
        """``lobbyd why``: each matching point's setpoint and its decision chain, as of now."""
        s = self.settings
        matches = sorted(t for t in s.limits if t == target or t.startswith(target + "."))
        if not matches:
            raise ValueError(f"unknown device or point '{target}'; known: {', '.join(sorted(s.limits))}")
        if self.evaluation is None:
            return dict.fromkeys(matches, "no evaluation yet")
        ev = self.evaluate()  # every rule's words as of now (ages, how long a `for:` has run)
        now, o = self._clock.now(), self._outputs
        return {
            t: explain_point(
                t,
                ev,
                previous=self._previous.get(t),
                known=o.known(t),
                held_by=o.held_by(t),
                error=o.point_error(t),
                now=now,
            )
            for t in matches
        }

    async def run(self) -> None:
        """Evaluate what :meth:`reading`, an override or a reload left pending, once its gap has passed."""
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            wait = self._paced_at + self._gap - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._dirty.is_set():  # else a reading evaluated it meanwhile
                self._evaluate_paced(loop.time())

    def _evaluate_paced(self, mono: float) -> None:
        """Evaluate now and set the gap to the next one: ``evaluate_min_gap_s``, doubled (up to
        ``evaluate_max_gap_s``) while readings keep coming faster — more than ``FLOOD_READINGS`` since the
        last evaluation. Real time (``mono``, the event loop's): this paces CPU, not rules."""
        s = self.settings
        flood = self._readings_since_eval > FLOOD_READINGS
        self._gap = min(2 * self._gap, s.evaluate_max_gap_s) if flood else s.evaluate_min_gap_s
        self._paced_at = mono
        self._dirty.clear()
        self.evaluate()

    @property
    def pending(self) -> bool:
        """A reading, override or reload is waiting to be evaluated."""
        return self._dirty.is_set()

    def start(self) -> None:
        """Evaluate as soon as :meth:`run` runs (the first evaluation after start)."""
        self._dirty.set()

    # ---- time ---------------------------------------------------------------------------------------
    async def run_ticker(self) -> None:
        """Evaluate when time alone can change an outcome (see the module docstring)."""
        loop = asyncio.get_running_loop()
        while True:
            self._tick_wake = loop.create_future()
            self._arm(self._next_tick())
            try:
                await self._tick_wake
            finally:
                if self._tick_timer is not None:
                    self._tick_timer.cancel()
            now = self._clock.now()
            if now < self._tick_at - 1e-3:  # the clock was set back: compute again
                continue
            self.stats.ticks += 1
            if now >= self._due() - 1e-9 or now < self._last_eval_at:  # due, or the clock went back
                self.evaluate()

    @property
    def next_tick_at(self) -> float:
        """When the ticker wakes next (-inf before it runs)."""
        return self._tick_at

    def caught_up(self) -> bool:
        """The ticker has handled every tick due by the clock's time and sleeps until a later one
        (simulations on a virtual clock wait for this before advancing it)."""
        wake = self._tick_wake
        return wake is not None and not wake.done() and self._clock.now() < self._tick_at

    def _due(self) -> float:
        """When the rules next need an evaluation with no new reading (-inf before the first one).

        An evaluation that wants the next tick (a ramp on its way) gets one ``evaluate_every_s`` after it,
        so that readings arriving about once a second keep moving a ramp on without any tick."""
        ev = self.evaluation
        if ev is None:
            return -math.inf
        last = self._last_eval_at
        due = ev.next_due if ev.next_due > last else last + self.settings.evaluate_every_s
        return min(due, last + self._heartbeat_s)

    def _next_tick(self) -> float:
        """The first slot of the ``evaluate_every_s`` grid at or after the earliest thing due, after now."""
        every, now = self.settings.evaluate_every_s, self._clock.now()
        t = min(self._due(), now + self._heartbeat_s)
        return max(math.ceil((max(t, now) - 1e-9) / every) * every, next_slot(now, every))

    def _arm(self, at: float) -> None:
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        assert self._tick_wake is not None
        self._tick_at = at
        self._tick_timer = self._clock.call_at(at, functools.partial(_resolve, self._tick_wake))

    def rearm(self) -> None:
        """Move the ticker's timer if what is due moved (the ticker task sleeps on)."""
        wake = self._tick_wake
        if wake is not None and not wake.done():
            at = self._next_tick()
            if abs(at - self._tick_at) > 1e-6:
                self._arm(at)
