"""Wire layer: Modbus PDUs, MBAP and RTU framing, and one byte link per transport.

This layer moves bytes and classifies every low-level failure once: a missing answer becomes
:class:`DeviceTimeout`, a closed or unopenable link :class:`ConnectionLost`, a bad frame
:class:`ProtocolError`, an exception response :class:`DeviceException`. It never retries.
"""

from __future__ import annotations

import asyncio
import enum
import struct
from typing import Any

from .config import RtuOverTcpTransport, RtuTransport, TcpTransport
from .errors import ConnectionLost, DeviceException, DeviceTimeout, ModbusError, ProtocolError
from .profile import RegisterType

__all__ = ["FunctionCode", "Link", "crc16", "parse_response", "read_request", "write_request"]


class FunctionCode(enum.IntEnum):
    """The function codes lobbyd uses."""

    READ_COILS = 1
    READ_DISCRETE_INPUTS = 2
    READ_HOLDING_REGISTERS = 3
    READ_INPUT_REGISTERS = 4
    WRITE_SINGLE_COIL = 5
    WRITE_SINGLE_REGISTER = 6
    WRITE_MULTIPLE_COILS = 15
    WRITE_MULTIPLE_REGISTERS = 16


_READ_FC = {
    RegisterType.COIL: FunctionCode.READ_COILS,
    RegisterType.DISCRETE: FunctionCode.READ_DISCRETE_INPUTS,
    RegisterType.HOLDING: FunctionCode.READ_HOLDING_REGISTERS,
    RegisterType.INPUT: FunctionCode.READ_INPUT_REGISTERS,
}


def read_request(register: RegisterType, address: int, count: int) -> bytes:
    """PDU reading ``count`` registers/bits from ``address`` (wire address, 0-based)."""
    return struct.pack(">BHH", _READ_FC[register], address, count)


def write_request(register: RegisterType, address: int, values: list[int]) -> bytes:
    """PDU writing ``values``: FC5/FC6 for one value, FC15/FC16 for several."""
    if register is RegisterType.COIL:
        if len(values) == 1:
            return struct.pack(">BHH", FunctionCode.WRITE_SINGLE_COIL, address, 0xFF00 if values[0] else 0)
        packed = bytearray((len(values) + 7) // 8)
        for i, v in enumerate(values):
            if v:
                packed[i // 8] |= 1 << (i % 8)
        head = struct.pack(">BHHB", FunctionCode.WRITE_MULTIPLE_COILS, address, len(values), len(packed))
        return head + bytes(packed)
    if register is not RegisterType.HOLDING:
        raise ValueError(f"{register} registers cannot be written")
    if len(values) == 1:
        return struct.pack(">BHH", FunctionCode.WRITE_SINGLE_REGISTER, address, values[0])
    head = struct.pack(">BHHB", FunctionCode.WRITE_MULTIPLE_REGISTERS, address, len(values), 2 * len(values))
    return head + b"".join(struct.pack(">H", v) for v in values)


def parse_response(request: bytes, response: bytes) -> list[int]:
    """Check ``response`` against ``request``; return the registers/bits read (``[]`` for writes)."""
    if not response:
        raise ProtocolError("empty response")
    fc = request[0]
    if response[0] == fc | 0x80:
        raise DeviceException(response[1] if len(response) > 1 else 0)
    if response[0] != fc:
        raise ProtocolError(f"response function code {response[0]} for request {fc}")
    if fc in (FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS):
        count = struct.unpack(">H", request[3:5])[0]
        if len(response) < 2 or response[1] != 2 * count or len(response) != 2 + 2 * count:
            raise ProtocolError(f"expected {count} registers, got {len(response) - 2} bytes")
        return list(struct.unpack(f">{count}H", response[2:]))
    if fc in (FunctionCode.READ_COILS, FunctionCode.READ_DISCRETE_INPUTS):
        count = struct.unpack(">H", request[3:5])[0]
        if len(response) < 2 or response[1] != (count + 7) // 8 or len(response) != 2 + response[1]:
            raise ProtocolError(f"expected {count} bits")
        return [(response[2 + i // 8] >> (i % 8)) & 1 for i in range(count)]
    if len(response) != 5 or response[1:5] != request[1:5]:
        raise ProtocolError("write echo differs from the request")
    return []


def crc16(data: bytes) -> int:
    """Modbus RTU CRC-16 (poly 0xA001, init 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class _ByteStream(asyncio.Protocol):
    """Received bytes accumulate in ``buf``; readers wait for enough of them. Nothing is lost on cancel."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.BaseTransport | None = None
        self.closed = False
        self._event = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._event.set()

    async def need(self, n: int) -> None:
        while len(self.buf) < n:
            if self.closed:
                raise ConnectionLost("connection closed by the peer")
            self._event.clear()
            await self._event.wait()


class Link:
    """One physical link (TCP socket or serial port) with MBAP or RTU framing. Not reentrant:
    :class:`ModbusBus` serialises access."""

    def __init__(self, transport: TcpTransport | RtuTransport | RtuOverTcpTransport) -> None:
        self.transport = transport
        self.endpoint = transport.key
        self._rtu = not isinstance(transport, TcpTransport)
        self._gap = (
            transport.gap_s if isinstance(transport, RtuTransport) else getattr(transport, "inter_frame_gap_s", 0.0)
        )
        self._stream: _ByteStream | None = None
        self._tid = 0
        self._last_frame = 0.0

    @property
    def connected(self) -> bool:
        """True while the link is open and the peer has not closed it."""
        return self._stream is not None and not self._stream.closed

    async def open(self, timeout_s: float) -> None:
        """Open the socket or serial port; failures become :class:`ConnectionLost`."""
        self.close()
        loop = asyncio.get_running_loop()
        t = self.transport
        try:
            async with asyncio.timeout(timeout_s):
                if isinstance(t, RtuTransport):
                    from pymodbus.transport.serialtransport import create_serial_connection

                    transport, proto = await create_serial_connection(
                        loop,
                        _ByteStream,
                        t.port,
                        baudrate=t.baudrate,
                        bytesize=t.bytesize,
                        parity=t.parity,
                        stopbits=t.stopbits,
                        timeout=0,
                    )
                else:
                    transport, proto = await loop.create_connection(_ByteStream, t.host, t.port)
        except TimeoutError:
            raise ConnectionLost(f"connect timed out after {timeout_s:g}s", endpoint=self.endpoint) from None
        except Exception as exc:  # OSError, serial.SerialException: classified here, once
            raise ConnectionLost(f"cannot connect: {exc}", endpoint=self.endpoint) from exc
        assert isinstance(proto, _ByteStream)
        if proto.transport is None:  # the serial transport announces itself one loop turn later
            proto.transport = transport
        self._stream = proto

    def close(self) -> None:
        """Close the link (idempotent)."""
        stream, self._stream = self._stream, None
        if stream is not None and stream.transport is not None:
            stream.transport.close()

    async def exchange(self, unit_id: int, pdu: bytes, timeout_s: float) -> bytes:
        """Send one request PDU to ``unit_id`` and return the response PDU (exceptions not yet parsed)."""
        stream = self._stream
        if stream is None or stream.closed:
            raise ConnectionLost("link is not connected", endpoint=self.endpoint, unit_id=unit_id)
        try:
            if self._rtu:
                return await self._exchange_rtu(stream, unit_id, pdu, timeout_s)
            return await self._exchange_mbap(stream, unit_id, pdu, timeout_s)
        except TimeoutError:
            raise DeviceTimeout(f"no answer within {timeout_s:g}s", endpoint=self.endpoint, unit_id=unit_id) from None
        except ModbusError as exc:
            exc.endpoint = exc.endpoint or self.endpoint
            if isinstance(exc, ConnectionLost) or (isinstance(exc, ProtocolError) and not self._rtu):
                self.close()
            raise exc.with_context(unit_id=unit_id) from None
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"link error: {exc}", endpoint=self.endpoint, unit_id=unit_id) from exc

    def _send(self, stream: _ByteStream, frame: bytes) -> None:
        transport: Any = stream.transport
        if transport is None or transport.is_closing():
            raise ConnectionLost("link is closing")
        transport.write(frame)

    async def _exchange_mbap(self, stream: _ByteStream, unit_id: int, pdu: bytes, timeout_s: float) -> bytes:
        self._tid = (self._tid + 1) & 0xFFFF
        tid = self._tid
        self._send(stream, struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit_id) + pdu)
        async with asyncio.timeout(timeout_s):
            while True:
                await stream.need(7)
                rtid, pid, length, _unit = struct.unpack(">HHHB", stream.buf[:7])
                if pid != 0 or not 2 <= length <= 254:
                    raise ProtocolError(f"bad MBAP header (protocol {pid}, length {length})")
                await stream.need(6 + length)
                frame = bytes(stream.buf[: 6 + length])
                del stream.buf[: 6 + length]
                if rtid == tid:
                    return frame[7:]
                # else: a late answer to a request that already timed out; drop it

    async def _exchange_rtu(self, stream: _ByteStream, unit_id: int, pdu: bytes, timeout_s: float) -> bytes:
        loop = asyncio.get_running_loop()
        wait = self._last_frame + self._gap - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)  # physical inter-frame silence, not synchronisation
        stream.buf.clear()  # late bytes of an earlier, timed-out answer
        body = bytes([unit_id]) + pdu
        self._send(stream, body + struct.pack("<H", crc16(body)))
        try:
            async with asyncio.timeout(timeout_s):
                await stream.need(2)
                fc = stream.buf[1]
                if fc & 0x80:
                    n = 5
                elif fc in (1, 2, 3, 4):
                    await stream.need(3)
                    n = 5 + stream.buf[2]
                elif fc in (5, 6, 15, 16):
                    n = 8
                else:
                    raise ProtocolError(f"unknown function code {fc} in RTU answer")
                await stream.need(n)
        finally:
            self._last_frame = loop.time()
        frame = bytes(stream.buf[:n])
        del stream.buf[:n]
        if struct.unpack("<H", frame[-2:])[0] != crc16(frame[:-2]):
            stream.buf.clear()
            raise ProtocolError("RTU CRC mismatch")
        if frame[0] != unit_id:
            raise ProtocolError(f"answer from unit {frame[0]}")
        return frame[1:-2]
