"""Fleet simulation on one machine: N branches, each a real lobby, bridged to one central broker.

Each branch: its own mosquitto (bridged with ``config/mosquitto/bridge.conf.example`` to ONE central
mosquitto), two pymodbus device simulators, a sensor simulator (the lobby's 4 topics, 5 sensors, every
``--interval`` s) and the real daemon (``python -m daemon run``) on the shipped fleet defaults plus a
per-branch file (``bench/branch.py``), writing its telemetry to ONE central VictoriaMetrics through
the Influx v2 write API the defaults configure. Half-way through, half of the branches get a PM2.5
spike (decisions, Modbus writes, bridged state changes).

Measured over the window: per branch — sensor messages/s and readings/s accepted by the daemon,
points/s written centrally, bytes/s and messages/s crossing the bridge (the central broker's $SYS
counters divided by N), CPU and RSS of each daemon; centrally — the broker's and the database's CPU
and RSS, series cardinality and bytes on disk. Also checked: every central topic carries the branch
id, every central series has a ``branch`` label.

Run: ``.venv/bin/python -m bench.fleet [--branches 20] [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.branch import branch_file, render_bridge
from bench.rig import REPO, ProcSample, cpu_share, daemon_status, proc_sample, py, stop
from daemon.config import load_config
from drivers.modbus import load_profile
from simulators.devices import DeviceSimulator
from simulators.sensors import SensorSimulator
from simulators.servers import MosquittoServer, VictoriaMetricsServer, free_port


@dataclass
class FleetResult:
    branches: int
    seconds: float
    interval_s: float
    per_branch: list[dict[str, float]] = field(default_factory=list)
    central: dict[str, float] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)


class SysWatcher:
    """Keeps the latest value of the central broker's $SYS counters (and every topic seen)."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.values: dict[str, float] = {}
        self.topics: set[str] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-watcher")
        self.client.on_connect = lambda c, *_a: c.subscribe([("$SYS/broker/#", 0), ("#", 0)])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, m: Any) -> None:
        with self.lock:
            if m.topic.startswith("$SYS/"):
                with contextlib.suppress(ValueError):
                    self.values[m.topic] = float(m.payload)
            else:
                self.topics.add(m.topic)

    def get(self, key: str) -> float:
        with self.lock:
            return self.values.get(f"$SYS/broker/{key}", 0.0)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _vm_json(vm: VictoriaMetricsServer, path: str, **params: str) -> Any:
    url = f"{vm.url}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def run_fleet(n: int, seconds: float, interval_s: float) -> FleetResult:
    res = FleetResult(n, seconds, interval_s)
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    central = MosquittoServer(tmp / "central", extra_config="sys_interval 1")
    vm = VictoriaMetricsServer(tmp / "vm")
    central.start()
    vm.start()
    locals_: list[MosquittoServer] = []
    procs: list[Any] = []
    sims: list[SensorSimulator] = []
    tasks: list[asyncio.Task[None]] = []
    watcher = SysWatcher(central.port)
    profiles = REPO / "config" / "devices"
    fa, li = load_profile(profiles / "freshair-standard.yaml"), load_profile(profiles / "lighting-standard.yaml")
    env = {"LOBBYD_INFLUX_TOKEN": "fleet-bench"}
    try:
        async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as tg:
            for i in range(n):
                branch = f"b{i + 1:04d}"
                local = MosquittoServer(tmp / branch / "mosquitto", extra_config=render_bridge(branch, central.port))
                local.start()
                locals_.append(local)
                fresh = await stack.enter_async_context(DeviceSimulator.tcp(fa, 1, port=free_port()))
                lights = await stack.enter_async_context(DeviceSimulator.tcp(li, 1, port=free_port()))
                cfg = branch_file(
                    tmp / branch,
                    branch,
                    mqtt_port=local.port,
                    device_ports={"fresh_air": fresh.port, "lights": lights.port},
                    influx={"url": vm.url},  # merged into the defaults' v2 section
                )
                sim = SensorSimulator(load_config(cfg).config.sensors, host="127.0.0.1", port=local.port,
                                      branch=branch, initial={"hall-pm25": 12.0, "outdoor-pm25": 20.0},
                                      interval_s=interval_s)  # fmt: skip
                sims.append(sim)
                tasks.append(tg.create_task(sim.run(), name=f"sim-{branch}"))
                procs.append((branch, cfg, py("-m", "daemon", "run", "--config", str(cfg), log=cfg.parent / "d.log",
                                              env=env)))  # fmt: skip
            try:
                await asyncio.to_thread(
                    lambda: _measure(
                        res, procs=procs, sims=sims, watcher=watcher, central=central, vm=vm, seconds=seconds
                    )
                )
            finally:
                for task in tasks:
                    task.cancel()
                for _b, _c, p in procs:
                    await asyncio.to_thread(stop, p)
    finally:
        watcher.close()
        for local in locals_:
            local.close()
        central.close()
        vm.close()  # flushes its in-memory parts to disk
        res.central["vm_disk_bytes"] = float(_du(tmp / "vm" / "data"))
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def _measure(
    res: FleetResult,
    *,
    procs: list[tuple[str, Path, Any]],
    sims: list[SensorSimulator],
    watcher: SysWatcher,
    central: MosquittoServer,
    vm: VictoriaMetricsServer,
    seconds: float,
) -> None:
    socks = [cfg.parent / "state" / "control.sock" for _b, cfg, _p in procs]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        up = 0
        for s in socks:
            with contextlib.suppress(OSError, ValueError, KeyError):
                up += bool(daemon_status(s)["mqtt"]["connected"])
        if up == len(socks):
            break
        time.sleep(0.5)
    else:
        raise TimeoutError(f"only {up} of {len(socks)} daemons connected")
    time.sleep(max(3.0, 2 * res.interval_s))  # every daemon has had its first readings and decisions

    def snap() -> tuple[list[ProcSample], list[dict[str, Any]], dict[str, float]]:
        ps = [proc_sample(p.pid) for _b, _c, p in procs]
        sts = [daemon_status(s) for s in socks]
        c = {
            "bytes_in": watcher.get("bytes/received"),
            "msgs_in": watcher.get("messages/received"),
            "rows": float(vm.rows_added()),
        }
        return ps, sts, c

    c_mq0, c_vm0 = proc_sample(central.pid), proc_sample(vm.pid)
    ps0, st0, c0 = snap()
    t0 = time.monotonic()
    time.sleep(seconds / 2)
    for sim in sims[::2]:
        sim.set("hall-pm25", 50.0)
    time.sleep(seconds / 2)
    ps1, st1, c1 = snap()
    dt = time.monotonic() - t0
    c_mq1, c_vm1 = proc_sample(central.pid), proc_sample(vm.pid)
    for (branch, _c, _p), a, b, s0, s1 in zip(procs, ps0, ps1, st0, st1, strict=True):
        res.per_branch.append({
            "branch": float(branch[1:]),
            "readings_s": (s1["mqtt"]["accepted"] - s0["mqtt"]["accepted"]) / dt,
            "points_s": (s1["influx"]["sent_points"] - s0["influx"]["sent_points"]) / dt,
            "cpu": cpu_share(a, b),
            "rss_mb": b.rss_mb,
            "writes": float(s1["writes"]["ok"] - s0["writes"]["ok"]),
            "spooled": float(s1["influx"]["spooled_points"]),
            "dropped": float(s1["influx"]["dropped_points"]),
        })  # fmt: skip
    nb = len(procs)
    res.central = {
        "bridge_bytes_s_per_branch": (c1["bytes_in"] - c0["bytes_in"]) / dt / nb,
        "bridge_msgs_s_per_branch": (c1["msgs_in"] - c0["msgs_in"]) / dt / nb,
        "broker_cpu": cpu_share(c_mq0, c_mq1),
        "broker_rss_mb": c_mq1.rss_mb,
        "db_cpu": cpu_share(c_vm0, c_vm1),
        "db_rss_mb": c_vm1.rss_mb,
        "db_rows_s": (c1["rows"] - c0["rows"]) / dt,
        "sensor_msgs_s_per_branch": sum(s.published for s in sims) / nb / max(1e-9, dt),  # rough, whole run
    }
    with contextlib.suppress(OSError):
        urllib.request.urlopen(f"{vm.url}/internal/force_flush", timeout=10).close()
    time.sleep(1.5)
    series = _vm_json(vm, "/api/v1/series", **{"match[]": '{__name__!=""}', "start": "0"})["data"]
    res.central["series"] = float(len(series))
    res.checks["series_without_branch"] = [s for s in series if "branch" not in s][:5]
    res.checks["series_per_branch"] = len(series) / nb
    res.checks["topics_without_branch"] = sorted(
        t for t in watcher.topics if not any(f"/{b}/" in t or t.endswith(f"/{b}") for b, _c, _p in procs)
    )[:10]
    res.checks["central_topics"] = len(watcher.topics)
    res.checks["all_daemons_alive"] = all(p.poll() is None for _b, _c, p in procs)


def markdown(res: FleetResult) -> str:
    """Per-branch and central load as markdown (means, with min–max across branches)."""
    pb = res.per_branch

    def col(k: str) -> tuple[float, float, float]:
        v = [b[k] for b in pb]
        return sum(v) / len(v), min(v), max(v)

    c = res.central
    out = [
        f"{res.branches} branches on one 2-core machine, {res.seconds:.0f} s window, sensors every "
        f"{res.interval_s:g} s per topic (4 topics, 5 sensors per branch); PM2.5 spike on every other branch "
        "half-way.\n",
        "| per branch | mean | min | max |",
        "|---|---:|---:|---:|",
    ]
    for label, key, fmt in [
        ("readings/s accepted by the daemon", "readings_s", "{:.2f}"),
        ("points/s written centrally", "points_s", "{:.2f}"),
        ("daemon CPU (% of one core)", "cpu", "{:.2%}"),
        ("daemon RSS (MB)", "rss_mb", "{:.1f}"),
        ("Modbus writes in the window", "writes", "{:.0f}"),
    ]:
        m, lo, hi = col(key)
        out.append(f"| {label} | {fmt.format(m)} | {fmt.format(lo)} | {fmt.format(hi)} |")
    out += [
        f"| bridge → centre, bytes/s | {c['bridge_bytes_s_per_branch']:.0f} | | |",
        f"| bridge → centre, messages/s | {c['bridge_msgs_s_per_branch']:.2f} | | |",
        "",
        "| central | value |",
        "|---|---:|",
        f"| mosquitto CPU (% of one core) | {c['broker_cpu']:.1%} |",
        f"| mosquitto RSS (MB) | {c['broker_rss_mb']:.1f} |",
        f"| VictoriaMetrics CPU (% of one core) | {c['db_cpu']:.1%} |",
        f"| VictoriaMetrics RSS (MB) | {c['db_rss_mb']:.1f} |",
        f"| samples/s into VictoriaMetrics | {c['db_rows_s']:.1f} |",
        f"| series (all branches) | {c['series']:.0f} ({res.checks['series_per_branch']:.1f} per branch) |",
        f"| VictoriaMetrics data on disk after the run (MB) | {c.get('vm_disk_bytes', 0) / 1e6:.1f} |",
        "",
        f"Checks: {res.checks['central_topics']} distinct topics at the centre, without a branch id: "
        f"{res.checks['topics_without_branch'] or 'none'}; series without a `branch` label: "
        f"{res.checks['series_without_branch'] or 'none'}; all daemons alive at the end: "
        f"{res.checks['all_daemons_alive']}; spooled/dropped points: "
        f"{sum(b['spooled'] for b in pb):.0f}/{sum(b['dropped'] for b in pb):.0f}.",
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--branches", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--interval", type=float, default=1.0, help="sensor publish interval per topic (s)")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    a = ap.parse_args()
    res = asyncio.run(run_fleet(a.branches, a.seconds, a.interval))
    if a.json:
        a.json.write_text(json.dumps({"per_branch": res.per_branch, "central": res.central, "checks": res.checks}))
    print(markdown(res))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
