"""``lobbyd simulate --all``: every shipped scenario, one ``report.json``, a summary table and PNG.

Scenarios run one after another, or in ``jobs`` worker processes (each its own mosquitto, Modbus
simulators and daemon). ``report.json`` keys are documented in ``docs/simulation.md``.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from simulators.scenario import REPO
from simulators.targets import TARGETS, check, not_compared

__all__ = ["SCHEMA_VERSION", "run_all", "shipped", "summary_text"]

SCHEMA_VERSION = 1


def shipped() -> list[str]:
    """Names of the shipped scenarios, sorted."""
    return sorted(p.stem for p in (REPO / "simulators" / "scenarios").glob("*.yaml"))


def _one(name: str, out: Path, baselines: bool, naive: bool) -> dict[str, Any]:
    from simulators.day import scenario_entry, simulate_day

    outcome = asyncio.run(simulate_day(name, out=out, baselines=baselines, naive=naive, progress=True))
    return scenario_entry(outcome)


def _cell(v: object, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def summary_text(report: dict[str, Any]) -> str:
    """One line per scenario: lobbyd's figures, and its fan energy against the baselines."""
    head = (
        f"{'scenario':<20}{'PM ok%':>7}{'reach%':>7}{'limit':>6}{'fan w/h':>8}{'light w/h':>10}"
        f"{'CCT ok%':>8}{'dK/min':>7}{'rev/h':>6}{'kWh':>6}{'/naive':>7}{'/fixed':>7}"
    )
    lines = [head, "-" * len(head)]
    for name, e in sorted(report["scenarios"].items()):
        f = e["runs"]["lobbyd"]
        worst = f["writes_per_device_worst_hour"]
        lines.append(
            f"{name:<20}{f['pm25_ok_pct']:>7.1f}{f['pm25_ok_reachable_pct']:>7.1f}{f['plant_limited_min']:>6.0f}"
            f"{worst.get('fresh_air', 0):>8}{worst.get('lights', 0):>10}"
            f"{_cell(f['cct_in_band_pct'], '.1f'):>8}{_cell(f['cct_max_change_per_min_k'], '.0f'):>7}"
            f"{_cell(f['cct_reversals_worst_hour'], 'd'):>6}{f['fan_kwh']:>6.2f}"
            f"{_cell(e.get('fan_kwh_vs_naive'), '.2f'):>7}{_cell(e.get('fan_kwh_vs_fixed'), '.2f'):>7}"
        )
    lines += [
        "",
        "PM ok%: open time with PM2.5 <= 35; reach%: the same where the top fan level could reach it;",
        "limit: open minutes the plant could not; w/h: most writes to the device in any hour; CCT ok%:",
        "open time within ±150 K of the curve on true daylight; dK/min: largest CCT change in a minute;",
        "rev/h: most CCT reversals in an hour; /naive, /fixed: fan energy against that baseline.",
    ]
    failed = report.get("failed_targets", [])
    lines += ["", f"issue-20 targets missed: {len(failed)}", *(f"  {m}" for m in failed)]
    spared = report.get("energy_not_compared", [])
    if spared:
        lines += [f"fan energy not held against a naive baseline that misses the air target: {len(spared)}"]
        lines += [f"  {m}" for m in spared]
    return "\n".join(lines)


def run_all(out: Path, *, baselines: bool = False, naive: bool = False, jobs: int = 1) -> dict[str, Any]:
    """Run every shipped scenario; write ``report.json`` and ``summary.txt`` to ``out``; the report."""
    out.mkdir(parents=True, exist_ok=True)
    names = shipped()
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            entries = list(pool.map(_one, names, [out] * len(names), [baselines] * len(names), [naive] * len(names)))
    else:
        entries = [_one(n, out, baselines, naive) for n in names]
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "targets": TARGETS,
        "scenarios": dict(zip(names, entries, strict=True)),
    }
    report["failed_targets"] = check(report)
    report["energy_not_compared"] = not_compared(report)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    text = summary_text(report)
    try:
        from simulators.summary_plot import plot_summary

        plot_summary(report, out / "summary.png")
    except ModuleNotFoundError as exc:
        if exc.name != "matplotlib":
            raise
        from simulators.day import NO_PNG

        text += "\n" + NO_PNG
    (out / "summary.txt").write_text(text + "\n")
    return report
