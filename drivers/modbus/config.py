"""Device entries of ``config/lobbyd.yaml`` (``devices:``): which profile, which link, which unit id."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pydantic

__all__ = [
    "MAX_TIMEOUT_S",
    "DeviceConfig",
    "RtuOverTcpTransport",
    "RtuTransport",
    "TcpTransport",
    "Transport",
    "resolve_profile_path",
]


# The longest a Modbus request or connect may wait for its answer (no device needs a minute).
MAX_TIMEOUT_S = 60.0


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class TcpTransport(_Model):
    """Modbus TCP (MBAP framing) to a device or gateway."""

    type: Literal["tcp"] = "tcp"
    host: str
    port: int = pydantic.Field(default=502, ge=1, le=65535)

    @property
    def key(self) -> str:
        """Identity of the physical link: devices with equal keys share one :class:`ModbusBus`."""
        return f"tcp://{self.host}:{self.port}"


class RtuOverTcpTransport(_Model):
    """RTU frames (with CRC) tunnelled through a TCP serial server (transparent gateway)."""

    type: Literal["rtu_over_tcp"] = "rtu_over_tcp"
    host: str
    port: int = pydantic.Field(ge=1, le=65535)
    inter_frame_gap_s: float = pydantic.Field(default=0.005, ge=0)

    @property
    def key(self) -> str:
        return f"rtu+tcp://{self.host}:{self.port}"


class RtuTransport(_Model):
    """Modbus RTU on a serial port (RS-485 adapter, or a pty in tests)."""

    type: Literal["rtu"] = "rtu"
    port: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    inter_frame_gap_s: float | None = pydantic.Field(default=None, ge=0)

    @property
    def key(self) -> str:
        return f"rtu://{self.port}"

    @property
    def gap_s(self) -> float:
        """Silence between frames: 3.5 characters (fixed 1.75 ms above 19200 baud), unless set."""
        if self.inter_frame_gap_s is not None:
            return self.inter_frame_gap_s
        if self.baudrate > 19200:
            return 0.00175
        bits = 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits
        return 3.5 * bits / self.baudrate


Transport = Annotated[TcpTransport | RtuTransport | RtuOverTcpTransport, pydantic.Field(discriminator="type")]


class DeviceConfig(_Model):
    """One Modbus device: a profile, a link, a unit id, and the driver's patience."""

    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_.-]+$")
    profile: str
    unit_id: int = pydantic.Field(default=1, ge=0, le=255)
    transport: Transport
    parameters: dict[str, int] = pydantic.Field(default_factory=dict)
    timeout_s: float = pydantic.Field(default=1.0, gt=0, le=MAX_TIMEOUT_S)
    retries: int = pydantic.Field(default=2, ge=0, le=10)
    offline_after: int = pydantic.Field(default=3, ge=1)
    description: str = ""


def resolve_profile_path(profile: str, devices_dir: Path) -> Path:
    """``profile`` as a path (when it ends in ``.yaml``/``.yml`` or contains ``/``) or a name in ``devices_dir``."""
    if profile.endswith((".yaml", ".yml")) or "/" in profile:
        path = Path(profile)
        return path if path.is_absolute() or path.exists() else devices_dir / path.name
    return devices_dir / f"{profile}.yaml"
