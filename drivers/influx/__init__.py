"""Time-series writer: line protocol, batching, disk spool with in-order replay, InfluxDB v1/v2.

Public API::

    from drivers.influx import InfluxConfig, InfluxWriter, WriterStats, line
"""

from .config import FsyncPolicy, InfluxConfig, InfluxV1Config, InfluxV2Config
from .errors import InfluxConfigError, InfluxError, InfluxRejected, InfluxUnavailable
from .lineproto import FieldValue, line
from .writer import InfluxWriter, WriterStats

__all__ = [
    "FieldValue",
    "FsyncPolicy",
    "InfluxConfig",
    "InfluxConfigError",
    "InfluxError",
    "InfluxRejected",
    "InfluxUnavailable",
    "InfluxV1Config",
    "InfluxV2Config",
    "InfluxWriter",
    "WriterStats",
    "line",
]
