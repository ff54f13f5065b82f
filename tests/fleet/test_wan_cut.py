"""A WAN cut between a branch and the centre: control goes on, the bridge comes back by itself.

Real components only: a central mosquitto; the branch's local mosquitto bridged to it with the shipped
``config/mosquitto/bridge.conf.example``; the real daemon (``python -m daemon run``) on the shipped fleet
defaults + a branch file; pymodbus device simulators; the sensor simulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bench.branch import REPO, branch_file, render_bridge
from daemon.config import load_config
from daemon.control_socket import request
from drivers.modbus import load_profile
from simulators.devices import DeviceSimulator
from simulators.sensors import SensorSimulator
from simulators.servers import MosquittoServer, free_port
from tests.polling import eventually

pytestmark = pytest.mark.servers
BRANCH = "b0042"


@dataclass
class CentralWatcher:
    """A client of the central broker that keeps every message it sees (reconnecting by itself)."""

    port: int
    seen: list[tuple[str, bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-watcher")
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *_a: c.subscribe("#", qos=1)
        self.client.on_message = self._on_message

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.seen.append((m.topic, bytes(m.payload), bool(m.retain)))

    def count(self, pred: Callable[[str, bytes], bool]) -> int:
        with self.lock:
            return sum(1 for t, p, _r in self.seen if pred(t, p))

    def start(self) -> None:
        self.client.connect_async("127.0.0.1", self.port)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _start_daemon(cfg: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """The real daemon, through its CLI, on the branch's config (a Wednesday 10:30: the branch is open)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(cfg), "--start-at", "2026-06-03T10:30"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip


@asynccontextmanager
async def branch_with_bridge(tmp: Path) -> AsyncIterator[dict[str, Any]]:
    central = MosquittoServer(tmp / "central")
    central.start()
    local = MosquittoServer(tmp / "local")
    local.extra_config = render_bridge(BRANCH, central.port, central_overrides=True)  # the opt-in, for its test
    local.start()
    profiles = REPO / "config" / "devices"
    fresh = DeviceSimulator.tcp(load_profile(profiles / "freshair-standard.yaml"), 1, port=free_port())
    lights = DeviceSimulator.tcp(load_profile(profiles / "lighting-standard.yaml"), 1, port=free_port())
    cfg = branch_file(
        tmp / "branch",
        BRANCH,
        mqtt_port=local.port,
        device_ports={"fresh_air": fresh.port, "lights": lights.port},
        influx=None,
        safety={"fresh_air.fan_speed": {"min_hold_s": 0}},
        mqtt_overrides=True,
    )
    loaded = load_config(cfg)
    watcher = CentralWatcher(central.port)
    watcher.start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        async with fresh, lights:
            sim = SensorSimulator(loaded.config.sensors, host="127.0.0.1", port=local.port, branch=BRANCH,
                                  initial={"hall-pm25": 10.0, "outdoor-pm25": 20.0, "hall-lux": 300.0},
                                  interval_s=0.5)  # fmt: skip
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(sim.run(), name="sensor-sim")
                proc = _start_daemon(cfg, tmp / "daemon.log")
                try:
                    yield {"central": central, "local": local, "fresh": fresh, "sim": sim, "watcher": watcher,
                           "loaded": loaded, "proc": proc}  # fmt: skip
                finally:
                    # the daemon goes first: a pymodbus server does not stop while a client holds a link
                    if proc.poll() is None:
                        proc.terminate()
                        await asyncio.to_thread(proc.wait, 20)
                    task.cancel()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(20)
        watcher.stop()
        local.close()
        central.close()


async def test_wan_cut_control_goes_on_and_bridge_reconnects(tmp_path: Path) -> None:
    async with branch_with_bridge(tmp_path) as b:
        central, fresh, sim, watcher = b["central"], b["fresh"], b["sim"], b["watcher"]
        sock = b["loaded"].control_socket

        async def status() -> dict[str, Any]:
            return await request(sock, {"cmd": "status"})

        # Up: the branch's sensors and the daemon's own topics reach the centre through the bridge.
        await eventually(
            lambda: watcher.count(lambda t, _p: t == f"sensors/{BRANCH}/hall/pm25") > 0,
            timeout=20,
            what="sensors bridged",
        )
        await fresh.wait_for_write("fan_speed", lambda v: v == 1, timeout=20)
        await eventually(lambda: watcher.count(lambda t, p: t == f"lobbyd/{BRANCH}/status" and p == b"online") > 0,
                         timeout=10, what="status bridged")  # fmt: skip
        await eventually(lambda: watcher.count(lambda t, _p: t == f"lobbyd/{BRANCH}/decision/fresh_air/fan_speed") > 0,
                         timeout=10, what="decision bridged")  # fmt: skip
        assert watcher.count(lambda t, _p: f"/{BRANCH}/" not in t and not t.startswith("$")) == 0

        # WAN cut: the central broker is gone. A PM2.5 spike still raises the fan.
        central.stop()
        since = len(fresh.writes)
        sim.set("hall-pm25", 50.0)
        await sim.publish_now("hall-pm25")
        w = await fresh.wait_for_write("fan_speed", lambda v: v == 3, timeout=20, since=since)
        assert w.value == 3
        st = await status()
        assert st["mqtt"]["connected"] is True
        assert st["points"]["fresh_air.fan_speed"]["rule"] == "pm25-high"

        # WAN back: the bridge reconnects by itself and traffic flows to the centre again.
        n_before = watcher.count(lambda t, _p: t == f"sensors/{BRANCH}/hall/pm25")
        central.start()
        await eventually(lambda: watcher.count(lambda t, _p: t == f"sensors/{BRANCH}/hall/pm25") > n_before + 2,
                         timeout=30, what="sensors bridged again after the cut")  # fmt: skip

        # And overrides from the centre come back in: a manual fan level set centrally reaches the device.
        since = len(fresh.writes)
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-operator")
        publisher.connect("127.0.0.1", central.port)
        publisher.loop_start()
        try:
            info = publisher.publish(f"lobbyd/{BRANCH}/device/fresh_air/fan_speed/set",
                                     json.dumps({"value": 2, "duration": "5m"}), qos=1)  # fmt: skip
            info.wait_for_publish(5)
            w = await fresh.wait_for_write("fan_speed", lambda v: v == 2, timeout=20, since=since)
        finally:
            publisher.loop_stop()
            publisher.disconnect()
        assert w.value == 2
        st = await status()
        assert st["points"]["fresh_air.fan_speed"]["rule"] == "manual-override"
        assert st["mqtt"]["connects"] == 1  # the daemon's own connection (local) never dropped
