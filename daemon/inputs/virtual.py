"""The daylight virtual sensors of one daemon: which source reading makes which virtual reading.

:meth:`VirtualSensors.on_reading` is called with each accepted reading; it returns the virtual
readings that follow from it. The lamps' brightness and the darkness at the site are asked for
through callables (the actuation's known value, the sun at the site), and a measured lux per % is
saved through ``save`` when it moved by more than 1 %.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from daemon.inputs.daylight import DaylightEstimator
from daemon.inputs.daylight_config import DaylightConfig
from daemon.model import Reading

__all__ = ["VirtualSensors"]

SAVE_CHANGE = 0.01  # save k when it moved by more than this fraction since it was last saved


class VirtualSensors:
    def __init__(
        self,
        configs: Iterable[DaylightConfig],
        *,
        brightness: Callable[[str], float | None],
        dark: Callable[[], bool],
        saved: Mapping[str, float] | None = None,
        save: Callable[[dict[str, float]], None] | None = None,
        stale_after_s: Mapping[str, float] | None = None,
    ) -> None:
        saved, stale = saved or {}, stale_after_s or {}
        self.estimators = {
            c.id: DaylightEstimator(
                c, lux_per_percent=saved.get(c.id), max_gap_s=stale.get(c.window_sensor or c.lux_sensor, math.inf)
            )
            for c in configs
        }
        self._by_source: dict[str, list[DaylightEstimator]] = {}
        for e in self.estimators.values():
            self._by_source.setdefault(e.source, []).append(e)
        self._brightness = brightness
        self._dark = dark
        self._save = save
        self._saved = dict(saved)

    def __bool__(self) -> bool:
        return bool(self.estimators)

    def on_reading(self, r: Reading) -> list[Reading]:
        ests = self._by_source.get(r.sensor)
        if not ests or r.retained:
            return []
        out: list[Reading] = []
        for e in ests:
            got = e.update(r, brightness=self._brightness(e.cfg.lamps), dark=self._dark())
            if got.calibrated:
                self._maybe_save(e)
            if got.reading is not None:
                out.append(got.reading)
        return out

    def _maybe_save(self, e: DaylightEstimator) -> None:
        k, before = e.lux_per_percent, self._saved.get(e.cfg.id)
        if k is None or (before is not None and abs(k - before) <= SAVE_CHANGE * before):
            return
        self._saved[e.cfg.id] = k
        if self._save is not None:
            self._save(dict(self._saved))

    def summary(self) -> dict[str, Any]:
        """For ``lobbyd status``: each virtual sensor's source and lux per %."""
        return {
            sid: {
                "source": e.source,
                "lux_per_percent": e.lux_per_percent,
                "calibrations": e.calibrations,
                "lamps": None if e.cfg.window_sensor else e.cfg.lamps,
            }
            for sid, e in self.estimators.items()
        }
