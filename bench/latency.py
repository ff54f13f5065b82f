"""Latency half of the end-to-end benchmark (bench/bench_e2e.py).

A PM2.5 publish that crosses the rule's threshold (40 ↔ 10 µg/m³, no ``for:`` delay; the fan's safety
hold set to 0 for this run) until the Modbus write arrives at the pymodbus device simulator, against
the libraries' floor measured in the same run: MQTT publish→receive (paho) and a Modbus write
(pymodbus client → the same simulator).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.rig import (
    RawPublisher,
    daemon_config,
    device_sims,
    mqtt_connected,
    percentile,
    publish_packet,
    py,
    stop,
    wait_for,
)

WARMUP = 10  # samples discarded at the start of each latency series
START_AT = "2026-06-03T10:30"  # a Wednesday morning: the branch is open


# ---- latency ------------------------------------------------------------------------------------
async def latency_runs(tmp: Path, mosq_port: int, samples: int) -> dict[str, tuple[float, float, int]]:
    """The three latency series (p50 ms, p99 ms, samples), by name: lobbyd's and the two floors."""
    res: dict[str, tuple[float, float, int]] = {}
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from pymodbus.client import AsyncModbusTcpClient

    async with device_sims() as sims:
        fresh = sims["fresh_air"]

        def edit(data: dict[str, Any]) -> None:
            data["safety"]["fresh_air.fan_speed"] = {"min_hold_s": 0, "max_writes_per_hour": 1_000_000}

        cfg = daemon_config(tmp / "lat", mqtt_port=mosq_port, device_ports={k: s.port for k, s in sims.items()},
                            influx_url=None, edit=edit)  # fmt: skip
        sock = tmp / "lat" / "state" / "control.sock"
        pub = RawPublisher(mosq_port, "bench-lat-pub")
        proc = py("-m", "daemon", "run", "--config", str(cfg), "--start-at", START_AT, log=tmp / "lat" / "daemon.log")
        try:
            await asyncio.to_thread(wait_for, lambda: mqtt_connected(sock), timeout=30, what="daemon", every=0.05)
            from daemon.config import load_config

            sensors = load_config(cfg).config.sensors
            from simulators.sensors import payload_for

            everyone = {s.id: {"pm25": 10.0}.get(str(s.quantity), 300.0 if str(s.quantity) == "illuminance" else 30)
                        for s in sensors}  # fmt: skip
            for topic in sorted({s.topic for s in sensors}):
                pub.send(publish_packet(topic, payload_for([s for s in sensors if s.topic == topic], everyone)))
            await fresh.wait_for_write("fan_speed", lambda v: v == 1, timeout=20)
            pm_topic = next(s.topic for s in sensors if s.id == "hall-pm25")
            lat: list[float] = []
            for i in range(samples + WARMUP):
                high = i % 2 == 0
                since = len(fresh.writes)
                t0 = time.time()  # the simulator stamps writes with the system clock's time
                pub.send(publish_packet(pm_topic, b"40" if high else b"10"))
                w = await fresh.wait_for_write("fan_speed", (lambda v: v == 3) if high else (lambda v: v == 1),
                                               timeout=5, since=since)  # fmt: skip
                if i >= WARMUP:
                    lat.append(w.ts - t0)
                await asyncio.sleep(0.01)  # pacing: let the read-back finish (not a synchronisation)
            res["lobbyd: PM2.5 publish → Modbus write at the device"] = _pct(lat)
        finally:
            await asyncio.to_thread(stop, proc)
            pub.close()

        # floor 1: MQTT publish → paho receive on the same broker
        got = asyncio.Queue[float]()
        loop = asyncio.get_running_loop()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-floor")
        subscribed = asyncio.Event()

        def on_message(*_a: Any) -> None:
            loop.call_soon_threadsafe(got.put_nowait, time.monotonic())

        def on_subscribe(*_a: Any) -> None:
            loop.call_soon_threadsafe(subscribed.set)

        c.on_message = on_message
        c.on_subscribe = on_subscribe
        c.on_connect = lambda cl, *_a: cl.subscribe("floor/x")
        c.connect("127.0.0.1", mosq_port)
        c.loop_start()
        pub = RawPublisher(mosq_port, "bench-floor-pub")
        try:
            await asyncio.wait_for(subscribed.wait(), 10)
            mq: list[float] = []
            for i in range(samples + WARMUP):
                t0 = time.monotonic()
                pub.send(publish_packet("floor/x", b"40"))
                dt = await asyncio.wait_for(got.get(), 5) - t0
                if i >= WARMUP:
                    mq.append(dt)
                await asyncio.sleep(0.002)
        finally:
            pub.close()
            c.loop_stop()
            c.disconnect()
        res["floor: MQTT publish → receive (paho)"] = _pct(mq)

        # floor 2: a Modbus write from pymodbus to the same simulator
        client = AsyncModbusTcpClient("127.0.0.1", port=fresh.port)
        await client.connect()
        try:
            mb: list[float] = []
            for i in range(samples + WARMUP):
                since = len(fresh.writes)
                t0 = time.time()
                await client.write_register(0, 3 if i % 2 == 0 else 1, device_id=1)
                w = await fresh.wait_for_write("fan_speed", timeout=5, since=since)
                if i >= WARMUP:
                    mb.append(w.ts - t0)
        finally:
            client.close()
        res["floor: Modbus write (pymodbus client → simulator)"] = _pct(mb)
    return res


def _pct(values: list[float]) -> tuple[float, float, int]:
    return percentile(values, 50) * 1000, percentile(values, 99) * 1000, len(values)
