"""Modbus device simulators built from the same profile files the daemon uses.

A :class:`DeviceModel` is one unit's register space, derived from a :class:`DeviceProfile`: writes to
a point's write address appear on its read-back address (after the profile's delay, on an
injectable clock, or at once with :meth:`DeviceModel.refresh_cache`). A :class:`DeviceSimulator`
serves one or more models as a real pymodbus server over TCP or on a serial path (RTU).

Fault injection per unit: exception code for a point or address, answers slower than the client's
timeout, a read-back different from what was written, and ``stop()``/``start()`` on the same port.

CLI for the demo::

    python -m simulators.devices --profile config/devices/freshair-standard.yaml --port 15020 --unit 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from drivers.modbus import DeviceProfile, PointSpec, RegisterType, load_profile

__all__ = ["DeviceModel", "DeviceSimulator", "SimWrite", "main"]

_TABLE_OF_FC = {
    1: RegisterType.COIL, 5: RegisterType.COIL, 15: RegisterType.COIL,
    2: RegisterType.DISCRETE,
    3: RegisterType.HOLDING, 6: RegisterType.HOLDING, 16: RegisterType.HOLDING,
    4: RegisterType.INPUT,
}  # fmt: skip
_WRITE_FC = (5, 6, 15, 16)


@dataclass(frozen=True, slots=True)
class SimWrite:
    """One write a simulated device received, decoded to the point it addresses."""

    ts: float
    point: str
    value: float
    registers: tuple[int, ...]


class _NoAnswer(Exception):
    """The addressed unit does not exist: stay silent, like a missing unit on RS-485."""


class DeviceModel:
    """One unit's registers, built from a profile; inspectable and faultable from tests."""

    def __init__(
        self,
        profile: DeviceProfile,
        *,
        parameters: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.clock = clock
        self.params = profile.resolve_parameters(parameters or {})
        self.writes: list[SimWrite] = []
        self.requests = 0
        self.delay_s = 0.0  # answer this much later (released early by stop())
        self.silent = False  # never answer
        self.errors: dict[tuple[RegisterType, int], int] = {}  # (table, wire address) → exception code
        self.readback_override: dict[str, float] = {}  # point → what the read-back shows instead
        self.tables: dict[RegisterType, dict[int, int]] = {t: {} for t in RegisterType}
        self._pending: list[tuple[float, RegisterType, int, list[int]]] = []
        self._changed = asyncio.Condition()
        for name, spec in profile.points.items():
            initial = spec.clamp(0.0) if spec.min is not None or spec.allowed_values else 0.0
            try:
                regs = spec.to_registers(initial)
            except ValueError:
                regs = [0] * spec.count
            for readback in (False, True):
                addr = self.address(name, readback=readback)
                for i, r in enumerate(regs):
                    self.tables[spec.register_type].setdefault(addr + i, r)

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
        return spec.from_registers(self._regs(spec, self.address(point, readback=spec.readable)))

    def written(self, point: str) -> float:
        """What was last written to ``point``'s write address."""
        spec = self.profile.point(point)
        return spec.from_registers(self._regs(spec, self.address(point)))

    def set_value(self, point: str, value: float) -> None:
        """Set what the device reports (status points, or a change made at the wall panel)."""
        spec = self.profile.point(point)
        table = self.tables[spec.register_type]
        for readback in {False, spec.readable}:
            addr = self.address(point, readback=readback)
            if spec.bit is not None:
                mask = 1 << spec.bit
                table[addr] = (table.get(addr, 0) & ~mask) | (mask if value else 0)
            else:
                for i, r in enumerate(spec.to_registers(value)):
                    table[addr + i] = r

    def fail(self, point_or_address: str | int, code: int, *, table: RegisterType = RegisterType.HOLDING) -> None:
        """Answer requests touching a point (write and read-back address) or an address with ``code``."""
        if isinstance(point_or_address, int):
            self.errors[(table, point_or_address)] = code
            return
        spec = self.profile.point(point_or_address)
        for readback in (False, True):
            self.errors[(spec.register_type, self.address(point_or_address, readback=readback))] = code

    def heal(self) -> None:
        """Remove every injected fault."""
        self.errors.clear()
        self.readback_override.clear()
        self.delay_s = 0.0
        self.silent = False

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
        now = self.clock()
        due = [p for p in self._pending if p[0] <= now]
        self._pending = [p for p in self._pending if p[0] > now]
        for _, table, addr, regs in due:
            self._store(table, addr, regs)

    def _check(self, table: RegisterType, addr: int, count: int) -> ExcCodes | None:
        for a in range(addr, addr + count):
            if (table, a) in self.errors:
                return ExcCodes(self.errors[(table, a)])
            if a not in self.tables[table]:
                return ExcCodes.ILLEGAL_ADDRESS
        return None

    async def get(self, fc: int, addr: int, count: int) -> list[int] | list[bool] | ExcCodes:
        table = _TABLE_OF_FC[fc]
        if fc in _WRITE_FC:  # pymodbus builds the write echo from a read of the written address
            return [bool(self.tables[table].get(addr + i)) if table.bits else self.tables[table].get(addr + i, 0)
                    for i in range(count)]  # fmt: skip
        self.requests += 1
        self._apply_due()
        if (code := self._check(table, addr, count)) is not None:
            return code
        values = [self.tables[table][a] for a in range(addr, addr + count)]
        for point, shown in self.readback_override.items():
            spec = self.profile.points[point]
            rb = self.address(point, readback=True)
            if spec.register_type is table and addr <= rb < addr + count:
                for i, r in enumerate(spec.to_registers(shown)):
                    if rb + i < addr + count:
                        values[rb - addr + i] = r
        return [bool(v) for v in values] if table.bits else values

    async def set(self, fc: int, addr: int, values: Sequence[int] | Sequence[bool]) -> ExcCodes | None:
        self.requests += 1
        table = _TABLE_OF_FC[fc]
        if (code := self._check(table, addr, len(values))) is not None:
            return code
        regs = [int(v) for v in values]
        self._store(table, addr, regs)
        async with self._changed:
            for name, spec in self.profile.points.items():
                if spec.register_type is not table or self.address(name) != addr or not spec.writable:
                    continue
                try:
                    value = spec.from_registers(self._regs(spec, addr))
                except ValueError:
                    continue  # another point sharing the register, with a different enum
                self.writes.append(SimWrite(self.clock(), name, value, tuple(regs)))
                rb = self.address(name, readback=True)
                if rb != addr:
                    delay = self.profile.readback_delay(name)
                    self._pending.append((self.clock() + delay, table, rb, self._regs(spec, addr)))
            self._apply_due()
            self._changed.notify_all()
        return None


class _Context:
    """What pymodbus calls for data: routes by unit id to the models, applies delays."""

    def __init__(self, sim: DeviceSimulator) -> None:
        self.sim = sim

    def device_ids(self) -> list[int]:
        return list(self.sim.units)

    def _model(self, unit: int) -> DeviceModel:
        model = self.sim.units.get(unit)
        if model is None or model.silent:
            raise _NoAnswer
        return model

    async def _pause(self, model: DeviceModel) -> None:
        if model.delay_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sim.released.wait(), model.delay_s)

    async def async_getValues(self, unit: int, fc: int, addr: int, count: int = 1) -> Any:
        model = self._model(unit)
        if fc not in _WRITE_FC:
            await self._pause(model)
        return await model.get(fc, addr, count)

    async def async_setValues(self, unit: int, fc: int, addr: int, values: Any) -> Any:
        model = self._model(unit)
        await self._pause(model)
        return await model.set(fc, addr, values)


class _Handler(ServerRequestHandler):
    """pymodbus' handler, but each request keeps its own transaction id while it is delayed."""

    async def handle_request(self) -> None:
        pdu, addr = self.last_pdu, self.last_addr
        if not pdu:
            return
        try:
            response = await pdu.datastore_update(self.server.context, pdu.dev_id)
        except _NoAnswer:
            return
        except Exception:  # a simulator bug must show as a device failure, not kill the server
            response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
        response.transaction_id = pdu.transaction_id
        response.dev_id = pdu.dev_id
        self.server_send(response, addr)  # type: ignore[no-untyped-call]


class _TcpServer(ModbusTcpServer):
    def callback_new_connection(self) -> _Handler:
        return _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)  # type: ignore[no-untyped-call]


class _SerialServer(ModbusSerialServer):
    def callback_new_connection(self) -> _Handler:
        return _Handler(self, self.trace_packet, self.trace_pdu, self.trace_connect)  # type: ignore[no-untyped-call]


def _placeholder() -> SimDevice:
    # pymodbus wants a datastore at construction; the server's context is replaced by _Context.
    return SimDevice(0, simdata=[SimData(0, values=0, datatype=SimDataType.REGISTERS)])


class DeviceSimulator:
    """A real pymodbus server (TCP, or RTU on a serial path) serving one or more :class:`DeviceModel`.

    ``value``/``set_value``/``writes``/``wait_for_write``/``fail`` act on the first unit; use
    :meth:`unit` for the others.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        serial: str | None = None,
        baudrate: int = 19200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.serial = serial
        self.baudrate = baudrate
        self.clock = clock
        self.units: dict[int, DeviceModel] = {}
        self.released = asyncio.Event()
        self._server: Any = None

    @classmethod
    def tcp(
        cls,
        profile: DeviceProfile,
        unit_id: int = 1,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        parameters: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> DeviceSimulator:
        """A Modbus TCP simulator for one unit; ``port=0`` picks a free port (see ``.port`` once started)."""
        sim = cls(host=host, port=port, clock=clock)
        sim.add_unit(profile, unit_id, parameters=parameters)
        return sim

    @classmethod
    def rtu(
        cls,
        profile: DeviceProfile,
        unit_id: int,
        serial: str,
        *,
        baudrate: int = 19200,
        parameters: dict[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> DeviceSimulator:
        """A Modbus RTU simulator on a serial device path (e.g. one end of a socat pty pair)."""
        sim = cls(serial=serial, baudrate=baudrate, clock=clock)
        sim.add_unit(profile, unit_id, parameters=parameters)
        return sim

    def add_unit(
        self, profile: DeviceProfile, unit_id: int, *, parameters: dict[str, int] | None = None
    ) -> DeviceModel:
        """Serve another unit id on the same link (several devices behind one gateway)."""
        model = DeviceModel(profile, parameters=parameters, clock=self.clock)
        self.units[unit_id] = model
        return model

    def unit(self, unit_id: int) -> DeviceModel:
        """The model behind ``unit_id``."""
        return self.units[unit_id]

    @property
    def model(self) -> DeviceModel:
        """The first unit's model."""
        return next(iter(self.units.values()))

    @property
    def running(self) -> bool:
        """True while the server listens."""
        return self._server is not None

    # shortcuts to the first unit
    def value(self, point: str) -> float:
        """See :meth:`DeviceModel.value`."""
        return self.model.value(point)

    def set_value(self, point: str, value: float) -> None:
        """See :meth:`DeviceModel.set_value`."""
        self.model.set_value(point, value)

    @property
    def writes(self) -> list[SimWrite]:
        """The first unit's write log."""
        return self.model.writes

    async def wait_for_write(
        self,
        point: str,
        predicate: Callable[[float], bool] = lambda _v: True,
        *,
        timeout: float = 5.0,
        since: int = 0,
    ) -> SimWrite:
        """See :meth:`DeviceModel.wait_for_write`."""
        return await self.model.wait_for_write(point, predicate, timeout=timeout, since=since)

    async def start(self) -> None:
        """Listen (again, on the same port after :meth:`stop`)."""
        if self._server is not None:
            return
        self.released = asyncio.Event()
        server: Any
        if self.serial is not None:
            server = _SerialServer(_placeholder(), framer=FramerType.RTU, port=self.serial, baudrate=self.baudrate)
        else:
            server = _TcpServer(_placeholder(), address=(self.host, self.port))
        server.context = _Context(self)
        await server.serve_forever(background=True)
        if self.serial is None and self.port == 0:
            self.port = int(server.transport.sockets[0].getsockname()[1])
        self._server = server

    async def stop(self) -> None:
        """Stop listening and drop every connection; delayed answers are released (and lost)."""
        server, self._server = self._server, None
        self.released.set()
        if server is not None:
            await server.shutdown()

    async def __aenter__(self) -> DeviceSimulator:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _parse_params(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = int(value)
    return out


async def _serve(args: argparse.Namespace) -> None:
    profile = load_profile(args.profile)
    params = _parse_params(args.param)
    if args.serial:
        sim = DeviceSimulator.rtu(profile, args.unit, args.serial, baudrate=args.baudrate, parameters=params)
    else:
        sim = DeviceSimulator.tcp(profile, args.unit, host=args.host, port=args.port, parameters=params)
    async with sim:
        where = args.serial or f"{sim.host}:{sim.port}"
        print(f"simulating {profile.name} unit {args.unit} on {where}", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m simulators.devices --profile FILE [--port N | --serial PATH] [--unit N] [--param a=3]``."""
    parser = argparse.ArgumentParser(prog="python -m simulators.devices", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=15020)
    parser.add_argument("--serial", help="serial device path: serve Modbus RTU there instead of TCP")
    parser.add_argument("--baudrate", type=int, default=19200)
    parser.add_argument("--unit", type=int, default=1)
    parser.add_argument("--param", action="append", default=[], help="profile parameter, e.g. a=3")
    args = parser.parse_args(argv)
    from daemon.yamlsource import ConfigError

    try:
        asyncio.run(_serve(args))
    except ConfigError as exc:
        print(exc)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
