"""Wiring: the running daemon. One task per concern inside one TaskGroup.

Where things happen (for a reader in a hurry):

* a sensor reading enters in :meth:`Daemon._on_message` (MQTT → :class:`drivers.mqtt.Intake` → state);
  a message no rule reads waits there in a short batch (:meth:`Daemon.take_batch`), decoded with the next ones;
* a decision is made in :meth:`Daemon._evaluate` (pure :func:`daemon.engine.evaluate`);
* a register is written in :meth:`Daemon._device_writer` (safety gate → :meth:`ModbusDevice.write_point`).

Control never waits on the time-series path (the writer's ``submit`` never blocks) nor on MQTT
publishing (best effort, buffered while the broker is away).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.config import LoadedConfig
from daemon.control import ControlServer
from daemon.engine import Evaluation, Override, evaluate
from daemon.introspect import collect_status, health_records
from daemon.model import Decision, WriteOutcome
from daemon.overrides import parse_override, target_of
from daemon.persist import load_engine_memory, load_safety_gate, save_state
from daemon.rules.load import LoadedRules, load_rules
from daemon.state import SensorState
from daemon.telemetry import Recorder
from drivers.clock import Clock, Timer
from drivers.modbus import ModbusBus, ModbusDevice, ModbusError
from drivers.mqtt import Intake, Message, MqttLink
from drivers.timegrid import next_slot, until_next_slot

__all__ = ["Daemon", "DaemonStats"]

_LOG = logging.getLogger("lobbyd")
VERSION = "0.1.0"
MIN_EVAL_GAP_S = 0.002  # under a flood of readings, at most 500 rule evaluations per second
HEARTBEAT_S = 15.0  # an evaluation at least this often even when nothing is due (the watchdog wants 30 s)
# A message no rule reads waits in a batch (Daemon._on_message): taken on the first message that arrives
# BATCH_TAKE_AFTER_S or more after the batch's oldest, at BATCH_MAX messages, and at the latest BATCH_S
# after the oldest (a timer; clock time). BATCH_S is well above BATCH_TAKE_AFTER_S so that sensors reporting
# together once a second have their batch taken by a message, not by a wake-up of the timer's own.
BATCH_TAKE_AFTER_S = 1.0
BATCH_S = 3.0
BATCH_MAX = 256


class _UntilStopped:
    """The rule-file watch thread's stop condition: the daemon stopping, or the watching task cancelled.

    watchfiles polls ``is_set()`` from its thread every step. awatch calls ``set()`` when its task is
    cancelled; that must end the thread but not stop the daemon, hence a flag of its own. The task check
    covers an anyio that shields the thread call, so that the cancellation reaches awatch only after the
    thread returned: without it, the thread would wait for a file change that may never come.
    """

    def __init__(self, stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
        self._stop, self._task, self._set = stop, task, False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set or self._stop.is_set() or self._task.cancelling() > 0


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


@dataclass
class DaemonStats:
    started_at: float = 0.0
    evaluations: int = 0
    ticks: int = 0  # ticker wake-ups: only when something is due (see Daemon._ticker)
    decisions_changed: int = 0
    writes_ok: int = 0
    writes_failed: int = 0
    writes_mismatch: int = 0
    held: dict[str, str] = field(default_factory=dict)  # target -> safety limit holding it back
    eval_ms_max: float = 0.0  # slowest rule evaluation since the last health record
    write_ms_max: float = 0.0  # slowest device write (incl. read-back) since the last health record
    overrides_received: int = 0
    overrides_rejected: int = 0
    reloads: int = 0
    last_reload: str = "initial load"


class Daemon:
    """The lobby daemon for one branch. ``await Daemon(loaded, clock=...).run()``; :meth:`stop` to end."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock,
        rules: LoadedRules | None = None,
        on_ready: Callable[[], None] | None = None,
        watch_rules: bool = True,
    ) -> None:
        self.watch_rules = watch_rules
        self.write_drain_s = 10.0  # bound on finishing in-flight writes at shutdown
        self.shutdown_bound_s = 10.0  # bound on applying shutdown states (the flush has its own)
        self._stopping = False
        self.loaded = loaded
        self.cfg = loaded.config
        self.clock = clock
        self.branch = self.cfg.branch
        self.state = SensorState(loaded.sensor_infos(), started_at=clock.now())
        self.intake = Intake(self.cfg.sensors, clock=clock.now)
        self.limits = loaded.point_limits()
        self.rules = rules if rules is not None else self._load_rules(None)
        self._read_by_rules = self._sensors_read(self.rules)
        self._batched_topics = self._topics_no_rule_reads()
        self._batch: list[Message] = []  # messages on _batched_topics not yet decoded, in arrival order
        self._batch_timer: Timer | None = None
        self.memory = load_engine_memory(loaded.state_dir)
        self.gate = load_safety_gate(loaded.state_dir)
        self._persisted: dict[str, bytes] = {}  # what save_memory last wrote, per file (unchanged: not rewritten)
        self.evaluation: Evaluation | None = None
        self._last_eval_at = -math.inf  # clock time of the last rule evaluation
        self._tick_at = -math.inf  # clock time the ticker sleeps until (see caught_up())
        self._tick_wake: asyncio.Future[None] | None = None  # resolved at that time by _tick_timer
        self._tick_timer: Timer | None = None
        self._heartbeat_s = min(HEARTBEAT_S, self.cfg.resume_grace_s / 2)
        self.desired: dict[str, Decision] = {}
        self._announced: dict[str, Decision] = {}  # last decision recorded/published per point
        self._previous: dict[str, float] = {}  # the announced value before the current one, per point
        self.stats = DaemonStats(started_at=clock.now())
        self.devices: dict[str, ModbusDevice] = {}
        self.buses: dict[str, ModbusBus] = {}  # one per physical link (transport key)
        self._wake: dict[str, asyncio.Event] = {}
        self.writers_busy: set[str] = set()  # devices whose writer is working (see idle())
        self._retry_at: dict[str, float] = {}  # device -> when its writer looks again (a hold ends, a failed write)
        self._held_value: dict[str, float] = {}  # point -> the value its writer last held back
        self._dirty = asyncio.Event()
        self._changed: set[str] = set()  # sensors read by the rules with a new reading since the last evaluation
        self._stop = asyncio.Event()
        self._pending_publish: dict[str, tuple[str, bool]] = {}
        self._publish_wake = asyncio.Event()
        self._on_ready = on_ready
        self.ready = asyncio.Event()  # config+rules valid, devices read, MQTT subscribed (systemd READY=1)
        self.subscribed = asyncio.Event()  # set after the first SUBACK (the link calls _on_connect after it)
        self.writer = None
        self.recorder = Recorder(self.branch, None)
        self._early_events: list[tuple[str, str, float]] | None = []  # writer events before it is wired
        if self.cfg.influx is not None:
            from drivers.influx import InfluxWriter

            self.writer = InfluxWriter(
                self.cfg.influx, spool_dir=loaded.state_dir / "spool", clock=clock.now, on_event=self._writer_event
            )
        self.recorder.writer = self.writer
        early, self._early_events = self._early_events, None
        for kind, text, ts in early:  # e.g. "spool left by a previous run" from the writer's constructor
            self.recorder.event(kind, text, ts)
        prefix = f"lobbyd/{self.branch}"
        self._override_prefix = f"{prefix}/device/"
        subs = [*self.intake.router.subscriptions(), (f"{prefix}/device/+/+/set", 1)]
        self.link = MqttLink(
            self.cfg.mqtt,
            branch=self.branch,
            subscriptions=subs,
            clock=clock.now,
            sleep=clock.sleep,
            on_connect=self._on_connect,
        )

    # ---- persistence ----------------------------------------------------------------------------
    def save_memory(self, *, exact: bool = False) -> None:
        """Persist engine timers and safety-gate history (daemon/persist.py). Unless ``exact`` (shutdown),
        the clocks every evaluation moves on (when an input was last known, an output last set) may lag
        by up to half of ``resume_grace_s``: otherwise the file was rewritten and fsynced every 10 s."""
        slack = 0.0 if exact else self.cfg.resume_grace_s / 2
        save_state(self.loaded.state_dir, self.memory, self.gate, last=self._persisted, clock_slack_s=slack)

    def _sensors_read(self, rules: LoadedRules) -> frozenset[str]:
        return frozenset(sid for sid, info in self.loaded.sensor_infos().items() if rules.ruleset.reads(info))

    def _topics_no_rule_reads(self) -> frozenset[str]:
        """Topics none of whose sensors any rule reads: recorded and shown, never deciding anything."""
        read = self._read_by_rules
        return frozenset(
            t for t in self.intake.router.topics if not any(s.id in read for s in self.intake.router.route(t))
        )

    def _load_rules(self, previous: LoadedRules | None) -> LoadedRules:
        return load_rules(
            self.loaded.rules_dir,
            self.loaded.rule_context(),
            previous=previous,
            last_good_dir=self.loaded.state_dir / "rules-last-good",
        )

    # ---- intake -----------------------------------------------------------------------------------
    def _on_message(self, m: Message) -> None:
        """Every MQTT message enters here: sensor readings, or manual overrides on ``.../set``.

        A message on a topic no rule reads (a sensor that is only recorded and shown) joins a batch
        instead: decoded and recorded with the others by the first message that arrives
        BATCH_TAKE_AFTER_S after the batch's oldest (the process is awake anyway), at BATCH_MAX
        messages, or by a timer BATCH_S after the oldest if no message comes. On a gateway each message
        wakes the process on its own, and most of what handling it costs is caches gone cold since the
        last one (docs/architecture.md); a batch is decoded warm. Its readings keep their arrival time;
        status, counters, health records, reloads and shutdown take the batch first
        (:meth:`take_batch`), so nothing is lost or shown out of date. Control is unaffected: a message
        a rule reads is handled at once.
        """
        batch = self._batch
        if m.topic in self._batched_topics:
            batch.append(m)
            if len(batch) == 1:
                self._batch_timer = self.clock.call_at(m.ts + BATCH_S, self.take_batch)
            elif len(batch) >= BATCH_MAX or m.ts - batch[0].ts >= BATCH_TAKE_AFTER_S:
                self.take_batch()
            return
        if batch and m.ts - batch[0].ts >= BATCH_TAKE_AFTER_S:
            self.take_batch()
        target = target_of(m.topic, self._override_prefix)
        if target is not None:
            self._on_override(target, m)
            return
        self._take(m)

    def take_batch(self) -> None:
        """Decode and record the batched messages now (see :meth:`_on_message`)."""
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        batch, self._batch = self._batch, []
        for m in batch:
            try:
                self._take(m)
            except Exception as exc:  # as the link guards its handler: one bug must not lose the rest
                self.link.handler_failed(m, exc)

    def _take(self, m: Message) -> None:
        readings, _rejects = self.intake.process_message(m)
        for r in readings:
            if self.state.update(r):
                self.recorder.reading(r)
                if r.sensor in self._read_by_rules:  # a reading no rule reads changes no decision
                    self._changed.add(r.sensor)
                    self._dirty.set()

    def _on_override(self, target: str, m: Message) -> None:
        """A manual override (daemon/overrides.py): wins over every rule until it expires."""
        now = self.clock.now()
        device, point = target.split(".", 1)
        try:
            if target not in self.limits:
                raise ValueError(f"unknown device point '{target}'")
            req = parse_override(m.payload, retained=m.retain)
        except ValueError as exc:
            self.stats.overrides_rejected += 1
            _LOG.warning("override on %s rejected: %s", m.topic, exc)
            return
        if req is None:
            return
        if req.clear:
            self.memory.overrides.pop(target, None)
            self.recorder.event("override", f"{target}: manual override cleared", now, device=device, point=point)
        else:
            assert req.value is not None
            clamped = self.limits[target].clamp(req.value)
            self.memory.overrides[target] = Override(clamped, now + req.duration_s, "mqtt")
            self.stats.overrides_received += 1
            text = f"{target}: manual override {clamped:g} for {req.duration_s:.0f}s"
            self.recorder.event("override", text, now, device=device, point=point)
        self._dirty.set()

    async def _on_connect(self) -> None:
        self.subscribed.set()
        for d in self.devices.values():
            await self._publish_availability(d.name, d.online)

    # ---- decisions ----------------------------------------------------------------------------------
    def _evaluate(self, *, full: bool = False) -> None:
        """Evaluate the rules. After a reading, only the rules that read a sensor with a new reading are
        evaluated again; the engine keeps the others' outcome when nothing else can have changed it
        (``evaluate``'s ``reuse``). ``full``: every rule (the ticker, ``lobbyd why``)."""
        now = self.clock.now()
        t0 = time.perf_counter()
        changed, self._changed = self._changed, set()
        ev = evaluate(
            self.rules.ruleset,
            self.state.view(),
            now,
            self.memory,
            site=self.loaded.site,
            limits=self.limits,
            resume_grace_s=self.cfg.resume_grace_s,
            reuse=None if full else self.evaluation,
            changed=changed,
        )
        self.memory = ev.memory
        self.evaluation = ev
        self._last_eval_at = now
        self._rearm_ticker()
        self.stats.evaluations += 1
        self.stats.eval_ms_max = max(self.stats.eval_ms_max, (time.perf_counter() - t0) * 1000.0)
        for target, d in ev.decisions.items():
            old = self._announced.get(target)
            # A decision is recorded (and published) when its rule or fallback state changes, or its value
            # moves by more than the point's deadband since the last recorded one: a ramp, or a curve
            # following a sensor's noise, would otherwise record a decision every few seconds.
            if (
                old is None
                or abs(old.value - d.value) > self.loaded.safety_for(target).deadband
                or old.reason.rule != d.reason.rule
                or old.reason.fallback != d.reason.fallback
            ):
                self._announced[target] = d
                self.stats.decisions_changed += 1
                self.recorder.decision(d)
                self._publish_soon(
                    f"lobbyd/{self.branch}/decision/{d.device}/{d.point}",
                    json.dumps(
                        {
                            "value": d.value,
                            "rule": d.reason.rule,
                            "reason": d.reason.text,
                            "fallback": d.reason.fallback,
                            "ts": d.ts,
                        }
                    ),
                    retain=True,
                )
                _LOG.info("decision %s = %g by %s: %s", target, d.value, d.reason.rule, d.reason.text)
            if old is not None and old.value != d.value:
                self._previous[target] = old.value
            self.desired[target] = d
        # A writer is woken only when it has something to do: a value its device is not known to hold,
        # or a held-back state to clear. Most evaluations change nothing; waking both writers for each
        # one cost more than the evaluation.
        for name in {d.device for t, d in ev.decisions.items() if self._for_writer(t, d)}:
            ev_ = self._wake.get(name)
            if ev_ is not None:
                ev_.set()

    def _for_writer(self, target: str, d: Decision) -> bool:
        if target in self.stats.held:  # held back: look again when the decision moves (or the hold ends: ticker)
            return self._held_value.get(target) != d.value
        return self.gate.track(target).known != d.value

    async def _control_loop(self) -> None:
        # A lone reading is evaluated at once; under a flood at most one evaluation per MIN_EVAL_GAP_S
        # runs, covering every reading that arrived meanwhile. Real time: this paces CPU, not rules.
        loop = asyncio.get_running_loop()
        last = -1e9
        while True:
            await self._dirty.wait()
            wait = last + MIN_EVAL_GAP_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            last = loop.time()
            self._evaluate()  # then straight back to wait(): no reading can arrive during it, nothing to yield for

    async def _ticker(self) -> None:
        """Time passes even when no sensor speaks: `for:` timers, schedules, staleness, held writes.

        It sleeps until the first slot of the ``evaluate_every_s`` grid at which something is due
        (:meth:`_next_tick`): the last evaluation's ``next_due`` (its outcome could change by then with
        no new reading: a reading going stale, a `for:` completing, a window opening, a ramp step, ...),
        HEARTBEAT_S after the last evaluation, or a device writer's retry (a minimum hold or hourly cap
        ending, a failed write). Every evaluation and every writer that changes that slot re-arms it, so
        a lobby whose readings keep the rules evaluated never wakes the ticker, and a quiet one wakes it
        every HEARTBEAT_S: on a VM each wake-up costs far more CPU than the look at the clock it is for
        (drivers/timegrid.py).
        """
        loop = asyncio.get_running_loop()
        while True:
            self._tick_wake = loop.create_future()
            self._arm_ticker(self._next_tick())
            try:
                await self._tick_wake
            finally:
                if self._tick_timer is not None:
                    self._tick_timer.cancel()
            now = self.clock.now()
            if now < self._tick_at - 1e-3:  # the clock was set back: compute again
                continue
            self.stats.ticks += 1
            if now >= self._due() - 1e-9 or now < self._last_eval_at:  # due, or the clock went back
                self._evaluate(full=True)  # here, not via the control loop: the next slot sees its next_due
            for name, retry_at in list(self._retry_at.items()):
                if now >= retry_at - 1e-9:
                    del self._retry_at[name]
                    wake_writer = self._wake.get(name)
                    if wake_writer is not None:
                        wake_writer.set()

    def _due(self) -> float:
        """When the rules next need an evaluation with no new reading (-inf before the first one).

        An evaluation that wants the next tick (a ramp on its way) gets one ``evaluate_every_s`` after it,
        so that readings arriving about once a second keep moving a ramp on without any tick.
        """
        ev = self.evaluation
        if ev is None:
            return -math.inf
        last = self._last_eval_at
        due = ev.next_due if ev.next_due > last else last + self.cfg.evaluate_every_s
        return min(due, last + self._heartbeat_s)

    def _next_tick(self) -> float:
        """The ticker's next slot: the first of its grid at or after the earliest thing due, after now."""
        every, now = self.cfg.evaluate_every_s, self.clock.now()
        t = min(self._due(), now + self._heartbeat_s, *self._retry_at.values())
        return max(math.ceil((max(t, now) - 1e-9) / every) * every, next_slot(now, every))

    def _arm_ticker(self, at: float) -> None:
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        assert self._tick_wake is not None
        self._tick_at = at
        self._tick_timer = self.clock.call_at(at, functools.partial(_resolve, self._tick_wake))

    def _rearm_ticker(self) -> None:
        """An evaluation or a writer changed what is due: move the ticker's timer if its slot changed (the
        ticker task itself sleeps on: waking it to re-arm cost a task step per evaluation during a ramp)."""
        wake = self._tick_wake
        if wake is not None and not wake.done():
            at = self._next_tick()
            if abs(at - self._tick_at) > 1e-6:
                self._arm_ticker(at)

    # ---- devices --------------------------------------------------------------------------------------
    def _on_availability(self, device: str, online: bool, why: str) -> None:
        now = self.clock.now()
        (_LOG.info if online else _LOG.warning)("device %s %s: %s", device, "online" if online else "offline", why)
        self.recorder.availability(device, online, why, now)
        self._publish_soon(
            f"lobbyd/{self.branch}/device/{device}/availability", "online" if online else "offline", retain=True
        )
        if online:
            # Back: what it holds is unknown (it may have rebooted); re-apply the current desired state.
            for target in self.limits:
                if target.startswith(device + "."):
                    self.gate.observed(target, None)
            wake = self._wake.get(device)
            if wake is not None:
                wake.set()

    async def _publish_availability(self, device: str, online: bool) -> None:
        await self.link.publish(
            f"lobbyd/{self.branch}/device/{device}/availability", "online" if online else "offline", retain=True
        )

    async def _read_devices(self) -> None:
        """Before deciding anything, learn what each device holds, so a restart toggles nothing."""

        async def one(dev: ModbusDevice) -> None:
            try:
                values = await dev.read_setpoints()
            except ModbusError as exc:
                _LOG.warning("device %s not readable at start: %s", dev.name, exc)
                return
            for point, value in values.items():
                self.gate.observed(f"{dev.name}.{point}", value)
            _LOG.info("device %s holds %s", dev.name, values)

        async with asyncio.TaskGroup() as tg:
            for dev in self.devices.values():
                tg.create_task(one(dev), name=f"read-{dev.name}")

    async def _device_writer(self, dev: ModbusDevice) -> None:
        """Writes one device's desired setpoints, one at a time, latest value wins."""
        wake = self._wake[dev.name]
        while not self._stopping:
            self.writers_busy.discard(dev.name)
            await wake.wait()
            wake.clear()
            self.writers_busy.add(dev.name)
            if self._stopping:
                return
            self._retry_at.pop(dev.name, None)
            retry_at = math.inf  # when this writer looks again without a new decision (inf: not before one)
            for target, d in sorted(self.desired.items()):
                if d.device != dev.name:
                    continue
                now = self.clock.now()
                adm = self.gate.admit(
                    target, d.value, now, self.loaded.safety_for(target), manual=d.reason.rule == "manual-override"
                )
                if not adm.write:
                    if adm.held_by:
                        self.stats.held[target] = adm.held_by
                        self._held_value[target] = d.value
                        if adm.retry_at is not None:  # a minimum hold or write cap ends then; a deadband never
                            retry_at = min(retry_at, adm.retry_at)
                    else:
                        self.stats.held.pop(target, None)
                        self._held_value.pop(target, None)
                    continue
                self.stats.held.pop(target, None)
                self._held_value.pop(target, None)
                was_online = dev.online
                result = await dev.write_point(d.point, d.value)
                done = self.clock.now()
                offline_skip = result.outcome is WriteOutcome.FAILED and not was_online and not dev.online
                if not offline_skip:
                    self.gate.wrote(target, d.value, done, ok=result.outcome is WriteOutcome.OK)
                self.stats.write_ms_max = max(self.stats.write_ms_max, result.latency_s * 1000.0)
                if result.outcome is not WriteOutcome.OK:
                    retry_at = min(retry_at, done)  # failed or not verified: again at the next tick
                if result.outcome is WriteOutcome.OK:
                    self.stats.writes_ok += 1
                elif result.outcome is WriteOutcome.MISMATCH:
                    self.stats.writes_mismatch += 1
                    self.recorder.event("write", f"{target}: {result.error}", done, device=dev.name, point=d.point)
                else:
                    self.stats.writes_failed += 1
                self.recorder.write(result, d.reason.rule, done)
                log = _LOG.info if result.outcome is WriteOutcome.OK else _LOG.warning
                log(
                    "write %s = %g (%s, rule %s, readback %s)",
                    target,
                    d.value,
                    result.outcome,
                    d.reason.rule,
                    result.readback,
                )
                self._publish_soon(
                    f"lobbyd/{self.branch}/device/{dev.name}/{d.point}/state",
                    json.dumps(
                        {
                            "desired": d.value,
                            "readback": result.readback,
                            "outcome": str(result.outcome),
                            "rule": d.reason.rule,
                            "ts": done,
                        }
                    ),
                    retain=True,
                )
            if retry_at < math.inf:
                self._retry_at[dev.name] = retry_at
                self._rearm_ticker()

    def _on_status(self, device: str, point: str, value: float) -> None:
        self.recorder.status(device, point, value, self.clock.now())

    # ---- housekeeping ----------------------------------------------------------------------------------
    def _writer_event(self, kind: str, text: str) -> None:
        _LOG.warning("time series: %s: %s", kind, text)
        if self._early_events is not None:
            self._early_events.append((kind, text, self.clock.now()))
        else:
            self.recorder.event(kind, text, self.clock.now())

    def _publish_soon(self, topic: str, payload: str, *, retain: bool) -> None:
        """Queue a publish without waiting; per topic only the latest payload is kept (bounded by topics)."""
        self._pending_publish.pop(topic, None)
        self._pending_publish[topic] = (payload, retain)
        self._publish_wake.set()

    async def _publisher(self) -> None:
        # Ends on the stop flag as well as on cancellation: aiomqtt waits with asyncio.wait_for, which on
        # Python 3.11 can swallow a cancellation that arrives as the publish completes.
        while not self._stopping:
            await self._publish_wake.wait()
            self._publish_wake.clear()
            while self._pending_publish and not self._stopping:
                topic = next(iter(self._pending_publish))
                payload, retain = self._pending_publish.pop(topic)
                await self.link.publish(topic, payload, retain=retain)

    async def _housekeeping(self) -> None:
        period = 10.0
        while True:
            await self.clock.sleep(until_next_slot(self.clock.now(), period))
            now = self.clock.now()
            self.take_batch()  # the health record counts them
            for component, fields in health_records(self):
                self.recorder.health(component, fields, now)
            self.stats.eval_ms_max = self.stats.write_ms_max = 0.0
            if self.link.is_silent(now):
                _LOG.warning("no sensor message for %.0fs", self.link.silent_for(now))
            self.save_memory()

    # ---- rules reload ----------------------------------------------------------------------------------
    def reload_rules(self, why: str) -> dict[str, Any]:
        """Validate the rule files again and swap atomically; a bad file keeps its last good version."""
        new = self._load_rules(self.rules)
        now = self.clock.now()
        self.stats.reloads += 1
        changed = new.fingerprint() != self.rules.fingerprint()
        self.take_batch()  # a sensor the new rules read must not get a batched older reading after a newer one
        self.rules = new
        self._read_by_rules = self._sensors_read(new)
        self._batched_topics = self._topics_no_rule_reads()
        if new.errors:
            text = f"rules reload ({why}): {len(new.errors)} error(s); kept last good version of " + (
                ", ".join(Path(f).name for f in new.kept_previous) or "nothing"
            )
            for err in new.errors:
                _LOG.error("rules: %s", err)
            self.recorder.event("reload", text + ": " + "; ".join(str(e) for e in new.errors[:5]), now)
            self._publish_soon(
                f"lobbyd/{self.branch}/rules/status",
                json.dumps({"ok": False, "errors": [str(e) for e in new.errors], "ts": now}),
                retain=True,
            )
        else:
            text = f"rules reload ({why}): ok, {len(new.ruleset.rules)} rules" + ("" if changed else " (unchanged)")
            _LOG.info(text)
            self.recorder.event("reload", text, now)
            self._publish_soon(
                f"lobbyd/{self.branch}/rules/status", json.dumps({"ok": True, "errors": [], "ts": now}), retain=True
            )
        self.stats.last_reload = text
        self._dirty.set()
        return {"ok": not new.errors, "text": text, "errors": [str(e) for e in new.errors]}

    async def _watch_rules(self) -> None:
        """Reload when a rule file changes on disk (watchfiles), debounced by the library."""
        from watchfiles import awatch

        directory = self.loaded.rules_dir
        task = asyncio.current_task()
        assert task is not None
        # rust_timeout=0: the watch thread returns only on a change or a stop, instead of handing back to
        # the event loop every 5 s for nothing (a thread hop and a wake-up each time). It checks the stop
        # condition every `step` ms, so it also ends when this task is cancelled.
        until = _UntilStopped(self._stop, task)
        async for _changes in awatch(
            directory, stop_event=until, debounce=2000, step=1000, rust_timeout=0, recursive=False
        ):
            self.reload_rules("file changed")

    # ---- control socket ----------------------------------------------------------------------------
    async def handle_control(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "status":
            return self.status()
        if cmd == "counters":  # a cheap poll for scripts and benchmarks (status builds much more)
            self.take_batch()
            rejected = self.intake.counters.snapshot()
            return {
                "received": self.link.received,
                "accepted": rejected.pop("accepted"),
                "rejected": rejected,
                "evaluations": self.stats.evaluations,
                "ticks": self.stats.ticks,
            }
        if cmd == "reload":
            return self.reload_rules("requested")
        if cmd == "why":
            return self.why(str(req.get("target", "")))
        raise ValueError(f"unknown command {cmd!r}")

    def why(self, target: str) -> dict[str, Any]:
        from daemon.explain import explain_point

        matches = sorted(t for t in self.limits if t == target or t.startswith(target + "."))
        if not matches:
            raise ValueError(f"unknown device or point '{target}'; known: {', '.join(sorted(self.limits))}")
        if self.evaluation is not None:
            self._evaluate(full=True)  # every rule's words as of now (ages, how long a `for` has run)
        now = self.clock.now()
        out = {}
        for t in matches:
            if self.evaluation is None:
                out[t] = "no evaluation yet"
                continue
            track = self.gate.track(t)
            out[t] = explain_point(
                t,
                self.evaluation,
                previous=self._previous.get(t),
                known=track.known,
                held_by=self.stats.held.get(t),
                now=now,
            )
        return {"points": out}

    # ---- life cycle ---------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        for err in self.rules.errors:
            _LOG.error("rules: %s", err)
        async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as outer:
            writer_task = outer.create_task(self.writer.run(), name="influx-writer") if self.writer else None
            buses = self.buses
            for dc in self.cfg.devices:
                key = dc.transport.key
                if key not in buses:
                    buses[key] = await stack.enter_async_context(ModbusBus(dc.transport, clock=self.clock))
                self.devices[dc.name] = ModbusDevice(
                    dc,
                    self.loaded.profiles[dc.name],
                    buses[key],
                    clock=self.clock,
                    on_availability=self._on_availability,
                )
                self._wake[dc.name] = asyncio.Event()
            await self._read_devices()
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self.link.run(self._on_message), name="mqtt"),
                    tg.create_task(self._control_loop(), name="control"),
                    tg.create_task(self._ticker(), name="ticker"),
                    tg.create_task(self._publisher(), name="publisher"),
                    tg.create_task(self._housekeeping(), name="housekeeping"),
                    tg.create_task(
                        ControlServer(self.loaded.control_socket, self.handle_control).run(), name="control-socket"
                    ),
                ]
                writers: list[asyncio.Task[None]] = []
                if self.watch_rules:
                    tasks.append(tg.create_task(self._watch_rules(), name="watch-rules"))
                for dev in self.devices.values():
                    writers.append(tg.create_task(self._device_writer(dev), name=f"write-{dev.name}"))
                    if dev.profile.status_points():
                        tasks.append(tg.create_task(dev.run_polls(self._on_status), name=f"poll-{dev.name}"))
                self._dirty.set()
                # Ready only once the broker has acknowledged our subscriptions (or we are told to stop).
                waits = {
                    tg.create_task(self.subscribed.wait(), name="wait-subscribed"),
                    tg.create_task(self._stop.wait(), name="wait-stop"),
                }
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                if self.subscribed.is_set():
                    self.ready.set()
                    if self._on_ready is not None:
                        self._on_ready()
                    _LOG.info(
                        "lobbyd %s running for branch %s: %d sensors, %d devices, %d rules",
                        VERSION,
                        self.branch,
                        len(self.cfg.sensors),
                        len(self.devices),
                        len(self.rules.ruleset.rules),
                    )
                await self._stop.wait()
                _LOG.info("stopping")
                # Stop intake and deciding first; let each device finish the write it is doing.
                self._stopping = True
                self._publish_wake.set()
                for t in tasks:
                    t.cancel()
                for wake in self._wake.values():
                    wake.set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.write_drain_s):
                        await asyncio.gather(*writers, return_exceptions=True)
                for t in writers:
                    t.cancel()
            await self._shutdown()
            if writer_task is not None:
                writer_task.cancel()

    async def _shutdown(self) -> None:
        """Leave each device at its profile's shutdown state (only what differs), persist, flush.

        Each phase is bounded, so a dead device or an absent InfluxDB cannot keep the daemon from exiting:
        what is not sent is in the spool.
        """
        self.take_batch()  # intake has stopped: the last batched readings go to the flush below
        self.save_memory(exact=True)
        try:
            async with asyncio.timeout(self.shutdown_bound_s):
                await self._apply_shutdown_states()
        except TimeoutError:
            _LOG.error("shutdown states not all applied within %.0fs", self.shutdown_bound_s)
        self.save_memory(exact=True)
        if self.writer is not None:
            await self.writer.flush(timeout=10.0)

    async def _apply_shutdown_states(self) -> None:
        for dev in self.devices.values():
            for point, value in (dev.profile.shutdown or {}).items():
                target = f"{dev.name}.{point}"
                if self.gate.track(target).known == value:
                    continue
                result = await dev.write_point(point, value)
                self.gate.wrote(target, value, self.clock.now(), ok=result.outcome is WriteOutcome.OK)
                self.recorder.write(result, "shutdown", self.clock.now())
                _LOG.info("shutdown state %s = %g: %s", target, value, result.outcome)

    def caught_up(self) -> bool:
        """The ticker has handled every tick due by the clock's time and sleeps until a later one
        (simulations on a virtual clock)."""
        wake = self._tick_wake
        return wake is not None and not wake.done() and self.clock.now() < self._tick_at

    def idle(self) -> bool:
        """Nothing left to do until time passes or a message arrives: every reading evaluated, every
        device writer waiting, no status poll, Modbus request or reconnect attempt under way (their
        I/O takes real time). Simulations on a virtual clock wait for this before advancing it."""
        return (
            not self._dirty.is_set()
            and not self.writers_busy
            and not any(w.is_set() for w in self._wake.values())
            and not any(d.polling for d in self.devices.values())
            and not any(b.busy for b in self.buses.values())
        )

    # ---- introspection -----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What ``lobbyd status`` shows (daemon/status.py)."""
        self.take_batch()
        return collect_status(self, VERSION)
