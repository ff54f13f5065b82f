"""Issue 20's control-quality figures of one run, as plain numbers with stable names (``report.json``).

Every figure is time-weighted over samples (each sample stands for the step that ended at it) or
counted from the writes the Modbus simulators really received. "Open" is the scenario's occupied
span. Names and units are documented in ``docs/simulation.md`` ("report.json").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from simulators.simulate import RunResult

__all__ = [
    "CCT_BAND_K",
    "Figures",
    "cct_goals",
    "figures",
    "max_change_in_window",
    "reversals",
    "trailing_mean",
    "weights",
    "worst_hour",
]

CCT_BAND_K = 150.0


@dataclass(frozen=True, slots=True)
class Figures:
    """One run's figures (keys of ``report.json``'s per-variant objects)."""

    variant: str
    open_h: float
    pm25_ok_pct: float  # % of open time with PM2.5 <= target
    plant_limited_min: float  # open minutes where even the top fan level (shadow zone) is above target
    pm25_ok_reachable_pct: float  # % of open time the plant can reach, with PM2.5 <= target
    writes_per_device_worst_hour: dict[str, int]  # most writes to a device in any rolling hour
    writes_per_device_mean_per_h: dict[str, float]  # writes over the run / hours of the run
    cct_in_band_pct: float | None  # % of open time with |CCT - curve(true daylight, averaged)| <= 150 K
    cct_in_band_instant_pct: float | None  # the same against the curve of the instant's true daylight
    cct_max_change_per_min_k: float | None  # largest CCT change within any 60 s
    cct_reversals_worst_hour: int | None  # changes of direction of CCT in any rolling hour
    fan_kwh: float
    dropped_random: int  # readings lost at random (the sensor's drop_probability)
    dropped_burst: int  # readings lost in the scenario's drop_burst events
    lost_broker: int  # readings published while the broker was down or the daemon not subscribed

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def worst_hour(times: Sequence[float]) -> int:
    """The most events in any rolling hour."""
    window: deque[float] = deque()
    best = 0
    for t in sorted(times):
        window.append(t)
        while window[0] <= t - 3600:
            window.popleft()
        best = max(best, len(window))
    return best


def max_change_in_window(initial: float, changes: Sequence[tuple[float, float]], window_s: float = 60.0) -> float:
    """Largest ``|v(t) − v(t − window)|`` of a step signal starting at ``initial`` with (time, value) changes."""
    best = 0.0
    for t, v in changes:
        before = initial
        for t2, v2 in changes:
            if t2 > t - window_s:
                break
            before = v2
        best = max(best, abs(v - before))
    return best


def reversals(initial: float, changes: Sequence[tuple[float, float]]) -> list[float]:
    """Times at which a step signal changes direction (up then down, or down then up)."""
    out, prev, direction = [], initial, 0
    for t, v in changes:
        d = (v > prev) - (v < prev)
        if d and direction and d != direction:
            out.append(t)
        if d:
            direction = d
        prev = v
    return out


def weights(r: RunResult) -> list[float]:
    """How long each sample stands for (the step that ended at it), in seconds."""
    w, prev = [], (r.samples[0].t - r.scenario.step_s) if r.samples else 0.0
    for s in r.samples:
        w.append(s.t - prev)
        prev = s.t
    return w


def trailing_mean(ts: Sequence[float], ws: Sequence[float], vs: Sequence[float], window_s: float) -> list[float]:
    """At each sample, the time-weighted mean of ``vs`` over the ``window_s`` seconds before it
    (samples whose time lies within the window; the sample itself always counts)."""
    out: list[float] = []
    window: deque[tuple[float, float, float]] = deque()
    wsum = vsum = 0.0
    for t, w, v in zip(ts, ws, vs, strict=True):
        window.append((t, w, v))
        wsum, vsum = wsum + w, vsum + w * v
        while len(window) > 1 and window[0][0] <= t - window_s:
            _, w0, v0 = window.popleft()
            wsum, vsum = wsum - w0, vsum - w0 * v0
        out.append(vsum / wsum if wsum > 0 else v)
    return out


def cct_goals(r: RunResult, w: Sequence[float] | None = None) -> list[float]:
    """The target colour temperature at each sample: the scenario's curve applied to the true
    daylight, averaged over ``cct_target_average_min`` (a cloud passing in minutes is not followed)."""
    scn, ss = r.scenario, r.samples
    day = [s.daylight_lux for s in ss]
    if scn.cct_target_average_min > 0:
        day = trailing_mean([s.t for s in ss], w if w is not None else weights(r), day, 60 * scn.cct_target_average_min)
    return [scn.cct_goal(d) for d in day]


def figures(r: RunResult) -> Figures:
    """The figures of one run."""
    scn, ss = r.scenario, r.samples
    w = weights(r)
    hours = (sum(w) / 3600) or 1.0
    opened = [(s, wi) for s, wi in zip(ss, w, strict=True) if s.occupied]
    open_s = sum(wi for _, wi in opened)
    target = scn.pm25_target
    ok = sum(wi for s, wi in opened if s.pm25 <= target)
    limited = sum(wi for s, wi in opened if s.pm25_max_fan > target)
    reachable_ok = sum(wi for s, wi in opened if s.pm25_max_fan <= target and s.pm25 <= target)
    worst: dict[str, int] = {}
    mean: dict[str, float] = {}
    for device, log in sorted(r.writes.items()):
        worst[device] = worst_hour([wr.ts for wr in log])
        mean[device] = round(len(log) / hours, 2)
    in_band = in_band_now = max_step = revs = None
    if scn.actuators.cct is not None and ss:
        act = scn.actuators.cct
        cct = [(wr.ts, wr.value) for wr in r.writes.get(act.device, []) if wr.point == act.point]
        initial = ss[0].cct if not cct or cct[0][0] > ss[0].t else cct[0][1]
        goals = cct_goals(r, w)
        band = sum(wi for s, wi, g in zip(ss, w, goals, strict=True) if s.occupied and abs(s.cct - g) <= CCT_BAND_K)
        in_band = round(100.0 * band / open_s, 2) if open_s else 100.0
        band = sum(wi for s, wi in opened if abs(s.cct - scn.cct_goal(s.daylight_lux)) <= CCT_BAND_K)
        in_band_now = round(100.0 * band / open_s, 2) if open_s else 100.0
        max_step = round(max_change_in_window(initial, cct), 1)
        revs = worst_hour(reversals(initial, cct))
    return Figures(
        variant=r.variant,
        open_h=round(open_s / 3600, 3),
        pm25_ok_pct=round(100.0 * ok / open_s, 2) if open_s else 100.0,
        plant_limited_min=round(limited / 60, 1),
        pm25_ok_reachable_pct=round(100.0 * reachable_ok / (open_s - limited), 2) if open_s > limited else 100.0,
        writes_per_device_worst_hour=worst,
        writes_per_device_mean_per_h=mean,
        cct_in_band_pct=in_band,
        cct_in_band_instant_pct=in_band_now,
        cct_max_change_per_min_k=max_step,
        cct_reversals_worst_hour=revs,
        fan_kwh=round(sum(scn.fan_power(s.fan_level) * wi for s, wi in zip(ss, w, strict=True)) / 3.6e6, 3),
        dropped_random=r.dropped,
        dropped_burst=r.dropped_burst,
        lost_broker=r.lost_broker,
    )
