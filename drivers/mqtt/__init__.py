"""MQTT driver: sensor intake (decode, route, count) and the daemon's broker link.

Public API::

    from drivers.mqtt import (SensorConfig, Decoder, PlainDecoder, JsonDecoder, Zigbee2MqttDecoder,
                              TasmotaDecoder, PayloadTime, decode, Rejected, RejectReason, TIME_REASONS,
                              IntakeCounters, MessageDecoder, TopicRouter, MqttConfig, TlsConfig, MqttLink,
                              Message)
"""

from drivers.mqtt.config import (
    DEFAULT_PLAUSIBLE,
    Decoder,
    JsonDecoder,
    MqttConfig,
    PayloadTime,
    PlainDecoder,
    SensorConfig,
    TasmotaDecoder,
    TlsConfig,
    Zigbee2MqttDecoder,
)
from drivers.mqtt.decode import DEFAULT_MAX_BYTES, TIME_REASONS, Rejected, RejectReason, decode
from drivers.mqtt.errors import (
    AuthRejected,
    BrokerUnreachable,
    ConnectionLost,
    LinkConfigError,
    MqttLinkError,
    ProtocolError,
    TlsFailed,
    classify,
)
from drivers.mqtt.intake import IntakeCounters, MessageDecoder, RateLimitedLog, TopicRouter
from drivers.mqtt.link import MqttLink
from drivers.mqtt.message import Message

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_PLAUSIBLE",
    "TIME_REASONS",
    "AuthRejected",
    "BrokerUnreachable",
    "ConnectionLost",
    "Decoder",
    "IntakeCounters",
    "JsonDecoder",
    "LinkConfigError",
    "Message",
    "MessageDecoder",
    "MqttConfig",
    "MqttLink",
    "MqttLinkError",
    "PayloadTime",
    "PlainDecoder",
    "ProtocolError",
    "RateLimitedLog",
    "RejectReason",
    "Rejected",
    "SensorConfig",
    "TasmotaDecoder",
    "TlsConfig",
    "TlsFailed",
    "TopicRouter",
    "Zigbee2MqttDecoder",
    "classify",
    "decode",
]
