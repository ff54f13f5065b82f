"""Receivers for the benchmarks: they only count messages.

``python -m bench.receivers aiomqtt|paho|link --port P --n N [--topic F]`` subscribes to ``F`` (``#``
by default) on 127.0.0.1:P, writes ``ready`` to stdout once subscribed, and when N messages have
arrived writes one JSON line ``{"count": N, "t_done": <time.monotonic()>}`` and exits (or after
``--timeout`` seconds with what it has).

* ``aiomqtt``: the plain ``async for message in client.messages`` loop, as an application would write it.
* ``paho``: paho-mqtt's callback on its own network loop, the fastest receive path in Python.
* ``link``: the daemon's :class:`drivers.mqtt.MqttLink` with a handler that only counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from typing import Any


def _done(count: int) -> None:
    print(json.dumps({"count": count, "t_done": time.monotonic()}), flush=True)


async def _aiomqtt(port: int, n: int, timeout: float, topic: str) -> None:
    import aiomqtt

    count = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-aiomqtt", max_queued_incoming_messages=0) as c:
        await c.subscribe(topic)
        print("ready", flush=True)
        try:
            async with asyncio.timeout(timeout):
                async for _m in c.messages:
                    count += 1
                    if count >= n:
                        break
        except TimeoutError:
            pass
    _done(count)


async def _link(port: int, n: int, timeout: float, topic: str) -> None:
    from drivers.clock import SystemClock
    from drivers.mqtt import Message, MqttConfig, MqttLink

    count = 0
    subscribed = asyncio.Event()
    finished = asyncio.Event()

    def handle(_m: Message) -> None:
        nonlocal count
        count += 1
        if count >= n:
            finished.set()

    async def on_connect() -> None:
        subscribed.set()

    config = MqttConfig(host="127.0.0.1", port=port, client_id="bench-link")
    link = MqttLink(config, branch="bench", subscriptions=[(topic, 0)], clock=SystemClock(), on_connect=on_connect)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(link.run(handle))
        try:
            async with asyncio.timeout(timeout):
                await subscribed.wait()
                print("ready", flush=True)
                await finished.wait()
        except TimeoutError:
            pass
        finally:
            _done(count)
            task.cancel()


def _paho(port: int, n: int, timeout: float, topic: str) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    count = 0
    t_done = 0.0
    finished = threading.Event()

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        nonlocal count, t_done
        count += 1
        if count >= n:
            t_done = time.monotonic()
            finished.set()

    subscribed = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho")
    c.on_message = on_message
    c.on_subscribe = lambda *_a: subscribed.set()
    c.on_connect = lambda cl, *_a: cl.subscribe(topic)
    c.connect("127.0.0.1", port)
    c.loop_start()
    subscribed.wait(10)
    print("ready", flush=True)
    finished.wait(timeout)
    print(json.dumps({"count": count, "t_done": t_done if count >= n else time.monotonic()}), flush=True)
    c.loop_stop()
    c.disconnect()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["aiomqtt", "paho", "link"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--topic", default="#", help="the topic filter to subscribe to")
    a = ap.parse_args()
    if a.kind == "aiomqtt":
        asyncio.run(_aiomqtt(a.port, a.n, a.timeout, a.topic))
    elif a.kind == "link":
        asyncio.run(_link(a.port, a.n, a.timeout, a.topic))
    else:
        _paho(a.port, a.n, a.timeout, a.topic)
    sys.exit(0)


if __name__ == "__main__":
    main()
