"""Daylight without lamp light: the estimate behind a daylight virtual sensor.

A hall's lux sensor sees daylight plus the lamps' own light. With ``k`` lux per % of brightness,
daylight ≈ measured − k × brightness, clamped at 0, then smoothed by the configured filter (after
the lamps are taken out, so a change of brightness shows in the estimate for one reading only). ``k``
comes from the config, or is measured at
night (daylight ≈ 0) with the lamps on and settled: k = measured / brightness. Pure: brightness and
darkness are given with each reading; persisting ``k`` is the caller's business.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from daemon.inputs.daylight_config import DaylightConfig
from daemon.inputs.filters import make_filter
from daemon.model import Reading

__all__ = ["DaylightEstimate", "DaylightEstimator"]

#: Weight of a new night measurement in k (each lux reading at night is one).
CALIBRATION_WEIGHT = 0.1


class DaylightEstimate(NamedTuple):
    reading: Reading | None  # the virtual sensor's reading, or None when it cannot be known
    calibrated: bool  # k was measured from this reading


class DaylightEstimator:
    """One virtual daylight sensor; :meth:`update` with each reading of its source sensor."""

    def __init__(
        self, cfg: DaylightConfig, *, lux_per_percent: float | None = None, max_gap_s: float = math.inf
    ) -> None:
        self.cfg = cfg
        self.lux_per_percent = lux_per_percent if lux_per_percent is not None else cfg.lux_per_percent
        self.calibrations = 0
        self._lamps: float | None = None
        self._lamps_since = 0.0
        self._filter = make_filter(cfg.filter, max_gap_s) if cfg.filter is not None else None  # gap: source's stale

    @property
    def source(self) -> str:
        """The sensor whose readings make this one."""
        return self.cfg.window_sensor or self.cfg.lux_sensor

    def update(self, r: Reading, *, brightness: float | None, dark: bool) -> DaylightEstimate:
        """The daylight for the source reading ``r``, with the lamps at ``brightness`` % (None: unknown)
        and ``dark`` when it is night at the site."""
        if self.cfg.window_sensor is not None:
            return DaylightEstimate(self._reading(r, r.value), False)
        if brightness != self._lamps:
            self._lamps, self._lamps_since = brightness, r.ts
        calibrated = False
        cal = self.cfg.calibration
        if (
            cal.enabled
            and dark
            and brightness is not None
            and brightness >= cal.min_brightness
            and r.ts - self._lamps_since >= cal.settle_s
        ):
            sample = r.value / brightness
            k = self.lux_per_percent
            self.lux_per_percent = sample if k is None else k + CALIBRATION_WEIGHT * (sample - k)
            self.calibrations += 1
            calibrated = True
        k = self.lux_per_percent
        if brightness is None or k is None:
            return DaylightEstimate(None, calibrated)
        return DaylightEstimate(self._reading(r, max(0.0, r.value - k * brightness)), calibrated)

    def _reading(self, r: Reading, daylight: float) -> Reading:
        """The virtual reading for ``daylight`` at ``r``'s time, through the configured filter."""
        if self._filter is not None:
            daylight = self._filter.update(daylight, r.ts)
        return r._replace(sensor=self.cfg.id, zone=self.cfg.zone, value=daylight)
