"""Helpers for the time-series tests: publish known readings, read them back from influxd or VictoriaMetrics.

Readings are published by the test itself (not the harness's periodic sensor simulator, which the
tests silence), each with a value that identifies it, so "every point exactly once" is checked
point by point: the multiset of values per sensor read back must equal the multiset published.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiomqtt

from drivers.mqtt.config import SensorConfig
from simulators.sensors import payload_for
from simulators.servers import InfluxServer, VictoriaMetricsServer

__all__ = ["KnownPublisher", "influx_query", "influx_readings", "vm_readings"]


class KnownPublisher:
    """Publishes rounds of readings with distinct, recognisable values; remembers what it sent."""

    def __init__(self, sensors: Sequence[SensorConfig], client: aiomqtt.Client) -> None:
        self.sensors = list(sensors)
        self.client = client
        self.sent: dict[str, list[float]] = {s.id: [] for s in self.sensors}
        self._n = 0
        self._by_topic: dict[str, list[SensorConfig]] = {}
        for s in self.sensors:
            self._by_topic.setdefault(s.topic, []).append(s)

    @property
    def readings(self) -> int:
        return sum(len(v) for v in self.sent.values())

    def _value(self, s: SensorConfig) -> float:
        base = {"temperature": 23.0, "humidity": 45.0, "pm25": 12.0, "illuminance": 300.0}.get(str(s.quantity), 10.0)
        return round(base + self._n * 0.01, 2)  # unique per round, plausible for every quantity

    async def round(self) -> None:
        """One message per topic, carrying every sensor of that topic."""
        self._n += 1
        for topic, group in self._by_topic.items():
            values = {s.id: self._value(s) for s in group}
            await self.client.publish(topic, payload_for(group, values), qos=1)
            for sid, v in values.items():
                self.sent[sid].append(v)


def influx_query(idb: InfluxServer, q: str, *, db: str = "lobbyd", epoch: str = "ms") -> dict[str, Any]:
    """POST one InfluxQL query the way Grafana does (``db``, ``q``, ``epoch``); the first result."""
    data = urllib.parse.urlencode({"q": q, "db": db, "epoch": epoch}).encode()
    req = urllib.request.Request(f"{idb.url}/query", data=data, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    result: dict[str, Any] = answer["results"][0]
    if "error" in result:
        raise AssertionError(f"{q}: {result['error']}")
    return result


def influx_readings(idb: InfluxServer) -> dict[str, list[tuple[int, float]]]:
    """Every ``reading`` point as (ns timestamp, value), by sensor."""
    res = influx_query(idb, 'SELECT "value" FROM "reading" GROUP BY "sensor"', epoch="ns")
    return {s["tags"]["sensor"]: [(int(t), float(v)) for t, v in s["values"]] for s in res.get("series", [])}


def vm_readings(vm: VictoriaMetricsServer, *, min_rows: int) -> dict[str, list[tuple[int, float]]]:
    """Every raw ``reading_value`` sample VictoriaMetrics stored, as (ms timestamp, value), by sensor."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in vm.export('{__name__="reading_value"}', min_rows=min_rows):
        metric: Mapping[str, str] = row["metric"]  # type: ignore[assignment]
        values: Iterable[float] = row["values"]  # type: ignore[assignment]
        stamps: Iterable[int] = row["timestamps"]  # type: ignore[assignment]
        out.setdefault(metric["sensor"], []).extend(zip(stamps, values, strict=True))
    return out


def multiset(values: Iterable[float]) -> Counter[float]:
    return Counter(round(v, 6) for v in values)
