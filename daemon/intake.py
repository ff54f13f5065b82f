"""Every MQTT message enters the daemon here: a sensor reading, or a manual override on ``.../set``.

The path of a reading, call by call: :meth:`Intake.on_message` → the MQTT driver's decoder (route,
decode, reject by reason, count) → :meth:`daemon.state.SensorState.update` (latest per sensor) →
:meth:`daemon.telemetry.Recorder.reading` (to the time-series writer at once) →
:meth:`daemon.control.ControlLoop.reading` (the rules see it), then the same for the daylight and trend
readings derived from it (:class:`daemon.inputs.Derived`). A reading older than the one held (a late
report with its own time) is recorded, counted and logged (once a minute per sensor), and goes no further.
"""

from __future__ import annotations

from daemon.control import ControlLoop
from daemon.inputs import Derived, VirtualSensors
from daemon.model import Reading
from daemon.overrides import Overrides, target_of
from daemon.state import SensorState
from daemon.telemetry import Recorder
from drivers.mqtt import Message, MessageDecoder, RateLimitedLog

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
        derived: Derived | None = None,
        late_log: RateLimitedLog | None = None,
    ) -> None:
        self.decoder = decoder
        self._state = state
        self._control = control
        self._overrides = overrides
        self._recorder = recorder
        self._override_prefix = override_prefix
        self._derived = derived if derived else None
        self._late_log = late_log

    @property
    def virtual(self) -> VirtualSensors | None:
        """The daylight virtual sensors, if any are configured."""
        return self._derived.virtual if self._derived is not None else None

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
                self._late(r)
                continue
            # raw in ``value``; a filtered sensor's filtered value beside it
            self._recorder.reading(r, self._state.filtered(r.sensor))
            self._control.reading(r.sensor)
            if self._derived is not None:
                self._derive(r.sensor)

    def _late(self, r: Reading) -> None:
        held = self._state.latest(r.sensor)
        if self._late_log is not None and held is not None:
            self._late_log.log(
                r.sensor,
                f"sensor {r.sensor}: a reading {held.ts - r.ts:.0f} s older than the one held arrived late: "
                "recorded in the time series, not used by the rules",
            )

    def _derive(self, sensor: str) -> None:
        """The virtual readings (daylight, trends) that follow from the sensor's reading as the rules see it."""
        assert self._derived is not None
        seen = self._state.latest(sensor)
        if seen is None:
            return
        for v in self._derived.follow(seen, accept=self._state.update, stuck=self._state.stuck):
            self._recorder.reading(v)
            self._control.reading(v.sensor)
