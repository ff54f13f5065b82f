"""Where measured lux-per-% figures live between runs: ``<state_dir>/daylight.json``.

Written atomically (write, fsync, rename). An unreadable file is logged and ignored (the config's
value, or a new night's measurement, takes over), never fatal.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

__all__ = ["CalibrationStore"]

_LOG = logging.getLogger("lobbyd.inputs")


class CalibrationStore:
    """Load and save ``{virtual sensor id: lux per %}``. The constructor does no I/O."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "daylight.json"
        self.failed = 0

    def load(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            _LOG.warning("daylight: %s not used (%s); lux per %% is measured again", self.path, exc)
            return {}
        if not isinstance(data, dict):
            _LOG.warning("daylight: %s is not a mapping; lux per %% is measured again", self.path)
            return {}
        return {
            k: float(v)
            for k, v in data.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        }

    def save(self, values: dict[str, float]) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w") as f:
                json.dump(values, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.path)
        except OSError as exc:
            self.failed += 1
            if self.failed == 1:
                _LOG.warning("daylight: cannot save %s (%s); kept in memory", self.path, exc)
