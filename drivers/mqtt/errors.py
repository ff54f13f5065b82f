"""The MQTT driver's exception hierarchy, and the one place where low-level failures are classified.

Every class says whether the link should keep retrying (all do: the broker may come back, a password
may be fixed) and how it is named in counters and logs.
"""

from __future__ import annotations

import ssl

from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

__all__ = [
    "AuthRejected",
    "BrokerUnreachable",
    "ConnectionLost",
    "LinkConfigError",
    "MqttLinkError",
    "ProtocolError",
    "TlsFailed",
    "classify",
]


class MqttLinkError(Exception):
    """Base of every failure of the broker link. ``kind`` names it in counters and logs."""

    kind = "error"

    def __init__(self, message: str, *, host: str = "", port: int = 0) -> None:
        where = f"{host}:{port}: " if host else ""
        super().__init__(f"{where}{message}")
        self.host = host
        self.port = port


class BrokerUnreachable(MqttLinkError):
    """TCP connect refused, timed out, or name not resolved."""

    kind = "unreachable"


class AuthRejected(MqttLinkError):
    """The broker refused the credentials (CONNACK 4/5, MQTT 5 reason 134/135)."""

    kind = "auth"


class TlsFailed(MqttLinkError):
    """The TLS handshake failed: unknown CA, hostname mismatch, or client certificate refused."""

    kind = "tls"


class ConnectionLost(MqttLinkError):
    """An established connection broke (broker restart, network, keepalive timeout)."""

    kind = "lost"


class ProtocolError(MqttLinkError):
    """The broker answered something unexpected (other CONNACK codes, timeouts waiting for acks)."""

    kind = "protocol"


class LinkConfigError(MqttLinkError):
    """The configuration cannot be used as it is: password variable unset, key file unreadable."""

    kind = "config"


_AUTH_CODES = frozenset({4, 5, 134, 135})
_TLS_WORDS = ("certificate", "ssl", "tls", "handshake", "wrong version number", "alert")
_UNREACHABLE_WORDS = ("refused", "unreachable", "name or service", "timed out", "no route")


def classify(exc: BaseException, *, host: str = "", port: int = 0) -> MqttLinkError:
    """Turn any failure seen while connecting or connected into one :class:`MqttLinkError`."""
    if isinstance(exc, MqttLinkError):
        return exc
    text = str(exc) or type(exc).__name__
    if isinstance(exc, MqttConnectError):
        rc = exc.rc.value if isinstance(exc.rc, ReasonCode) else exc.rc
        cls: type[MqttLinkError] = AuthRejected if rc in _AUTH_CODES else ProtocolError
        return cls(text, host=host, port=port)
    if isinstance(exc, ssl.SSLError):
        return TlsFailed(text, host=host, port=port)
    if isinstance(exc, OSError):
        return BrokerUnreachable(text, host=host, port=port)
    lowered = text.lower()
    if "operation timed out" in lowered:  # aiomqtt: no CONNACK/SUBACK/PUBACK in time
        return ProtocolError(f"no answer from the broker in time ({text})", host=host, port=port)
    # aiomqtt flattens connect-time OSErrors (including ssl.SSLError) into MqttError(str(exc)).
    if any(w in lowered for w in _TLS_WORDS):
        return TlsFailed(text, host=host, port=port)
    if any(w in lowered for w in _UNREACHABLE_WORDS) or "errno" in lowered:
        return BrokerUnreachable(text, host=host, port=port)
    if "disconnect" in lowered or "lost" in lowered or isinstance(exc, ConnectionError):
        return ConnectionLost(text, host=host, port=port)
    return ProtocolError(text, host=host, port=port)
