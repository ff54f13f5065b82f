"""A physical model of one lobby zone on a virtual clock: PM2.5, temperature, humidity, illuminance.

Pure functions and frozen value types, no I/O: :func:`step` advances a :class:`ZoneState` by ``dt``
seconds given the :class:`Inputs` that hold over that interval. Every parameter is documented with
its unit and the source of its default in ``docs/simulation.md``.

PM2.5 mass balance (well-mixed zone, µg/m³, rates in 1/h)::

    dC/dt = (λ_inf·P + λ_vent·(1 − η)) · C_out + S_occ/V − (λ_inf + λ_dep + λ_vent) · C

with ``λ_vent = airflow(level)/V`` (the fresh-air unit supplies filtered outdoor air and the same
volume leaves the zone), ``λ_inf`` infiltration, ``P`` penetration factor, ``η`` the unit's filter
efficiency for PM2.5, ``λ_dep`` deposition, ``S_occ`` the indoor source (people walking,
resuspension) in µg/h. Inputs are constant over a step, so the step is solved exactly
(``C(t+dt) = C_ss + (C − C_ss)·exp(−k·dt)``); a 10 s or 10 min step gives the same curve.

Temperature and humidity are first-order: the zone relaxes towards the outdoor air at the total
air-change rate (ventilation with heat recovery), towards the HVAC setpoint with a time constant
while the building's air conditioning runs, and people add heat and moisture.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace

from astral import Observer
from astral.sun import elevation as _astral_elevation

__all__ = [
    "Inputs",
    "Outdoor",
    "ZoneParams",
    "ZoneState",
    "clear_sky_lux",
    "daylight_lux",
    "fan_power_w",
    "lag",
    "relative_humidity",
    "step",
    "sun_elevation",
    "vapour_density",
]

_RHO_CP_KJ_M3K = 1.2  # volumetric heat capacity of air, kJ/(m³·K)


@dataclass(frozen=True, slots=True)
class ZoneParams:
    """A zone's physical parameters (units in the names; defaults: ``docs/simulation.md``)."""

    volume_m3: float = 630.0
    infiltration_ach: float = 0.3
    penetration: float = 0.8
    deposition_per_h: float = 0.2
    filter_efficiency: float = 0.9
    source_ug_h_per_person: float = 100.0
    heat_w_per_person: float = 75.0
    moisture_g_h_per_person: float = 50.0
    heat_recovery: float = 0.6
    thermal_mass_factor: float = 8.0
    hvac_setpoint_c: float = 25.0
    hvac_tau_h: float = 0.5
    hvac_dehumidify_to_rh: float = 55.0
    window_factor: float = 0.01
    artificial_lux_at_full: float = 450.0
    recirc_m3h: float = 0.0  # recirculation filter unit's airflow (0: none, the default)
    recirc_efficiency: float = 0.9  # its single-pass PM2.5 efficiency


@dataclass(frozen=True, slots=True)
class Outdoor:
    """Outdoor conditions over a step."""

    pm25: float  # µg/m³
    temperature_c: float
    humidity_rh: float  # %
    cloud_cover: float  # 0 clear … 1 overcast (oktas / 8)


@dataclass(frozen=True, slots=True)
class Inputs:
    """What holds over one step besides the weather: people, actuators, HVAC, sun."""

    outdoor: Outdoor
    occupants: float
    airflow_m3h: float  # fresh-air unit's supply (and extract) airflow at its current level
    brightness_pct: float  # artificial light, 0–100 %
    hvac_on: bool
    sun_elevation_deg: float


@dataclass(frozen=True, slots=True)
class ZoneState:
    """The zone's true condition (what a perfect sensor would read)."""

    pm25: float  # µg/m³
    temperature_c: float
    vapour_g_m3: float  # absolute humidity
    lux: float = 0.0  # horizontal illuminance at the sensor (daylight + artificial)

    def humidity_rh(self) -> float:
        return relative_humidity(self.temperature_c, self.vapour_g_m3)


# ---- psychrometrics --------------------------------------------------------------------------------


def _saturation_g_m3(t_c: float) -> float:
    # Magnus formula (Alduchov & Eskridge 1996) for saturation vapour pressure over water, then ideal gas.
    p_sat_hpa = 6.1094 * math.exp(17.625 * t_c / (t_c + 243.04))
    return 216.7 * p_sat_hpa / (t_c + 273.15)


def vapour_density(t_c: float, rh: float) -> float:
    """Absolute humidity in g/m³ of air at ``t_c`` °C and ``rh`` %RH."""
    return _saturation_g_m3(t_c) * rh / 100.0


def relative_humidity(t_c: float, vapour_g_m3: float) -> float:
    """Relative humidity in % (capped at 100) of air at ``t_c`` holding ``vapour_g_m3``."""
    return min(100.0, 100.0 * vapour_g_m3 / _saturation_g_m3(t_c))


# ---- daylight ---------------------------------------------------------------------------------------


def sun_elevation(latitude: float, longitude: float, t: float) -> float:
    """The sun's elevation above the horizon in degrees at POSIX time ``t`` (astral, with refraction)."""
    when = dt.datetime.fromtimestamp(t, dt.UTC)
    return float(_astral_elevation(Observer(latitude, longitude), when))


def clear_sky_lux(elevation_deg: float) -> float:
    """Global horizontal illuminance under a clear sky, lx.

    ``128 000 · sin h · exp(−0.21 / sin h)`` (direct, Bird's extra-terrestrial 128 klx with a simple
    air-mass extinction) plus 15 % diffuse; civil twilight fades linearly from 400 lx at the horizon
    to 0 at −6°.
    """
    if elevation_deg <= -6.0:
        return 0.0
    if elevation_deg <= 0.0:
        return 400.0 * (1.0 + elevation_deg / 6.0)
    s = math.sin(math.radians(elevation_deg))
    return max(400.0, 128_000.0 * s * math.exp(-0.21 / s) * 1.15)


def daylight_lux(elevation_deg: float, cloud_cover: float) -> float:
    """Outdoor horizontal illuminance with clouds: clear sky × (1 − 0.75·c^3.4) (Kasten & Czeplak 1980)."""
    c = min(1.0, max(0.0, cloud_cover))
    return clear_sky_lux(elevation_deg) * (1.0 - 0.75 * math.pow(c, 3.4))


def lag(reading: float, true: float, tau_s: float, dt_s: float) -> float:
    """A first-order sensor (time constant ``tau_s``) ``dt_s`` later, the true value held over the step."""
    if tau_s <= 0:
        return true
    return true + (reading - true) * math.exp(-dt_s / tau_s)


def fan_power_w(airflow_m3h: float, max_airflow_m3h: float, power_at_max_w: float, exponent: float = 3.0) -> float:
    """Fan electrical power at an airflow: ``P_max·(Q/Q_max)^n`` (fan affinity law: cubic by default)."""
    if max_airflow_m3h <= 0 or airflow_m3h <= 0:
        return 0.0
    return power_at_max_w * math.pow(airflow_m3h / max_airflow_m3h, exponent)


# ---- the step ---------------------------------------------------------------------------------------


def _relax(x: float, target: float, rate_per_h: float, dt_h: float) -> float:
    if rate_per_h <= 0:
        return x
    return target + (x - target) * math.exp(-rate_per_h * dt_h)


def pm25_step(c: float, p: ZoneParams, inp: Inputs, dt_s: float) -> float:
    """Exact solution of the PM2.5 mass balance over ``dt_s`` seconds with constant inputs."""
    lam_vent = inp.airflow_m3h / p.volume_m3
    gain = (p.infiltration_ach * p.penetration + lam_vent * (1.0 - p.filter_efficiency)) * inp.outdoor.pm25
    gain += inp.occupants * p.source_ug_h_per_person / p.volume_m3
    k = p.infiltration_ach + p.deposition_per_h + lam_vent + p.recirc_m3h * p.recirc_efficiency / p.volume_m3
    if k <= 0:
        return c + gain * dt_s / 3600.0
    return _relax(c, gain / k, k, dt_s / 3600.0)


def step(state: ZoneState, p: ZoneParams, inp: Inputs, dt_s: float) -> ZoneState:
    """The zone ``dt_s`` seconds later (inputs held constant over the step)."""
    dt_h = dt_s / 3600.0
    out = inp.outdoor
    lam_vent = inp.airflow_m3h / p.volume_m3
    # Temperature: a weighted target of outdoor air, HVAC setpoint and internal gains, relaxed at the
    # sum of the rates. The thermal mass factor slows everything (walls and furniture store heat).
    cap = _RHO_CP_KJ_M3K * p.volume_m3 * p.thermal_mass_factor / 3600.0  # kWh/K
    r_air = (p.infiltration_ach + lam_vent * (1.0 - p.heat_recovery)) / p.thermal_mass_factor
    r_hvac = (1.0 / p.hvac_tau_h) if inp.hvac_on else 0.0
    gains_k_per_h = inp.occupants * p.heat_w_per_person / 1000.0 / cap if cap > 0 else 0.0
    rate = r_air + r_hvac
    t = state.temperature_c
    if rate > 0:
        target = (r_air * out.temperature_c + r_hvac * p.hvac_setpoint_c + gains_k_per_h) / rate
        t = _relax(t, target, rate, dt_h)
    else:
        t += gains_k_per_h * dt_h
    # Humidity (absolute): ventilation towards outdoor air, people add moisture, the AC's cooling coil
    # removes it down to the moisture of ``hvac_dehumidify_to_rh`` at the setpoint.
    w_out = vapour_density(out.temperature_c, out.humidity_rh)
    w_hvac = vapour_density(p.hvac_setpoint_c, p.hvac_dehumidify_to_rh)
    r_w_air = p.infiltration_ach + lam_vent
    r_w_hvac = r_hvac if state.vapour_g_m3 > w_hvac else 0.0
    source = inp.occupants * p.moisture_g_h_per_person / p.volume_m3
    r_w = r_w_air + r_w_hvac
    w = state.vapour_g_m3
    if r_w > 0:
        w = _relax(w, (r_w_air * w_out + r_w_hvac * w_hvac + source) / r_w, r_w, dt_h)
    else:
        w += source * dt_h
    w = min(w, _saturation_g_m3(t))
    lux = daylight_lux(inp.sun_elevation_deg, out.cloud_cover) * p.window_factor
    lux += p.artificial_lux_at_full * max(0.0, min(100.0, inp.brightness_pct)) / 100.0
    return replace(state, pm25=pm25_step(state.pm25, p, inp, dt_s), temperature_c=t, vapour_g_m3=w, lux=lux)
