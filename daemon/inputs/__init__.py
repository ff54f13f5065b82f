"""Input conditioning between the MQTT decoder and the rules: filters, stuck sensors, daylight.

Pure objects (no I/O): :mod:`daemon.state` applies them to each accepted reading.
"""

from daemon.inputs.calibration_store import CalibrationStore
from daemon.inputs.conditioning import Conditioned, Conditioning, SensorInputs
from daemon.inputs.daylight import DaylightEstimate, DaylightEstimator
from daemon.inputs.daylight_config import CalibrationConfig, DaylightConfig
from daemon.inputs.filters import EmaFilter, InputFilter, MedianFilter, make_filter
from daemon.inputs.stuck import StuckDetector
from daemon.inputs.virtual import VirtualSensors

__all__ = [
    "CalibrationConfig",
    "CalibrationStore",
    "Conditioned",
    "Conditioning",
    "DaylightConfig",
    "DaylightEstimate",
    "DaylightEstimator",
    "EmaFilter",
    "InputFilter",
    "MedianFilter",
    "SensorInputs",
    "StuckDetector",
    "VirtualSensors",
    "make_filter",
]
