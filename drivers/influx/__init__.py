"""Time-series writer: line protocol, batching, disk spool with in-order replay, InfluxDB v1/v2.

Public API::

    from drivers.influx import InfluxConfig, InfluxWriter, WriterStats, line, timestamp, daemon_series_config
"""

from .config import FsyncPolicy, InfluxConfig, InfluxV1Config, InfluxV2Config, Precision, daemon_series_config
from .errors import InfluxConfigError, InfluxError, InfluxRejected, InfluxUnavailable
from .lineproto import PER_SECOND, FieldValue, line, timestamp
from .spool import has_pending
from .writer import InfluxWriter, WriterStats

__all__ = [
    "PER_SECOND",
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
    "Precision",
    "WriterStats",
    "daemon_series_config",
    "has_pending",
    "line",
    "timestamp",
]
