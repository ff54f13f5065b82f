"""The shipped mosquitto ACL (config/mosquitto/acl.example) on a real broker: only the operators'
account may publish an override; lobbyd and the sensors keep every topic they need."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest

from simulators.servers import MosquittoServer
from tests.e2e.harness import REPO

pytestmark = pytest.mark.servers

ACL = REPO / "config" / "mosquitto" / "acl.example"
USERS = {"lobbyd": "pw-lobbyd", "sensors": "pw-sensors", "operators": "pw-operators"}
SET = "lobbyd/b1/device/fresh_air/fan_speed/set"


@asynccontextmanager
async def client(broker: MosquittoServer, user: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(broker.host, broker.port, identifier=f"{user}-test", username=user,
                              password=USERS[user]) as c:  # fmt: skip
        yield c


async def _receive(c: aiomqtt.Client, n: int) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    async with asyncio.timeout(10):
        async for m in c.messages:
            got.append((str(m.topic), bytes(m.payload)))
            if len(got) == n:
                return got
    return got


async def test_only_operators_may_publish_an_override(tmp_path: Path) -> None:
    with MosquittoServer(tmp_path / "mosquitto", users=USERS, acl=ACL.read_text()) as broker:
        assert isinstance(broker, MosquittoServer)
        async with client(broker, "lobbyd") as daemon:
            await daemon.subscribe("lobbyd/b1/device/+/+/set", qos=1)
            await daemon.subscribe("sensors/b1/#", qos=1)
            # Denied publishes are acknowledged and dropped by the broker; each is awaited (QoS 1), so
            # it was handled before the allowed one that follows.
            async with client(broker, "sensors") as sensors:
                await sensors.publish(SET, b'{"value": 3, "from": "sensors"}', qos=1)
                await sensors.publish("sensors/b1/hall/pm25", b"12", qos=1)
            await daemon.publish(SET, b'{"value": 3, "from": "lobbyd"}', qos=1)
            async with client(broker, "operators") as operators:
                await operators.publish(SET, b'{"value": 2, "from": "operators"}', qos=1)
            got = await _receive(daemon, 2)
        assert got == [("sensors/b1/hall/pm25", b"12"), (SET, b'{"value": 2, "from": "operators"}')]


async def test_lobbyd_may_publish_each_of_its_own_topics(tmp_path: Path) -> None:
    own = [
        "lobbyd/b1/status",
        "lobbyd/b1/rules/status",
        "lobbyd/b1/decision/fresh_air/fan_speed",
        "lobbyd/b1/device/fresh_air/availability",
        "lobbyd/b1/device/fresh_air/fan_speed/state",
    ]
    with MosquittoServer(tmp_path / "mosquitto", users=USERS, acl=ACL.read_text()) as broker:
        assert isinstance(broker, MosquittoServer)
        async with client(broker, "operators") as operators:
            await operators.subscribe("lobbyd/#", qos=1)
            async with client(broker, "lobbyd") as daemon:
                for topic in own:
                    await daemon.publish(topic, b"x", qos=1)
            got = await _receive(operators, len(own))
        assert [t for t, _p in got] == own
