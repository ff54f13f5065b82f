"""The composition root: build the daemon's parts and run them in one TaskGroup.

:func:`build_daemon` does what start-up must read (rules, the state directory); :class:`Daemon`'s
constructor only wires objects. A reading's path, call by call: :meth:`drivers.mqtt.MqttLink.run` →
:meth:`daemon.intake.Intake.on_message` → :meth:`daemon.state.SensorState.update` →
:meth:`daemon.control.ControlLoop.reading` (engine memory) → :meth:`daemon.control.ControlLoop.evaluate`
(pure :func:`daemon.engine.evaluate`) → :meth:`daemon.actuation.Actuation.desired_changed` → the
device's writer → :meth:`drivers.modbus.ModbusDevice.write_point`. Readings, decisions, writes and
events go to :class:`daemon.telemetry.Recorder` on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from daemon.actuation import Actuation
from daemon.config import LoadedConfig
from daemon.control import ControlLoop, ControlSettings
from daemon.control_socket import ControlServer, commands
from daemon.engine import EngineMemory
from daemon.health import housekeeping
from daemon.inputs import CalibrationStore, Conditioning, Derived, Trends, VirtualSensors
from daemon.intake import Intake
from daemon.introspect import collect_status
from daemon.model import Reading
from daemon.overrides import Overrides
from daemon.parts import Parts
from daemon.persist import StateStore
from daemon.publish import Publisher
from daemon.reload import RuleReload, load_rules_of
from daemon.rules.load import LoadedRules
from daemon.safety import SafetyGate
from daemon.state import SensorState
from daemon.sun import is_dark
from daemon.telemetry import Recorder
from daemon.version import VERSION
from drivers.clock import Clock, SteadyClock
from drivers.influx import InfluxConfig, InfluxWriter, daemon_series_config, has_pending
from drivers.modbus import AvailabilityCallback, DeviceConfig, ModbusBus, ModbusDevice
from drivers.mqtt import MessageDecoder, MqttLink, RateLimitedLog

__all__ = ["Daemon", "build_daemon"]

_LOG = logging.getLogger("lobbyd")


def build_daemon(
    loaded: LoadedConfig,
    *,
    clock: Clock,
    rules: LoadedRules | None = None,
    watch_rules: bool = True,
    on_ready: Callable[[], None] | None = None,
) -> Daemon:
    """Read the rules (unless given) and what the state directory holds, wire a daemon on them, and open
    the time-series writer (its secret and spool): everything start-up reads, in one place."""
    clock = clock if isinstance(clock, SteadyClock) else SteadyClock(clock)
    store = StateStore(loaded.state_dir, clock_slack_s=loaded.config.resume_grace_s / 2, clock=clock)
    memory, gate = store.load()
    calibration = CalibrationStore(loaded.state_dir)
    daemon = Daemon(
        loaded,
        clock=clock,
        rules=rules if rules is not None else load_rules_of(loaded),
        memory=memory,
        gate=gate,
        store=store,
        watch_rules=watch_rules,
        on_ready=on_ready,
        calibration=calibration,
        lux_per_percent=calibration.load() if loaded.config.daylight else None,
    )
    for writer in daemon.parts.writers:
        writer.open()  # the secret, the spool left by a previous run (an event, recorded)
    if loaded.config.influx is not None:
        _report_other_spools(loaded.state_dir, set(_spool_names(loaded.config.influx)), clock)
    return daemon


def _spool_names(influx: InfluxConfig) -> tuple[str, str]:
    """The spool directories of the readings' writer and the daemon's own series' writer: one per
    precision, so that points spooled in one are never replayed as if in another."""
    spool = "spool" if influx.precision == "ns" else f"spool-{influx.precision}"
    return spool, f"{spool}-daemon"


def _report_other_spools(state_dir: Path, used: set[str], clock: Clock) -> None:
    """Log points left in a spool this configuration does not replay (another precision, or a daemon
    database no longer configured): they stay on disk until the setting is changed back."""
    with contextlib.suppress(OSError):
        for d in sorted(state_dir.glob("spool*")):
            if d.name not in used and d.is_dir() and has_pending(d, clock=clock):
                _LOG.warning(
                    "time series: %s holds points spooled under another influx precision or daemon database;"
                    " they are not replayed while the configuration differs",
                    d,
                )


class Daemon:
    """The lobby daemon for one branch: ``await daemon.run()``; :meth:`stop` to end."""

    write_drain_s = 10.0  # bound on finishing in-flight writes at shutdown
    shutdown_bound_s = 10.0  # bound on applying shutdown states (the flush has its own)

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        clock: Clock,
        rules: LoadedRules,
        memory: EngineMemory,
        gate: SafetyGate,
        store: StateStore,
        watch_rules: bool = True,
        on_ready: Callable[[], None] | None = None,
        calibration: CalibrationStore | None = None,
        lux_per_percent: Mapping[str, float] | None = None,
    ) -> None:
        cfg = loaded.config
        # The parts measure time on the steady line (a wall-clock step moves no hold, timer or ramp);
        # the wall clock is for schedules, the time series and the state directory.
        self._clock = clock = clock if isinstance(clock, SteadyClock) else SteadyClock(clock)
        self._watch_rules = watch_rules
        self._on_ready = on_ready
        self._stop = asyncio.Event()
        writer = own = None
        if cfg.influx is not None:
            spool, own_spool = _spool_names(cfg.influx)
            writer = InfluxWriter(
                cfg.influx, spool_dir=loaded.state_dir / spool, clock=clock.inner, on_event=self._event
            )
            if (own_cfg := daemon_series_config(cfg.influx)) is not None:
                own = InfluxWriter(
                    own_cfg, spool_dir=loaded.state_dir / own_spool, clock=clock.inner, on_event=self._event
                )
        self._recorder = recorder = Recorder(
            cfg.branch,
            writer,
            to_wall=clock.to_wall,
            own=own,
            precision=cfg.influx.precision if cfg.influx is not None else "ns",
        )
        conditioning = Conditioning(loaded.sensor_inputs())
        state = SensorState(
            loaded.sensor_infos(), started_at=clock.now(), conditioning=conditioning, on_stuck=self._stuck
        )
        decoder = MessageDecoder(cfg.sensors, clock=clock)
        prefix = f"lobbyd/{cfg.branch}/device/"
        link = MqttLink(
            cfg.mqtt,
            branch=cfg.branch,
            # Overrides at QoS 0: the persistent session queues QoS 1 messages while the daemon is away, and
            # an override sent then would take effect late, when nobody expects it. Readings use QoS 1.
            subscriptions=[*decoder.router.subscriptions(), (f"{prefix}+/+/set", 0)],
            clock=clock,
            on_connect=self._on_connect,
        )
        publisher = Publisher(cfg.branch, link, to_wall=clock.to_wall)
        buses: dict[str, ModbusBus] = {}
        for dc in cfg.devices:
            if dc.transport.key not in buses:
                buses[dc.transport.key] = ModbusBus(dc.transport, clock=clock)

        def make_device(dc: DeviceConfig, on_availability: AvailabilityCallback) -> ModbusDevice:
            bus = buses[dc.transport.key]
            return ModbusDevice(dc, loaded.profiles[dc.name], bus, clock=clock, on_availability=on_availability)

        actuation = Actuation(
            cfg.devices,
            make_device=make_device,
            gate=gate,
            safety_for=loaded.safety_for,
            recorder=recorder,
            publisher=publisher,
            clock=clock,
            retry_every_s=cfg.evaluate_every_s,
        )
        settings = ControlSettings(
            site=loaded.site,
            limits=loaded.point_limits(),
            safety_for=loaded.safety_for,
            resume_grace_s=cfg.resume_grace_s,
            evaluate_every_s=cfg.evaluate_every_s,
            evaluate_min_gap_s=cfg.evaluate_min_gap_s,
            evaluate_max_gap_s=max(cfg.evaluate_min_gap_s, cfg.evaluate_max_gap_s),
        )
        control = ControlLoop(
            settings,
            rules=rules,
            memory=memory,
            state=state,
            outputs=actuation,
            recorder=recorder,
            publisher=publisher,
            clock=clock,
            wall=clock.wall,
        )
        overrides = Overrides(
            settings.limits,
            sink=control,
            recorder=recorder,
            clock=clock,
            config=cfg.overrides,
            safety_for=loaded.safety_for,
            tz=loaded.site.tz,
        )
        site = loaded.site
        virtual = VirtualSensors(
            cfg.daylight,
            brightness=actuation.known,
            dark=lambda: is_dark(site, clock.wall()),
            saved=lux_per_percent,
            save=self._calibrated(calibration),
            stale_after_s=loaded.stale_after(),
        )
        trends = Trends(cfg.trends, stale_after_s=loaded.stale_after())
        intake = Intake(
            decoder,
            state=state,
            control=control,
            overrides=overrides,
            recorder=recorder,
            override_prefix=prefix,
            derived=Derived(virtual, trends),
            late_log=RateLimitedLog(logging.getLogger("lobbyd.intake"), interval_s=60.0, clock=clock),
        )
        reload = RuleReload(loaded, control=control, publisher=publisher, recorder=recorder, clock=clock)
        self.parts = Parts(
            loaded=loaded,
            clock=clock,
            state=state,
            intake=intake,
            overrides=overrides,
            control=control,
            actuation=actuation,
            reload=reload,
            publisher=publisher,
            recorder=recorder,
            writer=writer,
            daemon_writer=own,
            link=link,
            buses=buses,
            store=store,
            started_at=clock.now(),
        )

    def _event(self, kind: str, text: str) -> None:
        """An event of the time-series writer (spool, outage, drops): logged and recorded."""
        _LOG.warning("time series: %s: %s", kind, text)
        self._recorder.event(kind, text, self._clock.now())

    def _calibrated(self, store: CalibrationStore | None) -> Callable[[dict[str, float]], None]:
        """Saving a lux-per-% measured at night: logged and recorded, then kept in the state directory."""

        def save(values: dict[str, float]) -> None:
            text = "daylight: lamps measured at night: " + ", ".join(f"{k} {v:.3g} lx per %" for k, v in values.items())
            _LOG.info("%s", text)
            self._recorder.event("daylight_calibrated", text, self._clock.now())
            if store is not None:
                store.save(values)

        return save

    def _stuck(self, sensor: str, stuck: bool, r: Reading) -> None:
        """A sensor became stuck or moved again: logged and recorded once per change."""
        if stuck:
            text = f"sensor {sensor} is stuck at {r.value:g} {r.unit}: the rules treat it as unavailable until it moves"
            _LOG.warning("%s", text)
        else:
            text = f"sensor {sensor} moves again ({r.value:g} {r.unit}): the rules use it again"
            _LOG.info("%s", text)
        self._recorder.event("sensor_stuck" if stuck else "sensor_unstuck", text, r.ts)

    async def _on_connect(self) -> None:
        p = self.parts
        p.subscribed.set()
        for dev in p.actuation.devices.values():
            p.publisher.availability(dev.name, dev.online)

    # ---- life cycle ---------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def ready(self) -> asyncio.Event:
        """Set once devices were read and the broker acknowledged our subscriptions (systemd READY=1)."""
        return self.parts.ready

    async def run(self) -> None:
        p = self.parts
        for err in p.control.rules.errors:
            _LOG.error("rules: %s", err)
        if p.control.rules.last_good_error:
            _LOG.warning("rules: last good copies not saved: %s", p.control.rules.last_good_error)
        async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as outer:
            writer_tasks = [outer.create_task(w.run(), name="influx-writer") for w in p.writers]
            for bus in p.buses.values():
                await stack.enter_async_context(bus)
            await p.actuation.read_devices()
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(p.link.run(p.intake.on_message), name="mqtt"),
                    tg.create_task(p.control.run(), name="control"),
                    tg.create_task(p.control.run_ticker(), name="ticker"),
                    tg.create_task(p.publisher.run(), name="publisher"),
                    tg.create_task(housekeeping(p), name="housekeeping"),
                    tg.create_task(ControlServer(p.loaded.control_socket, commands(p)).run(), name="control-socket"),
                ]
                if self._watch_rules:
                    tasks.append(tg.create_task(p.reload.watch(self._stop), name="watch-rules"))
                actuation = tg.create_task(p.actuation.run(drain_s=self.write_drain_s), name="actuation")
                p.control.start()
                await self._until_ready(tg)
                await self._stop.wait()
                _LOG.info("stopping")
                # Stop intake and deciding first; let each device finish the write it is doing.
                p.publisher.stop()
                for t in tasks:
                    t.cancel()
                p.actuation.stop()
                await asyncio.gather(actuation, return_exceptions=True)
            await self.shutdown()
            for task in writer_tasks:
                task.cancel()

    async def _until_ready(self, tg: asyncio.TaskGroup) -> None:
        """Ready once the broker has acknowledged our subscriptions (or we are told to stop first)."""
        p = self.parts
        waits = {
            tg.create_task(p.subscribed.wait(), name="wait-subscribed"),
            tg.create_task(self._stop.wait(), name="wait-stop"),
        }
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        if not p.subscribed.is_set():
            return
        p.ready.set()
        if self._on_ready is not None:
            self._on_ready()
        cfg = p.loaded.config
        rules = len(p.control.rules.ruleset.rules)
        _LOG.info(
            "lobbyd %s running for branch %s: %d sensors, %d devices, %d rules",
            *(VERSION, cfg.branch, len(cfg.sensors), len(p.actuation.devices), rules),
        )

    async def shutdown(self) -> None:
        """Leave each device at its profile's shutdown state, persist, flush: each phase bounded, so a dead
        device or an absent InfluxDB cannot keep the daemon from exiting (what is not sent is spooled)."""
        p = self.parts
        p.store.save(p.control.memory, p.actuation.gate, exact=True)
        try:
            async with asyncio.timeout(self.shutdown_bound_s):
                await p.actuation.apply_shutdown_states()
        except TimeoutError:
            _LOG.error("shutdown states not all applied within %.0fs", self.shutdown_bound_s)
        p.store.save(p.control.memory, p.actuation.gate, exact=True)
        await asyncio.gather(*(w.flush(timeout=10.0) for w in p.writers))

    # ---- for simulations and tests on a virtual clock ------------------------------------------------------
    def caught_up(self) -> bool:
        """The ticker has handled every tick due by the clock's time."""
        return self.parts.control.caught_up()

    def idle(self) -> bool:
        """Nothing left to do until time passes or a message arrives: every reading evaluated, no writer
        working or woken, no status poll, Modbus request or reconnect attempt under way (their I/O takes
        real time). Simulations on a virtual clock wait for this before advancing it."""
        p = self.parts
        return not p.control.pending and p.actuation.idle and not any(b.busy for b in p.buses.values())

    def status(self) -> dict[str, Any]:
        """What ``lobbyd status`` shows (daemon/status.py)."""
        return collect_status(self.parts)
