"""Configuration of a daylight virtual sensor (``daylight:`` in lobbyd.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from drivers.mqtt.inputs_config import FilterConfig

__all__ = ["CalibrationConfig", "DaylightConfig"]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class CalibrationConfig(BaseModel):
    """When the lamps' lux per % is measured: at night (between dusk and dawn at the site), with the
    lamps on at ``min_brightness`` or more and unchanged for ``settle_s``."""

    model_config = _FROZEN
    enabled: bool = Field(default=True, description="measure lux_per_percent automatically at night")
    settle_s: float = Field(default=300.0, gt=0, le=86_400, description="the lamps' level must be unchanged this long")
    min_brightness: float = Field(default=20.0, gt=0, le=100, description="the least lamp level (%) to measure at")


class DaylightConfig(BaseModel):
    """Daylight at a lux sensor that also sees the lamps: measured lux − lux_per_percent × brightness,
    never below 0; or, with ``window_sensor``, that sensor's reading as it is."""

    model_config = _FROZEN
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", description="the virtual sensor's id, for rules")
    zone: str = Field(default="daylight", min_length=1, description="its zone (keep it out of zone aggregates)")
    lux_sensor: str = Field(min_length=1, description="the illuminance sensor that sees daylight and lamps")
    lamps: str = Field(default="lights.brightness", description="the device point of the lamps' brightness (%)")
    lux_per_percent: float | None = Field(
        default=None, gt=0, le=10_000, description="lux the lamps add per % at the sensor; default: calibrated"
    )
    window_sensor: str | None = Field(
        default=None, description="a window-facing or outdoor illuminance sensor: used directly instead"
    )
    filter: FilterConfig | None = Field(
        default=None,
        description="smooth the daylight value (median_of: N or ema_s: T), after the lamps are taken out",
    )
    calibration: CalibrationConfig = CalibrationConfig()
