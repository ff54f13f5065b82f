"""Sensor simulator: publishes readings to MQTT in each sensor's own payload format.

Driven by the daemon's own ``sensors:`` config, so whatever decoder a sensor uses (plain number,
JSON path, Zigbee2MQTT, Tasmota) the simulator speaks it. Each sensor has a signal that is steady,
stepped, or ramped on command — from a test (:meth:`SensorSimulator.set`, :meth:`ramp`) or over
MQTT on ``sim/<branch>/sensor/<id>/set`` with ``{"value": 40}`` or ``{"ramp_to": 10, "over_s": 60}``.
Time comes from an injected clock, so ramps run on virtual time as well as real time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt

from daemon.yamlsource import deep_merge
from drivers.clock import Clock, SystemClock
from drivers.mqtt.config import (
    Z2M_DEFAULT_KEYS,
    JsonDecoder,
    PlainDecoder,
    SensorConfig,
    TasmotaDecoder,
    Zigbee2MqttDecoder,
)

__all__ = ["SensorSimulator", "Signal", "main", "payload_for"]

_LOG = logging.getLogger("lobbyd.sim.sensors")


@dataclass
class Signal:
    """A value that is steady, or ramps linearly from ``start`` to ``target`` between two times."""

    start: float
    target: float
    t0: float = 0.0
    t1: float = 0.0

    def at(self, t: float) -> float:
        if t >= self.t1 or self.t1 <= self.t0:
            return self.target
        if t <= self.t0:
            return self.start
        return self.start + (self.target - self.start) * (t - self.t0) / (self.t1 - self.t0)


def _nest(parts: Sequence[str | int], value: float) -> Any:
    out: Any = value
    for part in reversed(parts):
        if isinstance(part, int):
            lst: list[Any] = [None] * (part + 1)
            lst[part] = out
            out = lst
        else:
            out = {part: out}
    return out


def payload_for(sensors: Sequence[SensorConfig], values: dict[str, float]) -> bytes:
    """One topic's payload carrying the given sensors' values, in their decoder's format."""
    doc: Any = None
    for s in sensors:
        if s.id not in values:
            continue
        v = round(values[s.id], 3)
        dec = s.decoder
        if isinstance(dec, PlainDecoder):
            return f"{v:g}".encode()
        if isinstance(dec, JsonDecoder):
            part = _nest(dec.parts, v)
        elif isinstance(dec, Zigbee2MqttDecoder):
            part = {dec.key or Z2M_DEFAULT_KEYS[s.quantity]: v}
        elif isinstance(dec, TasmotaDecoder):
            part = {"Time": time.strftime("%Y-%m-%dT%H:%M:%S"), dec.sensor: {dec.key: v}}
        else:  # pragma: no cover - every decoder type is handled above
            raise TypeError(f"no payload format for {dec!r}")
        doc = part if doc is None else deep_merge(doc, part)
    return json.dumps(doc).encode()


class SensorSimulator:
    """Publishes every configured sensor every ``interval_s`` (of the injected clock)."""

    def __init__(
        self,
        sensors: Sequence[SensorConfig],
        *,
        host: str,
        port: int,
        branch: str,
        initial: dict[str, float] | None = None,
        interval_s: float = 1.0,
        clock: Clock | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.sensors = list(sensors)
        self.host, self.port, self.branch = host, port, branch
        self.interval_s = interval_s
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.username, self.password = username, password
        self.signals: dict[str, Signal] = {
            s.id: Signal(v, v) for s, v in ((s, (initial or {}).get(s.id, _default(s))) for s in self.sensors)
        }
        self.silent: set[str] = set()  # sensors that stopped publishing (a dead sensor)
        self.published = 0
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._stopping = False
        self._stop_event = asyncio.Event()
        self._by_topic: dict[str, list[SensorConfig]] = {}
        for s in self.sensors:
            self._by_topic.setdefault(s.topic, []).append(s)

    # -- commands --------------------------------------------------------------------------------
    def set(self, sensor: str, value: float) -> None:
        """Step to ``value`` now."""
        self.signals[sensor] = Signal(value, value)

    def ramp(self, sensor: str, to: float, over_s: float) -> None:
        """Ramp linearly from the current value to ``to`` over ``over_s`` seconds."""
        now = self.clock.now()
        self.signals[sensor] = Signal(self.value(sensor), to, now, now + over_s)

    def value(self, sensor: str) -> float:
        return self.signals[sensor].at(self.clock.now())

    def values(self) -> dict[str, float]:
        return {sid: self.value(sid) for sid in self.signals if sid not in self.silent}

    # -- publishing ------------------------------------------------------------------------------
    async def publish_now(self, sensor: str | None = None, *, retain: bool = False) -> None:
        """Publish one round (or only the topic of ``sensor``) right away."""
        await self._connected.wait()
        assert self._client is not None
        values = self.values()
        topics = [next(s.topic for s in self.sensors if s.id == sensor)] if sensor else list(self._by_topic)
        for topic in topics:
            group = [s for s in self._by_topic[topic] if s.id in values]
            if not group:
                continue
            await self._client.publish(topic, payload_for(group, values), qos=max(s.qos for s in group), retain=retain)
            self.published += 1

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def stop(self) -> None:
        """End :meth:`run` (also when a cancellation was swallowed inside the MQTT client)."""
        self._stopping = True
        self._stop_event.set()

    async def run(self) -> None:
        """Connect (and reconnect), follow commands, publish every ``interval_s``, until :meth:`stop`."""
        while not self._stopping:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=f"lobbyd-sim-{self.branch}",
                    username=self.username,
                    password=self.password,
                ) as client:
                    self._client = client
                    await client.subscribe(f"sim/{self.branch}/sensor/+/set")
                    self._connected.set()
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._commands(client))
                        while not self._stopping:
                            await self.publish_now()
                            await self.clock.sleep(self.interval_s)
                        raise _Stopped
            except* _Stopped:
                pass  # the while condition ends the loop
            except* aiomqtt.MqttError as group:
                self._connected.clear()
                self._client = None
                _LOG.warning("sensor simulator: broker lost (%s); reconnecting", group.exceptions[0])
            if not self._stopping:
                await asyncio.sleep(0.2)  # reconnect pacing (simulator only)

    async def _commands(self, client: aiomqtt.Client) -> None:
        async for m in client.messages:
            sensor = str(m.topic).split("/")[-2]
            if sensor not in self.signals:
                continue
            try:
                cmd = json.loads(bytes(m.payload) if isinstance(m.payload, bytes | bytearray) else str(m.payload))
                if "ramp_to" in cmd:
                    self.ramp(sensor, float(cmd["ramp_to"]), float(cmd.get("over_s", 60)))
                else:
                    self.set(sensor, float(cmd["value"]))
            except (ValueError, KeyError, TypeError) as exc:
                _LOG.warning("bad simulator command on %s: %s", m.topic, exc)


class _Stopped(Exception):
    """Leaves the connection's task group when the simulator is stopped."""


def _default(s: SensorConfig) -> float:
    return {"temperature": 23.0, "humidity": 45.0, "pm25": 12.0, "illuminance": 300.0, "co2": 600.0}.get(
        str(s.quantity), 0.0
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m simulators.sensors --config config/lobbyd.yaml [--set hall-pm25=40]``."""
    from daemon.config import load_config

    p = argparse.ArgumentParser(prog="python -m simulators.sensors", description=__doc__)
    p.add_argument("--config", required=True)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--set", action="append", default=[], metavar="SENSOR=VALUE")
    args = p.parse_args(argv)
    loaded = load_config(args.config)
    initial = {k: float(v) for k, v in (item.split("=", 1) for item in args.set)}
    sim = SensorSimulator(
        loaded.config.sensors,
        host=loaded.config.mqtt.host,
        port=loaded.config.mqtt.port,
        branch=loaded.config.branch,
        initial=initial,
        interval_s=args.interval,
    )
    asyncio.run(sim.run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
