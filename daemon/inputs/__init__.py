"""Input conditioning between the MQTT decoder and the rules: filters, stuck sensors, daylight, trends.

Pure objects (no I/O): :mod:`daemon.state` applies them to each accepted reading.
"""

from daemon.inputs.calibration_store import CalibrationStore
from daemon.inputs.conditioning import Conditioned, Conditioning, SensorInputs
from daemon.inputs.daylight import DaylightEstimate, DaylightEstimator
from daemon.inputs.daylight_config import CalibrationConfig, DaylightConfig
from daemon.inputs.derived import Derived
from daemon.inputs.filters import EmaFilter, InputFilter, MedianFilter, make_filter
from daemon.inputs.stuck import StuckDetector
from daemon.inputs.trend import Trend, TrendConfig, Trends
from daemon.inputs.virtual import VirtualSensors

__all__ = [
    "CalibrationConfig",
    "CalibrationStore",
    "Conditioned",
    "Conditioning",
    "DaylightConfig",
    "DaylightEstimate",
    "DaylightEstimator",
    "Derived",
    "EmaFilter",
    "InputFilter",
    "MedianFilter",
    "SensorInputs",
    "StuckDetector",
    "Trend",
    "TrendConfig",
    "Trends",
    "VirtualSensors",
    "make_filter",
]
