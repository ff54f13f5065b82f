"""One exception hierarchy for the Modbus driver, classified once at the edge.

Every error carries where it happened (device, endpoint, unit id, address) so a log line or a
``WriteResult.error`` is enough to find the faulty cable, gateway or register.
"""

from __future__ import annotations

__all__ = [
    "EXCEPTION_NAMES",
    "ConnectionLost",
    "DeviceException",
    "DeviceOffline",
    "DeviceTimeout",
    "ModbusError",
    "ProtocolError",
]

EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


class ModbusError(Exception):
    """Base of every Modbus driver error; ``retryable`` tells the caller whether trying again can help."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        device: str | None = None,
        endpoint: str | None = None,
        unit_id: int | None = None,
        address: int | None = None,
    ) -> None:
        self.message = message
        self.device = device
        self.endpoint = endpoint
        self.unit_id = unit_id
        self.address = address
        super().__init__(message)

    def with_context(
        self, *, device: str | None = None, unit_id: int | None = None, address: int | None = None
    ) -> ModbusError:
        """Fill in context the lower layer did not know (returns ``self`` for ``raise ... from``)."""
        self.device = self.device or device
        self.unit_id = self.unit_id if self.unit_id is not None else unit_id
        self.address = self.address if self.address is not None else address
        return self

    def __str__(self) -> str:
        where = []
        if self.device:
            where.append(f"device {self.device}")
        if self.endpoint:
            where.append(self.endpoint)
        if self.unit_id is not None:
            where.append(f"unit {self.unit_id}")
        if self.address is not None:
            where.append(f"address {self.address}")
        return f"{self.message} ({', '.join(where)})" if where else self.message


class DeviceTimeout(ModbusError):
    """No (complete) answer within the device's timeout."""


class DeviceException(ModbusError):
    """The device answered with a Modbus exception response."""

    def __init__(self, code: int, **context: object) -> None:
        self.code = code
        name = EXCEPTION_NAMES.get(code, f"exception code {code}")
        super().__init__(f"Modbus exception {code}: {name}", **context)  # type: ignore[arg-type]

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        """Busy and gateway failures may pass; an illegal address or value will not."""
        return self.code in (4, 5, 6, 10, 11)


class ConnectionLost(ModbusError):
    """The link (TCP connection or serial port) is down, closed while waiting, or could not be opened."""


class DeviceOffline(ModbusError):
    """The device is marked offline after repeated failures; the request was not sent."""


class ProtocolError(ModbusError):
    """An answer that does not fit its request (register count, function code, write echo)."""
