"""Gateway budget: 50 sensors at 1 Hz through the daemon vs a bare aiomqtt subscriber, same run.

Run: ``python -m bench.bench_budget [--seconds 90 --windows 3]``. Not a test. Real mosquitto and influxd on
loopback, the standard device simulators and rules, the shipped config plus 45 extra plain sensors
(50 sensors, 49 topics: the two climate readings share one zigbee2mqtt message). One publisher sends
every topic once a second; the daemon (``lobbyd run`` subprocess) and a bare aiomqtt subscriber to
the same topics (subprocess) receive the same messages. Reported: CPU share of one core of each over
the same time (scheduler run time, ns), their ratio (target <= 1.3) over the whole measurement and in
each of its windows (how much it moves on a shared machine), and the daemon's RSS (target < 80 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

EXTRA = 45
FILTERS = ["sensors/#", "zigbee2mqtt/#"]


async def receiver(port: int) -> None:
    """The reference: a bare aiomqtt subscriber that only counts."""
    count = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-bare") as c:
        for f in FILTERS:
            await c.subscribe(f)
        print("ready", flush=True)
        async for _m in c.messages:
            count += 1


def _extra_sensors(data: dict[str, Any]) -> None:
    # The shipped flush interval, not the tests' short one (write_config shortens it for read-backs).
    from ruamel.yaml import YAML

    from tests.e2e.harness import REPO

    shipped = YAML(typ="safe").load((REPO / "config" / "lobbyd.yaml").read_text())["influx"]
    data["influx"]["flush_interval_s"] = shipped.get("flush_interval_s", 1.0)
    kinds = ["temperature", "humidity", "pm25", "illuminance"]
    for i in range(EXTRA):
        data["sensors"].append(
            {
                "id": f"annex-{i:02d}",
                "topic": f"sensors/demo-001/annex/{i:02d}",
                "zone": "annex",
                "quantity": kinds[i % 4],
                "decoder": {"type": "plain"},
                "stale_after_s": 120,
            }
        )


def _payloads(sensors: list[Any], t: float) -> dict[str, bytes]:
    from simulators.sensors import payload_for

    by_topic: dict[str, list[Any]] = {}
    for s in sensors:
        by_topic.setdefault(s.topic, []).append(s)
    base = {"temperature": 24.0, "humidity": 50.0, "pm25": 12.0, "illuminance": 300.0}
    out = {}
    for topic, ss in by_topic.items():
        values = {s.id: base[str(s.quantity)] + (int(t) % 7) * 0.1 for s in ss}
        out[topic] = payload_for(ss, values)
    return out


async def bench(seconds: float, warmup: float, tmp: Path, windows: int = 3) -> dict[str, Any]:
    from bench.rig import REPO, daemon_config, device_sims, proc_sample
    from daemon.config import load_config
    from simulators.servers import InfluxServer, MosquittoServer

    mosq, idb = MosquittoServer(tmp / "mosquitto"), InfluxServer(tmp / "influxd")
    mosq.start()
    idb.start()
    idb.create_database("lobbyd")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with device_sims() as sims, aiomqtt.Client("127.0.0.1", mosq.port, identifier="bench-pub") as pub:
            ports = {name: sim.port for name, sim in sims.items()}
            cfg = daemon_config(tmp, mqtt_port=mosq.port, device_ports=ports, influx_url=idb.url, edit=_extra_sensors)
            sensors = list(load_config(cfg).config.sensors)
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            daemon = subprocess.Popen(  # noqa: ASYNC220 (bench set-up, once)
                [sys.executable, "-m", "daemon", "run", "--config", str(cfg), "--log-level", "WARNING",
                 "--start-at", "2026-06-03T10:30"],
                cwd=REPO, env=env, stdout=(tmp / "daemon.log").open("wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            bare = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "bench.bench_budget", "--receiver", str(mosq.port)],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            procs += [daemon, bare]
            assert bare.stdout is not None
            line = await asyncio.to_thread(bare.stdout.readline)
            assert line.strip() == b"ready", line
            # CPU is sampled at the start of the measurement and after each window: one figure for the
            # whole, and one per window to show how much it moves on a shared machine.
            start = time.monotonic() + warmup
            bounds = [start + k * seconds / windows for k in range(windows + 1)]
            samples: list[tuple[float, float, float]] = []  # (monotonic time, daemon CPU s, bare CPU s)
            rss_peak = 0.0
            tick = time.monotonic()
            while len(samples) < len(bounds):
                for topic, payload in _payloads(sensors, time.time()).items():
                    await pub.publish(topic, payload)
                d = proc_sample(daemon.pid)
                if d.t >= bounds[len(samples)]:
                    samples.append((d.t, d.cpu_s, proc_sample(bare.pid).cpu_s))
                if samples:
                    rss_peak = max(rss_peak, d.rss_mb)
                tick += 1.0
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
            d_rss, b_rss = proc_sample(daemon.pid).rss_mb, proc_sample(bare.pid).rss_mb
            if daemon.poll() is not None:
                raise RuntimeError((tmp / "daemon.log").read_text()[-3000:])
            (t0, d0, b0), (t1, d1, b1) = samples[0], samples[-1]
            window_ratios = [(d - dp) / max(1e-9, b - bp) for (_, dp, bp), (_, d, b) in itertools.pairwise(samples)]
            return {
                "seconds": t1 - t0,
                "messages_per_s": float(len(_payloads(sensors, 0))),
                "sensors": float(len(sensors)),
                "daemon_cpu": (d1 - d0) / (t1 - t0),
                "bare_cpu": (b1 - b0) / (t1 - t0),
                "window_ratios": window_ratios,
                "daemon_rss_mb": d_rss,
                "daemon_rss_peak_mb": rss_peak,
                "bare_rss_mb": b_rss,
            }
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        mosq.close()
        idb.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=90.0, help="measured time, after the warm-up")
    ap.add_argument("--windows", type=int, default=3, help="split into this many windows, each reported")
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring (start-up settles)")
    ap.add_argument("--receiver", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.receiver:
        asyncio.run(receiver(args.receiver))
        return 0
    with tempfile.TemporaryDirectory(prefix="lobbyd-budget-") as d:
        r = asyncio.run(bench(args.seconds, args.warmup, Path(d), max(1, args.windows)))
    ratio = r["daemon_cpu"] / max(1e-9, r["bare_cpu"])
    print(json.dumps(r, indent=2))
    print("\n| measure | lobbyd | bare aiomqtt | target |\n|---|---|---|---|")
    print(
        f"| CPU (% of one core, {r['seconds']:.0f} s, {r['sensors']:.0f} sensors, {r['messages_per_s']:.0f} msg/s) "
        f"| {r['daemon_cpu'] * 100:.2f} | {r['bare_cpu'] * 100:.2f} | ratio {ratio:.2f} <= 1.3 "
        f"(windows: {', '.join(f'{w:.2f}' for w in r['window_ratios'])}) |"
    )
    print(
        f"| RSS (MB) | {r['daemon_rss_mb']:.1f} (peak {r['daemon_rss_peak_mb']:.1f}) | {r['bare_rss_mb']:.1f} | < 80 |"
    )
    ok = ratio <= 1.3 and r["daemon_rss_peak_mb"] < 80
    print("VERDICT:", "within budget" if ok else "OVER BUDGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
