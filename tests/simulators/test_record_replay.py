"""lobbyd record → feed file → replayer, against a real mosquitto."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from daemon.whatif import read_feed
from drivers.clock import SystemClock
from drivers.mqtt.config import MqttConfig, SensorConfig
from simulators.record import record
from simulators.replay import replay_feed
from simulators.servers import MosquittoServer

SENSORS = (
    SensorConfig.model_validate(
        {
            "id": "hall-pm25",
            "topic": "sensors/b/hall/pm25",
            "zone": "hall",
            "quantity": "pm25",
            "decoder": {"type": "plain"},
        }
    ),
    SensorConfig.model_validate(
        {
            "id": "hall-t",
            "topic": "zigbee2mqtt/hall",
            "zone": "hall",
            "quantity": "temperature",
            "decoder": {"type": "zigbee2mqtt"},
        }
    ),
)
FEED = [
    {"ts": 1780000000.0, "topic": "sensors/b/hall/pm25", "payload": "12.5", "retain": False},
    {"ts": 1780000030.0, "topic": "zigbee2mqtt/hall", "payload": '{"temperature": 24.1}', "retain": False},
    {"ts": 1780000060.0, "topic": "sensors/b/hall/pm25", "payload": "40", "retain": False},
    {"ts": 1780000090.0, "topic": "sensors/b/hall/pm25", "payload": 'héllo, "quoted"', "retain": False},
]


class Ticks(SystemClock):
    """The real clock, except that each look at it reads the next whole second from 0 (arrival times)."""

    def __init__(self) -> None:
        self._next = 0.0

    def now(self) -> float:
        self._next += 1.0
        return self._next - 1.0


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
async def test_record_then_replay_round_trip(mosquitto: MosquittoServer, tmp_path: Path, suffix: str) -> None:
    source = tmp_path / "source.jsonl"
    source.write_text("".join(json.dumps(m) + "\n" for m in FEED))
    out = tmp_path / f"recorded{suffix}"
    mqtt = MqttConfig.model_validate({"host": "127.0.0.1", "port": mosquitto.port})
    clock = Ticks()
    ready = asyncio.Event()
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    async with asyncio.TaskGroup() as tg:
        rec = tg.create_task(
            record(mqtt, SENSORS, out, max_messages=len(FEED), clock=clock, ready=ready, duration_s=20)
        )
        await asyncio.wait_for(ready.wait(), 10)
        sent = await replay_feed(source, host="127.0.0.1", port=mosquitto.port, speed=30.0, sleep=fake_sleep)
    assert sent == len(FEED)
    assert rec.result() == len(FEED)
    assert sleeps == [1.0, 1.0, 1.0]  # 30 s gaps at 30x
    got = read_feed(out)
    assert [(m.topic, m.payload.decode()) for m in got] == [(m["topic"], m["payload"]) for m in FEED]
    assert [m.ts for m in got] == [1.0, 2.0, 3.0, 4.0]  # tick 0 named the client; then one per arrival
    if suffix == ".csv":
        assert out.read_text().splitlines()[0] == "ts,topic,payload"


async def test_record_ignores_topics_outside_the_config(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    source = tmp_path / "source.jsonl"
    source.write_text(
        json.dumps({"ts": 1.0, "topic": "other/topic", "payload": "1"}) + "\n" + json.dumps(FEED[0]) + "\n"
    )
    out = tmp_path / "recorded.jsonl"
    mqtt = MqttConfig.model_validate({"host": "127.0.0.1", "port": mosquitto.port})
    ready = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        rec = tg.create_task(record(mqtt, SENSORS, out, max_messages=1, ready=ready, duration_s=20))
        await asyncio.wait_for(ready.wait(), 10)
        await replay_feed(source, host="127.0.0.1", port=mosquitto.port, speed=0)
    assert rec.result() == 1
    assert [m.topic for m in read_feed(out)] == ["sensors/b/hall/pm25"]
