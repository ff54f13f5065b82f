"""One exception hierarchy for the Modbus driver, classified once at the edge.

Every error carries where it happened (device, endpoint, unit id, address) so a log line or a
``WriteResult.error`` is enough to find the faulty cable, gateway or register.
"""

from __future__ import annotations

__all__ = [
    "EXCEPTION_NAMES",
    "REFUSED_CODES",
    "UNREACHABLE_CODES",
    "ConnectionLost",
    "DeviceException",
    "DeviceOffline",
    "DeviceTimeout",
    "ModbusError",
    "ProtocolError",
    "failure_extra",
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

# The device refuses this request (a config or value problem): asking again the same way cannot help.
REFUSED_CODES = frozenset({1, 2, 3})
# The gateway answers for a device it cannot reach: for availability this is no answer from the device.
UNREACHABLE_CODES = frozenset({10, 11})


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

    @property
    def name(self) -> str:
        """The code's name in words, e.g. ``illegal data value``."""
        return EXCEPTION_NAMES.get(self.code, f"exception code {self.code}")

    @property
    def kind(self) -> str:
        """``refused`` (01/02/03 and unknown codes: not retried for the same request), ``unreachable``
        (0A/0B: the gateway cannot reach the device; counts as no answer), or ``busy`` (04/05/06: try
        again after a growing wait)."""
        if self.code in UNREACHABLE_CODES:
            return "unreachable"
        if self.retryable:
            return "busy"
        return "refused"


class ConnectionLost(ModbusError):
    """The link (TCP connection or serial port) is down, closed while waiting, or could not be opened."""


class DeviceOffline(ModbusError):
    """The device is marked offline after repeated failures; the request was not sent."""


class ProtocolError(ModbusError):
    """An answer that does not fit its request (register count, function code, write echo)."""


def failure_extra(exc: ModbusError) -> dict[str, str]:
    """What a failed write's ``WriteResult.extra`` says: ``kind`` (``refused``: 01/02/03, not worth
    asking again the same way; ``busy``: 04/05/06, wait longer; ``unreachable``: 0A/0B; ``offline``;
    ``no_answer``) and, when the device answered an exception, its code (hex) and name."""
    if isinstance(exc, DeviceException):
        return {"kind": exc.kind, "exception": f"{exc.code:02X}", "exception_name": exc.name}
    return {"kind": "offline" if isinstance(exc, DeviceOffline) else "no_answer"}
