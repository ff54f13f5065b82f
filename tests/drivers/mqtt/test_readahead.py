"""``buffer_reads``: real paho parsing PUBLISH packets from a socket pair, with and without read-ahead."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from drivers.mqtt.link import buffer_reads

CHUNK = 16384


def publish(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH packet."""
    body = len(topic).to_bytes(2, "big") + topic.encode() + payload
    n, length = len(body), bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return b"\x30" + bytes(length) + body


@pytest.fixture
def wired() -> Iterator[tuple[mqtt.Client, socket.socket, list[tuple[str, bytes]]]]:
    """A paho client reading one end of a socket pair; the test writes the broker's side."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours  # what paho's connect would have set
    got: list[tuple[str, bytes]] = []
    client.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload)))
    try:
        yield client, broker, got
    finally:
        ours.close()
        broker.close()


def test_stock_paho_parses_one_packet_per_wake_up(wired: tuple[mqtt.Client, socket.socket, list[Any]]) -> None:
    client, broker, got = wired
    broker.sendall(b"".join(publish(f"t/{i}", b"1") for i in range(10)))
    client.loop_read()
    assert len(got) == 1  # why buffer_reads exists: one event-loop turn (and 3 recv calls) per message


def test_one_wake_up_parses_one_chunk_and_the_rest_follows_in_order(
    wired: tuple[mqtt.Client, socket.socket, list[Any]],
) -> None:
    client, broker, got = wired
    assert buffer_reads(client, chunk=CHUNK)
    packets = [publish(f"sensors/{i % 7}", str(i).encode()) for i in range(3000)]
    broker.sendall(b"".join(packets))
    client.loop_read()
    whole, size = 0, 0
    for p in packets:  # packets complete within the first chunk
        if size + len(p) > CHUNK:
            break
        whole, size = whole + 1, size + len(p)
    assert len(got) == whole
    while len(got) < len(packets):
        before = len(got)
        client.loop_read()
        assert len(got) > before
    assert got == [(f"sensors/{i % 7}", str(i).encode()) for i in range(3000)]


def test_a_packet_bigger_than_a_chunk_is_assembled_across_wake_ups(
    wired: tuple[mqtt.Client, socket.socket, list[Any]],
) -> None:
    client, broker, got = wired
    assert buffer_reads(client, chunk=CHUNK)
    big = bytes(range(256)) * 160  # 40 960 bytes
    broker.sendall(publish("a", b"1") + publish("big", big) + publish("z", b"2"))
    wake_ups = 0
    while len(got) < 3:
        client.loop_read()
        wake_ups += 1
    assert got == [("a", b"1"), ("big", big), ("z", b"2")]
    assert wake_ups == 3  # 40 977 bytes in 16 KiB chunks


def test_end_of_stream_is_reported_as_a_lost_connection(
    wired: tuple[mqtt.Client, socket.socket, list[Any]],
) -> None:
    client, broker, got = wired
    assert buffer_reads(client, chunk=CHUNK)
    broker.sendall(publish("a", b"1"))
    broker.shutdown(socket.SHUT_WR)
    rc = client.loop_read()
    assert got == [("a", b"1")]
    if rc == mqtt.MQTT_ERR_SUCCESS:  # the end of stream may be seen on the next wake-up
        rc = client.loop_read()
    assert rc == mqtt.MQTT_ERR_CONN_LOST


def test_an_unknown_paho_is_left_alone() -> None:
    class NotPaho:
        pass

    assert buffer_reads(NotPaho()) is False
