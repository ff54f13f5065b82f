"""Input conditioning between the MQTT decoder and the rules: filters, stuck sensors, daylight.

Pure objects (no I/O): :mod:`daemon.state` applies them to each accepted reading.
"""

from daemon.inputs.conditioning import Conditioned, Conditioning, SensorInputs
from daemon.inputs.filters import EmaFilter, InputFilter, MedianFilter, make_filter
from daemon.inputs.stuck import StuckDetector

__all__ = [
    "Conditioned",
    "Conditioning",
    "EmaFilter",
    "InputFilter",
    "MedianFilter",
    "SensorInputs",
    "StuckDetector",
    "make_filter",
]
