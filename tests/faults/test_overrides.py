"""Issue 17, finding 1: hostile override messages against the real daemon, broker and devices."""

from __future__ import annotations

import json
from pathlib import Path

import aiomqtt
import pytest

from tests.e2e.harness import Lobby, lobby

pytestmark = pytest.mark.servers

FAN = "fresh_air.fan_speed"


async def _publish(lob: Lobby, point: str, payload: str) -> None:
    device, name = point.split(".")
    async with aiomqtt.Client("127.0.0.1", lob.mosquitto.port) as c:
        await c.publish(f"lobbyd/{lob.loaded.config.branch}/device/{device}/{name}/set", payload, qos=1)


async def test_an_endless_override_neither_crashes_the_daemon_nor_takes_effect(tmp_path: Path) -> None:
    async with lobby(tmp_path, influx=False) as lob:
        lob.start_daemon()
        await lob.wait_status(lambda st: st["mqtt"]["subscribed"] and FAN in st["points"])
        for duration in ('"99999999d"', "1e999", "NaN", '"1e400s"'):
            await _publish(lob, FAN, f'{{"value": 1, "duration": {duration}}}')
        # A good override afterwards: the daemon is alive, subscribed, and still acts on operators.
        await _publish(lob, FAN, json.dumps({"value": 2, "duration": "5m"}))
        st = await lob.wait_status(lambda st: st["points"][FAN]["rule"] == "manual-override")
        assert st["points"][FAN]["desired"] == 2
        assert lob.proc is not None and lob.proc.poll() is None
