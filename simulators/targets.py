"""Issue 20's targets, checked against a ``report.json`` (as loaded by :func:`json.load`).

:func:`check` returns one plain sentence per target a scenario misses (empty: every target held).
The figures are lobbyd's own run; the energy target compares it with the fair naive baseline when
the report carries one, and when that baseline keeps the air at target itself (PM2.5 at or under the
target for at least 99 % of the open time the plant can reach). Where it does not, no rule set that
keeps the air target can use as little fan energy as a baseline that runs the fan low and leaves the
hall dirty: :func:`not_compared` names those scenarios instead, and the report says so.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TARGETS", "check", "not_compared"]

TARGETS: dict[str, float] = {
    "pm25_ok_reachable_pct_min": 99.0,
    "writes_per_device_per_hour_max": 6,
    "cct_in_band_pct_min": 95.0,
    "cct_max_change_per_min_k_max": 300.0,
    "cct_reversals_per_hour_max": 4,
}


def _scenario(name: str, entry: dict[str, Any]) -> list[str]:
    runs = entry.get("runs", {})
    own = runs.get("lobbyd")
    if own is None:
        return [f"{name}: no lobbyd run in the report"]
    out = []
    pct = own["pm25_ok_reachable_pct"]
    if pct < TARGETS["pm25_ok_reachable_pct_min"]:
        out.append(f"{name}: PM2.5 <= target for {pct:.1f} % of open time the plant can reach (goal >= 99 %)")
    cap = TARGETS["writes_per_device_per_hour_max"]
    for device, n in sorted(own["writes_per_device_worst_hour"].items()):
        if n > cap:
            out.append(f"{name}: {n} writes to {device} in one hour (goal at most {cap:g})")
    band = own.get("cct_in_band_pct")
    if band is not None and band < TARGETS["cct_in_band_pct_min"]:
        out.append(f"{name}: CCT within ±150 K of the daylight curve for {band:.1f} % of open time (goal >= 95 %)")
    step = own.get("cct_max_change_per_min_k")
    if step is not None and step > TARGETS["cct_max_change_per_min_k_max"]:
        out.append(f"{name}: CCT changed {step:.0f} K within a minute (goal at most 300 K)")
    revs = own.get("cct_reversals_worst_hour")
    if revs is not None and revs > TARGETS["cct_reversals_per_hour_max"]:
        out.append(f"{name}: {revs} CCT reversals in one hour (goal at most 4)")
    naive = runs.get("naive")
    if naive is not None and _naive_clean(naive) and own["fan_kwh"] > naive["fan_kwh"] + 1e-9:
        out.append(
            f"{name}: fan energy {own['fan_kwh']:.2f} kWh, more than the naive baseline's {naive['fan_kwh']:.2f} kWh"
        )
    return out


def _naive_clean(naive: dict[str, Any]) -> bool:
    return bool(naive["pm25_ok_reachable_pct"] >= TARGETS["pm25_ok_reachable_pct_min"])


def not_compared(report: dict[str, Any]) -> list[str]:
    """One sentence per scenario whose fan energy is not held against the naive baseline's, because
    that baseline misses the air target (its energy is then no bound a clean-air rule set can meet)."""
    out = []
    for name, entry in sorted(report.get("scenarios", {}).items()):
        naive = entry.get("runs", {}).get("naive")
        if naive is not None and not _naive_clean(naive):
            out.append(
                f"{name}: fan energy not compared: the naive baseline keeps PM2.5 at target for only "
                f"{naive['pm25_ok_reachable_pct']:.1f} % of open time the plant can reach (goal >= 99 %)"
            )
    return out


def check(report: dict[str, Any]) -> list[str]:
    """The issue-20 targets ``report`` misses, one sentence each, scenario by scenario."""
    scenarios = report.get("scenarios")
    if not isinstance(scenarios, dict) or not scenarios:
        return ["the report has no scenarios"]
    return [msg for name, entry in sorted(scenarios.items()) for msg in _scenario(name, entry)]
