"""What rule evaluation costs at a lobby's load and at ten times that, with plain full evaluation.

Run: ``python -m bench.bench_engine [--seconds 600]``. Not a test; no servers. The budget bench's
sensors (the shipped config plus 45 plain ones: 50 sensors, 49 topics) report at their own phases,
``rate`` times a second, for ``seconds`` of virtual time. Each reading goes through what the daemon
does with a lone reading: the sensor state and, when a rule reads it, a full
:func:`daemon.engine.evaluate` (the daemon's ``evaluate_min_gap_s`` of 2 ms never merges two of these
readings: they are at least 20 ms apart, so none is only advanced). Reported: CPU time of the engine
per second of lobby time (the share of one core it needs) and per evaluation. Compare with the bare
subscriber's CPU in the budget bench to see what the engine can weigh in the daemon's ratio.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.rig import daemon_config
from daemon.config import load_config
from daemon.engine import EngineMemory, evaluate
from daemon.model import Quantity, Reading
from daemon.reload import load_rules_of
from daemon.state import SensorState

T0 = 1_780_475_400.0  # a Wednesday 10:30 local: the branch is open
EXTRA = 45
BASE = {"temperature": 24.0, "humidity": 50.0, "pm25": 12.0, "illuminance": 300.0, "co2": 600.0}


def _extra_sensors(data: dict[str, Any]) -> None:
    kinds = ["temperature", "humidity", "pm25", "illuminance"]
    for i in range(EXTRA):
        data["sensors"].append(
            {"id": f"annex-{i:02d}", "topic": f"sensors/demo-001/annex/{i:02d}", "zone": "annex",
             "quantity": kinds[i % 4], "decoder": {"type": "plain"}, "stale_after_s": 120}
        )  # fmt: skip


def run(seconds: float, rate: float, tmp: Path) -> dict[str, float]:
    cfg = daemon_config(tmp, mqtt_port=1, device_ports={"fresh_air": 1, "lights": 1}, influx_url=None,
                        edit=_extra_sensors)  # fmt: skip
    loaded = load_config(cfg)
    ruleset = load_rules_of(loaded).ruleset
    infos = loaded.sensor_infos()
    read = {sid for sid, info in infos.items() if ruleset.reads(info)}
    state = SensorState(infos, started_at=T0 - 3600)
    site, limits, grace = loaded.site, loaded.point_limits(), loaded.config.resume_grace_s
    rnd = random.Random(49)
    phases = sorted((rnd.random() / rate, sid) for sid in infos)
    memory = EngineMemory()
    evaluations = readings = 0
    cpu = 0.0
    period = 1.0 / rate
    for k in range(int(seconds * rate)):
        for phase, sid in phases:
            now = T0 + k * period + phase
            info = infos[sid]
            value = (
                BASE[str(info.quantity)]
                + rnd.uniform(-3, 3)
                + (20 if info.quantity is Quantity.PM25 and k % 97 < 9 else 0)
            )
            state.update(Reading(sid, info.quantity, value, now, info.zone))
            readings += 1
            if sid not in read:
                continue
            t0 = time.process_time()
            ev = evaluate(ruleset, state.view(), now, memory, site=site, limits=limits, resume_grace_s=grace)
            memory = ev.memory
            cpu += time.process_time() - t0
            evaluations += 1
    return {
        "rate": rate,
        "lobby_seconds": seconds,
        "readings": readings,
        "read_by_rules": evaluations,
        "evaluations": evaluations,
        "cpu_s": cpu,
        "core_share": cpu / seconds,
        "us_per_evaluation": cpu / max(1, evaluations) * 1e6,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="seconds of lobby time per load")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lobbyd-engine-") as d:
        for rate in (1.0, 10.0):
            rows.append(run(args.seconds, rate, Path(d) / f"r{rate:g}"))
    print("| load | readings/s | read by rules/s | evaluations/s | engine CPU (% of one core) | per evaluation |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        s = r["lobby_seconds"]
        print(
            f"| {r['rate']:g}× a lobby | {r['readings'] / s:.0f} | {r['read_by_rules'] / s:.0f} | "
            f"{r['evaluations'] / s:.0f} | {r['core_share'] * 100:.3f} | {r['us_per_evaluation']:.0f} µs |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
