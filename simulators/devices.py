"""Modbus device simulators built from the same profile files the daemon uses.

A :class:`DeviceModel` is one unit's register space, derived from a :class:`DeviceProfile`: writes to
a point's write address appear on its read-back address (after the profile's delay, on an
injectable clock, or at once with :meth:`DeviceModel.refresh_cache`). A :class:`DeviceSimulator`
serves one or more models as a real pymodbus server over TCP (MBAP, or RTU frames tunnelled through
TCP like a transparent serial gateway) or on a serial path (RTU).

Fault injection per unit: exception code for a point or address, for every request (``answer_all``:
a failed or busy device, 04/06) or for values the device refuses (``refuse_out_of_range``, 03),
answers slower than the client's timeout, a read-back different from what was written, malformed
answers (see :class:`DeviceModel`), and ``stop()``/``start()`` on the same port. Per simulator:
``absent_unit_code`` makes it a gateway that answers a unit id it does not serve (or a silent unit)
with that exception (0x0B: gateway target failed to respond) instead of staying silent.

CLI for the demo::

    python -m simulators.devices --profile config/devices/freshair-standard.yaml --port 15020 --unit 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable
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

from drivers.clock import Clock
from drivers.modbus import DeviceProfile, load_profile
from simulators.device_model import WRITE_FUNCTION_CODES, DeviceModel, NoAnswer, SimWrite

__all__ = ["DeviceModel", "DeviceSimulator", "SimWrite", "main"]


class _Context:
    """What pymodbus calls for data: routes by unit id to the models, applies delays."""

    def __init__(self, sim: DeviceSimulator) -> None:
        self.sim = sim

    def device_ids(self) -> list[int]:
        return list(self.sim.units)

    def _model(self, unit: int) -> DeviceModel:
        model = self.sim.units.get(unit)
        if model is None or model.silent:
            if self.sim.absent_unit_code is not None:
                self.sim.absent_requests[unit] = self.sim.absent_requests.get(unit, 0) + 1
                raise _GatewayAnswer(self.sim.absent_unit_code)
            raise NoAnswer
        return model

    def _count_write(self, unit: int) -> None:
        self.sim.received_writes[unit] = self.sim.received_writes.get(unit, 0) + 1

    async def _pause(self, model: DeviceModel) -> None:
        if model.delay_s > 0:
            model.held += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.sim.released.wait(), model.delay_s)
            finally:
                model.held -= 1

    async def async_getValues(self, unit: int, fc: int, addr: int, count: int = 1) -> Any:
        try:
            model = self._model(unit)
        except _GatewayAnswer as gw:
            return gw.code
        if fc not in WRITE_FUNCTION_CODES:
            await self._pause(model)
        return await model.get(fc, addr, count)

    async def async_setValues(self, unit: int, fc: int, addr: int, values: Any) -> Any:
        self._count_write(unit)
        try:
            model = self._model(unit)
        except _GatewayAnswer as gw:
            return gw.code
        await self._pause(model)
        return await model.set(fc, addr, values)


class _GatewayAnswer(Exception):
    """A gateway answers for a unit that does not: with this exception code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = ExcCodes(code)


class _Handler(ServerRequestHandler):
    """pymodbus' handler, but each request keeps its own transaction id while it is delayed."""

    async def handle_request(self) -> None:
        pdu, addr = self.last_pdu, self.last_addr
        if not pdu:
            return
        try:
            response = await pdu.datastore_update(self.server.context, pdu.dev_id)
        except NoAnswer:
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
        framer: FramerType | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.serial = serial
        self.baudrate = baudrate
        self.framer = framer or (FramerType.RTU if serial is not None else FramerType.SOCKET)
        self.clock = clock
        self.units: dict[int, DeviceModel] = {}
        # A gateway answers a unit id it does not serve, or a silent unit, with this exception code
        # (0x0B: target failed to respond; 0x0A: path unavailable); None: silence, as on RS-485.
        self.absent_unit_code: int | None = None
        self.absent_requests: dict[int, int] = {}  # unit id → requests answered with absent_unit_code
        self.received_writes: dict[int, int] = {}  # unit id → write requests received, whatever the answer
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
        framer: FramerType = FramerType.SOCKET,
        clock: Clock | None = None,
    ) -> DeviceSimulator:
        """A Modbus TCP simulator for one unit; ``port=0`` picks a free port (see ``.port`` once started).

        ``framer=FramerType.RTU``: RTU frames over TCP, like a transparent serial gateway.
        """
        sim = cls(host=host, port=port, framer=framer, clock=clock)
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
        clock: Clock | None = None,
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
            server = _SerialServer(_placeholder(), framer=self.framer, port=self.serial, baudrate=self.baudrate)
        else:
            server = _TcpServer(_placeholder(), framer=self.framer, address=(self.host, self.port))
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
