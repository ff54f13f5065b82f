"""What lobbyd's MQTT link relies on in aiomqtt and paho-mqtt, pinned against a real mosquitto.

``drivers/mqtt/link.py`` uses aiomqtt's public API only: ``async with Client(...)`` as the session,
``async for message in client.messages``, ``subscribe``, ``publish``, ``Will``, ``logger=`` and
``max_queued_incoming_messages=``. Each test here states one behaviour of that API the link depends
on. An upgrade of either library that breaks any of them must fail here first, before the link
misbehaves in a lobby; the version bounds in pyproject.toml stay until these pass on the new release.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import aiomqtt
import pytest
from packaging.requirements import Requirement

from drivers.mqtt import classify
from simulators.servers import MosquittoServer
from tests.drivers.mqtt.helpers import probe, subscribe_acl_broker
from tests.polling import eventually

REPO = Path(__file__).resolve().parents[3]

# A child that connects with a will and then waits to be killed: the only way to end a connection
# with no DISCONNECT through the public API.
WILL_CHILD = """
import asyncio, sys
import aiomqtt

async def main(port: int) -> None:
    will = aiomqtt.Will("contract/status", "offline", qos=1, retain=True)
    async with aiomqtt.Client("127.0.0.1", port, identifier="contract-will", will=will):
        print("connected", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1])))
"""


class Records(logging.Handler):
    """Keeps every record a logger passes on."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def wire_log() -> tuple[logging.Logger, Records]:
    logger = logging.getLogger("tests.contract.wire")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    records = Records()
    logger.handlers[:] = [records]
    return logger, records


def test_installed_versions_are_within_pyproject_bounds() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = {r.name: r for r in map(Requirement, deps)}
    for name in ("aiomqtt", "paho-mqtt"):
        req = reqs[name]
        assert any(s.operator == "<" for s in req.specifier), f"{name} must keep an upper bound"
        assert version(name) in req.specifier, f"{name} {version(name)} is outside {req}"


async def test_messages_arrive_in_publish_order(mosquitto: MosquittoServer) -> None:
    """One publisher, one connection, QoS 0 then QoS 1: ``client.messages`` yields them in order, topic
    as ``message.topic.value`` and payload as ``bytes``."""
    sent = [(f"order/{i % 3}", str(i).encode(), 0 if i < 250 else 1) for i in range(500)]
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe("order/#", qos=1)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            for topic, payload, qos in sent:
                await pub.publish(topic, payload, qos=qos)
        got = []
        async with asyncio.timeout(20):
            async for m in sub.messages:
                assert isinstance(m.payload, bytes)
                got.append((m.topic.value, m.payload))
                if len(got) == len(sent):
                    break
    assert got == [(t, p) for t, p, _ in sent]


async def test_retain_is_set_for_messages_retained_before_the_subscribe(mosquitto: MosquittoServer) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        await pub.publish("retained/t", "19.5", qos=1, retain=True)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
            await sub.subscribe("retained/#", qos=1)
            await pub.publish("retained/t", "20.0", qos=1, retain=True)  # live: delivered with retain unset
            got = []
            async with asyncio.timeout(10):
                async for m in sub.messages:
                    got.append((m.payload, m.retain))
                    if len(got) == 2:
                        break
    assert got == [(b"19.5", True), (b"20.0", False)]


async def test_the_broker_publishes_the_will_retained_when_a_client_dies_without_disconnect(
    mosquitto: MosquittoServer,
) -> None:
    async with probe(mosquitto.port, "contract/status") as watch:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WILL_CHILD, str(mosquitto.port), stdout=asyncio.subprocess.PIPE
        )  # fmt: skip: the child imports the aiomqtt this test does (same environment)
        try:
            assert child.stdout is not None
            async with asyncio.timeout(20):
                assert await child.stdout.readline() == b"connected\n"
            assert watch.seen == []  # nothing before it died
            child.send_signal(signal.SIGKILL)
            await child.wait()
            await eventually(lambda: watch.seen == [("contract/status", b"offline", False)], what="the will")
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
    async with probe(mosquitto.port, "contract/status") as late:
        await eventually(lambda: late.seen == [("contract/status", b"offline", True)], what="the will, retained")


async def test_subscribe_returns_the_brokers_code_for_each_filter_in_order(tmp_path: Path) -> None:
    """The link counts a filter as refused when its code's ``value`` is 0x80 or more."""
    server = subscribe_acl_broker(tmp_path, allowed="sensors/allowed/#")
    server.start()
    try:
        async with aiomqtt.Client("127.0.0.1", server.port) as client:
            codes = await client.subscribe(
                [("sensors/allowed/#", 1), ("sensors/denied/#", 1), ("sensors/allowed/x", 0)]
            )
    finally:
        server.close()
    assert [getattr(c, "value", c) for c in codes] == [1, 0x80, 0]


async def test_a_lost_connection_ends_iteration_with_mqtt_error_after_the_queued_messages(
    mosquitto: MosquittoServer,
) -> None:
    """Messages already received are still handed out; then ``MqttError``; then ``publish`` raises
    ``MqttError`` too, and leaving the ``async with`` raises nothing more."""
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.subscribe("queued/#", qos=1)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            for i in range(5):
                await pub.publish(f"queued/{i}", str(i), qos=1)
        await eventually(lambda: len(client.messages) == 5, what="five messages queued")
        mosquitto.stop(kill=True)
        got = []
        with pytest.raises(aiomqtt.MqttError):
            async with asyncio.timeout(20):
                async for m in client.messages:
                    got.append(m.payload)
        assert got == [b"0", b"1", b"2", b"3", b"4"]
        with pytest.raises(aiomqtt.MqttError):
            await client.publish("queued/late", "x", qos=1)


async def test_publish_on_a_closed_client_raises_mqtt_error(mosquitto: MosquittoServer) -> None:
    client = aiomqtt.Client("127.0.0.1", mosquitto.port)
    async with client:
        await client.publish("closed/t", "1")
    with pytest.raises(aiomqtt.MqttError):
        await client.publish("closed/t", "2")


async def test_a_full_queue_discards_with_one_warning_each_to_the_given_logger(
    mosquitto: MosquittoServer, wire_log: tuple[logging.Logger, Records]
) -> None:
    """The link bounds the queue with ``max_queued_incoming_messages`` and counts discards by these
    warnings (``drivers/mqtt/link.py`` ``_QUEUE_FULL``)."""
    logger, records = wire_log

    def discards() -> int:
        return sum(1 for r in records.records if str(r.msg).startswith("Message queue is full"))

    async with aiomqtt.Client("127.0.0.1", mosquitto.port, max_queued_incoming_messages=2, logger=logger) as client:
        await client.subscribe("full/#", qos=1)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
            for i in range(6):
                await pub.publish(f"full/{i}", str(i), qos=1)
        await eventually(lambda: discards() == 4, what="four discards")
        assert len(client.messages) == 2
        assert {r.levelno for r in records.records if str(r.msg).startswith("Message queue is full")} == {
            logging.WARNING
        }
        kept = []
        async for m in client.messages:
            kept.append(m.payload)
            if len(kept) == 2:
                break
    assert kept == [b"0", b"1"]


async def test_paho_logs_each_packet_at_debug_to_the_given_logger(
    mosquitto: MosquittoServer, wire_log: tuple[logging.Logger, Records]
) -> None:
    """Why the link's wire logger inherits the daemon's level: at DEBUG every packet costs a log record."""
    logger, records = wire_log
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, logger=logger) as client:
        await client.subscribe("debug/#")
        await client.publish("debug/t", "1")
        async for _m in client.messages:
            break
    debug = [r.getMessage() for r in records.records if r.levelno == logging.DEBUG]
    assert any(text.startswith("Received PUBLISH") for text in debug)
    assert any(text.startswith("Sending PUBLISH") for text in debug)


async def test_connect_failures_are_ones_classify_knows(tmp_path: Path, mosquitto: MosquittoServer) -> None:
    """Refused TCP and refused credentials reach the link as exceptions classify() names correctly."""
    with socket.socket() as hold, pytest.raises(aiomqtt.MqttError) as refused:  # bound, not listening: refused
        hold.bind(("127.0.0.1", 0))
        async with aiomqtt.Client("127.0.0.1", hold.getsockname()[1]):
            pass
    assert classify(refused.value).kind == "unreachable"

    secured = MosquittoServer(tmp_path / "secured", users={"lobbyd": "right"})
    secured.start()
    try:
        with pytest.raises(aiomqtt.MqttError) as denied:
            async with aiomqtt.Client("127.0.0.1", secured.port, username="lobbyd", password="wrong"):
                pass
    finally:
        secured.close()
    assert classify(denied.value).kind == "auth"


async def test_a_persistent_session_hands_over_what_was_queued_while_away(mosquitto: MosquittoServer) -> None:
    """``clean_session=False`` under the same identifier: the broker keeps the subscription and queues QoS 1
    messages while the client is away; after the next connect they arrive in ``client.messages`` in order,
    before (and without) any new subscribe. The link's "no reading lost" rests on this."""
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="contract-persistent", clean_session=False) as c:
        await c.subscribe("persistent/#", qos=1)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        for i in range(3):
            await pub.publish(f"persistent/{i}", str(i), qos=1)
    got = []
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="contract-persistent", clean_session=False) as c:
        async with asyncio.timeout(10):
            async for m in c.messages:
                got.append((m.topic.value, m.payload))
                if len(got) == 3:
                    break
    assert got == [(f"persistent/{i}", str(i).encode()) for i in range(3)]
