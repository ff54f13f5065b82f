"""Every MQTT message enters the daemon here: a sensor reading, or a manual override on ``.../set``.

The path of a reading, call by call: :meth:`Intake.on_message` → the MQTT driver's decoder (route,
decode, reject by reason, count) → :meth:`daemon.state.SensorState.update` (latest per sensor; an older
reading than the one held is dropped) → :meth:`daemon.telemetry.Recorder.reading` (to the time-series
writer at once) → :meth:`daemon.control.ControlLoop.reading` (the rules see it).
"""

from __future__ import annotations

from daemon.control import ControlLoop
from daemon.inputs import VirtualSensors
from daemon.overrides import Overrides, target_of
from daemon.state import SensorState
from daemon.telemetry import Recorder
from drivers.mqtt import Message, MessageDecoder

__all__ = ["Intake"]


class Intake:
    """Routes each message to its handler; see the module docstring for a reading's path."""

    def __init__(
        self,
        decoder: MessageDecoder,
        *,
        state: SensorState,
        control: ControlLoop,
        overrides: Overrides,
        recorder: Recorder,
        override_prefix: str,
        virtual: VirtualSensors | None = None,
    ) -> None:
        self.decoder = decoder
        self._state = state
        self._control = control
        self._overrides = overrides
        self._recorder = recorder
        self._override_prefix = override_prefix
        self._virtual = virtual if virtual else None

    @property
    def virtual(self) -> VirtualSensors | None:
        """The daylight virtual sensors, if any are configured."""
        return self._virtual

    @property
    def override_filter(self) -> str:
        """The MQTT filter of the override topics."""
        return f"{self._override_prefix}+/+/set"

    def on_message(self, m: Message) -> None:
        """Handle one message from the MQTT link (never raises for bad input: it is counted)."""
        target = target_of(m.topic, self._override_prefix)
        if target is not None:
            self._overrides.on_message(target, m)
            return
        readings, _rejected = self.decoder.process_message(m)
        for r in readings:
            if not self._state.update(r):
                # older than the reading held (a late report with its own time, counted by the state):
                # history keeps it, the rules do not see it
                self._recorder.reading(r, None)
                continue
            # raw in ``value``; a filtered sensor's filtered value beside it
            self._recorder.reading(r, self._state.filtered(r.sensor))
            self._control.reading(r.sensor)
            if self._virtual is not None:
                self._derive(r.sensor)

    def _derive(self, sensor: str) -> None:
        """The virtual readings (daylight) that follow from the sensor's reading as the rules see it."""
        assert self._virtual is not None
        seen = self._state.latest(sensor)
        if seen is None:
            return
        for v in self._virtual.on_reading(seen):
            if self._state.update(v):
                self._recorder.reading(v)
                self._control.reading(v.sensor)
