"""Issue 17, finding 5: the wall clock set back (or forward) neither freezes nor jumps an output.

The real daemon runs in this process on a :class:`VirtualClock` against real mosquitto and real
pymodbus device simulators, as ``lobbyd simulate`` does; readings go through the broker. The wall
clock is stepped with :meth:`VirtualClock.step_wall` (an NTP step, an RTC reset): monotonic time, and
the daemon's timers with it, go on. Every figure below is in seconds of monotonic time since the
daemon started: a hold, a ``for:`` and a ramp end exactly when they would have without the step.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from daemon.app import Daemon, build_daemon
from daemon.config import LoadedConfig, load_config
from daemon.engine import EngineMemory
from daemon.parts import Parts
from daemon.persist import ENGINE_FILE, GATE_FILE, StateStore, load_engine_memory, load_safety_gate
from daemon.safety import SafetyGate
from drivers.clock import SteadyClock, SystemClock, Timer, VirtualClock
from drivers.modbus import load_profile
from simulators.devices import DeviceSimulator
from simulators.publisher import SimPublisher
from simulators.servers import MosquittoServer, free_port
from simulators.settle import settle
from tests.e2e.harness import REPO, write_config

T0 = 1_780_475_400.0  # 2026-06-03 10:30 local (Asia/Shanghai): the branch is open
DAY = 86_400.0
PM25 = "sensors/demo-001/hall/pm25"
FAN = "fresh_air.fan_speed"

# The fan's minimum hold is the shipped 120 s. PM2.5 above 40 asks for level 2 at once, level 3 once it
# has lasted a minute; the light ramps from 0 to 100 % at 60 %/min (a step a minute) while PM2.5 is high.
RULES = """
rules:
  - id: fan-base
    target: fresh_air.fan_speed
    set: 1
  - id: fan-pm25
    target: fresh_air.fan_speed
    priority: 10
    when:
      - sensor: hall-pm25
        above: 40
    set: 2
  - id: fan-pm25-long
    target: fresh_air.fan_speed
    priority: 20
    when:
      - sensor: hall-pm25
        above: 40
        for: 1m
    set: 3
  - id: light-base
    target: lights.brightness
    set: 0
  - id: light-alarm
    target: lights.brightness
    priority: 10
    when:
      - sensor: hall-pm25
        above: 40
    set: 100
    ramp_per_minute: 60
"""


class Stopwatch:
    """The simulators' clock: the virtual clock's monotonic time, so a write's time is unmoved by steps."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.origin = clock.monotonic()

    def now(self) -> float:
        return self.clock.monotonic() - self.origin

    def monotonic(self) -> float:
        return self.clock.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    def call_at(self, t: float, callback: Callable[[], None]) -> Timer:
        return self.clock.call_at(self.clock.now() + (t - self.now()), callback)


@dataclass
class Branch:
    tmp: Path
    loaded: LoadedConfig
    fan: DeviceSimulator
    lights: DeviceSimulator
    pub: SimPublisher
    watch: Stopwatch

    def writes(self, sim: DeviceSimulator, point: str) -> list[tuple[float, float]]:
        """(seconds since the stopwatch's origin, value) of each write ``sim`` received to ``point``."""
        return [(round(w.ts, 6), w.value) for w in sim.writes if w.point == point]


@contextlib.asynccontextmanager
async def branch(tmp: Path, mosquitto: MosquittoServer, extra_rules: str = "") -> AsyncIterator[Branch]:
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "clock.yaml").write_text(RULES + extra_rules)
    shutil.copy(REPO / "rules" / "schedules.yaml", rules)
    devices = REPO / "config" / "devices"
    watch = Stopwatch(VirtualClock(T0))  # each daemon run points it at its own clock
    fan = DeviceSimulator.tcp(load_profile(devices / "freshair-standard.yaml"), 1, port=free_port(), clock=watch)
    lights = DeviceSimulator.tcp(load_profile(devices / "lighting-standard.yaml"), 1, port=free_port(), clock=watch)
    fan.set_value("fan_speed", 1)
    lights.set_value("brightness", 0)
    cfg = write_config(
        tmp,
        mqtt_port=mosquitto.port,
        device_ports={"fresh_air": fan.port, "lights": lights.port},
        influx_url=None,
        rules_dir=rules,
        edit=lambda data: data["safety"].update({"lights.brightness": {"min_hold_s": 0}}),  # a ramp, a write a second
    )
    pub = SimPublisher("127.0.0.1", mosquitto.port, branch="demo-001")
    async with fan, lights, asyncio.TaskGroup() as tg:
        task = tg.create_task(pub.run())
        async with asyncio.timeout(20):
            await pub.connected.wait()
        yield Branch(tmp, load_config(cfg), fan, lights, pub, watch)
        task.cancel()


class Run:
    """One daemon run on its own virtual clock, moved a second at a time."""

    def __init__(self, b: Branch, start: float) -> None:
        self.b, self.clock = b, VirtualClock(start)
        b.watch.clock, b.watch.origin = self.clock, self.clock.monotonic()
        self.daemon: Daemon = build_daemon(b.loaded, clock=self.clock, watch_rules=False)
        self.expected = 0
        self.task: asyncio.Task[None] | None = None

    @property
    def s(self) -> float:
        """Monotonic seconds since this run started."""
        return self.b.watch.now()

    async def settled(self) -> None:
        assert self.task is not None
        async with asyncio.timeout(20):
            await settle(self.daemon, self.task, self.expected, during="clock-step test")

    async def publish(self, pm25: float) -> None:
        assert await self.b.pub.publish(PM25, f"{pm25:g}".encode())
        self.expected += 1
        await self.settled()

    async def seconds(self, n: int, *, pm25: float, step_at: float | None = None, step_s: float = 0.0) -> None:
        """``n`` seconds: a PM2.5 reading every 10 s, the wall clock stepped by ``step_s`` at ``step_at``."""
        for _ in range(n):
            if step_at is not None and self.s == step_at:
                self.clock.step_wall(step_s)
            await self.clock.advance(1.0)
            await self.settled()
            if round(self.s) % 10 == 0:
                await self.publish(pm25)


@contextlib.asynccontextmanager
async def running(b: Branch, start: float) -> AsyncIterator[Run]:
    run = Run(b, start)
    async with asyncio.TaskGroup() as tg:
        run.task = tg.create_task(run.daemon.run())
        async with asyncio.timeout(20):
            await run.daemon.ready.wait()
        await run.settled()
        yield run
        run.daemon.stop()
        await run.task


def ramp_ok(writes: list[tuple[float, float]], per_min: float, start: float = 0.0) -> bool:
    """Each write is at most ``per_min`` from the value the output held a minute before it."""
    for t, v in writes:
        before = start
        for t0, v0 in writes:
            if t0 > t - 60:
                break
            before = v0
        if abs(v - before) > per_min + 1e-6:
            return False
    return True


@pytest.mark.parametrize("step_s", [DAY, -DAY], ids=["plus-1-day", "minus-1-day"])
async def test_a_wall_clock_step_while_running_moves_no_hold_timer_or_ramp(
    tmp_path: Path, mosquitto: MosquittoServer, step_s: float
) -> None:
    async with branch(tmp_path, mosquitto) as b, running(b, T0) as run:
        await run.publish(10)
        await run.seconds(10, pm25=50)  # PM2.5 high from 10 s: fan 2 at once, level 3 due at 70 s
        await run.seconds(190, pm25=50, step_at=40, step_s=step_s)  # the step: mid-hold, mid-for, mid-ramp
        state = run.daemon.parts.state
        assert run.clock.now() - run.clock.monotonic() == pytest.approx(step_s)
        # The fan: level 2 at 10 s starts the 120 s hold; the `for: 1m` is done at 70 s but held until 130 s.
        assert b.writes(b.fan, "fan_speed") == [(10, 2), (130, 3)]
        # The light: 0 → 100 % at 60 %/min is two equal steps, 50 % at 10 s (at once) and 100 % a minute later;
        # the step at 40 s moves neither.
        light = b.writes(b.lights, "brightness")
        assert light == [(10, 50), (70, 100)] and ramp_ok(light, 60)
        assert run.daemon.parts.actuation.gate.writes_last_hour(FAN, run.daemon.parts.clock.now()) == 2
        assert state.out_of_order == 0
        assert not any(d.reason.fallback for d in run.daemon.parts.control.desired.values())


async def test_state_saved_in_the_future_does_not_freeze_the_fan_after_a_restart(
    tmp_path: Path, mosquitto: MosquittoServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The clock set back by 33 h across a restart (an RTC reset): the hold the shutdown write started
    and the `for:` under way keep what they had left, instead of waiting 33 h for the clock."""
    async with branch(tmp_path, mosquitto) as b:
        async with running(b, T0 + 33 * 3600) as run:
            await run.publish(10)
            await run.seconds(10, pm25=50)  # fan 2 at 10 s; the `for: 1m` starts
            await run.seconds(10, pm25=50)
        assert b.writes(b.fan, "fan_speed")[-1] == (20, 1)  # the shutdown state, at 20 s
        b.fan.writes.clear()
        b.lights.writes.clear()
        with caplog.at_level("WARNING", logger="lobbyd"):
            async with running(b, T0) as run:  # 33 h earlier
                await run.publish(50)
                await run.seconds(150, pm25=50)
        # The hold of the shutdown write: 120 s from the restart; the `for:` (20 s done) wanted 3 from 40 s.
        assert b.writes(b.fan, "fan_speed") == [(120, 3), (150, 1)]  # 150: this run's shutdown state
        light = b.writes(b.lights, "brightness")
        assert light[0][0] <= 1 and light[-1][1] == 100 and ramp_ok(light, 60)
        moved = [r for r in caplog.records if "the clock was set back" in r.getMessage()]
        assert len(moved) == 2  # once per state file


CLOSED = """
  - id: fan-closed
    target: fresh_air.fan_speed
    priority: 30
    when:
      - outside_schedule: opening-hours
    set: 0
"""


@pytest.mark.parametrize("step_s", [12 * 3600, -12 * 3600], ids=["plus-12-h", "minus-12-h"])
async def test_opening_hours_follow_the_wall_clock_after_a_step(
    tmp_path: Path, mosquitto: MosquittoServer, step_s: float
) -> None:
    """Wednesday 10:30, open; stepped to 22:30 (the same day or the day before): closed at the next
    evaluation (the reading at 50 s), while the hold and timers stay on monotonic time."""
    async with branch(tmp_path, mosquitto, CLOSED) as b, running(b, T0) as run:
        await run.publish(10)
        await run.seconds(100, pm25=10, step_at=40, step_s=step_s)
        assert b.writes(b.fan, "fan_speed") == [(50, 0)]
        assert run.daemon.parts.control.desired["fresh_air.fan_speed"].reason.rule == "fan-closed"
        decision = await retained(mosquitto, "lobbyd/demo-001/decision/fresh_air/fan_speed")
        assert decision["ts"] == T0 + 50 + step_s  # published in wall time
        # An override's end, in words and in status, is told on the wall clock too.
        p, ends = run.daemon.parts, run.clock.now() + 1800
        text = p.overrides.request(FAN, {"value": 2, "duration": "30m"}, "control socket, test")
        assert f"(until {ends_local(p, ends):%Y-%m-%d %H:%M})" in text
        assert p.overrides.snapshot()["in_force"][FAN]["until"] == ends
        await run.seconds(1, pm25=10)
        reason = p.control.desired[FAN].reason
        assert (reason.rule, reason.text.rsplit(" ", 1)[-1]) == ("manual-override", f"{ends_local(p, ends):%H:%M}")


def ends_local(p: Parts, t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, p.loaded.site.tz)


async def retained(mosquitto: MosquittoServer, topic: str) -> dict[str, Any]:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client, asyncio.timeout(10):
        await client.subscribe(topic)
        async for m in client.messages:
            assert isinstance(m.payload, bytes)
            got: dict[str, Any] = json.loads(m.payload)
            return got
    raise AssertionError(f"nothing retained on {topic}")


def test_on_the_real_clocks_an_unchanged_state_is_not_rewritten(tmp_path: Path) -> None:
    """Wall and monotonic time drift apart by microseconds between saves: no rewrite for that."""
    clock = SteadyClock(SystemClock())
    store = StateStore(tmp_path, clock_slack_s=60.0, clock=clock)
    memory, gate = EngineMemory(since={"r#0:abc": clock.now() - 30}), SafetyGate()
    gate.wrote(FAN, 2.0, clock.now(), ok=True)
    store.save(memory, gate)
    inodes = {n: (tmp_path / n).stat().st_ino for n in (ENGINE_FILE, GATE_FILE)}
    for _ in range(100):
        store.save(memory, gate)
    assert {n: (tmp_path / n).stat().st_ino for n in inodes} == inodes


def test_state_from_the_future_is_moved_back_whole_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Saved 33 h ahead of the clock at load: a hold with 60 s left, a `for:` 20 s on and an override with
    10 min left keep exactly that; a file from the past is left as it is."""
    now, ahead = T0, 33 * 3600.0
    saved = now + ahead
    (tmp_path / GATE_FILE).write_text(json.dumps({FAN: {"last_change": saved - 60, "writes": [saved - 60]}}))
    memory = {"since": {"r#0:abc": saved - 20}, "overrides": {FAN: [3, saved + 600, "mqtt"]}, "saved_at": saved}
    (tmp_path / ENGINE_FILE).write_text(json.dumps(memory))
    with caplog.at_level("WARNING", logger="lobbyd"):
        gate = load_safety_gate(tmp_path, now, saved_at=saved)
        mem = load_engine_memory(tmp_path, now)
        assert load_safety_gate(tmp_path, saved + 1).latest() == saved - 60  # not from the future: as it was
    assert gate.latest() == now - 60 and list(gate.track(FAN).writes) == [now - 60]
    assert mem.since == {"r#0:abc": now - 20} and mem.overrides[FAN].until == now + 600
    moved = [r.getMessage() for r in caplog.records]
    assert len(moved) == 2 and all(f"{ahead:.0f}s after the clock's time now" in m for m in moved)


@pytest.mark.parametrize(
    "bad",
    ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 400, "1e300"],
    ids=["nan", "inf", "-inf", "1e999", "int-400-digits", "1e300"],
)
def test_a_state_file_with_an_impossible_time_is_set_aside_not_moved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: str
) -> None:
    """Not a clock set back but a damaged file: fresh state, a warning per file, no exception."""
    (tmp_path / GATE_FILE).write_text(f'{{"{FAN}": {{"last_change": {bad}, "writes": []}}}}')
    (tmp_path / ENGINE_FILE).write_text(f'{{"since": {{"r#0:abc": {bad}}}, "saved_at": {T0}}}')
    with caplog.at_level("WARNING", logger="lobbyd"):
        memory, gate = StateStore(tmp_path, clock_slack_s=60.0, clock=SteadyClock(VirtualClock(T0))).load()
    assert memory == EngineMemory() and gate.points == {}
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "engine memory unreadable, starting with fresh timers",
        "safety gate state unreadable, starting afresh",
    ]
