"""Control quality of one simulated day: figures for occupied hours, a text table and a PNG.

Every figure is time-weighted (each sample stands for the step that ended at it), so coarse night
steps and fine daytime steps count for what they last.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from simulators.figures import cct_goals, weights, worst_hour
from simulators.simulate import RunResult, Sample
from simulators.variants import VARIANTS

__all__ = ["Peak", "Quality", "assess", "format_report", "plot_day"]


@dataclass(frozen=True, slots=True)
class Peak:
    """A stretch of time with PM2.5 above target."""

    start: float
    duration_s: float
    max_pm25: float


@dataclass
class Quality:
    """The control-quality figures of one run."""

    variant: str
    occupied_h: float
    pm25_ok_pct: float  # % of occupied time at or below target
    pm25_mean_24h: float
    pm25_mean_occupied: float
    pm25_max: float
    peaks: list[Peak]
    cct_mae_k: float  # mean |cct - target| over occupied time
    cct_max_err_k: float
    writes: dict[str, int]  # "device.point" -> writes over the run
    writes_per_h: dict[str, float]
    max_writes_in_hour: dict[str, int]
    caps: dict[str, int]
    fan_level_hours: float
    fan_level_hours_occupied: float
    fan_kwh: float  # fan electrical energy over the run (scenario's power curve)
    fallback_s: dict[str, float]
    fallback_episodes: dict[str, int]
    offline_s: dict[str, float]
    freeze_to_fallback_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def _runs(samples: list[Sample], w: list[float], pred: list[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, p in enumerate(pred):
        if p and start is None:
            start = i
        elif not p and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(pred)))
    return runs


def assess(r: RunResult) -> Quality:
    """The figures of one run."""
    scn, ss = r.scenario, r.samples
    w = weights(r)
    total = sum(w) or 1.0
    occ = [(s, wi) for s, wi in zip(ss, w, strict=True) if s.occupied]
    occ_t = sum(wi for _, wi in occ) or 1.0
    ok = sum(wi for s, wi in occ if s.pm25 <= scn.pm25_target)
    peaks = []
    for a, b in _runs(ss, w, [s.pm25 > scn.pm25_target for s in ss]):
        peaks.append(Peak(ss[a].t - w[a], sum(w[a:b]), max(s.pm25 for s in ss[a:b])))
    peaks.sort(key=lambda p: -p.max_pm25)
    errs = [(abs(s.cct - g), wi) for s, wi, g in zip(ss, w, cct_goals(r, w), strict=True) if s.occupied]
    hours = total / 3600
    writes: dict[str, int] = {}
    max_in_hour: dict[str, int] = {}
    for device, log in r.writes.items():
        per_point: dict[str, list[float]] = {}
        for wr in log:
            per_point.setdefault(f"{device}.{wr.point}", []).append(wr.ts)
        for target, times in per_point.items():
            writes[target] = len(times)
            max_in_hour[target] = worst_hour(times)
    fb_s: dict[str, float] = {}
    fb_n: dict[str, int] = {}
    for target in sorted({t for s in ss for t in s.fallbacks}):
        runs = _runs(ss, w, [target in s.fallbacks for s in ss])
        fb_n[target] = len(runs)
        fb_s[target] = sum(sum(w[a:b]) for a, b in runs)
    off: dict[str, float] = {}
    for s, wi in zip(ss, w, strict=True):
        for d in s.offline:
            off[d] = off.get(d, 0.0) + wi
    latencies = []
    tz = ZoneInfo(_tz(r))
    for ev in scn.events:
        if ev.kind != "sensor_freeze":
            continue
        h, m = (int(x) for x in ev.at.split(":"))
        t0 = dt.datetime.combine(scn.date, dt.time(h, m), tz).timestamp()
        first = next((s.t for s in ss if s.t >= t0 and s.fallbacks), None)
        if first is not None:
            latencies.append(first - t0)
    return Quality(
        variant=r.variant,
        occupied_h=occ_t / 3600 if occ else 0.0,
        pm25_ok_pct=100.0 * ok / occ_t if occ else 100.0,
        pm25_mean_24h=sum(s.pm25 * wi for s, wi in zip(ss, w, strict=True)) / total,
        pm25_mean_occupied=sum(s.pm25 * wi for s, wi in occ) / occ_t if occ else 0.0,
        pm25_max=max((s.pm25 for s in ss), default=0.0),
        peaks=peaks,
        cct_mae_k=sum(e * wi for e, wi in errs) / occ_t if errs else 0.0,
        cct_max_err_k=max((e for e, _ in errs), default=0.0),
        writes=writes,
        writes_per_h={k: v / hours for k, v in writes.items()},
        max_writes_in_hour=max_in_hour,
        caps=r.caps,
        fan_level_hours=sum(s.fan_level * wi for s, wi in zip(ss, w, strict=True)) / 3600,
        fan_level_hours_occupied=sum(s.fan_level * wi for s, wi in occ) / 3600,
        fan_kwh=sum(scn.fan_power(s.fan_level) * wi for s, wi in zip(ss, w, strict=True)) / 3.6e6,
        fallback_s=fb_s,
        fallback_episodes=fb_n,
        offline_s=off,
        freeze_to_fallback_s=latencies,
        wall_s=r.wall_s,
    )


def _tz(r: RunResult) -> str:
    from daemon.config import load_config

    return load_config(r.scenario.resolve(r.scenario.config)).site.timezone


def _hm(t: float, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(t, tz).strftime("%H:%M")


def format_report(results: list[RunResult], qualities: list[Quality], png: Path | None = None) -> str:
    """The report as text: one column per run (lobbyd first, then the baselines)."""
    r0 = results[0]
    scn = r0.scenario
    tz = ZoneInfo(_tz(r0))
    cols = [VARIANTS[q.variant] for q in qualities]  # type: ignore[index]
    width = max(26, *(len(c) + 2 for c in cols))
    lines = [
        f"Scenario {scn.name}: {scn.description}",
        f"  {scn.date} from {scn.start} for {scn.duration_h:g} h; occupied {scn.occupied[0]}-{scn.occupied[1]} "
        f"({qualities[0].occupied_h:.1f} h in the run)",
        "",
        " " * 34 + "".join(c.rjust(width) for c in cols),
    ]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"  {label:<32}" + "".join(v.rjust(width) for v in values))

    row(f"PM2.5 <= {scn.pm25_target:g} µg/m³ (occupied)", [f"{q.pm25_ok_pct:.1f} %" for q in qualities])
    row(f"PM2.5 mean (limit {scn.pm25_limit_24h:g}, run)", [
        f"{q.pm25_mean_24h:.1f}" + (" OK" if q.pm25_mean_24h <= scn.pm25_limit_24h else " OVER") for q in qualities
    ])  # fmt: skip
    row("PM2.5 mean occupied / max", [f"{q.pm25_mean_occupied:.1f} / {q.pm25_max:.1f}" for q in qualities])
    row("peaks above target", [
        (f"{len(q.peaks)}, worst {q.peaks[0].max_pm25:.0f} at {_hm(q.peaks[0].start, tz)} "
         f"for {q.peaks[0].duration_s / 60:.0f} min") if q.peaks else "none" for q in qualities
    ])  # fmt: skip
    row("CCT error vs target, mean / max", [f"{q.cct_mae_k:.0f} / {q.cct_max_err_k:.0f} K" for q in qualities])
    row("fan energy kWh (level-hours)", [f"{q.fan_kwh:.2f} ({q.fan_level_hours:.1f})" for q in qualities])
    targets = sorted({t for q in qualities for t in q.writes})
    for t in targets:
        row(f"writes {t} (max/h, cap)", [
            f"{q.writes.get(t, 0)} ({q.max_writes_in_hour.get(t, 0)}/h, {q.caps.get(t, '-')})" for q in qualities
        ])  # fmt: skip
    for t in sorted({t for q in qualities for t in q.fallback_s}):
        row(f"fallback {t}", [
            f"{q.fallback_episodes.get(t, 0)}x, {q.fallback_s.get(t, 0) / 60:.1f} min" for q in qualities
        ])  # fmt: skip
    if any(q.freeze_to_fallback_s for q in qualities):
        row("frozen sensor -> fallback after", [
            ", ".join(f"{x:.0f} s" for x in q.freeze_to_fallback_s) or "never" for q in qualities
        ])  # fmt: skip
    for d in sorted({d for q in qualities for d in q.offline_s}):
        row(f"device {d} offline (seen)", [f"{q.offline_s.get(d, 0) / 60:.1f} min" for q in qualities])
    row("sensor messages published", [str(r.published) for r in results])
    row("readings lost at random", [str(r.dropped) for r in results])
    row("readings lost in drop bursts", [str(r.dropped_burst) for r in results])
    row("readings lost to broker outage", [str(r.lost_broker) for r in results])
    lines.append("  (lost: the simulated sensor took the reading, the daemon never received it)")
    row("wall time", [f"{q.wall_s:.1f} s" for q in qualities])
    if png is not None:
        lines += ["", f"  picture of the day: {png}"]
    return "\n".join(lines)


def plot_day(results: list[RunResult], out: Path) -> Path:
    """PNG: PM2.5 in/out with the target band, fan level, daylight lux, colour temperature."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    r0 = results[0]
    scn = r0.scenario
    tz = ZoneInfo(_tz(r0))

    def at(hhmm: str) -> dt.datetime:
        h, m = (int(x) for x in hhmm.split(":"))
        return dt.datetime.combine(scn.date, dt.time(0), tz) + dt.timedelta(hours=h, minutes=m)

    def times(r: RunResult) -> list[dt.datetime]:
        return [dt.datetime.fromtimestamp(s.t, tz) for s in r.samples]

    fig, axes = plt.subplots(4, 1, figsize=(12, 11), sharex=True, height_ratios=[3, 1.3, 1.5, 1.5])
    ax = axes[0]
    x0 = times(r0)
    ax.axhspan(0, scn.pm25_target, color="#d8f0d8", label=f"target ≤ {scn.pm25_target:g}")
    ax.axhline(scn.pm25_limit_24h, color="#c66", lw=0.8, ls="--", label=f"24 h limit {scn.pm25_limit_24h:g}")
    ax.plot(x0, [s.pm25_out for s in r0.samples], color="#888", lw=1.2, label="outdoor")
    styles = {"lobbyd": ("#1f5fbf", 2.0), "fixed": ("#d98c1a", 1.1), "naive": ("#8e44ad", 1.1)}
    for r in results:
        color, lw = styles.get(r.variant, ("k", 1.0))
        ax.plot(times(r), [s.pm25 for s in r.samples], color=color, lw=lw, label=f"indoor, {VARIANTS[r.variant]}")
    ax.set_ylabel("PM2.5 µg/m³")
    top = max(max((s.pm25_out for s in r0.samples), default=50), scn.pm25_limit_24h) * 1.1
    ax.set_ylim(0, top)
    ax.legend(loc="upper right", fontsize=8, ncol=2)
    ax.set_title(f"{scn.name} — {scn.date} ({scn.description})", fontsize=10)
    for a in axes:
        a.axvspan(at(scn.occupied[0]), at(scn.occupied[1]), color="#f3f3f3", zorder=-5)
        for ev in scn.events:
            a.axvspan(at(ev.at), at(ev.until), color="#f6c6c6", alpha=0.5, zorder=-4)
    ax = axes[1]
    for r in results:
        color, lw = styles.get(r.variant, ("k", 1.0))
        ax.step(times(r), [s.fan_level for s in r.samples], where="post", color=color, lw=lw, label=VARIANTS[r.variant])
    ax.set_ylabel("fan level")
    ax.set_yticks([0, 1, 2, 3])
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    ax.plot(x0, [s.daylight_lux for s in r0.samples], color="#e0a800", label="daylight at sensor")
    ax.plot(x0, [s.lux for s in r0.samples], color="#555", lw=0.8, label="daylight + lamps (what the sensor sees)")
    ax.set_ylabel("lx")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[3]
    goals = cct_goals(r0)
    ax.plot(x0, [g if s.occupied else float("nan") for s, g in zip(r0.samples, goals, strict=True)],
            color="#999", ls="--", label="target curve (occupied)")  # fmt: skip
    ax.step(x0, [s.cct for s in r0.samples], where="post", color="#1f5fbf", label="lights.cct")
    ax.set_ylabel("CCT K")
    ax.legend(loc="upper right", fontsize=8)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))  # type: ignore[no-untyped-call]
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
