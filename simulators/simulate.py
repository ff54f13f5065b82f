"""Run a scenario through the real daemon on a shared virtual clock, step by step, without sleeping.

Real mosquitto, real pymodbus device simulators (from the config's own profiles), optionally a real
influxd, and the real :class:`daemon.app.Daemon` in this process on a :class:`VirtualClock`. Each
step (``step_s``, 10 s by default):

1. apply the scenario's fault events (frozen sensor, device offline, broker down);
2. advance the zone model over the step with the actuators' current register values;
3. move the clock to the end of the step (this wakes the daemon's ticker, polls and backoffs);
4. publish the sensors that are due (noise, drops, per-sensor intervals) as their decoders expect;
5. wait until the daemon received them, evaluated after them and its device writers are idle;
6. record a :class:`Sample`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from daemon.config import LoadedConfig, load_config
from daemon.model import Quantity
from drivers.clock import VirtualClock
from simulators.devices import DeviceSimulator
from simulators.lobby_model import (
    Inputs,
    Outdoor,
    ZoneState,
    daylight_lux,
    lag,
    step,
    sun_elevation,
    vapour_density,
)
from simulators.publisher import SimPublisher
from simulators.results import RunResult, Sample
from simulators.scenario import Scenario, minutes_of
from simulators.sensors import payload_for
from simulators.servers import InfluxServer, MosquittoServer, free_port
from simulators.settle import settle
from simulators.variants import Variant, write_config, write_rules

__all__ = ["RunResult", "Sample", "SimulationError", "run_scenario"]

_LOG = logging.getLogger("lobbyd.sim")


class SimulationError(RuntimeError):
    """The simulation could not go on (the daemon stopped, or did not settle within the deadline)."""


def _local(scn: Scenario, loaded: LoadedConfig, hhmm: str) -> float:
    m = minutes_of(hhmm)
    midnight = dt.datetime.combine(scn.date, dt.time(0), loaded.site.tz)
    return (midnight + dt.timedelta(minutes=m)).timestamp()


class _Run:
    def __init__(self, scn: Scenario, variant: Variant, work: Path, *, influx: bool) -> None:
        self.scn, self.variant, self.work = scn, variant, work
        self.want_influx = influx
        self.rng = random.Random(scn.seed)
        src = scn.resolve(scn.config)
        self.source_loaded = load_config(src)
        self.site = self.source_loaded.site
        self.t0 = _local(scn, self.source_loaded, scn.start)
        self.clock = VirtualClock(self.t0)
        self.result = RunResult(scn, variant)
        z = scn.zone
        self.params = z.params()
        self.state = ZoneState(z.initial_pm25, z.initial_temperature_c,
                               vapour_density(z.initial_temperature_c, z.initial_humidity_rh))  # fmt: skip
        self.next_pub = {sid: self.t0 + s.offset_s for sid, s in scn.sensors.items()}
        self.frozen: dict[str, float] = {}  # sensor -> frozen value
        self.shadow = self.state  # the same zone with the fan at its top level all along
        self.sensed: dict[str, float] = {}  # sensor with a lag -> what its element sees now

    def minute(self, t: float) -> float:
        local = dt.datetime.fromtimestamp(t, self.site.tz)
        return local.hour * 60 + local.minute + local.second / 60

    def _between(self, t: float, span: tuple[str, str]) -> bool:
        m = self.minute(t)
        return minutes_of(span[0]) <= m < minutes_of(span[1])

    def busy(self, t: float) -> bool:
        """Fine steps while occupied (± 30 min) and around fault events (± 10 min); coarse otherwise."""
        m, scn = self.minute(t), self.scn
        if minutes_of(scn.occupied[0]) - 30 <= m < minutes_of(scn.occupied[1]) + 30:
            return True
        return any(minutes_of(e.at) - 10 <= m < minutes_of(e.until) + 10 for e in scn.events)

    # ---- the physical side -----------------------------------------------------------------------
    def outdoor(self, t: float) -> Outdoor:
        o, m = self.scn.outdoor, self.minute(t)
        return Outdoor(o.pm25.at(m), o.temperature_c.at(m), o.humidity_rh.at(m), o.cloud_cover.at(m))

    def actuator(self, name: str, default: float) -> float:
        act = getattr(self.scn.actuators, name)
        if act is None:
            return default
        return self.sims[act.device].value(act.point)

    def signal(self, name: str, t: float) -> float:
        s, o = self.state, self.outdoor(t)
        return {
            "pm25": s.pm25,
            "outdoor_pm25": o.pm25,
            "temperature": s.temperature_c,
            "humidity": s.humidity_rh(),
            "lux": s.lux,
            "outdoor_temperature": o.temperature_c,
        }[name]

    def advance_model(self, t: float, dt_s: float) -> None:
        mid = t + dt_s / 2
        inp = Inputs(
            outdoor=self.outdoor(mid),
            occupants=self.scn.occupancy.at(self.minute(mid)) if self._between(mid, self.scn.occupied) else 0.0,
            airflow_m3h=self.scn.airflow(self.actuator("fan_level", 0.0)),
            brightness_pct=self.actuator("brightness", 0.0),
            hvac_on=self._between(mid, self.scn.hvac),
            sun_elevation_deg=sun_elevation(self.site.latitude, self.site.longitude, mid),
        )
        self.state = step(self.state, self.params, inp, dt_s)
        top = max(self.scn.fan_airflow_m3h.values(), default=0.0)
        self.shadow = step(self.shadow, self.params, replace(inp, airflow_m3h=top), dt_s)
        for sid, spec in self.scn.sensors.items():
            if spec.lag_s > 0:
                true = self.signal(spec.signal, t + dt_s)
                self.sensed[sid] = lag(self.sensed.get(sid, true), true, spec.lag_s, dt_s)

    def reading(self, sid: str, t: float) -> float:
        spec = self.scn.sensors[sid]
        v = self.frozen.get(sid, self.sensed.get(sid, self.signal(spec.signal, t)))
        if sid in self.frozen:
            return v
        sd = spec.noise_sd + spec.relative_noise * abs(v)
        v = v + self.rng.gauss(0.0, sd) if sd > 0 else v
        return max(0.0, v) if spec.signal != "temperature" else v

    # ---- events -------------------------------------------------------------------------------------
    async def apply_events(self, t: float) -> None:
        for ev in self.scn.events:
            active = self._between(t, (ev.at, ev.until))
            if ev.kind == "sensor_freeze" and ev.sensor:
                if active and ev.sensor not in self.frozen:
                    self.frozen[ev.sensor] = ev.value if ev.value is not None else self.reading(ev.sensor, t)
                elif not active:
                    self.frozen.pop(ev.sensor, None)
            elif ev.kind == "device_offline" and ev.device:
                sim = self.sims[ev.device]
                if active and sim.running:
                    await sim.stop()
                elif not active and not sim.running:
                    await sim.start()
            elif ev.kind == "broker_down":
                # Only an availability mark seen *after* the transition proves a fresh subscription.
                if active and self.mosq.running:
                    self.subscribed, self.marks_before = False, self.pub.marks
                    self.pub.broker_up.clear()
                    await asyncio.to_thread(self.mosq.stop)
                    async with asyncio.timeout(20):  # so the restart below waits for a *new* connection
                        await self.pub.disconnected.wait()
                elif not active and not self.mosq.running:
                    self.subscribed, self.marks_before = False, self.pub.marks
                    await asyncio.to_thread(self.mosq.start)
                    self.pub.broker_up.set()
                    # The publisher listens again before the virtual clock lets the daemon's reconnect
                    # backoff expire, so the daemon's post-subscribe availability mark cannot be missed.
                    async with asyncio.timeout(20):
                        await self.pub.connected.wait()

    def silent(self, sid: str) -> bool:
        return any(
            ev.kind == "sensor_freeze" and ev.sensor == sid and not ev.stuck and sid in self.frozen
            for ev in self.scn.events
        )

    def in_burst(self, sids: list[str], t: float) -> bool:
        """A ``drop_burst`` event covers one of these sensors now: its messages are lost."""
        return any(
            ev.kind == "drop_burst" and ev.sensor in sids and self._between(t, (ev.at, ev.until))
            for ev in self.scn.events
        )

    # ---- publishing ---------------------------------------------------------------------------------
    async def publish_due(self, t: float) -> int:
        """Publish what is due at ``t``; returns how many messages the daemon will receive."""
        due = [sid for sid, nt in self.next_pub.items() if nt <= t + 1e-6]
        for sid in due:
            self.next_pub[sid] = max(self.next_pub[sid] + self.scn.sensors[sid].interval_s, t)
        values = {sid: self.reading(sid, t) for sid in due if not self.silent(sid)}
        by_topic: dict[str, list[Any]] = {}
        for s in self.loaded.config.sensors:
            if s.id in values:
                by_topic.setdefault(s.topic, []).append(s)
        sent = 0
        for topic, group in by_topic.items():
            spec = self.scn.sensors[group[0].id]
            if spec.drop_probability and self.rng.random() < spec.drop_probability:
                self.result.dropped += 1
                continue
            if self.in_burst([s.id for s in group], t):
                self.result.dropped_burst += 1
                continue
            if not self.subscribed:
                self.result.lost_broker += 1
                continue
            if await self.pub.publish(topic, payload_for(group, values), qos=max(s.qos for s in group)):
                sent += 1
            else:
                self.result.lost_broker += 1
        return sent

    # ---- synchronisation ----------------------------------------------------------------------------
    async def settle(self, expected: int, *, timeout: float = 20.0) -> None:
        """Until the daemon received ``expected`` messages, handled the ticks due by now and is idle."""
        d = self.daemon
        try:
            async with asyncio.timeout(timeout):
                await settle(d, self.daemon_task, expected, during="simulation", error=SimulationError)
        except TimeoutError:
            raise SimulationError(
                f"daemon did not settle at {dt.datetime.fromtimestamp(self.clock.now(), self.site.tz):%H:%M:%S}: "
                f"received {d.parts.link.received}/{expected}, caught up {d.caught_up()}, "
                f"idle {d.idle()}"
            ) from None

    async def wait_subscribed(self) -> None:
        if self.subscribed or not self.pub.connected.is_set() or not self.daemon.parts.link.connected:
            return  # a daemon still in its reconnect backoff cannot be subscribed: no need to wait
        self.subscribed = await self.pub.wait_mark(self.marks_before, timeout=1.0)

    def sample(self, t: float) -> Sample:
        s = self.state
        day = (
            daylight_lux(sun_elevation(self.site.latitude, self.site.longitude, t), self.outdoor(t).cloud_cover)
            * self.params.window_factor
        )
        occupied = self._between(t, self.scn.occupied)
        return Sample(
            t=t,
            pm25=s.pm25,
            pm25_out=self.outdoor(t).pm25,
            pm25_max_fan=self.shadow.pm25,
            temperature_c=s.temperature_c,
            humidity_rh=s.humidity_rh(),
            daylight_lux=day,
            lux=s.lux,
            fan_level=self.actuator("fan_level", 0.0),
            brightness=self.actuator("brightness", 0.0),
            cct=self.actuator("cct", 0.0),
            occupants=self.scn.occupancy.at(self.minute(t)) if occupied else 0.0,
            occupied=occupied,
            fallbacks=tuple(sorted(k for k, dd in self.daemon.parts.control.desired.items() if dd.reason.fallback)),
            offline=tuple(sorted(n for n, dev in self.daemon.parts.actuation.devices.items() if not dev.online)),
        )

    # ---- the run --------------------------------------------------------------------------------------
    async def run(self, on_progress: Callable[[float], None] | None = None) -> RunResult:
        from daemon.app import build_daemon

        scn = self.scn
        wall0 = time.monotonic()
        self.mosq = MosquittoServer(self.work / "mosquitto", extra_config="set_tcp_nodelay true")
        await asyncio.to_thread(self.mosq.start)
        influx: InfluxServer | None = None
        try:
            if self.want_influx:
                influx = InfluxServer(self.work / "influxd")
                await asyncio.to_thread(influx.start)
                influx.create_database("lobbyd")
                self.result.influx = True
            self.sims: dict[str, DeviceSimulator] = {}
            for dc in self.source_loaded.config.devices:
                prof = self.source_loaded.profiles[dc.name]
                self.sims[dc.name] = DeviceSimulator.tcp(
                    prof, dc.unit_id, port=free_port(), parameters=dict(dc.parameters), clock=self.clock
                )
            rules_src = scn.resolve(scn.rules) if scn.rules else self.source_loaded.rules_dir
            pm25_sensors = sum(1 for s in self.source_loaded.config.sensors
                               if s.quantity is Quantity.PM25 and s.zone == scn.zone.name)  # fmt: skip
            rules = write_rules(scn, self.variant, rules_src, self.work / "rules", pm25_sensors=pm25_sensors)
            cfg = write_config(
                scn.resolve(scn.config), self.work / "lobbyd.yaml", mqtt_port=self.mosq.port,
                device_ports={n: s.port for n, s in self.sims.items()},
                influx_url=influx.url if influx else None, rules_dir=rules, state_dir=self.work / "state",
            )  # fmt: skip
            self.loaded = load_config(cfg)
            self.result.caps = {t: self.loaded.safety_for(t).max_writes_per_hour for t in self.loaded.point_limits()}
            async with contextlib.AsyncExitStack() as stack:
                for sim in self.sims.values():
                    await stack.enter_async_context(sim)
                self.pub = SimPublisher("127.0.0.1", self.mosq.port, branch=self.loaded.config.branch)
                self.daemon = build_daemon(self.loaded, clock=self.clock, watch_rules=False)
                async with asyncio.TaskGroup() as tg:
                    pub_task = tg.create_task(self.pub.run(), name="sim-publisher")
                    async with asyncio.timeout(20):
                        await self.pub.connected.wait()
                    self.daemon_task = tg.create_task(self.daemon.run(), name="daemon")
                    self.marks_before = 0
                    async with asyncio.timeout(20):
                        await self.daemon.ready.wait()
                    # The publisher listened before the daemon started, so its first mark is not missed.
                    self.subscribed = await self.pub.wait_mark(0, timeout=20)
                    if not self.subscribed:
                        raise SimulationError("the daemon never announced its subscription")
                    await self.loop(on_progress)
                    self.daemon.stop()
                    await self.daemon_task
                    pub_task.cancel()
                for name, sim in self.sims.items():
                    self.result.writes[name] = list(sim.writes)
        finally:
            self.mosq.close()
            if influx is not None:
                influx.close()
        self.result.published = self.pub.published
        self.result.evaluations = self.daemon.parts.control.stats.evaluations
        self.result.wall_s = time.monotonic() - wall0
        return self.result

    async def loop(self, on_progress: Callable[[float], None] | None) -> None:
        scn, d = self.scn, self.daemon
        end = self.t0 + scn.duration_h * 3600
        t = self.t0
        expected = d.parts.link.received
        await self.settle(expected)
        while t < end - 1e-6:
            dt_s = min(scn.step_s if self.busy(t) else scn.quiet_step_s, end - t)
            await self.apply_events(t)
            self.advance_model(t, dt_s)
            t += dt_s
            self.clock.set(t)
            await self.wait_subscribed()
            # the daemon's own work at t first (ticks, ramp steps, the writes they make), then t's readings:
            # otherwise a reading may see a lamp level written in the same step or not, by the scheduler
            await self.settle(expected)
            expected += await self.publish_due(t)
            await self.settle(expected)
            self.result.samples.append(self.sample(t))
            if on_progress is not None:
                on_progress((t - self.t0) / (end - self.t0))


async def run_scenario(
    scn: Scenario,
    variant: Variant = "lobbyd",
    *,
    workdir: Path | None = None,
    influx: bool = False,
    on_progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Run ``scn`` once with the given rule set; servers live in ``workdir`` (a temporary one by default)."""
    logging.getLogger("lobbyd").setLevel(logging.WARNING)
    if workdir is not None:
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        return await _Run(scn, variant, workdir, influx=influx).run(on_progress)
    with tempfile.TemporaryDirectory(prefix=f"lobbyd-sim-{variant}-", dir=_tmp_base()) as tmp:
        return await _Run(scn, variant, Path(tmp), influx=influx).run(on_progress)


def _tmp_base() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None
