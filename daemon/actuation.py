"""Actuation: the desired values reach the devices through the safety gate, one writer per device.

:meth:`Actuation.desired_changed` takes each evaluation's decisions and wakes a device's writer only
when it has something to do: a value the device is not known to hold, or a held-back state to clear.
The writer asks :meth:`daemon.safety.SafetyGate.admit` per point (deadband, minimum hold, writes/hour
cap), writes, reads back and verifies (:meth:`drivers.modbus.ModbusDevice.write_point`), and when a
limit holds a change back or a write fails, looks again at the next slot of the ``retry_every_s`` grid
after the limit ends. Devices are read before the first decision, so a restart toggles nothing; one
that comes back online is written its desired state again; at shutdown each is left at its profile's
shutdown state.

How a failed or mismatching write is handled: ``daemon/pointfaults.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from daemon.config import SafetyConfig
from daemon.model import Decision, WriteOutcome, WriteResult
from daemon.pointfaults import BUSY_BACKOFF, MISMATCH_RETRIES, Mismatch, PointError
from daemon.publish import Publisher
from daemon.safety import SafetyGate
from daemon.telemetry import Recorder
from drivers.backoff import Backoff
from drivers.clock import Clock, Timer
from drivers.modbus import AvailabilityCallback, DeviceConfig, DeviceProfile, ModbusError
from drivers.timegrid import next_slot

__all__ = ["Actuation", "ActuationStats", "Device", "MakeDevice"]

_LOG = logging.getLogger("lobbyd")


class Device(Protocol):
    """What actuation needs of a device (:class:`drivers.modbus.ModbusDevice` is one)."""

    name: str
    online: bool
    polling: bool  # a status poll is under way
    profile: DeviceProfile
    last_error: str | None
    requests: int

    async def read_setpoints(self) -> dict[str, float]: ...

    async def write_point(self, point: str, value: float) -> WriteResult: ...

    async def run_polls(self, callback: Callable[[str, str, float], None]) -> object: ...


MakeDevice = Callable[[DeviceConfig, AvailabilityCallback], Device]


@dataclass
class ActuationStats:
    writes_ok: int = 0
    writes_failed: int = 0
    writes_mismatch: int = 0
    write_ms_max: float = 0.0  # slowest write (incl. read-back) since the last health record
    held: dict[str, str] = field(default_factory=dict)  # target -> safety limit holding it back


class Actuation:
    """The devices, their writers and the safety gate between decisions and registers."""

    def __init__(
        self,
        devices: Sequence[DeviceConfig],
        *,
        make_device: MakeDevice,
        gate: SafetyGate,
        safety_for: Callable[[str], SafetyConfig],
        recorder: Recorder,
        publisher: Publisher,
        clock: Clock,
        retry_every_s: float = 1.0,
    ) -> None:
        self.gate = gate
        self.stats = ActuationStats()
        self.devices = {dc.name: make_device(dc, self._on_availability) for dc in devices}
        self._safety_for = safety_for
        self._recorder = recorder
        self._publisher = publisher
        self._clock = clock
        self._retry_every_s = retry_every_s
        self._desired: dict[str, Decision] = {}
        self._wake = {name: asyncio.Event() for name in self.devices}
        self._busy: set[str] = set()  # devices whose writer is working
        self._retry: dict[str, tuple[float, Timer]] = {}  # device -> when its writer looks again
        self._held_value: dict[str, float] = {}  # point -> the value its writer last held back
        self.mismatches: dict[str, Mismatch] = {}  # point -> read-back differing from the write
        self.polled: dict[str, tuple[float, float]] = {}  # status point -> (value, when polled)
        self._errors: dict[str, PointError] = {}  # point -> why its last write failed
        self._busy_backoff: dict[str, Backoff] = {}  # point -> its wait while the device is busy
        self._not_before: dict[str, float] = {}  # point -> not written again before (busy device)
        self._stopping = False
        self._stopped = asyncio.Event()

    # ---- what the rest of the daemon sees ----------------------------------------------------------
    def known(self, target: str) -> float | None:
        """The value the device was last read or written to hold (None: unknown)."""
        return self.gate.track(target).known

    def held_by(self, target: str) -> str | None:
        """The safety limit holding the point back, or its read-back mismatch, if any."""
        if (m := self.mismatch(target)) is not None:
            seen = "nothing readable" if m.readback is None else f"{m.readback:g}"
            return f"read-back mismatch (wrote {m.desired:g}, device reports {seen})"
        return self.stats.held.get(target)

    def mismatch(self, target: str) -> Mismatch | None:
        """The point's read-back mismatch once its retries are spent (None: none, or still retrying)."""
        m = self.mismatches.get(target)
        return m if m is not None and m.marked else None

    def point_error(self, target: str) -> str | None:
        """Why the point's last write failed, in words (None: it did not, or it was written since)."""
        err = self._errors.get(target)
        return err.text if err is not None else None

    def retry_at(self, device: str) -> float | None:
        """When the device's writer looks again without a new decision (None: not before one)."""
        got = self._retry.get(device)
        return got[0] if got else None

    def wants_write(self, device: str) -> bool:
        """The device's writer has been woken and has not yet done what it was woken for."""
        return self._wake[device].is_set() or device in self._busy

    @property
    def idle(self) -> bool:
        """No writer working or woken (a stopped writer wakes no more), no status poll under way."""
        woken = not self._stopping and any(w.is_set() for w in self._wake.values())
        return not self._busy and not woken and not any(d.polling for d in self.devices.values())

    def desired_changed(self, decisions: Mapping[str, Decision]) -> None:
        """Take an evaluation's decisions; wake the writers that have something to do (not once stopping)."""
        if self._stopping:
            return
        self._desired.update(decisions)
        for name in {d.device for t, d in decisions.items() if self._for_writer(t, d)}:
            wake = self._wake.get(name)
            if wake is not None:
                wake.set()

    def _for_writer(self, target: str, d: Decision) -> bool:
        if self._refused(target, d.value):
            return False  # the device refused this very value: only a new one is worth writing
        if (m := self.mismatch(target)) is not None and m.desired == d.value:
            return False  # marked: only a new value (or the device's return) is written again
        if target in self.stats.held:  # held back: look again when the decision moves (or the hold ends)
            return self._held_value.get(target) != d.value
        return self.gate.track(target).known != d.value

    # ---- running ---------------------------------------------------------------------------------------
    async def read_devices(self) -> None:
        """Before deciding anything, learn what each device holds, so a restart toggles nothing."""

        async def one(dev: Device) -> None:
            try:
                values = await dev.read_setpoints()
            except ModbusError as exc:
                _LOG.warning("device %s not readable at start: %s", dev.name, exc)
                return
            for point, value in values.items():
                self.gate.observed(f"{dev.name}.{point}", value)
            _LOG.info("device %s holds %s", dev.name, values)

        async with asyncio.TaskGroup() as tg:
            for dev in self.devices.values():
                tg.create_task(one(dev), name=f"read-{dev.name}")

    async def run(self, *, drain_s: float = 10.0) -> None:
        """One writer and one status poller per device, until :meth:`stop`; then each writer may finish the
        write it is doing (for at most ``drain_s``)."""
        async with asyncio.TaskGroup() as tg:
            writers = [tg.create_task(self.run_writer(name), name=f"write-{name}") for name in self.devices]
            polls = [
                tg.create_task(dev.run_polls(self._on_status), name=f"poll-{dev.name}")
                for dev in self.devices.values()
                if dev.profile.status_points()
            ]
            await self._stopped.wait()
            for poll in polls:
                poll.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_s):
                    await asyncio.gather(*writers, return_exceptions=True)
            for writer in writers:
                writer.cancel()

    def stop(self) -> None:
        """Writers stop after the write they are doing; status polls stop."""
        self._stopping = True
        self._stopped.set()
        for _, timer in self._retry.values():
            timer.cancel()
        self._retry.clear()
        for wake in self._wake.values():
            wake.set()

    async def run_writer(self, device: str) -> None:
        """Write one device's desired setpoints, one at a time, latest value wins."""
        dev, wake = self.devices[device], self._wake[device]
        try:
            while not self._stopping:
                self._busy.discard(device)
                await wake.wait()
                wake.clear()
                self._busy.add(device)
                if self._stopping:
                    return
                retry = self._retry.pop(device, None)
                if retry is not None:
                    retry[1].cancel()
                retry_at = math.inf
                for target, d in sorted(self._desired.items()):
                    if d.device == device:
                        retry_at = min(retry_at, await self._write(dev, target, d))
                if retry_at < math.inf:
                    self._retry_later(device, retry_at)
        finally:
            self._busy.discard(device)

    def _refused(self, target: str, value: float) -> bool:
        err = self._errors.get(target)
        return err is not None and err.kind == "refused" and err.value == value

    async def _write(self, dev: Device, target: str, d: Decision) -> float:
        """Admit and write one point; return when to look again without a new decision (inf: never)."""
        now = self._clock.now()
        if self._refused(target, d.value):
            return math.inf
        if now < self._not_before.get(target, -math.inf):
            return self._not_before[target]  # the device was busy: its wait is not over
        m = self.mismatches.get(target)
        if m is not None and m.desired != d.value:
            del self.mismatches[target]  # a new value: a fresh start
        elif m is not None and m.marked:
            return math.inf
        elif m is not None and now < m.next_at:
            return m.next_at  # backing off: a new reading does not hurry the retry
        adm = self.gate.admit(target, d.value, now, self._safety_for(target), manual=d.reason.rule == "manual-override")
        held = self.stats.held
        if not adm.write:
            if adm.held_by:
                held[target] = adm.held_by
                self._held_value[target] = d.value
                return adm.retry_at if adm.retry_at is not None else math.inf  # a deadband never ends
            held.pop(target, None)
            self._held_value.pop(target, None)
            return math.inf
        held.pop(target, None)
        self._held_value.pop(target, None)
        was_online = dev.online
        result = await dev.write_point(d.point, d.value)
        done = self._clock.now()
        sent = result.extra.get("sent") != "no"
        if sent and not (result.outcome is WriteOutcome.FAILED and not was_online and not dev.online):
            self.gate.wrote(target, d.value, done, ok=result.outcome is WriteOutcome.OK)  # not a skipped offline one
        if result.outcome is WriteOutcome.MISMATCH:
            return self._mismatched(result, target, d, done)
        self.mismatches.pop(target, None)
        retry = self._classify(result, target, d, done)
        if sent:
            self._account(result, target, d, done)
        return retry

    def _mismatched(self, result: WriteResult, target: str, d: Decision, done: float) -> float:
        """Retry a mismatch after 1, 2, 4 s; then mark it (logged and recorded once) and stop writing."""
        m = self.mismatches.setdefault(target, Mismatch(d.value, result.readback))
        m.writes += result.attempts
        m.readback = result.readback
        self.stats.writes_mismatch += 1
        self.stats.write_ms_max = max(self.stats.write_ms_max, result.latency_s * 1000.0)
        self._recorder.write(result, d.reason.rule, done)
        if m.writes <= MISMATCH_RETRIES:
            _LOG.debug("write %s = %g read back %s; retry %d", target, d.value, result.readback, m.writes)
            self._publisher.device_state(result, d.reason.rule, done, state="retrying")
            m.next_at = done + 2.0 ** (m.writes - 1)
            return m.next_at
        m.marked = True
        text = m.text(target) + "; not written again until the value changes or the device reconnects"
        _LOG.warning("read-back mismatch %s", text)
        self._recorder.event("mismatch", text, done, device=d.device, point=d.point)
        self._publisher.device_state(result, d.reason.rule, done, state="mismatch")
        return math.inf

    def _classify(self, result: WriteResult, target: str, d: Decision, done: float) -> float:
        """Put the point in or out of error; when to look again without a new decision (inf: never)."""
        if result.outcome is not WriteOutcome.FAILED:
            self._busy_backoff.pop(target, None)
            self._not_before.pop(target, None)
            self._set_error(target, d, None)
            return math.inf if result.outcome is WriteOutcome.OK else done  # not verified: again soon
        kind = result.extra.get("kind", "no_answer")
        code, name = result.extra.get("exception", ""), result.extra.get("exception_name", "")
        what = f"Modbus exception {code} ({name})" if code else (result.error or "no answer")
        if kind == "refused":
            text = f"the device refused {d.value:g}: {result.error}; not written again until the value changes"
            self._set_error(target, d, PointError(kind, d.value, text, code))
            return math.inf
        if kind == "busy":
            backoff = self._busy_backoff.setdefault(target, Backoff(*BUSY_BACKOFF))
            self._not_before[target] = done + backoff.next_delay()
            text = f"device busy or failing: {what}; asked again after a growing wait"
            self._set_error(target, d, PointError(kind, d.value, text, code))
            return self._not_before[target]
        # One state however the probes fail (the device's own last_error says how): logged once.
        self._set_error(target, d, PointError("offline", d.value, "device offline; written when it answers again"))
        return done  # an offline device fails fast until its next probe

    def _set_error(self, target: str, d: Decision, err: PointError | None) -> None:
        """Record the point's error state; log, record and publish it only when it changes."""
        old = self._errors.get(target)
        if err is None:
            if old is None:
                return
            del self._errors[target]
            text = f"{target}: written again (was: {old.text})"
            _LOG.info("%s", text)
        else:
            self._errors[target] = err
            if old is not None and (old.kind, old.code, old.value) == (err.kind, err.code, err.value):
                return
            text = f"{target}: {err.text}"
            _LOG.warning("%s", text)
        now = self._clock.now()
        self._recorder.event("point_error", text, now, device=d.device, point=d.point)
        self._publisher.point_error(d.device, d.point, err.text if err is not None else None, now)

    def _account(self, result: WriteResult, target: str, d: Decision, done: float) -> None:
        s = self.stats
        s.write_ms_max = max(s.write_ms_max, result.latency_s * 1000.0)
        if result.outcome is WriteOutcome.OK:
            s.writes_ok += 1
        else:
            s.writes_failed += 1
        self._recorder.write(result, d.reason.rule, done)
        log = {WriteOutcome.OK: _LOG.info, WriteOutcome.FAILED: _LOG.debug}.get(result.outcome, _LOG.warning)
        log("write %s = %g (%s, rule %s, readback %s)", target, d.value, result.outcome, d.reason.rule, result.readback)
        self._publisher.device_state(result, d.reason.rule, done, error=self.point_error(target))

    def _retry_later(self, device: str, at: float) -> None:
        """Wake the writer at the first slot of the retry grid at or after ``at`` (and after now)."""
        every, now = self._retry_every_s, self._clock.now()
        slot = max(math.ceil((at - 1e-9) / every) * every, next_slot(now, every))
        timer = self._clock.call_at(slot, functools.partial(self._retry_due, device))
        self._retry[device] = (slot, timer)

    def _retry_due(self, device: str) -> None:
        self._retry.pop(device, None)
        self._wake[device].set()

    def _on_availability(self, device: str, online: bool, why: str) -> None:
        now = self._clock.now()
        (_LOG.info if online else _LOG.warning)("device %s %s: %s", device, "online" if online else "offline", why)
        self._recorder.availability(device, online, why, now)
        self._publisher.availability(device, online)
        if online:
            # Back: what it holds is unknown (it may have rebooted); re-apply the current desired state,
            # and try again what it refused or was too busy for (it may have been reconfigured).
            for point in self.devices[device].profile.setpoints():
                target = f"{device}.{point}"
                self.gate.observed(target, None)
                self._busy_backoff.pop(target, None)
                self._not_before.pop(target, None)
                if target in self._errors:
                    self._errors[target] = dataclasses.replace(self._errors[target], value=math.nan)
                self.mismatches.pop(target, None)  # it may have been fixed or replaced
            self._wake[device].set()

    def _on_status(self, device: str, point: str, value: float) -> None:
        now, target = self._clock.now(), f"{device}.{point}"
        old = self.polled.get(target)
        self.polled[target] = (value, now)
        self._recorder.status(device, point, value, now)
        if old is None or old[0] != value:  # retained: the latest value stays on the topic
            self._publisher.status_value(device, point, value, now)

    async def apply_shutdown_states(self) -> None:
        """Leave each device at its profile's shutdown state (only what differs)."""
        for dev in self.devices.values():
            for point, value in (dev.profile.shutdown or {}).items():
                target = f"{dev.name}.{point}"
                if self.gate.track(target).known == value:
                    continue
                result = await dev.write_point(point, value)
                self.gate.wrote(target, value, self._clock.now(), ok=result.outcome is WriteOutcome.OK)
                self._recorder.write(result, "shutdown", self._clock.now())
                _LOG.info("shutdown state %s = %g: %s", target, value, result.outcome)
