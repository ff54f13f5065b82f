"""Scenario files (``simulators/scenarios/*.yaml``): a day in the lobby, validated with pydantic.

A scenario names the daemon config and rules to run, the zone's physical parameters, the weather
and occupancy as piecewise-linear series of ``["HH:MM", value]`` points (local time at the site),
how each sensor samples the model, which device point is the fan level / brightness / colour
temperature, and fault events (frozen sensor, device offline, broker down). A scenario may
``extends:`` another; mappings merge, everything else is replaced.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from daemon.yamlsource import ConfigError, ErrorItem, SourceDoc, deep_merge, load_yaml, validate
from simulators.lobby_model import ZoneParams, fan_power_w

__all__ = [
    "Actuator",
    "Event",
    "Scenario",
    "SensorSpec",
    "Series",
    "load_scenario",
    "minutes_of",
]

REPO = Path(__file__).resolve().parent.parent


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def minutes_of(hhmm: str) -> float:
    """``"08:30"`` → 510.0 minutes after local midnight (``"24:00"`` allowed)."""
    h, _, m = hhmm.partition(":")
    if not (h.isdigit() and m.isdigit() and len(m) == 2):
        raise ValueError(f"time {hhmm!r}: write HH:MM, e.g. 08:30")
    total = int(h) * 60 + int(m)
    if int(m) >= 60 or total > 24 * 60:
        raise ValueError(f"time {hhmm!r} is not a time of day")
    return float(total)


def _regular(data: dict[str, Any]) -> dict[str, Any]:
    extra = set(data) - {"from", "every_min", "values"}
    if extra:
        raise ValueError(f"unknown key {sorted(extra)[0]!r}: a regular series has from, every_min, values")
    every, values, start = data.get("every_min"), data["values"], data.get("from", "00:00")
    if isinstance(every, bool) or not isinstance(every, int | float) or not math.isfinite(every) or every <= 0:
        raise ValueError("every_min must be a positive number of minutes")
    if not isinstance(values, list) or not values:
        raise ValueError("values must be a list of at least one number")
    if not isinstance(start, str):
        raise ValueError("from must be a time written HH:MM, in quotes")
    m0 = minutes_of(start)
    if m0 + every * (len(values) - 1) > 24 * 60:
        raise ValueError(f"{len(values)} values every {every:g} min from {start} run past 24:00")
    points = []
    for i, v in enumerate(values):
        m = m0 + every * i
        points.append([f"{int(m // 60):02d}:{int(m % 60):02d}", v])
    return {"points": points}


class Series(_Strict):
    """A value over the day: linear between ``["HH:MM", value]`` points, constant outside them.

    Also written ``{from: "HH:MM", every_min: N, values: [...]}``: one value every N minutes.
    """

    points: tuple[tuple[str, float], ...]

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, int | float):
            return {"points": [["00:00", data]]}
        if isinstance(data, list):
            return {"points": data}
        if isinstance(data, dict) and "values" in data:
            return _regular(data)
        return data

    @field_validator("points")
    @classmethod
    def _ordered(cls, v: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
        if not v:
            raise ValueError("a series needs at least one [HH:MM, value] point")
        times = [minutes_of(t) for t, _ in v]
        if any(b < a for a, b in itertools.pairwise(times)):
            raise ValueError("series points must be in time order")
        return v

    def at(self, minute: float) -> float:
        """Value at ``minute`` after local midnight."""
        pts = [(minutes_of(t), y) for t, y in self.points]
        if minute <= pts[0][0]:
            return pts[0][1]
        for (t0, y0), (t1, y1) in itertools.pairwise(pts):
            if minute <= t1:
                return y1 if t1 == t0 else y0 + (y1 - y0) * (minute - t0) / (t1 - t0)
        return pts[-1][1]


class Actuator(_Strict):
    """A device point the model reads (from the device simulator's registers)."""

    device: str
    point: str


class Actuators(_Strict):
    fan_level: Actuator
    brightness: Actuator | None = None
    cct: Actuator | None = None


Signal = Literal["pm25", "outdoor_pm25", "temperature", "humidity", "lux", "outdoor_temperature"]


class SensorSpec(_Strict):
    """How one configured sensor samples the model."""

    signal: Signal
    interval_s: float = Field(30.0, gt=0, description="publish interval, s")
    noise_sd: float = Field(0.0, ge=0, description="Gaussian noise, in the sensor's unit")
    relative_noise: float = Field(0.0, ge=0, description="extra noise as a fraction of the value")
    drop_probability: float = Field(0.0, ge=0, le=1, description="chance a message is lost")
    offset_s: float = Field(0.0, ge=0, description="first publish this long after the start")
    lag_s: float = Field(0.0, ge=0, description="first-order sensor time constant, s (0: no lag)")


class Event(_Strict):
    """A fault between ``at`` and ``until`` (local HH:MM)."""

    kind: Literal["sensor_freeze", "device_offline", "broker_down", "drop_burst"]
    at: str
    until: str
    sensor: str | None = None
    device: str | None = None
    stuck: bool = Field(False, description="sensor_freeze: keep publishing the frozen value (default: fall silent)")
    value: float | None = Field(None, description="sensor_freeze with stuck: publish this value (default: the last)")

    @model_validator(mode="after")
    def _target(self) -> Event:
        if minutes_of(self.until) <= minutes_of(self.at):
            raise ValueError("'until' must be after 'at'")
        if self.kind in ("sensor_freeze", "drop_burst") and not self.sensor:
            raise ValueError(f"a {self.kind} event needs 'sensor'")
        if self.value is not None and not (self.stuck and math.isfinite(self.value)):
            raise ValueError("'value' needs 'stuck: true' and a finite number")
        if self.kind == "device_offline" and not self.device:
            raise ValueError("a device_offline event needs 'device'")
        return self


class ZoneSpec(_Strict):
    """:class:`~simulators.lobby_model.ZoneParams` as a validated mapping (units: see docs)."""

    name: str = "hall"
    volume_m3: float = Field(630.0, gt=0)
    infiltration_ach: float = Field(0.3, ge=0)
    penetration: float = Field(0.8, ge=0, le=1)
    deposition_per_h: float = Field(0.2, ge=0)
    filter_efficiency: float = Field(0.9, ge=0, le=1)
    source_ug_h_per_person: float = Field(100.0, ge=0)
    heat_w_per_person: float = Field(75.0, ge=0)
    moisture_g_h_per_person: float = Field(50.0, ge=0)
    heat_recovery: float = Field(0.6, ge=0, le=1)
    thermal_mass_factor: float = Field(8.0, ge=1)
    hvac_setpoint_c: float = 25.0
    hvac_tau_h: float = Field(0.5, gt=0)
    hvac_dehumidify_to_rh: float = Field(55.0, ge=0, le=100)
    window_factor: float = Field(0.01, ge=0, le=1)
    artificial_lux_at_full: float = Field(450.0, ge=0)
    recirc_m3h: float = Field(0.0, ge=0, description="recirculation filter airflow, m³/h (0: none)")
    recirc_efficiency: float = Field(0.9, ge=0, le=1)
    initial_pm25: float = Field(12.0, ge=0)
    initial_temperature_c: float = 25.0
    initial_humidity_rh: float = Field(55.0, ge=0, le=100)

    def params(self) -> ZoneParams:
        keep = set(ZoneParams.__dataclass_fields__)
        return ZoneParams(**{k: v for k, v in self.model_dump().items() if k in keep})


class Outdoors(_Strict):
    pm25: Series = Series(points=(("00:00", 20.0),))
    temperature_c: Series = Series(points=(("00:00", 26.0),))
    humidity_rh: Series = Series(points=(("00:00", 65.0),))
    cloud_cover: Series = Series(points=(("00:00", 0.3),))


class Baselines(_Strict):
    """The two comparisons run on the same scenario (alternative rule sets through the same daemon)."""

    fixed_fan_level: float = 2
    naive_threshold: float = Field(35.0, description="µg/m³: fan high above, low at or below, no hysteresis")
    naive_high_level: float = 3
    naive_low_level: float = 1
    naive_closed_level: float = 0
    schedule: str | None = Field(
        "opening-hours", description="the naive baseline runs on this schedule of the rules (null: all day)"
    )


class Scenario(_Strict):
    """One simulated day (or part of it)."""

    name: str
    description: str = ""
    config: Path = Path("../../config/lobbyd.yaml")
    rules: Path | None = None  # default: the config's rules_dir
    date: dt.date
    start: str = "00:00"
    duration_h: float = Field(24.0, gt=0, le=48)
    step_s: float = Field(10.0, gt=0, le=300)
    quiet_step_s: float = Field(60.0, gt=0, le=300, description="step outside occupied hours ± 30 min")
    seed: int = 1
    occupied: tuple[str, str] = ("08:30", "17:30")
    hvac: tuple[str, str] = ("08:00", "18:00")
    zone: ZoneSpec = ZoneSpec()
    actuators: Actuators
    fan_airflow_m3h: dict[int, float] = Field(default_factory=lambda: {0: 0.0, 1: 500.0, 2: 1000.0, 3: 1600.0})
    fan_power_w_at_max: float = Field(700.0, ge=0, description="fan power at the highest level's airflow, W")
    fan_power_exponent: float = Field(3.0, gt=0, description="power ~ airflow^n (fan affinity law: 3)")
    pm25_target: float = Field(35.0, gt=0)
    pm25_limit_24h: float = Field(50.0, gt=0)
    cct_target: tuple[tuple[float, float], ...] = Field(
        ((0.0, 2700.0), (100.0, 3000.0), (500.0, 4000.0), (1500.0, 5000.0)),
        description="[daylight lx at the sensor, K]: the colour temperature the day should have",
    )
    cct_target_average_min: float = Field(
        30.0,
        ge=0,
        le=120,
        description="the target applies the curve to the true daylight averaged over this many minutes before "
        "(0: the instant's daylight); a passing cloud is not something the lamps should follow",
    )
    outdoor: Outdoors = Outdoors()
    occupancy: Series = Series(points=(("00:00", 0.0),))
    sensors: dict[str, SensorSpec]
    events: tuple[Event, ...] = ()
    baselines: Baselines = Baselines()
    source: Path = Path()

    @field_validator("start")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        minutes_of(v)
        return v

    def airflow(self, level: float) -> float:
        """Airflow in m³/h at a fan level (nearest configured level at or below)."""
        levels = sorted(self.fan_airflow_m3h)
        below = [lv for lv in levels if lv <= level + 1e-9]
        return self.fan_airflow_m3h[below[-1]] if below else 0.0

    def fan_power(self, level: float) -> float:
        """Fan electrical power in W at a level (:func:`~simulators.lobby_model.fan_power_w`)."""
        top = max(self.fan_airflow_m3h.values(), default=0.0)
        return fan_power_w(self.airflow(level), top, self.fan_power_w_at_max, self.fan_power_exponent)

    def cct_goal(self, daylight_lux: float) -> float:
        """The target colour temperature for a daylight illuminance (linear in ``cct_target``)."""
        pts = self.cct_target
        if daylight_lux <= pts[0][0]:
            return pts[0][1]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            if daylight_lux <= x1:
                return y0 + (y1 - y0) * (daylight_lux - x0) / (x1 - x0) if x1 > x0 else y1
        return pts[-1][1]

    def resolve(self, p: Path) -> Path:
        return p if p.is_absolute() else (self.source.parent / p).resolve()


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario file (following ``extends:``); :class:`ConfigError` with positions."""
    path = Path(path).resolve()
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([ErrorItem(str(path), 1, 1, "a scenario file must be a mapping of keys")])
    data: dict[str, Any] = dict(doc.data)
    positions = dict(doc.positions)
    seen: list[Path] = [path]
    while isinstance(data.get("extends"), str):
        parent_path = (seen[-1].parent / data["extends"]).resolve()
        if parent_path in seen:
            raise ConfigError([doc.error(("extends",), f"'extends' loops back to {parent_path.name}")])
        parent = load_yaml(parent_path)
        if not isinstance(parent.data, dict):
            raise ConfigError([doc.error(("extends",), f"{parent_path} is not a mapping of keys")])
        seen.append(parent_path)
        data = deep_merge(dict(parent.data), {k: v for k, v in data.items() if k != "extends"})
        positions = {**parent.positions, **positions}
    data.pop("extends", None)
    data["source"] = str(path)
    return validate(Scenario, SourceDoc(str(path), data, positions, doc.key_positions))


def scenario_paths(names: Sequence[str]) -> list[Path]:
    """Scenario names (``pollution-episode``) or paths → paths."""
    out = []
    for n in names:
        p = Path(n)
        if not p.exists() and not p.suffix:
            p = REPO / "simulators" / "scenarios" / f"{n}.yaml"
        out.append(p)
    return out
