"""Modbus driver: device profiles, TCP/RTU links, one serialised bus per link, verified writes.

Layers (each its own module): ``codec`` (pure register encoding), ``profile`` (register maps as
data), ``config`` (device entries), ``link`` (pymodbus's async clients; classification of
failures), ``bus`` (queue, reconnect loop), ``device`` (points, read-back, availability).
"""

from __future__ import annotations

from .bus import BusStats, ModbusBus
from .codec import DataType, Order
from .config import DeviceConfig, RtuOverTcpTransport, RtuTransport, TcpTransport, Transport, resolve_profile_path
from .device import AvailabilityCallback, ModbusDevice
from .errors import (
    ConnectionLost,
    DeviceException,
    DeviceOffline,
    DeviceTimeout,
    ModbusError,
    ProtocolError,
)
from .profile import DeviceProfile, ParameterSpec, PointSpec, ReadbackSpec, RegisterType, Role, load_profile

__all__ = [
    "AvailabilityCallback",
    "BusStats",
    "ConnectionLost",
    "DataType",
    "DeviceConfig",
    "DeviceException",
    "DeviceOffline",
    "DeviceProfile",
    "DeviceTimeout",
    "ModbusBus",
    "ModbusDevice",
    "ModbusError",
    "Order",
    "ParameterSpec",
    "PointSpec",
    "ProtocolError",
    "ReadbackSpec",
    "RegisterType",
    "Role",
    "RtuOverTcpTransport",
    "RtuTransport",
    "TcpTransport",
    "Transport",
    "load_profile",
    "resolve_profile_path",
]
