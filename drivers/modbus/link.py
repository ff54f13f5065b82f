"""The edge to pymodbus: one async client per link, every failure classified once.

pymodbus frames the requests (MBAP for TCP, RTU with its CRC on a serial port or tunnelled through
TCP), matches answers to requests (transaction id, unit id) and decodes them. This module opens and
closes its client, sends one typed request at a time and turns every outcome into ours: a missing
answer :class:`DeviceTimeout`, a refused, closed or unopenable link :class:`ConnectionLost`, an
exception response :class:`DeviceException`, an answer that does not fit the request
:class:`ProtocolError`. It never retries and never reconnects by itself (pymodbus's retries and
automatic reconnect are off): :class:`~drivers.modbus.bus.ModbusBus` owns both.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from .config import MAX_TIMEOUT_S, RtuOverTcpTransport, RtuTransport, TcpTransport
from .errors import ConnectionLost, DeviceException, DeviceTimeout, ModbusError, ProtocolError
from .profile import RegisterType

__all__ = ["Link", "Request", "check_timeout"]
_READ_FC = {RegisterType.COIL: 1, RegisterType.DISCRETE: 2, RegisterType.HOLDING: 3, RegisterType.INPUT: 4}


@dataclass(frozen=True, slots=True)
class Request:
    """One read (``values is None``: ``count`` registers or bits) or write of ``values`` at a wire address."""

    register_type: RegisterType
    address: int
    count: int
    values: tuple[int, ...] | None = None

    @classmethod
    def read(cls, register_type: RegisterType, address: int, count: int) -> Request:
        """A checked read request (``ValueError`` when Modbus cannot carry it)."""
        return cls(register_type, address, count).checked()

    @classmethod
    def write(cls, register_type: RegisterType, address: int, values: list[int] | tuple[int, ...]) -> Request:
        """A checked write request: FC5/FC6 for one value, FC15/FC16 for several."""
        return cls(register_type, address, len(values), tuple(values)).checked()

    def checked(self) -> Request:
        """``self``, or ``ValueError`` saying why Modbus cannot carry it."""
        kind = "read" if self.values is None else "write"
        # What one request may carry (Modbus application protocol: FC1/2, FC3/4, FC15, FC16).
        if self.register_type.bits:
            limit = 2000 if self.values is None else 1968
        else:
            limit = 125 if self.values is None else 123
        if self.values is not None and self.register_type.read_only:
            raise ValueError(f"{self.register_type} registers cannot be written")
        if not 1 <= self.count <= limit:
            raise ValueError(f"a {kind} of {self.register_type} carries 1 to {limit} values, not {self.count}")
        if not 0 <= self.address <= 0xFFFF - self.count + 1:
            raise ValueError(f"address {self.address} (+{self.count}) is outside 0..65535")
        if self.values is not None and not self.register_type.bits and not all(0 <= v <= 0xFFFF for v in self.values):
            raise ValueError(f"register values must be 0..65535: {list(self.values)}")
        return self

    @property
    def function_code(self) -> int:
        """The Modbus function code this request goes out with."""
        if self.values is None:
            return _READ_FC[self.register_type]
        if self.register_type is RegisterType.COIL:
            return 5 if self.count == 1 else 15
        return 6 if self.count == 1 else 16


def check_timeout(timeout_s: float) -> float:
    """``timeout_s`` if it is a usable timeout, else ``ValueError`` (NaN, zero, negative, huge)."""
    if not 0 < timeout_s <= MAX_TIMEOUT_S:  # also false for NaN
        raise ValueError(f"timeout_s must be in (0, {MAX_TIMEOUT_S:g}] seconds, not {timeout_s}")
    return timeout_s


Client = AsyncModbusTcpClient | AsyncModbusSerialClient


class Link:
    """One physical link (TCP socket, serial port, or RTU tunnelled through TCP) through pymodbus.

    Not reentrant: :class:`~drivers.modbus.bus.ModbusBus` sends one request at a time. RTU links keep
    the configured silence between frames, which pymodbus's client does not.
    """

    def __init__(self, transport: TcpTransport | RtuTransport | RtuOverTcpTransport) -> None:
        self.transport = transport
        self.endpoint = transport.key
        if isinstance(transport, RtuTransport):
            self._gap = transport.gap_s
        elif isinstance(transport, RtuOverTcpTransport):
            self._gap = transport.inter_frame_gap_s
        else:
            self._gap = 0.0
        self._client: Client | None = None
        self._generation = 0  # which client the disconnect callback belongs to
        self._dropped = False  # the peer or the OS closed the current connection
        self._deadline: asyncio.Timeout | None = None  # the request waiting for its answer, if any
        self._last_frame = -math.inf  # loop time at the end of the last exchange (RTU silence)

    @property
    def connected(self) -> bool:
        """True while the link is open and the peer has not closed it."""
        return self._client is not None and self._client.connected and not self._dropped

    def _new_client(self, timeout: float) -> Client:
        t = self.transport
        generation = self._generation

        def traced(up: bool) -> None:  # pymodbus calls this when the connection comes and goes
            if not up and generation == self._generation:
                self._on_drop()

        # retries=0: one attempt per request; reconnect_delay=0: pymodbus never reconnects by itself.
        if isinstance(t, RtuTransport):
            return AsyncModbusSerialClient(
                t.port,
                framer=FramerType.RTU,
                baudrate=t.baudrate,
                bytesize=t.bytesize,
                parity=t.parity,
                stopbits=t.stopbits,
                timeout=timeout,
                retries=0,
                reconnect_delay=0,
                trace_connect=traced,
            )
        return AsyncModbusTcpClient(
            t.host,
            port=t.port,
            framer=FramerType.SOCKET if isinstance(t, TcpTransport) else FramerType.RTU,
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
            trace_connect=traced,
        )

    def _on_drop(self) -> None:
        self._dropped = True
        deadline = self._deadline
        if deadline is not None and not deadline.expired():
            deadline.reschedule(asyncio.get_running_loop().time())  # the answer will not come: stop waiting

    async def open(self, timeout_s: float) -> None:
        """Open the socket or serial port; every failure becomes :class:`ConnectionLost`."""
        self.close()
        self._generation += 1
        self._dropped = False
        # pymodbus's own timer (connect and answer) is set past ours, so ours always fires first and
        # a missing answer is classified here, with its context.
        client = self._client = self._new_client(MAX_TIMEOUT_S + timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                ok = await client.connect()
        except TimeoutError:
            self.close()
            raise ConnectionLost(f"connect timed out after {timeout_s:g}s", endpoint=self.endpoint) from None
        if not ok or not client.connected:
            self.close()
            raise ConnectionLost("cannot connect (refused, unreachable or no such port)", endpoint=self.endpoint)

    def close(self) -> None:
        """Close the link (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def execute(self, unit_id: int, request: Request, timeout_s: float) -> list[int]:
        """Send ``request`` to ``unit_id``; the registers or bits read (``[]`` for a write)."""
        try:
            return await self._execute(unit_id, request, timeout_s)
        except ModbusError as exc:
            if isinstance(exc, ConnectionLost):
                self.close()
            exc.endpoint = self.endpoint
            raise exc.with_context(unit_id=unit_id, address=request.address) from None

    async def _execute(self, unit_id: int, request: Request, timeout_s: float) -> list[int]:
        client = self._client
        if client is None or not self.connected:
            raise ConnectionLost("link is not connected")
        if self._gap > 0:
            wait = self._last_frame + self._gap - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)  # the RTU line's silence between frames, not synchronisation
        try:
            async with asyncio.timeout(timeout_s) as self._deadline:
                response = await _send(client, unit_id, request)
        except TimeoutError:
            if self._dropped:
                raise ConnectionLost("connection lost while waiting for the answer") from None
            raise DeviceTimeout(f"no answer within {timeout_s:g}s") from None
        except ConnectionException as exc:
            raise ConnectionLost(f"link error: {exc}") from None
        except ModbusIOException as exc:  # retries=0: pymodbus gave up waiting (its timer, a backstop)
            raise DeviceTimeout(f"no answer: {exc}") from None
        except (ModbusException, ValueError) as exc:
            raise ProtocolError(f"pymodbus: {exc}") from None
        except OSError as exc:
            raise ConnectionLost(f"link error: {exc}") from exc
        finally:
            self._deadline = None
            self._last_frame = asyncio.get_running_loop().time()
        return _result(request, response)


async def _send(client: Client, unit_id: int, r: Request) -> ModbusPDU:
    if r.values is None:
        read = {
            RegisterType.COIL: client.read_coils,
            RegisterType.DISCRETE: client.read_discrete_inputs,
            RegisterType.HOLDING: client.read_holding_registers,
            RegisterType.INPUT: client.read_input_registers,
        }[r.register_type]
        return await read(r.address, count=r.count, device_id=unit_id)
    if r.register_type is RegisterType.COIL:
        if r.count == 1:
            return await client.write_coil(r.address, bool(r.values[0]), device_id=unit_id)
        return await client.write_coils(r.address, [bool(v) for v in r.values], device_id=unit_id)
    if r.count == 1:
        return await client.write_register(r.address, r.values[0], device_id=unit_id)
    return await client.write_registers(r.address, list(r.values), device_id=unit_id)


def _result(r: Request, response: ModbusPDU | None) -> list[int]:
    """The values an answer carries, once it is checked against its request (errors without context)."""
    if response is None:
        raise ProtocolError("no response")
    if response.isError():
        raise DeviceException(response.exception_code)
    fc = r.function_code
    if response.function_code != fc:
        raise ProtocolError(f"response function code {response.function_code} for request {fc}")
    if r.values is None and r.register_type.bits:
        bits = list(response.bits)
        if not r.count <= len(bits) < r.count + 8:  # whole bytes: padded up to a multiple of 8
            raise ProtocolError(f"expected {r.count} bits, got {len(bits)}")
        return [int(b) for b in bits[: r.count]]
    if r.values is None:
        registers = list(response.registers)
        if len(registers) != r.count:
            raise ProtocolError(f"expected {r.count} registers, got {len(registers)}")
        return registers
    if fc == 5:
        echo: tuple[object, ...] = (response.address, [bool(b) for b in response.bits[:1]])
        sent: tuple[object, ...] = (r.address, [bool(r.values[0])])
    elif fc == 6:
        echo, sent = (response.address, list(response.registers)), (r.address, list(r.values))
    else:
        echo, sent = (response.address, response.count), (r.address, r.count)
    if echo != sent:
        raise ProtocolError(f"write echo {echo} differs from the request {sent}")
    return []
