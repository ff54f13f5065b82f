"""The daemon's configuration (``config/lobbyd.yaml``), validated in stages.

1. Shape: pydantic models (each driver owns its own section's model).
2. Semantics and cross-references: unique ids, device profiles that load, safety entries that name
   real points. Errors carry file:line:column; nothing is mutated.

Relative paths in the file are relative to the file's own directory. A config may name a fleet-wide
defaults file with ``extends:``; the branch file's keys override the defaults' (mappings merge,
everything else is replaced), so a branch file only needs what is its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.engine import PointLimits, SensorInfo, ramp_clears_deadband
from daemon.inputs.conditioning import SensorInputs
from daemon.inputs.daylight_config import DaylightConfig
from daemon.inputs.trend import TrendConfig
from daemon.model import Quantity
from daemon.rules.load import RuleContext
from daemon.sun import Site
from daemon.yamlsource import (
    ConfigError,
    ErrorItem,
    SourceDoc,
    YamlLimits,
    deep_merge,
    did_you_mean,
    load_yaml,
    validate,
)
from drivers.influx.config import InfluxConfig
from drivers.modbus.config import DeviceConfig, resolve_profile_path
from drivers.modbus.profile import DeviceProfile, load_profile
from drivers.mqtt.config import MqttConfig, SensorConfig

__all__ = ["DaemonConfig", "LoadedConfig", "SafetyConfig", "SiteConfig", "load_config", "load_layers"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteConfig(_Strict):
    """Where the branch is: for sunrise/sunset and local opening hours."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _tz(self) -> SiteConfig:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{self.timezone}' (write e.g. 'Asia/Shanghai')") from None
        return self


class SafetyConfig(_Strict):
    """Output limits no rule can bypass (applied after arbitration, before every write)."""

    deadband: float = Field(0.0, ge=0, description="ignore changes smaller than this")
    min_hold_s: float = Field(0.0, ge=0, description="minimum time between two changes (min on/off time)")
    max_writes_per_hour: int = Field(120, ge=1, description="hard cap on writes to one point per hour")
    ramp_per_minute: float | None = Field(
        None,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="move the point at most this much per minute on every change the rules make (schedule edges, "
        "fallbacks, the end of an override); an override itself applies at once; a rule's own ramp_per_minute "
        "wins; not for points that take only some values",
    )


class OverridesConfig(_Strict):
    """Manual overrides (``lobbyd override``, or MQTT ``lobbyd/<branch>/device/<device>/<point>/set``)."""

    mqtt: bool = Field(
        False,
        description="accept overrides over MQTT; off by default: give only an operators' account the right to "
        "publish .../set on the broker first (docs/install.md, Security)",
    )
    max_duration_s: float = Field(
        8 * 3600.0, gt=0, le=7 * 86400.0, description="the longest override accepted (seconds; default 8 h)"
    )


class DaemonConfig(_Strict):
    branch: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    site: SiteConfig
    mqtt: MqttConfig
    sensors: tuple[SensorConfig, ...] = ()
    daylight: tuple[DaylightConfig, ...] = Field(
        (), description="virtual sensors: daylight at a lux sensor without the lamps' own light"
    )
    trends: tuple[TrendConfig, ...] = Field(
        (), description="virtual sensors: how fast a sensor's value moves, per minute (a least-squares slope)"
    )
    devices: tuple[DeviceConfig, ...] = ()
    influx: InfluxConfig | None = None
    rules_dir: Path = Path("rules")
    devices_dir: Path = Path("devices")
    state_dir: Path = Path("/var/lib/lobbyd")
    control_socket: Path | None = None  # default: <state_dir>/control.sock
    housekeeping_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="health records, the no-sensor warning and state saves: on multiples of this many seconds",
    )
    evaluate_every_s: float = Field(
        1.0,
        gt=0,
        description="grid of time-driven evaluations (a for: ending, a schedule edge, a ramp step) and of retries "
        "of held writes; rules also run on every reading they read, and at least every 15 s",
    )
    evaluate_min_gap_s: float = Field(
        0.002,
        ge=0,
        le=1,
        description="at most one rule evaluation per this interval; every reading still moves hysteresis and "
        "for: timers on, so none is skipped",
    )
    evaluate_max_gap_s: float = Field(
        0.025,
        ge=0,
        le=1,
        description="under a sustained flood of readings the interval between evaluations doubles up to this",
    )
    safety_defaults: SafetyConfig = SafetyConfig()
    safety: dict[str, SafetyConfig] = Field(default_factory=dict)  # "device.point" -> limits
    resume_grace_s: float = Field(120.0, ge=0)
    overrides: OverridesConfig = OverridesConfig()
    rule_files: YamlLimits = Field(YamlLimits(), description="bounds on each rule file (a file beyond one is refused)")
    extends: Path | None = None


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with everything resolved: file paths, profiles, the rules' context."""

    path: Path
    config: DaemonConfig
    profiles: Mapping[str, DeviceProfile]  # device name -> profile
    rules_dir: Path
    state_dir: Path
    control_socket: Path

    @property
    def site(self) -> Site:
        s = self.config.site
        return Site(s.latitude, s.longitude, s.timezone)

    def sensor_infos(self) -> dict[str, SensorInfo]:
        """Every sensor the rules may read: the configured ones, then the daylight and the trend virtual
        sensors (stale when their source is)."""
        out = {s.id: SensorInfo(s.id, s.zone, s.quantity, s.stale_after_s) for s in self.config.sensors}
        for d in self.config.daylight:
            source = out.get(d.window_sensor or d.lux_sensor)
            if source is not None:
                out[d.id] = SensorInfo(d.id, d.zone, Quantity.ILLUMINANCE, source.stale_after_s)
        for t in self.config.trends:
            source = out.get(t.sensor)
            if source is not None and source.quantity is not Quantity.TREND:
                out[t.id] = SensorInfo(t.id, t.zone, Quantity.TREND, source.stale_after_s, warmup_s=t.over_s / 2)
        return out

    def sensor_inputs(self) -> list[SensorInputs]:
        """Each measured sensor's filter, stuck check and staleness, for :class:`daemon.inputs.Conditioning`."""
        return [SensorInputs(s.id, s.filter, s.stuck, s.stale_after_s) for s in self.config.sensors]

    def stale_after(self) -> dict[str, float]:
        """Every sensor's ``stale_after_s`` by id (virtual ones: their source's), for the derived sensors."""
        return {i.id: i.stale_after_s for i in self.sensor_infos().values()}

    def point_limits(self) -> dict[str, PointLimits]:
        out: dict[str, PointLimits] = {}
        for dev in self.config.devices:
            prof = self.profiles[dev.name]
            for name in prof.setpoints():
                spec = prof.point(name)
                target = f"{dev.name}.{name}"
                ramp = self.safety_for(target).ramp_per_minute
                out[target] = PointLimits(spec.min, spec.max, spec.allowed_values, ramp)
        return out

    def rule_context(self) -> RuleContext:
        return RuleContext(self.sensor_infos(), self.point_limits())

    def safety_for(self, target: str) -> SafetyConfig:
        return self.config.safety.get(target, self.config.safety_defaults)


_DISCRIMINATORS = ("api", "type")  # a section that changes its kind is replaced, not merged


def _ramp_errors(doc: SourceDoc, cfg: DaemonConfig, profiles: dict[str, DeviceProfile]) -> list[ErrorItem]:
    """A safety ramp on a point that takes only some values (it would ask for values in between), or one
    whose steps could fall inside the point's deadband."""
    errors: list[ErrorItem] = []
    for n, prof in profiles.items():
        for p in prof.setpoints():
            allowed, key = prof.point(p).allowed_values, f"{n}.{p}"
            at = ("safety", key, "ramp_per_minute") if key in cfg.safety else ("safety_defaults", "ramp_per_minute")
            if allowed and cfg.safety.get(key, cfg.safety_defaults).ramp_per_minute is not None:
                takes = "one of [" + ", ".join(f"{a:g}" for a in allowed) + "]"
                errors.append(doc.error(at, f"{key} takes only {takes}; a ramp gives values between them"))
    entries = [(("safety", k), v) for k, v in cfg.safety.items()] + [(("safety_defaults",), cfg.safety_defaults)]
    for where, s in entries:
        rate, band = s.ramp_per_minute, s.deadband
        if rate is not None and not ramp_clears_deadband(rate, band):
            errors.append(doc.error((*where, "ramp_per_minute"), (
                f"ramp_per_minute ({rate:g}) must be more than twice the deadband ({band:g}): a ramp moves in equal"
                f" steps, which can be as small as half the rate, and a step inside the deadband is never written;"
                f" e.g. ramp_per_minute: {2.5 * band:g}, or deadband: {rate / 2.5:g}"
            )))  # fmt: skip
    return errors


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p).resolve()


def load_layers(path: str | Path) -> SourceDoc:
    """The config file's data with the file it ``extends:`` merged under it (not yet validated)."""
    path = Path(path).resolve()
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([ErrorItem(str(path), 1, 1, "the config file must be a mapping of keys")])
    data = doc.data
    if "extends" in data and isinstance(data["extends"], str):
        parent_path = _resolve(path.parent, Path(data["extends"]))
        parent = load_yaml(parent_path)
        if not isinstance(parent.data, dict):
            raise ConfigError([doc.error(("extends",), f"{parent_path} is not a mapping of keys")])
        merged = deep_merge(
            parent.data, {k: v for k, v in data.items() if k != "extends"}, discriminators=_DISCRIMINATORS
        )
        doc = SourceDoc(str(path), merged, {**parent.positions, **doc.positions}, doc.key_positions)
    return doc


def load_config(path: str | Path) -> LoadedConfig:
    """Load and validate ``lobbyd.yaml``; raise :class:`ConfigError` listing every problem found."""
    path = Path(path).resolve()
    base_dir = path.parent
    doc = load_layers(path)
    cfg = validate(DaemonConfig, doc)

    errors: list[ErrorItem] = []
    seen: dict[str, int] = {}
    for i, s in enumerate(cfg.sensors):
        if s.id in seen:
            errors.append(doc.error(("sensors", i, "id"), f"sensor id '{s.id}' is used twice (first at #{seen[s.id]})"))
        seen[s.id] = i
    quantities = {s.id: s.quantity for s in cfg.sensors}
    for i, day in enumerate(cfg.daylight):
        if day.id in seen:
            errors.append(doc.error(("daylight", i, "id"), f"sensor id '{day.id}' is used twice"))
        seen[day.id] = i
        for key in ("lux_sensor", "window_sensor"):
            ref = getattr(day, key)
            if ref is not None and quantities.get(ref) != Quantity.ILLUMINANCE:
                why = "is not an illuminance sensor" if ref in quantities else "is not a configured sensor"
                errors.append(doc.error(("daylight", i, key), f"'{ref}' {why}" + did_you_mean(ref, set(quantities))))
    followable = set(quantities) | {d.id for d in cfg.daylight}
    trend_ids = {t.id for t in cfg.trends}
    for i, tr in enumerate(cfg.trends):
        if tr.id in seen:
            errors.append(doc.error(("trends", i, "id"), f"sensor id '{tr.id}' is used twice"))
        if tr.sensor not in followable:
            why = (
                "is a trend itself; a trend follows a measured or a daylight sensor"
                if tr.sensor in trend_ids
                else "is not a configured sensor" + did_you_mean(tr.sensor, followable)
            )
            errors.append(doc.error(("trends", i, "sensor"), f"'{tr.sensor}' {why}"))
        seen[tr.id] = i
    devices_dir = _resolve(base_dir, cfg.devices_dir)
    profiles: dict[str, DeviceProfile] = {}
    for i, d in enumerate(cfg.devices):
        if d.name in profiles:
            errors.append(doc.error(("devices", i, "name"), f"device name '{d.name}' is used twice"))
            continue
        ppath = resolve_profile_path(d.profile, devices_dir)
        if not ppath.is_file():
            errors.append(doc.error(("devices", i, "profile"), f"device profile not found: {ppath}"))
            continue
        try:
            profiles[d.name] = load_profile(ppath)
        except ConfigError as exc:
            errors.extend(exc.errors)
            errors.append(doc.error(("devices", i, "profile"), f"device profile {ppath.name} is invalid (see above)"))
            continue
        try:
            profiles[d.name].resolve_parameters(d.parameters)
        except ValueError as exc:
            errors.append(doc.error(("devices", i, "parameters"), str(exc)))
    targets = {f"{n}.{p}" for n, prof in profiles.items() for p in prof.setpoints()}
    unloaded = {d.name for d in cfg.devices} - set(profiles)  # their profile's errors are reported already
    for i, day in enumerate(cfg.daylight):
        lamps = day.lamps
        if day.window_sensor is None and lamps not in targets and lamps.partition(".")[0] not in unloaded:
            why = f"unknown device point '{lamps}'" + did_you_mean(lamps, targets)
            errors.append(doc.error(("daylight", i, "lamps"), why))
    for key in cfg.safety:
        if key not in targets and key.partition(".")[0] not in unloaded:
            errors.append(doc.error(("safety", key), f"unknown device point '{key}'" + did_you_mean(key, targets)))
    errors.extend(_ramp_errors(doc, cfg, profiles))
    if errors:
        raise ConfigError(errors)
    state_dir = _resolve(base_dir, cfg.state_dir)
    return LoadedConfig(
        path=path,
        config=cfg,
        profiles=profiles,
        rules_dir=_resolve(base_dir, cfg.rules_dir),
        state_dir=state_dir,
        control_socket=_resolve(base_dir, cfg.control_socket) if cfg.control_socket else state_dir / "control.sock",
    )
