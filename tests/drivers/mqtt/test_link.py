"""MqttLink against a real mosquitto: status/LWT, subscriptions, retained flags, reconnect, buffering."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from drivers.clock import SystemClock, VirtualClock
from drivers.mqtt import ConnectionLost, MessageDecoder, MqttConfig, MqttLink, SensorConfig
from simulators.servers import MosquittoServer
from tests.drivers.mqtt.helpers import Collector, RecordingClock, probe
from tests.polling import eventually

REPO = Path(__file__).resolve().parents[3]
STATUS = "lobbyd/b42/status"


def link_for(
    server: MosquittoServer,
    subs: list[tuple[str, int]],
    *,
    clock: RecordingClock | None = None,
    **cfg: object,
) -> MqttLink:
    config = MqttConfig.model_validate(
        {"host": "127.0.0.1", "port": server.port, "reconnect_initial_s": 0.1, "reconnect_max_s": 1.0, **cfg}
    )
    return MqttLink(
        config,
        branch="b42",
        subscriptions=subs,
        clock=clock if clock is not None else RecordingClock(),
        rng=random.Random(7),
    )


class Running:
    """Run ``link.run(handle)`` in a TaskGroup task for the duration of an ``async with``."""

    def __init__(self, link: MqttLink, handle: Collector) -> None:
        self.link, self.handle = link, handle

    async def __aenter__(self) -> MqttLink:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._task = self._tg.create_task(self.link.run(self.handle), name="mqtt-link")
        return self.link

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        await self._tg.__aexit__(None, None, None)


@pytest.fixture
async def watcher(mosquitto: MosquittoServer) -> AsyncIterator[object]:
    async with probe(mosquitto.port, STATUS, "sensors/#") as p:
        yield p


async def test_online_subscribe_deliver_retained_flag_and_clean_offline(mosquitto: MosquittoServer) -> None:
    sensors = [
        SensorConfig.model_validate(
            {"id": "t1", "topic": "sensors/hall/t", "zone": "hall", "quantity": "temperature",
             "decoder": {"type": "plain"}, "qos": 1}
        ),
    ]  # fmt: skip
    intake = MessageDecoder(sensors, clock=SystemClock())
    got = Collector()
    async with probe(mosquitto.port, STATUS) as watch:
        await watch.client.publish("sensors/hall/t", "19.5", qos=1, retain=True)  # before the link exists
        link = link_for(mosquitto, intake.router.subscriptions())
        async with Running(link, got):
            await eventually(lambda: len(got.messages) == 1, what="retained sensor message")
            assert (got.messages[0].topic, got.messages[0].payload, got.messages[0].retain) == (
                "sensors/hall/t", b"19.5", True
            )  # fmt: skip
            await watch.client.publish("sensors/hall/t", "20.25", qos=1)
            await eventually(lambda: len(got.messages) == 2, what="live sensor message")
            assert got.messages[1].retain is False
            readings = [r for m in got.messages for r in intake.process_message(m)[0]]
            assert [(r.value, r.retained) for r in readings] == [(19.5, True), (20.25, False)]
            await eventually(lambda: watch.payloads(STATUS) == [b"online"], what="online status")
            assert (link.connected, link.connects, link.received) == (True, 1, 2)
            assert link.last_message_at is not None
            assert link.silent_for(link.last_message_at + 5) == 5
        await eventually(lambda: watch.payloads(STATUS) == [b"online", b"offline"], what="clean offline")
    assert link.connected is False
    assert sum(link.failures.values()) == 0
    async with probe(mosquitto.port, STATUS) as late:  # the broker retained "offline"
        await eventually(lambda: late.seen == [(STATUS, b"offline", True)], what="retained offline")


async def test_reconnect_resubscribes_republishes_status_with_bounded_backoff(mosquitto: MosquittoServer) -> None:
    clock = RecordingClock()
    link = link_for(mosquitto, [("sensors/#", 1)], clock=clock)
    got = Collector()
    async with Running(link, got):
        await eventually(lambda: link.connected, what="first connect")
        async with probe(mosquitto.port) as pub:
            await pub.client.publish("sensors/a", "1", qos=1)
        await eventually(lambda: len(got.on("sensors/a")) == 1, what="message before restart")

        mosquitto.stop(kill=True)
        await eventually(lambda: not link.connected, what="loss noticed")
        await eventually(lambda: link.failures["unreachable"] >= 6, what="several refused reconnects")
        mosquitto.start()  # same port, empty broker: no retained status, no subscriptions
        await eventually(lambda: link.connected and link.connects == 2, what="reconnect")

        async with probe(mosquitto.port, STATUS) as pub:
            await eventually(lambda: pub.payloads(STATUS) == [b"online"], what="online re-published")
            await pub.client.publish("sensors/a", "2", qos=1)
            await eventually(lambda: len(got.on("sensors/a")) == 2, what="message after restart (resubscribed)")
    assert [m.payload for m in got.on("sensors/a")] == [b"1", b"2"]
    assert link.failures["lost"] == 1
    assert isinstance(link.last_error, ConnectionLost) or link.failures["unreachable"] >= 6
    # backoff: equal jitter within [d/2, d], d doubling from 0.1 s and capped at 1.0 s
    assert len(clock.delays) == link.failures["lost"] + link.failures["unreachable"]
    for n, delay in enumerate(clock.delays):
        ceiling = min(1.0, 0.1 * 2**n)
        assert ceiling / 2 <= delay <= ceiling, (n, delay)
    assert max(clock.delays) <= 1.0


async def test_publish_while_down_keeps_latest_retained_only(mosquitto: MosquittoServer) -> None:
    link = link_for(mosquitto, [], retained_buffer=2)
    got = Collector()
    async with Running(link, got):
        await eventually(lambda: link.connected, what="connect")
        await link.publish("lobbyd/b42/device/fau/fan/state", "1", retain=True, qos=1)
        assert link.published == 1
        mosquitto.stop(kill=True)
        await eventually(lambda: not link.connected, what="loss noticed")
        await link.publish("lobbyd/b42/device/fau/fan/state", "2", retain=True)
        await link.publish("lobbyd/b42/device/fau/fan/state", "3", retain=True)
        await link.publish("lobbyd/b42/device/light/cct/state", "4000", retain=True)
        await link.publish("lobbyd/b42/device/light/lvl/state", "80", retain=True)  # pushes out fan/state
        await link.publish("lobbyd/b42/decision/fau/fan", "3")  # not retained: dropped
        assert (link.pending_retained, link.retained_overflow, link.dropped) == (2, 1, 1)
        mosquitto.start()
        await eventually(lambda: link.connected and link.published == 3, what="reconnect + flush")
        assert link.pending_retained == 0
        await link.publish("lobbyd/b42/barrier", "x", qos=1)  # same connection: earlier ones processed
        async with probe(mosquitto.port, "lobbyd/b42/device/#") as late:
            await eventually(lambda: len(late.seen) == 2, what="flushed retained values")
            assert sorted(late.seen) == [
                ("lobbyd/b42/device/light/cct/state", b"4000", True),
                ("lobbyd/b42/device/light/lvl/state", b"80", True),
            ]
    assert link.published == 4


async def test_handler_error_is_counted_not_fatal(mosquitto: MosquittoServer) -> None:
    seen: list[bytes] = []

    def handle(m: object) -> None:
        payload = m.payload  # type: ignore[attr-defined]
        if payload == b"boom":
            raise ValueError("bad handler")
        seen.append(payload)

    link = link_for(mosquitto, [("sensors/#", 0)])
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(link.run(handle))
        await eventually(lambda: link.connected, what="connect")
        async with probe(mosquitto.port) as pub:
            for payload in ("boom", "ok"):
                await pub.client.publish("sensors/x", payload, qos=1)
        await eventually(lambda: seen == [b"ok"], what="message after a failing one")
        task.cancel()
    assert (link.handler_errors, link.connects, sum(link.failures.values())) == (1, 1, 0)


async def test_lwt_offline_when_the_process_dies(mosquitto: MosquittoServer) -> None:
    """SIGKILL the process that holds the link: the broker publishes the retained will "offline"."""
    async with probe(mosquitto.port, STATUS) as watch:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.drivers.mqtt.link_child", str(mosquitto.port), "b42",
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        try:
            await eventually(lambda: watch.payloads(STATUS) == [b"online"], timeout=20, what="child online")
            child.send_signal(signal.SIGKILL)
            assert await child.wait() == -signal.SIGKILL
            await eventually(lambda: watch.payloads(STATUS) == [b"online", b"offline"], what="will")
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        assert watch.seen[-1] == (STATUS, b"offline", False)  # live delivery of the will
    async with probe(mosquitto.port, STATUS) as late:
        await eventually(lambda: late.seen == [(STATUS, b"offline", True)], what="retained will")


async def test_silence_is_measured_from_start_then_from_the_last_message(mosquitto: MosquittoServer) -> None:
    clock = VirtualClock(1000.0)
    config = MqttConfig(host="127.0.0.1", port=mosquitto.port, silence_after_s=300)
    link = MqttLink(config, branch="b42", subscriptions=[("sensors/#", 0)], clock=clock)
    assert link.silent_for(5000.0) == 0.0  # not started: nothing to report yet
    got = Collector()
    async with Running(link, got):
        await eventually(lambda: link.connected, what="connect")
        assert (link.silent_for(1299.0), link.is_silent(1299.0), link.is_silent(1300.0)) == (299.0, False, True)
        clock.set(2000.0)
        async with probe(mosquitto.port) as pub:
            await pub.client.publish("sensors/a", "1", qos=1)
        await eventually(lambda: link.last_message_at == 2000.0, what="message")
        assert got.messages[0].ts == 2000.0
        assert (link.silent_for(2100.0), link.is_silent(2100.0)) == (100.0, False)


async def test_on_connect_runs_on_every_connect_and_its_failure_is_not_fatal(mosquitto: MosquittoServer) -> None:
    calls: list[int] = []

    async def on_connect() -> None:
        calls.append(link.connects)
        if len(calls) == 1:
            raise RuntimeError("hook bug")

    config = MqttConfig(host="127.0.0.1", port=mosquitto.port, reconnect_initial_s=0.1, reconnect_max_s=0.2)
    link = MqttLink(config, branch="b42", subscriptions=[], clock=RecordingClock(), on_connect=on_connect)
    async with Running(link, Collector()):
        await eventually(lambda: calls == [1], what="first on_connect")
        assert (link.connected, link.handler_errors) == (True, 1)
        mosquitto.stop(kill=True)
        await eventually(lambda: not link.connected, what="loss")
        mosquitto.start()
        await eventually(lambda: calls == [1, 2], what="on_connect after reconnect")
    assert (link.connects, link.handler_errors) == (2, 1)


async def test_a_burst_arrives_whole_and_in_order(mosquitto: MosquittoServer) -> None:
    """Thousands of messages back to back, one of them larger than a socket read: all delivered, in order."""
    n = 3000
    big = b"x" * 40_000
    sent = [(f"burst/{i % 7}", big if i == 1500 else str(i).encode()) for i in range(n)]
    got = Collector()
    subscribed = asyncio.Event()

    async def on_connect() -> None:
        subscribed.set()

    config = MqttConfig.model_validate({"host": "127.0.0.1", "port": mosquitto.port})
    link = MqttLink(config, branch="b42", subscriptions=[("burst/#", 0)], clock=SystemClock(), on_connect=on_connect)
    async with Running(link, got):
        async with asyncio.timeout(30):
            await subscribed.wait()
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
                for topic, payload in sent:
                    await pub.publish(topic, payload)
            await eventually(lambda: len(got.messages) >= n, timeout=30, what="the whole burst")
    assert [(m.topic, m.payload) for m in got.messages] == sent  # QoS 0 on loopback, one connection each way
    assert link.received == n


async def test_a_full_incoming_queue_discards_counts_and_logs_once(
    mosquitto: MosquittoServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Retained messages all arrive right after the SUBACK, faster than ``async for`` takes them: with
    room for 5, the rest are discarded, every one counted, and one warning is logged, not one each."""
    n = 300
    async with probe(mosquitto.port) as pub:
        for i in range(n):
            await pub.client.publish(f"flood/{i}", str(i), qos=1, retain=True)
    got = Collector()
    link = link_for(mosquitto, [("flood/#", 0)], incoming_queue=5)
    with caplog.at_level(logging.DEBUG, logger="lobbyd.mqtt"):
        async with Running(link, got):
            await eventually(lambda: link.received + link.discarded == n, what="every message handled or discarded")
    assert link.discarded > 0
    assert link.received == len(got.messages) >= 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["incoming queue full (5): message discarded"]
    assert (link.connects, sum(link.failures.values())) == (1, 0)
