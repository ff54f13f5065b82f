"""What a simulation run produces: a :class:`Sample` per step and the :class:`RunResult`."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulators.devices import SimWrite
from simulators.scenario import Scenario
from simulators.variants import Variant

__all__ = ["RunResult", "Sample"]


@dataclass(frozen=True, slots=True)
class Sample:
    """The lobby at the end of one step."""

    t: float
    pm25: float
    pm25_out: float
    pm25_max_fan: float  # a shadow zone with the fan at its top level all along: what the plant can do
    temperature_c: float
    humidity_rh: float
    daylight_lux: float  # at the sensor, daylight only
    lux: float  # at the sensor, daylight + artificial
    fan_level: float
    brightness: float
    cct: float
    occupants: float
    occupied: bool
    fallbacks: tuple[str, ...]  # targets in fallback (a stale sensor)
    offline: tuple[str, ...]  # devices the daemon sees offline


@dataclass
class RunResult:
    """Everything one run produced, for :mod:`simulators.report`."""

    scenario: Scenario
    variant: Variant
    samples: list[Sample] = field(default_factory=list)
    writes: dict[str, list[SimWrite]] = field(default_factory=dict)  # device -> writes it received
    caps: dict[str, int] = field(default_factory=dict)  # "device.point" -> max writes per hour
    published: int = 0
    dropped: int = 0  # messages lost at random (drop_probability)
    dropped_burst: int = 0  # messages lost in drop_burst events
    lost_broker: int = 0
    evaluations: int = 0
    wall_s: float = 0.0
    influx: bool = False
    notes: list[str] = field(default_factory=list)
