"""One Modbus device: typed reads and verified writes of profile points, availability tracking.

A device is *online* after its first answer and *offline* after ``offline_after`` consecutive
failures (timeouts, lost link, bad frames; an exception response is an answer, except 0A/0B: a
gateway saying it cannot reach the device marks it offline at once). While offline, requests fail
fast with :class:`DeviceOffline` except one probe per second for the first ``QUICK_PROBE_FOR_S`` of
an outage, then per growing backoff interval, so a dead unit never hogs a shared bus. A write to an
offline device probes with a read first: nothing is written until it answers. The first answer brings it back
and ``on_availability`` fires both ways. A write answered with an exception is not retried here:
``WriteResult.extra["kind"]`` tells the caller (:func:`errors.failure_extra`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import NoReturn

from daemon.model import WriteOutcome, WriteResult

from ..backoff import Backoff
from ..clock import Clock, SystemClock
from ..timegrid import next_slot
from .bus import ModbusBus
from .config import DeviceConfig
from .errors import UNREACHABLE_CODES, DeviceException, DeviceOffline, ModbusError, failure_extra
from .profile import DeviceProfile, PointSpec, RegisterType

__all__ = ["AvailabilityCallback", "ModbusDevice"]

AvailabilityCallback = Callable[[str, bool, str], None]
DEFAULT_POLL_S = 10.0
# What one read may carry (Modbus application protocol, FC1/FC2 and FC3/FC4).
MAX_READ_BITS, MAX_READ_REGISTERS = 2000, 125
QUICK_PROBE_S = 1.0  # probe an offline device this often (with jitter: every 0.5-1 s) ...
QUICK_PROBE_FOR_S = 60.0  # ... for this long after it went offline, then on the growing backoff


class ModbusDevice:
    """Reads and writes one device's points in engineering units through a shared :class:`ModbusBus`."""

    def __init__(
        self,
        config: DeviceConfig,
        profile: DeviceProfile,
        bus: ModbusBus,
        *,
        clock: Clock | None = None,
        on_availability: AvailabilityCallback | None = None,
        probe_backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.profile = profile
        self.name = config.name
        self.online = False
        self.polling = False  # a status poll round is running (run_polls)
        self._last_error: str | None = None
        self.last_error_at: float | None = None  # when the last error happened (kept after recovery)
        self.requests = 0
        self._bus = bus
        self._params = profile.resolve_parameters(config.parameters)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._on_availability = on_availability
        self._rng = rng if rng is not None else random.Random()
        self._probe = probe_backoff if probe_backoff is not None else Backoff(1.0, 60.0, rng=self._rng)
        self._quick_probe = Backoff(QUICK_PROBE_S, QUICK_PROBE_S, rng=self._rng)
        self._failures = 0
        self._offline = False
        self.offline_since: float | None = None  # when it was last marked offline
        self._next_probe = 0.0
        self._probed_on = 0  # the bus's connection count at the last failed request (see _request)
        self._next_poll: dict[str, float] = {}
        self._one_by_one = False  # the device refused a read spanning several status points
        self._lock = asyncio.Lock()

    # ---- availability -------------------------------------------------------------------------

    @property
    def last_error(self) -> str | None:
        """The last failure, until the device answers again (its time stays in ``last_error_at``)."""
        return self._last_error

    @last_error.setter
    def last_error(self, text: str | None) -> None:
        self._last_error = text
        if text is not None:
            self.last_error_at = self._clock.now()

    def _set_online(self, online: bool, why: str) -> None:
        changed = online != self.online
        self.online = online
        self._offline = not online
        if changed and self._on_availability is not None:
            self._on_availability(self.name, online, why)

    def _answered(self) -> None:
        self._failures = 0
        self._probe.reset()
        if not self.online:
            self._set_online(True, "device answered")

    def _probe_delay(self, now: float) -> float:
        quick = now - (self.offline_since if self.offline_since is not None else now) < QUICK_PROBE_FOR_S
        return (self._quick_probe if quick else self._probe).next_delay()

    def _failed(self, exc: ModbusError) -> None:
        self._failures += 1
        self.last_error = str(exc)
        self._probed_on = self._bus.stats.connections
        now = self._clock.now()
        gateway = isinstance(exc, DeviceException) and exc.code in UNREACHABLE_CODES
        if self._offline:
            self._next_probe = now + self._probe_delay(now)
        elif gateway or self._failures >= self.config.offline_after:
            self._probe.reset()
            self.offline_since = now
            self._next_probe = now + self._probe_delay(now)
            self.online = True  # so that the transition is reported even before the first answer
            why = exc if gateway else f"{self._failures} consecutive failures: {exc}"
            self._set_online(False, str(why))

    async def _request(self, send: Callable[[], Awaitable[list[int]]], address: int) -> list[int]:
        """One request (``send`` puts it on the bus), classified; availability and the offline gate are here."""
        # Offline: fail fast until the next probe, unless the bus has reconnected since the last
        # failure (a link back is the likeliest sign the device is back: probe it now).
        now = self._clock.now()
        if self._offline and now < self._next_probe and self._bus.stats.connections == self._probed_on:
            raise DeviceOffline(
                f"offline, next probe in {self._next_probe - now:.1f}s",
                device=self.name,
                endpoint=self._bus.endpoint,
                unit_id=self.config.unit_id,
                address=address,
            )
        self.requests += 1
        try:
            result = await send()
        except DeviceException as exc:
            exc.with_context(device=self.name, unit_id=self.config.unit_id, address=address)
            if exc.code in UNREACHABLE_CODES:
                self._failed(exc)  # the gateway answered; the device behind it did not
            else:
                self._answered()
            raise exc from None
        except ModbusError as exc:
            exc.with_context(device=self.name, unit_id=self.config.unit_id, address=address)
            self._failed(exc)
            raise
        self.last_error = None  # a good answer: recovered
        self._answered()
        return result

    async def _read_registers(self, register_type: RegisterType, address: int, count: int) -> list[int]:
        """A read, retried ``retries`` times when that can help (a busy device after a short wait)."""
        unit, timeout = self.config.unit_id, self.config.timeout_s

        def send() -> Awaitable[list[int]]:
            return self._bus.read(unit, register_type, address, count, timeout_s=timeout)

        busy = Backoff(0.2, 2.0, rng=self._rng)
        attempt = 0
        while True:
            try:
                return await self._request(send, address)
            except ModbusError as exc:
                attempt += 1
                if self._offline or not exc.retryable or attempt > self.config.retries:
                    raise  # offline (DeviceOffline, or gone offline with this failure), refused, or enough
                if isinstance(exc, DeviceException):
                    await self._clock.sleep(busy.next_delay())  # busy: give it a moment

    # ---- points ---------------------------------------------------------------------------------

    def _address(self, spec: PointSpec, *, readback: bool) -> int:
        return spec.wire_address(base=self.profile.base, parameters=self._params, readback=readback)

    async def _read(self, spec: PointSpec) -> float:
        address = self._address(spec, readback=True)
        registers = await self._read_registers(spec.readback_register_type, address, spec.readback_count)
        try:
            return spec.readback_from_registers(registers)
        except ValueError as exc:
            raise ModbusError(
                f"cannot decode {registers}: {exc}", device=self.name, unit_id=self.config.unit_id, address=address
            ) from None

    async def read_point(self, point: str) -> float:
        """Current value of ``point`` in engineering units (from its read-back address if it has one)."""
        spec = self.profile.point(point)
        if not spec.readable:
            raise ValueError(f"point {point!r} of {self.name} is write-only")
        async with self._lock:
            return await self._read(spec)

    async def write_point(self, point: str, value: float) -> WriteResult:
        """Write, wait the profile's read-back delay, read back and compare (a failed request is retried).

        ``OK``: confirmed (or written, for points without read-back: ``extra['verified'] == 'no'``).
        ``MISMATCH``: written, the read-back differs (not rewritten here). ``FAILED``: not written.
        """
        spec = self.profile.point(point)
        start = self._clock.now()

        def result(outcome: WriteOutcome, attempts: int, **kw: object) -> WriteResult:
            return WriteResult(
                self.name,
                point,
                value,
                outcome,
                attempts=attempts,
                latency_s=self._clock.now() - start,
                **kw,  # type: ignore[arg-type]
            )

        if not spec.writable:
            return result(WriteOutcome.FAILED, 0, error=f"point {point!r} is not writable", extra={"kind": "refused"})
        try:
            spec.check(value)
            registers = spec.to_registers(value)
        except ValueError as exc:
            return result(WriteOutcome.FAILED, 0, error=f"invalid value: {exc}", extra={"kind": "refused"})
        address = self._address(spec, readback=False)
        unit, timeout = self.config.unit_id, self.config.timeout_s

        async def send() -> list[int]:
            await self._bus.write(unit, spec.register_type, address, registers, timeout_s=timeout)
            return []

        readback: float | None = None
        attempts = 0
        async with self._lock:
            if self._offline and spec.readable:
                try:  # probe with a read: nothing is written to a device that does not answer
                    await self._read(spec)
                except ModbusError as exc:
                    return result(WriteOutcome.FAILED, 0, error=str(exc), extra=failure_extra(exc) | {"sent": "no"})
            for _ in range(1 + self.config.retries):
                attempts += 1
                try:
                    await self._request(send, address)
                    if not spec.readable:
                        return result(WriteOutcome.OK, attempts, extra={"verified": "no"})
                    delay = self.profile.readback_delay(point)
                    if delay > 0:
                        await self._clock.sleep(delay)
                    readback = await self._read(spec)
                except ModbusError as exc:
                    if isinstance(exc, DeviceOffline) and attempts == 1:
                        return result(WriteOutcome.FAILED, 0, error=str(exc), extra=failure_extra(exc) | {"sent": "no"})
                    # An exception answer is not retried here: refused never helps, busy waits longer.
                    if isinstance(exc, DeviceOffline | DeviceException) or attempts > self.config.retries:
                        return result(
                            WriteOutcome.FAILED, attempts, error=str(exc), readback=readback, extra=failure_extra(exc)
                        )
                    continue
                if spec.matches(value, readback):
                    return result(WriteOutcome.OK, attempts, readback=readback)
                break  # not rewritten at once: the caller retries a mismatch with backoff, then stops
            return result(
                WriteOutcome.MISMATCH,
                attempts,
                readback=readback,
                error=f"wrote {value:g}, read back {readback:g}" if readback is not None else None,
            )

    async def read_setpoints(self) -> dict[str, float]:
        """Current state of every readable setpoint (at start: adopt it, do not toggle). Raises on failure."""
        out: dict[str, float] = {}
        async with self._lock:
            for name in self.profile.setpoints():
                spec = self.profile.points[name]
                if spec.readable:
                    out[name] = await self._read(spec)
        return out

    async def poll_status(self) -> dict[str, float]:
        """Read the status points that are due now; a failing point is skipped and retried next round.

        Raises the last error when every due point failed (device or link down).
        """
        now = self._clock.now()
        names = self.profile.status_points()
        due = [n for n in names if self._next_poll.get(n, 0.0) <= now]
        if not due and names and self._offline and now >= self._next_probe:
            due = names[:1]  # an offline device is probed on its own schedule, not only when a poll is due
        out: dict[str, float] = {}
        error: ModbusError | None = None
        async with self._lock:
            for block in self._blocks(due):
                for name, spec, _ in block:
                    # On the grid of its interval (drivers/timegrid.py): points and devices due together
                    # are read in one wake-up, shared with the daemon's other periodic work.
                    self._next_poll[name] = next_slot(now, spec.poll_interval_s or DEFAULT_POLL_S)
                values, failed = await self._read_block(block)
                out.update(values)
                error = failed or error
                if isinstance(failed, DeviceOffline):
                    break
        if error is not None and not out:
            raise error
        return out

    def _blocks(self, names: list[str]) -> list[list[tuple[str, PointSpec, int]]]:
        """The points, grouped into runs of adjacent addresses of one register type: one read per run.

        On an RS-485 bus every request costs a turnaround and the bus is shared, so status points
        polled together (same interval, on the same grid) that sit next to each other are read at once.
        """
        items = sorted(
            ((n, self.profile.points[n]) for n in names),
            key=lambda it: (str(it[1].register_type), self._address(it[1], readback=True)),
        )
        blocks: list[list[tuple[str, PointSpec, int]]] = []
        for name, spec in items:
            address = self._address(spec, readback=True)
            if blocks and not self._one_by_one:
                run = blocks[-1]
                _, last, last_address = run[-1]
                limit = MAX_READ_BITS if spec.register_type.bits else MAX_READ_REGISTERS
                if (
                    last.register_type is spec.register_type
                    and address == last_address + last.count
                    and address + spec.count - run[0][2] <= limit
                ):
                    run.append((name, spec, address))
                    continue
            blocks.append([(name, spec, address)])
        return blocks

    async def _read_block(self, block: list[tuple[str, PointSpec, int]]) -> tuple[dict[str, float], ModbusError | None]:
        """Values of a run of points and its last error, if any; a point that fails is left out (next round)."""
        out: dict[str, float] = {}
        error: ModbusError | None = None
        if len(block) > 1:
            first = block[0][2]
            _, last, last_address = block[-1]
            try:
                registers = await self._read_registers(last.register_type, first, last_address + last.count - first)
            except DeviceException as exc:
                if exc.retryable:  # busy, gateway: this round failed; the next one tries the run again
                    self.last_error = str(exc)
                    return out, exc
                # Some devices refuse a read across register groups even when each address exists (an
                # illegal address or function): read this device's points one by one from now on.
                self._one_by_one = True
            except ModbusError as exc:
                self.last_error = self.last_error if isinstance(exc, DeviceOffline) else str(exc)
                return out, exc
            else:
                for name, spec, address in block:
                    try:
                        out[name] = spec.from_registers(registers[address - first : address - first + spec.count])
                    except ValueError as exc:
                        error = ModbusError(
                            f"cannot decode {name}: {exc}",
                            device=self.name,
                            unit_id=self.config.unit_id,
                            address=address,
                        )
                        self.last_error = str(error)
                return out, error
        for name, spec, _ in block:
            try:
                out[name] = await self._read(spec)
            except ModbusError as exc:
                error = exc
                if isinstance(exc, DeviceOffline):
                    break  # not sent: last_error keeps why it is offline
                self.last_error = str(exc)
        return out, error

    def next_poll_in(self) -> float:
        """Seconds until the next status point is due, or the next probe of an offline device (0: now)."""
        names = self.profile.status_points()
        if not names:
            return DEFAULT_POLL_S
        now = self._clock.now()
        nxt = min(self._next_poll.get(n, 0.0) for n in names)
        if self._offline:
            nxt = min(nxt, self._next_probe)
        return max(0.0, nxt - now)

    async def run_polls(self, callback: Callable[[str, str, float], None]) -> NoReturn:
        """Poll forever, honouring each point's interval; polls never overlap. ``callback(device, point, value)``."""
        while True:
            self.polling = True
            try:
                for point, value in (await self.poll_status()).items():
                    callback(self.name, point, value)
            except ModbusError:
                pass  # availability and last_error already updated
            finally:
                self.polling = False
            await self._clock.sleep(max(0.05, self.next_poll_in()))

    async def apply_shutdown(self) -> list[WriteResult]:
        """Write the profile's ``shutdown`` values (e.g. fan to low when the daemon stops)."""
        return [await self.write_point(p, v) for p, v in (self.profile.shutdown or {}).items()]
