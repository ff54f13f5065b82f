"""Payloads as real installations send them, end to end: a real mosquitto, the daemon's MQTT link and its
intake. Publishers send what Zigbee2MQTT and Tasmota send; the readings are what the intake makes of them."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from drivers.clock import SteadyClock, SystemClock
from drivers.mqtt import MessageDecoder, MqttConfig, MqttLink, SensorConfig
from simulators.servers import MosquittoServer
from tests.drivers.mqtt.helpers import Collector, probe
from tests.polling import eventually

HUE = "zigbee2mqtt/b42/hall-motion"
# A Philips Hue motion sensor (SML001) as Zigbee2MQTT 1.x publishes it: raw and lux illuminance.
HUE_PAYLOAD = (
    b'{"battery":100,"illuminance":17077,"illuminance_lux":51,"led_indication":false,'
    b'"linkquality":87,"occupancy":true,"occupancy_timeout":30,"temperature":21.78}'
)


def sensors(extra_decoder: dict[str, Any] | None = None) -> list[SensorConfig]:
    raw = [
        {"id": "hall-lux", "topic": HUE, "zone": "hall", "quantity": "illuminance",
         "decoder": {"type": "zigbee2mqtt", **(extra_decoder or {})}},
        {"id": "hall-motion-temp", "topic": HUE, "zone": "hall", "quantity": "temperature",
         "decoder": {"type": "zigbee2mqtt", **(extra_decoder or {})}},
    ]  # fmt: skip
    return [SensorConfig.model_validate(s) for s in raw]


class Live:
    """The link running into a collector; ``readings`` decodes what arrived so far."""

    def __init__(self, link: MqttLink, intake: MessageDecoder, clock: SteadyClock) -> None:
        self.link, self.intake, self.got, self.link_clock = link, intake, Collector(), clock
        self.done = 0
        self.readings: list[tuple[str, float, float]] = []

    def drain(self) -> int:
        for m in self.got.messages[self.done :]:
            self.readings += [(r.sensor, r.value, r.ts) for r in self.intake.process_message(m)[0]]
        self.done = len(self.got.messages)
        return self.done


@pytest.fixture
async def live(mosquitto: MosquittoServer, request: pytest.FixtureRequest) -> AsyncIterator[Live]:
    clock = SteadyClock(SystemClock())
    intake = MessageDecoder(getattr(request, "param", sensors()), clock=clock)
    config = MqttConfig.model_validate({"host": "127.0.0.1", "port": mosquitto.port, "reconnect_initial_s": 0.1})
    link = MqttLink(
        config, branch="b42", subscriptions=intake.router.subscriptions(), clock=clock, rng=random.Random(7)
    )
    lv = Live(link, intake, clock)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(link.run(lv.got), name="mqtt-link")
        await eventually(lambda: link.connected, what="link connected")
        try:
            yield lv
        finally:
            task.cancel()


async def test_hue_motion_sensor_through_zigbee2mqtt_reads_lux(mosquitto: MosquittoServer, live: Live) -> None:
    async with probe(mosquitto.port) as pub:
        await pub.client.publish(HUE, HUE_PAYLOAD, qos=1)
        await eventually(lambda: live.drain() == 1, what="the sensor's message")
    assert sorted((s, v) for s, v, _ in live.readings) == [("hall-lux", 51.0), ("hall-motion-temp", 21.78)]


async def test_duplicate_keys_from_the_broker_are_rejected_counted_logged_once(
    mosquitto: MosquittoServer, live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    dup = b'{"illuminance_lux":51,"temperature":21.5,"illuminance_lux":9000}'
    with caplog.at_level(logging.WARNING, logger="lobbyd.mqtt.intake"):
        async with probe(mosquitto.port) as pub:
            for _ in range(100):
                await pub.client.publish(HUE, dup, qos=1)
            await pub.client.publish(HUE, HUE_PAYLOAD, qos=1)
            await eventually(lambda: live.drain() == 101, what="every message")
    counts = live.intake.counters.snapshot()
    assert (counts["duplicate_key"], counts["accepted"]) == (100, 2)  # nothing of them taken; the good one is
    assert sorted((s, v) for s, v, _ in live.readings) == [("hall-lux", 51.0), ("hall-motion-temp", 21.78)]
    logged = [r.getMessage() for r in caplog.records if "duplicate_key" in r.getMessage()]
    assert logged == [f"rejected duplicate_key on {HUE}: key 'illuminance_lux' appears twice in one object"]


LAST_SEEN = {"time": {"path": "last_seen", "format": "iso8601", "window_s": 60}}


@pytest.mark.parametrize("live", [sensors(LAST_SEEN)], indirect=True)
async def test_zigbee2mqtt_last_seen_is_the_readings_time(
    mosquitto: MosquittoServer, live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    """Zigbee2MQTT with ``last_seen: ISO_8601`` stamps when the coordinator heard the device; a message
    delivered late (queued in the broker) keeps that time; one older than the window is stamped on receipt."""

    def hue(at: float) -> bytes:
        iso = dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return HUE_PAYLOAD[:-1] + f',"last_seen":"{iso}"}}'.encode()

    clock = live.link_clock
    with caplog.at_level(logging.WARNING, logger="lobbyd.mqtt.intake"):
        async with probe(mosquitto.port) as pub:
            sent = clock.wall()
            await pub.client.publish(HUE, hue(sent - 20), qos=1)
            await eventually(lambda: live.drain() == 1, what="a message heard 20 s ago")
            await pub.client.publish(HUE, hue(sent - 3600), qos=1)
            await eventually(lambda: live.drain() == 2, what="a message heard an hour ago")
    first, late = live.readings[:2], live.readings[2:]
    assert [clock.to_wall(t) for _, _, t in first] == [pytest.approx(sent - 20, abs=0.002)] * 2
    assert all(abs(clock.to_wall(t) - sent) < 5 for _, _, t in late)  # receipt
    assert live.intake.counters.snapshot()["time_outside_window"] == 2  # both sensors on the topic
    assert len([r for r in caplog.records if "payload time not used" in r.getMessage()]) == 2  # once per sensor
