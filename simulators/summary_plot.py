"""``summary.png``: lobbyd's figures over every scenario of a ``report.json``, against issue 20's targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulators.targets import TARGETS

__all__ = ["plot_summary"]

_PANELS: tuple[tuple[str, str, str], ...] = (
    ("pm25_ok_reachable_pct", "PM2.5 ≤ 35, % of reachable open time", "pm25_ok_reachable_pct_min"),
    ("cct_in_band_pct", "CCT within ±150 K, % of open time", "cct_in_band_pct_min"),
    ("cct_max_change_per_min_k", "largest CCT change in a minute, K", "cct_max_change_per_min_k_max"),
    ("cct_reversals_worst_hour", "CCT reversals, worst hour", "cct_reversals_per_hour_max"),
)


def plot_summary(report: dict[str, Any], out: Path) -> Path:
    """Bars per scenario for the targets' figures and the busiest device's writes; dashed line: target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(report["scenarios"])
    own = [report["scenarios"][n]["runs"]["lobbyd"] for n in names]
    fig, axes = plt.subplots(5, 1, figsize=(12, 14), sharex=True)
    for ax, (key, title, target) in zip(axes, _PANELS, strict=False):
        ax.bar(names, [f.get(key) or 0 for f in own], color="#1f5fbf")
        ax.axhline(TARGETS[target], color="#c66", ls="--", lw=1)
        ax.set_title(title, fontsize=9)
    ax = axes[4]
    ax.bar(names, [max(f["writes_per_device_worst_hour"].values(), default=0) for f in own], color="#d98c1a")
    ax.axhline(TARGETS["writes_per_device_per_hour_max"], color="#c66", ls="--", lw=1)
    ax.set_title("writes to the busiest device, worst hour", fontsize=9)
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
