"""A whole lobby on loopback: real mosquitto, influxd, pymodbus device simulators, the real daemon.

The daemon runs as a subprocess through its real CLI (``python -m daemon run``) with a config
written for the free ports of this run; shipped rules and device profiles are used as they are,
except where a test says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from daemon.config import LoadedConfig, load_config
from daemon.control_socket import request
from drivers.modbus import load_profile
from simulators.devices import DeviceSimulator
from simulators.sensors import SensorSimulator
from simulators.servers import InfluxServer, MosquittoServer, free_port

REPO = Path(__file__).resolve().parents[2]


def write_config(
    tmp: Path,
    *,
    mqtt_port: int,
    device_ports: dict[str, int],
    influx_url: str | None,
    rules_dir: Path,
    devices_dir: Path = REPO / "config" / "devices",
    edit: Callable[[dict[str, Any]], None] | None = None,
    as_shipped: bool = False,
) -> Path:
    """The shipped config/lobbyd.yaml, pointed at this run's servers and a private state directory,
    without the input conditioning and the colour ramp issue 20 added (sensors' ``filter:`` and
    ``stuck:``, ``daylight:``, ``safety.lights.cct.ramp_per_minute``): the mechanics tests publish
    single readings against :data:`MECHANICS_RULES`; a test that wants them adds them in ``edit``.
    ``as_shipped`` keeps them, for a test that runs the shipped rules."""
    yaml = YAML()
    data = yaml.load((REPO / "config" / "lobbyd.yaml").read_text())
    if not as_shipped:
        for sensor in data["sensors"]:
            sensor.pop("filter", None)
            sensor.pop("stuck", None)
        data.pop("daylight", None)
        data["safety"]["lights.cct"].pop("ramp_per_minute", None)
    data["mqtt"]["port"] = mqtt_port
    for dev in data["devices"]:
        dev["transport"]["port"] = device_ports[dev["name"]]
    if influx_url is None:
        data["influx"] = None
    else:
        data["influx"]["url"] = influx_url
        data["influx"]["flush_interval_s"] = 0.2
    data["rules_dir"] = str(rules_dir)
    data["devices_dir"] = str(devices_dir)
    data["state_dir"] = str(tmp / "state")
    if edit is not None:
        edit(data)
    path = tmp / "lobbyd.yaml"
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


def copy_profiles(tmp: Path, *, poll_interval_s: float | None = None) -> Path:
    """A private copy of the shipped device profiles; ``poll_interval_s`` shortens status polling."""
    out = tmp / "devices"
    shutil.copytree(REPO / "config" / "devices", out)
    if poll_interval_s is not None:
        for f in out.glob("*.yaml"):
            f.write_text(re.sub(r"poll_interval_s: [0-9.]+", f"poll_interval_s: {poll_interval_s}", f.read_text()))
    return out


def pm25_alarm_rule(hold: str) -> str:
    """A rule file: full light as a visible alarm when the hall's PM2.5 stays above 40 for ``hold``
    (a ``for:`` duration such as ``5s`` or ``1m``); priority 95 wins over the shipped brightness rules."""
    return f"""
rules:
  - id: pm25-alarm-light
    description: Full light as a visible alarm when PM2.5 stays above 40 for {hold}.
    target: lights.brightness
    priority: 95
    when:
      - sensor: hall-pm25
        above: 40
        for: {hold}
    set: 100
"""


#: The rules the mechanics tests are written against: the shipped rules as they were before issue 20
#: tuned them (PM2.5 rules at any hour, 25/35 thresholds, the colour on hall-lux). Tests of reloads,
#: faults, clocks and outages publish a reading and expect a reaction they can name; tuning the
#: shipped rules must not rewrite them. The shipped rules run whole days through the real daemon in
#: tests/simulators/test_targets.py and are checked in tests/engine.
MECHANICS_RULES = Path(__file__).resolve().parent / "rules"


def copy_rules(tmp: Path, *, strip_ramps: bool = False) -> Path:
    """A private copy of :data:`MECHANICS_RULES` (so a test may edit them). ``strip_ramps`` removes
    ``ramp_per_minute`` lines, for tests that check the curve's value rather than the ramp."""
    out = tmp / "rules"
    shutil.copytree(MECHANICS_RULES, out)
    if strip_ramps:
        for f in out.glob("*.yaml"):
            f.write_text(re.sub(r"^\s*ramp_per_minute:.*\n", "", f.read_text(), flags=re.M))
    return out


@dataclass
class Lobby:
    tmp: Path
    mosquitto: MosquittoServer
    influx: InfluxServer | None
    fresh_air: DeviceSimulator
    lights: DeviceSimulator
    sensors: SensorSimulator
    config_path: Path
    loaded: LoadedConfig
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        p = self.tmp / "daemon.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def start_daemon(self, *extra: str, start_at: str = "2026-06-03T10:30") -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = (self.tmp / "daemon.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daemon",
                "run",
                "--config",
                str(self.config_path),
                "--start-at",
                start_at,
                "--log-level",
                "DEBUG",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
        log.close()

    async def status(self) -> dict[str, Any]:
        return await request(self.loaded.control_socket, {"cmd": "status"})

    async def wait_status(
        self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Poll the daemon's control socket until ``predicate(status)`` holds; on a timeout, say what the
        last status was degraded by (the usual question)."""
        last: dict[str, Any] | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if self.proc is not None and self.proc.poll() is not None:
                        raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log[-4000:]}")
                    with contextlib.suppress(OSError, ValueError):
                        last = await self.status()
                        if predicate(last):
                            return last
                    await asyncio.sleep(0.05)
        except TimeoutError as exc:
            degraded = None if last is None else last.get("degraded")
            raise AssertionError(f"status not reached in {timeout:g} s; last degraded by: {degraded}") from exc

    async def seconds_after(self, n: float) -> dict[str, Any]:
        """Until ``n`` more seconds passed on the daemon's clock; its status then."""
        t0 = (await self.status())["time"]
        return await self.wait_status(lambda st: st["time"] >= t0 + n)

    async def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the daemon process to end, without blocking the simulators in this event loop."""
        assert self.proc is not None
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout)
        except TimeoutError:
            self.proc.send_signal(signal.SIGUSR1)  # the daemon logs where each task is waiting
            await asyncio.sleep(1)
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)
            raise AssertionError(f"daemon did not stop within {timeout}s:\n{self.log[-4000:]}") from None

    async def stop_daemon(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return await self.wait_exit(timeout)


@contextlib.asynccontextmanager
async def lobby(
    tmp: Path,
    *,
    influx: bool = True,
    strip_ramps: bool = False,
    edit: Callable[[dict[str, Any]], None] | None = None,
    initial: dict[str, float] | None = None,
    poll_interval_s: float | None = None,
    keep_holds: bool = False,
) -> AsyncIterator[Lobby]:
    """Start broker, database and device simulators; yield a :class:`Lobby` (daemon not yet started).

    Safety-layer minimum hold times are set to 0 unless ``keep_holds`` (the rules' behaviour is what these
    tests look at; the safety gate has its own tests, and ``keep_holds=True`` runs the shipped limits)."""
    mosq = MosquittoServer(tmp / "mosquitto")
    mosq.start()
    idb: InfluxServer | None = None
    try:
        if influx:
            idb = InfluxServer(tmp / "influxd")
            idb.start()
            idb.create_database("lobbyd")
        profiles = copy_profiles(tmp, poll_interval_s=poll_interval_s)
        fresh = DeviceSimulator.tcp(load_profile(profiles / "freshair-standard.yaml"), 1, port=free_port())
        lights = DeviceSimulator.tcp(load_profile(profiles / "lighting-standard.yaml"), 1, port=free_port())
        rules = copy_rules(tmp, strip_ramps=strip_ramps)

        def edit_all(data: dict[str, Any]) -> None:
            if not keep_holds:
                for limits in data.get("safety", {}).values():
                    limits["min_hold_s"] = 0
            if edit is not None:
                edit(data)

        cfg = write_config(
            tmp,
            mqtt_port=mosq.port,
            device_ports={"fresh_air": fresh.port, "lights": lights.port},
            influx_url=idb.url if idb else None,
            rules_dir=rules,
            devices_dir=profiles,
            edit=edit_all,
        )
        loaded = load_config(cfg)
        async with fresh, lights:
            sim = SensorSimulator(
                loaded.config.sensors,
                host="127.0.0.1",
                port=mosq.port,
                branch=loaded.config.branch,
                initial=initial,
                interval_s=0.5,
            )
            lob = Lobby(tmp, mosq, idb, fresh, lights, sim, cfg, loaded)
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(sim.run(), name="sensor-sim")
                await asyncio.wait_for(sim.wait_connected(), 10)
                try:
                    yield lob
                finally:
                    if lob.proc is not None and lob.proc.poll() is None:
                        lob.proc.kill()
                        await asyncio.to_thread(lob.proc.wait)
                    sim.stop()
                    task.cancel()
    finally:
        mosq.close()
        if idb is not None:
            idb.close()
