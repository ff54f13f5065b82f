"""The parts of a running daemon, as the composition root (daemon/app.py) built them.

One value that status, health records and the systemd supervisor read from; each part is one
concern with its own small interface (docs/architecture.md has the table).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from daemon.actuation import Actuation
from daemon.config import LoadedConfig
from daemon.control import ControlLoop
from daemon.intake import Intake
from daemon.overrides import Overrides
from daemon.persist import StateStore
from daemon.publish import Publisher
from daemon.reload import RuleReload
from daemon.state import SensorState
from daemon.telemetry import Recorder
from drivers.clock import Clock
from drivers.influx import InfluxWriter
from drivers.modbus import ModbusBus
from drivers.mqtt import MqttLink

__all__ = ["Parts"]


@dataclass(frozen=True)
class Parts:
    loaded: LoadedConfig
    clock: Clock
    state: SensorState
    intake: Intake
    overrides: Overrides
    control: ControlLoop
    actuation: Actuation
    reload: RuleReload
    publisher: Publisher
    recorder: Recorder
    writer: InfluxWriter | None
    link: MqttLink
    buses: dict[str, ModbusBus]
    store: StateStore
    started_at: float
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)  # the broker acknowledged our filters
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # devices read, MQTT subscribed (READY=1)
    daemon_writer: InfluxWriter | None = None  # the daemon's own series, when they go to a database of their own

    @property
    def writers(self) -> list[InfluxWriter]:
        """Every time-series writer: the readings' and, when separate, the daemon's own series'."""
        return [w for w in (self.writer, self.daemon_writer) if w is not None]
