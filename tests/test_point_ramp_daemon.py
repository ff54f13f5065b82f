"""Issue 20, ramps everywhere, end to end: the point's ``safety:`` ramp reaches the lamps at closing.

The real daemon runs in this process on a :class:`VirtualClock` against real mosquitto and a real
pymodbus lighting simulator (as tests/faults/test_clock_steps.py does). At 17:30 the day rule (4500 K)
gives way to the night rule (2700 K); with ``lights.cct: {ramp_per_minute: 600}`` the lamps receive a
ramp of writes, none moving faster than 600 K a minute, instead of one 1800 K step.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from daemon.app import build_daemon
from daemon.config import load_config
from drivers.clock import VirtualClock
from drivers.modbus import load_profile
from simulators.devices import DeviceSimulator
from simulators.servers import MosquittoServer, free_port
from simulators.settle import settle
from tests.e2e.harness import REPO, write_config
from tests.faults.test_clock_steps import Stopwatch

START = 1_780_478_880.0  # 2026-06-03 17:28 local (Asia/Shanghai), a Wednesday: closing at 17:30
RULES = """
rules:
  - id: cct-day
    target: lights.cct
    when:
      - schedule: opening-hours
    set: 4500
  - id: cct-night
    target: lights.cct
    when:
      - outside_schedule: opening-hours
    set: 2700
"""


async def closing_writes(tmp: Path, mosquitto: MosquittoServer, ramp: float | None) -> list[tuple[float, float]]:
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "cct.yaml").write_text(RULES)
    shutil.copy(REPO / "rules" / "schedules.yaml", rules)
    devices = REPO / "config" / "devices"
    clock = VirtualClock(START)
    watch = Stopwatch(clock)
    fan = DeviceSimulator.tcp(load_profile(devices / "freshair-standard.yaml"), 1, port=free_port(), clock=watch)
    lights = DeviceSimulator.tcp(load_profile(devices / "lighting-standard.yaml"), 1, port=free_port(), clock=watch)
    lights.set_value("cct", 4500)

    def edit(data: dict[str, Any]) -> None:
        cct = {"deadband": 0, "min_hold_s": 5, "max_writes_per_hour": 120}
        data["safety"]["lights.cct"] = cct if ramp is None else {**cct, "ramp_per_minute": ramp}

    cfg = write_config(
        tmp, mqtt_port=mosquitto.port, device_ports={"fresh_air": fan.port, "lights": lights.port},
        influx_url=None, rules_dir=rules, edit=edit,
    )  # fmt: skip
    async with fan, lights:
        daemon = build_daemon(load_config(cfg), clock=clock, watch_rules=False)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(daemon.run())
            async with asyncio.timeout(20):
                await daemon.ready.wait()
                await settle(daemon, task, 0, during="ramp test")
            for _ in range(8 * 60):  # 17:28 to 17:36, a second at a time
                await clock.advance(1.0)
                async with asyncio.timeout(20):
                    await settle(daemon, task, 0, during="ramp test")
            daemon.stop()
            await task
    return [(round(w.ts, 6), w.value) for w in lights.writes if w.point == "cct"]


async def test_closing_is_a_ramp_on_the_lamps_not_a_step(tmp_path: Path, mosquitto: MosquittoServer) -> None:
    writes = await closing_writes(tmp_path, mosquitto, 600)
    assert writes[-1][1] == 2700
    # One step of at most 600 K each minute, the first at closing (the lamps change once a minute,
    # never by more than the rate), reaching 2700 K in three minutes.
    assert writes == [(120.0, 3900.0), (180.0, 3300.0), (240.0, 2700.0)]


async def test_without_the_safety_ramp_closing_is_one_step(tmp_path: Path, mosquitto: MosquittoServer) -> None:
    writes = await closing_writes(tmp_path, mosquitto, None)
    assert [v for _, v in writes] == [2700]
