"""One simulated Modbus unit's register space, built from a device profile (no I/O).

Writes to a point's write address appear on its read-back address (its own register space and
encoding, when the profile gives a ``readback``) after the profile's delay (on the injected clock) or
at once with :meth:`DeviceModel.refresh_cache`. Faults are injected here: exception codes per
address or for every request, exception 03 for a value the device does not accept (outside the
profile's range or enum, or a narrower range of its own), delayed or missing answers, a read-back
that differs from the write, malformed answers (reads one register short, single-register writes
echoed with a flipped bit). Quirks of real units: a read-back shifted by a constant
(``readback_shift``: mode N−1 reported for mode N written) and the actual value shown in another
register, e.g. an input register, while the written one reads 0 (``actual_in``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymodbus.constants import ExcCodes

from drivers.clock import Clock, SystemClock
from drivers.modbus import DeviceProfile, PointSpec, RegisterType

__all__ = ["WRITE_FUNCTION_CODES", "DeviceModel", "NoAnswer", "SimWrite"]

_TABLE_OF_FC = {
    1: RegisterType.COIL, 5: RegisterType.COIL, 15: RegisterType.COIL,
    2: RegisterType.DISCRETE,
    3: RegisterType.HOLDING, 6: RegisterType.HOLDING, 16: RegisterType.HOLDING,
    4: RegisterType.INPUT,
}  # fmt: skip
WRITE_FUNCTION_CODES = (5, 6, 15, 16)


@dataclass(frozen=True, slots=True)
class SimWrite:
    """One write a simulated device received, decoded to the point it addresses."""

    ts: float
    point: str
    value: float
    registers: tuple[int, ...]


class NoAnswer(Exception):
    """The addressed unit does not exist: stay silent, like a missing unit on RS-485."""


class DeviceModel:
    """One unit's registers, built from a profile; inspectable and faultable from tests."""

    def __init__(
        self,
        profile: DeviceProfile,
        *,
        parameters: dict[str, int] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.profile = profile
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.params = profile.resolve_parameters(parameters or {})
        self.writes: list[SimWrite] = []
        self.requests = 0
        self.delay_s = 0.0  # answer this much later (released early by stop())
        self.held = 0  # requests received and held back by delay_s right now
        self.silent = False  # never answer
        self.short_answer = False  # answer reads with one value fewer than asked (a malformed answer)
        self.bad_echo = False  # echo FC5/FC6 writes with the lowest bit flipped (a malformed answer)
        self.errors: dict[tuple[RegisterType, int], int] = {}  # (table, wire address) → exception code
        self.answer_all: int | None = None  # answer every request with this code (04 failure, 06 busy)
        self.refuse_out_of_range = False  # a written value the point does not accept → exception 03
        self.ranges: dict[str, tuple[float, float]] = {}  # point → the device's own (narrower) range
        self.refused: list[SimWrite] = []  # writes answered with exception 03 (refuse_out_of_range)
        self.readback_override: dict[str, float] = {}  # point → what the read-back shows instead
        self.readback_shift: dict[str, int] = {}  # point → added to the raw read-back register (16-bit)
        self.actual_in: dict[str, tuple[RegisterType, int]] = {}  # point → (table, wire address) of its actual value
        self.tables: dict[RegisterType, dict[int, int]] = {t: {} for t in RegisterType}
        self._pending: list[tuple[float, RegisterType, int, list[int]]] = []
        self._changed = asyncio.Condition()
        for name, spec in profile.points.items():
            initial = spec.clamp(0.0) if spec.min is not None or spec.allowed_values else 0.0
            try:
                regs = spec.to_registers(initial)
            except ValueError:
                regs = [0] * spec.count
            for i, r in enumerate(regs):
                self.tables[spec.register_type].setdefault(self.address(name) + i, r)
            if spec.readable:
                try:
                    rb_regs = spec.readback_registers(initial)
                except ValueError:
                    rb_regs = [0] * spec.readback_count
                rb = self.address(name, readback=True)
                for i, r in enumerate(rb_regs):
                    self.tables[spec.readback_register_type].setdefault(rb + i, r)

    # ---- addressing and values -------------------------------------------------------------------

    def address(self, point: str, *, readback: bool = False) -> int:
        """Wire address of ``point`` (its read-back address with ``readback=True``)."""
        spec = self.profile.point(point)
        return spec.wire_address(base=self.profile.base, parameters=self.params, readback=readback)

    def _regs(self, spec: PointSpec, addr: int) -> list[int]:
        table = self.tables[spec.register_type]
        return [table.get(addr + i, 0) for i in range(spec.count)]

    def value(self, point: str) -> float:
        """What the device reports for ``point`` (its read-back; the written value if write-only)."""
        self._apply_due()
        spec = self.profile.point(point)
        if not spec.readable:
            return spec.from_registers(self._regs(spec, self.address(point)))
        table = self.tables[spec.readback_register_type]
        rb = self.address(point, readback=True)
        return spec.readback_from_registers([table.get(rb + i, 0) for i in range(spec.readback_count)])

    def written(self, point: str) -> float:
        """What was last written to ``point``'s write address."""
        spec = self.profile.point(point)
        return spec.written_value(self._regs(spec, self.address(point)))

    def set_value(self, point: str, value: float) -> None:
        """Set what the device reports (status points, or a change made at the wall panel)."""
        spec = self.profile.point(point)
        table = self.tables[spec.register_type]
        addr = self.address(point)
        if spec.bit is not None:
            mask = 1 << spec.bit
            table[addr] = (table.get(addr, 0) & ~mask) | (mask if value else 0)
            return
        if spec.writable:
            self._store(spec.register_type, addr, spec.to_registers(value))
        if spec.readable:
            self._show(point, value)

    def _show(self, point: str, value: float) -> None:
        """Put ``value`` on ``point``'s read-back (or on the register its actual value is shown in)."""
        spec = self.profile.point(point)
        where = self.actual_in.get(point)
        if where is not None:
            self._store(where[0], where[1], spec.to_registers(value))
            return
        self._store(spec.readback_register_type, self.address(point, readback=True), spec.readback_registers(value))

    def report_actual_in(self, point: str, table: RegisterType, address: int) -> None:
        """From now on show ``point``'s actual value at ``address`` of ``table``; its own register reads 0."""
        self.actual_in[point] = (table, address)
        self._show(point, self.written(point))

    def fail(self, point_or_address: str | int, code: int, *, table: RegisterType = RegisterType.HOLDING) -> None:
        """Answer requests touching a point (write and read-back address) or an address with ``code``."""
        if isinstance(point_or_address, int):
            self.errors[(table, point_or_address)] = code
            return
        spec = self.profile.point(point_or_address)
        for readback in (False, True):
            self.errors[(spec.register_type, self.address(point_or_address, readback=readback))] = code

    def heal(self) -> None:
        """Remove every injected fault and quirk."""
        self.errors.clear()
        self.answer_all = None
        self.refuse_out_of_range = False
        self.ranges.clear()
        self.readback_override.clear()
        self.readback_shift.clear()
        self.actual_in.clear()
        self.delay_s = 0.0
        self.silent = False
        self.short_answer = False
        self.bad_echo = False

    def refresh_cache(self) -> None:
        """Make every pending read-back visible now (a gateway's cache refresh)."""
        for _, table, addr, regs in self._pending:
            self._store(table, addr, regs)
        self._pending.clear()

    # ---- write log ---------------------------------------------------------------------------------

    async def wait_for_write(
        self,
        point: str,
        predicate: Callable[[float], bool] = lambda _v: True,
        *,
        timeout: float = 5.0,
        since: int = 0,
    ) -> SimWrite:
        """The first write to ``point`` (from index ``since`` of ``writes``) whose value satisfies ``predicate``."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for w in self.writes[since:]:
                    if w.point == point and predicate(w.value):
                        return w
                await self._changed.wait()

    # ---- the datastore as pymodbus sees it ----------------------------------------------------------

    def _store(self, table: RegisterType, addr: int, regs: Sequence[int]) -> None:
        for i, r in enumerate(regs):
            self.tables[table][addr + i] = int(r)

    def _apply_due(self) -> None:
        now = self.clock.now()
        due = [p for p in self._pending if p[0] <= now]
        self._pending = [p for p in self._pending if p[0] > now]
        for _, table, addr, regs in due:
            self._store(table, addr, regs)

    def _check(self, table: RegisterType, addr: int, count: int) -> ExcCodes | None:
        if self.answer_all is not None:
            return ExcCodes(self.answer_all)
        for a in range(addr, addr + count):
            if (table, a) in self.errors:
                return ExcCodes(self.errors[(table, a)])
            if a not in self.tables[table]:
                return ExcCodes.ILLEGAL_ADDRESS
        return None

    async def get(self, fc: int, addr: int, count: int) -> list[int] | list[bool] | ExcCodes:
        table = _TABLE_OF_FC[fc]
        if fc in WRITE_FUNCTION_CODES:  # pymodbus builds the write echo from a read of the written address
            echo = [self.tables[table].get(addr + i, 0) ^ self.bad_echo for i in range(count)]
            return [bool(v) for v in echo] if table.bits else echo
        self.requests += 1
        self._apply_due()
        if (code := self._check(table, addr, count)) is not None:
            return code
        values = [self.tables[table][a] for a in range(addr, addr + count)]
        for point, shown in self.readback_override.items():
            spec = self.profile.points[point]
            rb = self.address(point, readback=True)
            if spec.readback_register_type is table and addr <= rb < addr + count:
                for i, r in enumerate(spec.readback_registers(shown)):
                    if rb + i < addr + count:
                        values[rb - addr + i] = r
        for point in self.actual_in:  # the written register reads 0 on such units
            spec = self.profile.points[point]
            at = self.address(point)
            if spec.register_type is table:
                for a in range(max(at, addr), min(at + spec.count, addr + count)):
                    values[a - addr] = 0
        for point, shift in self.readback_shift.items():
            spec = self.profile.points[point]
            rb = self.address(point, readback=True)
            if spec.readback_register_type is table and addr <= rb < addr + count:
                values[rb - addr] = (values[rb - addr] + shift) & 0xFFFF
        if self.short_answer:
            values = values[:-1]
        return [bool(v) for v in values] if table.bits else values

    def _refused(self, table: RegisterType, addr: int, regs: list[int]) -> SimWrite | None:
        """The write, if it puts a value the device does not accept into one of its points."""
        for name, spec in self.profile.points.items():
            if spec.register_type is not table or self.address(name) != addr or not spec.writable:
                continue
            if len(regs) < spec.count:
                continue
            try:
                value = spec.from_registers(regs[: spec.count])
                spec.check(value)
            except ValueError:
                return SimWrite(self.clock.now(), name, math.nan, tuple(regs))
            low, high = self.ranges.get(name, (-math.inf, math.inf))
            if not low <= value <= high:
                return SimWrite(self.clock.now(), name, value, tuple(regs))
        return None

    async def set(self, fc: int, addr: int, values: Sequence[int] | Sequence[bool]) -> ExcCodes | None:
        self.requests += 1
        table = _TABLE_OF_FC[fc]
        if (code := self._check(table, addr, len(values))) is not None:
            return code
        regs = [int(v) for v in values]
        if self.refuse_out_of_range and (refused := self._refused(table, addr, regs)) is not None:
            self.refused.append(refused)
            return ExcCodes.ILLEGAL_VALUE
        self._store(table, addr, regs)
        async with self._changed:
            for name, spec in self.profile.points.items():
                if spec.register_type is not table or self.address(name) != addr or not spec.writable:
                    continue
                try:
                    value = spec.written_value(self._regs(spec, addr))
                except ValueError:
                    continue  # another point sharing the register, with a different enum
                self.writes.append(SimWrite(self.clock.now(), name, value, tuple(regs)))
                if not spec.readable:
                    continue
                if name in self.actual_in:
                    self._show(name, value)
                    continue
                rb, rb_table = self.address(name, readback=True), spec.readback_register_type
                if (rb_table, rb) != (table, addr):  # one register holds what was written (quirks aside)
                    delay = self.profile.readback_delay(name)
                    with contextlib.suppress(ValueError):  # a value the device has no report code for
                        shown = spec.readback_registers(value)
                        self._pending.append((self.clock.now() + delay, rb_table, rb, shown))
            self._apply_due()
            self._changed.notify_all()
        return None
