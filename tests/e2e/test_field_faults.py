"""Issue 4 at the daemon level: devices and the broker misbehave; the daemon copes and says so.

Real mosquitto, real pymodbus simulators, the real daemon subprocess. Status points are polled every
0.5 s here (a private copy of the profiles) so that outages are noticed quickly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.e2e.harness import lobby
from tests.polling import eventually

pytestmark = pytest.mark.servers

CLEAN = {"hall-pm25": 10.0, "outdoor-pm25": 20.0, "hall-lux": 300.0}


async def _topic_becomes(port: int, topic: str, expected: str, *, timeout: float = 15.0) -> None:
    """Wait until ``topic`` carries ``expected`` (its retained value, or a later publish)."""
    seen: list[str] = []
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe(topic)
        async with asyncio.timeout(timeout):
            async for m in c.messages:
                payload = bytes(m.payload).decode() if isinstance(m.payload, bytes | bytearray) else str(m.payload)
                seen.append(payload)
                if payload == expected:
                    return
    raise AssertionError(f"{topic} never became {expected!r}: {seen}")


def _device(st: dict[str, Any], name: str) -> dict[str, Any]:
    return next(d for d in st["devices"] if d["name"] == name)


async def test_device_offline_then_back_gets_desired_state_again(tmp_path: Path) -> None:
    async with lobby(tmp_path, initial=CLEAN, poll_interval_s=0.5) as lob:
        fan, sensors = lob.fresh_air, lob.sensors
        lob.start_daemon()
        await fan.wait_for_write("fan_speed", lambda v: v == 1, timeout=20)
        await lob.wait_status(lambda st: _device(st, "fresh_air")["online"])

        await fan.stop()
        st = await lob.wait_status(lambda st: not _device(st, "fresh_air")["online"], timeout=30)
        assert _device(st, "fresh_air")["last_error"]
        await _topic_becomes(lob.mosquitto.port, "lobbyd/demo-001/device/fresh_air/availability", "offline")
        # The lights are on another link and keep working.
        assert _device(st, "lights")["online"]

        # While the unit is away the air gets worse; the daemon wants the fan high.
        sensors.set("hall-pm25", 60.0)
        await sensors.publish_now("hall-pm25")
        await lob.wait_status(lambda st: st["points"]["fresh_air.fan_speed"]["desired"] == 3)
        n = len(fan.writes)

        # The unit comes back after a power cut: it forgot its setpoint. The daemon re-applies it.
        fan.set_value("fan_speed", 0)
        await fan.start()
        w = await fan.wait_for_write("fan_speed", lambda v: v == 3, timeout=40, since=n)
        assert w.value == 3 and fan.value("fan_speed") == 3
        st = await lob.wait_status(lambda st: _device(st, "fresh_air")["online"])
        await _topic_becomes(lob.mosquitto.port, "lobbyd/demo-001/device/fresh_air/availability", "online")
        assert lob.influx is not None
        idb = lob.influx

        def rows(q: str) -> list[list[Any]]:
            res = idb.query(q, db="lobbyd")["results"][0]  # type: ignore[index]
            return [v for s in res.get("series", []) for v in s["values"]]

        # Status points are polled while the device is online and recorded as time series.
        polled = "SELECT value FROM device_status WHERE device = 'fresh_air' AND point = 'fan_output'"
        await eventually(lambda: bool(rows(polled)), what="polled status points in influx")
        assert await lob.stop_daemon() == 0
        online = [r[1] for r in rows("SELECT online FROM availability WHERE device = 'fresh_air'")]
        assert online[-2:] == [0, 1]  # offline, then back online, as time series
        assert rows("SELECT text FROM event WHERE kind = 'availability' AND device = 'fresh_air'")


async def test_broker_restart_daemon_resubscribes_and_keeps_controlling(tmp_path: Path) -> None:
    async with lobby(tmp_path, influx=False, initial=CLEAN) as lob:
        fan, sensors = lob.fresh_air, lob.sensors
        lob.start_daemon()
        await fan.wait_for_write("fan_speed", lambda v: v == 1, timeout=20)
        st = await lob.wait_status(lambda st: st["mqtt"]["connected"])
        connects = st["mqtt"]["connects"]

        lob.mosquitto.stop(kill=True)
        await lob.wait_status(lambda st: not st["mqtt"]["connected"])
        lob.mosquitto.start()  # same port, empty: no retained messages, no subscriptions
        await lob.wait_status(lambda st: st["mqtt"]["connected"] and st["mqtt"]["connects"] > connects, timeout=40)
        await sensors.wait_connected()

        # The daemon is subscribed again: a spike after the restart still raises the fan.
        sensors.set("hall-pm25", 60.0)
        await sensors.publish_now("hall-pm25")
        await fan.wait_for_write("fan_speed", lambda v: v == 3, timeout=30)
        # And its retained online status was published again on the fresh broker.
        await _topic_becomes(lob.mosquitto.port, "lobbyd/demo-001/status", "online")
        assert await lob.stop_daemon() == 0
