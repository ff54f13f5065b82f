"""Decoders: real-world payload shapes, unit conversion, shared topics, every reject reason, fuzz."""

from __future__ import annotations

import json
import math
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.model import MEASURED, Quantity
from drivers.clock import VirtualClock
from drivers.mqtt import (
    DEFAULT_PLAUSIBLE,
    MessageDecoder,
    RejectReason,
    SensorConfig,
    TopicRouter,
    decode,
)

TS = 1_700_000_000.0


def sensor(decoder: dict[str, Any], quantity: str = "temperature", **kw: Any) -> SensorConfig:
    base: dict[str, Any] = {"id": kw.pop("id", "s1"), "topic": kw.pop("topic", "t/x"), "zone": "hall"}
    return SensorConfig.model_validate({**base, "quantity": quantity, "decoder": decoder, **kw})


PLAIN = {"type": "plain"}
Z2M_WEATHER = (
    b'{"battery":97,"humidity":41.23,"linkquality":134,"pressure":1012.4,'
    b'"temperature":22.51,"voltage":2985,"update":{"state":"idle"}}'
)
Z2M_AIR = b'{"pm25":12,"voc_index":103,"air_quality":"good","linkquality":90}'
Z2M_LUX = b'{"illuminance":412,"illuminance_lux":412,"occupancy":false,"battery":100}'
TASMOTA = (
    b'{"Time":"2024-03-04T10:11:12","SDS0X1":{"PM2.5":8.7,"PM10":14.2},'
    b'"AM2301":{"Temperature":71.6,"Humidity":44.0,"DewPoint":48.2},"TempUnit":"F"}'
)
TASMOTA_STATUS10 = b'{"StatusSNS":{"Time":"2024-03-04T10:11:12","BH1750":{"Illuminance":351},"TempUnit":"C"}}'

# (decoder, quantity, extra config, payload, expected value)
ACCEPTED: list[tuple[dict[str, Any], str, dict[str, Any], bytes, float]] = [
    (PLAIN, "temperature", {}, b"21.5", 21.5),
    (PLAIN, "temperature", {}, b"  -3.25e0\n", -3.25),
    (PLAIN, "pm25", {}, b"7", 7.0),
    (PLAIN, "temperature", {"unit": "°F"}, b"98.6", 37.0),
    (PLAIN, "temperature", {"unit": "K"}, b"293.15", 20.0),
    (PLAIN, "illuminance", {"unit": "klx"}, b"1.5", 1500.0),
    (PLAIN, "pm25", {"unit": "mg/m³"}, b"0.035", 35.0),
    (PLAIN, "humidity", {"unit": "fraction"}, b"0.41", 41.0),
    ({"type": "json", "path": "value"}, "co2", {}, b'{"value": 612}', 612.0),
    ({"type": "json", "path": "a.b[1].c"}, "temperature", {}, b'{"a":{"b":[{},{"c":19.75}]}}', 19.75),
    ({"type": "json", "path": "[0]"}, "humidity", {}, b"[55.5, 1]", 55.5),
    ({"type": "json", "path": "t"}, "temperature", {}, b'{"t": "23.0"}', 23.0),  # numeric string
    ({"type": "zigbee2mqtt"}, "temperature", {}, Z2M_WEATHER, 22.51),
    ({"type": "zigbee2mqtt"}, "humidity", {}, Z2M_WEATHER, 41.23),
    ({"type": "zigbee2mqtt", "key": "pm25"}, "pm25", {}, Z2M_AIR, 12.0),
    ({"type": "zigbee2mqtt", "key": "illuminance_lux"}, "illuminance", {}, Z2M_LUX, 412.0),
    ({"type": "tasmota", "sensor": "SDS0X1", "key": "PM2.5"}, "pm25", {}, TASMOTA, 8.7),
    ({"type": "tasmota", "sensor": "AM2301", "key": "Temperature"}, "temperature", {}, TASMOTA, 22.0),
    ({"type": "tasmota", "sensor": "AM2301", "key": "Humidity"}, "humidity", {}, TASMOTA, 44.0),
    ({"type": "tasmota", "sensor": "BH1750", "key": "Illuminance"}, "illuminance", {}, TASMOTA_STATUS10, 351.0),
]


@pytest.mark.parametrize(("dec", "quantity", "extra", "payload", "expected"), ACCEPTED)
def test_accepted(dec: dict[str, Any], quantity: str, extra: dict[str, Any], payload: bytes, expected: float) -> None:
    s = sensor(dec, quantity, **extra)
    readings, rejected = decode([s], payload, ts=TS, retained=False)
    assert rejected == []
    assert len(readings) == 1
    r = readings[0]
    assert r.value == pytest.approx(expected, abs=1e-9)
    assert (r.sensor, r.quantity, r.ts, r.zone, r.retained) == ("s1", Quantity(quantity), TS, "hall", False)


def test_several_quantities_on_one_topic_decode_once_each() -> None:
    topic = "tele/lobby-air/SENSOR"
    sensors = [
        sensor({"type": "tasmota", "sensor": "SDS0X1", "key": "PM2.5"}, "pm25", id="pm", topic=topic),
        sensor({"type": "tasmota", "sensor": "AM2301", "key": "Temperature"}, "temperature", id="t", topic=topic),
        sensor({"type": "tasmota", "sensor": "AM2301", "key": "Humidity"}, "humidity", id="h", topic=topic),
        sensor({"type": "tasmota", "sensor": "SCD30", "key": "CarbonDioxide"}, "co2", id="co2", topic=topic),
    ]
    readings, rejected = decode(sensors, TASMOTA, ts=TS, retained=True)
    assert [(r.sensor, round(r.value, 6), r.retained) for r in readings] == [
        ("pm", 8.7, True),
        ("t", 22.0, True),
        ("h", 44.0, True),
    ]
    assert [(r.sensor, r.reason, r.topic) for r in rejected] == [("co2", RejectReason.MISSING_FIELD, topic)]


def test_declared_unit_overrides_tasmota_tempunit() -> None:
    s = sensor({"type": "tasmota", "sensor": "DS18B20", "key": "Temperature"}, unit="°C")
    readings, _ = decode([s], b'{"DS18B20":{"Temperature":21.0},"TempUnit":"F"}', ts=TS, retained=False)
    assert readings[0].value == 21.0


Z = {"type": "zigbee2mqtt", "key": "pm25"}
J = {"type": "json", "path": "a[0]"}
# (decoder, quantity, payload, reason, per-sensor?)
REJECTED: list[tuple[dict[str, Any], str, bytes, RejectReason, bool]] = [
    (PLAIN, "pm25", b"\xff\xfe12", RejectReason.NOT_UTF8, False),
    (PLAIN, "pm25", b"1" * (64 * 1024 + 1), RejectReason.OVERSIZE, False),
    (Z, "pm25", b"{not json", RejectReason.NOT_JSON, False),
    (Z, "pm25", b"[" * 60_000, RejectReason.NOT_JSON, False),  # deep nesting: RecursionError
    (Z, "pm25", b"9" * 5000, RejectReason.NOT_JSON, False),  # int digit limit
    (Z, "pm25", b'{"pm10": 3}', RejectReason.MISSING_FIELD, True),
    (J, "pm25", b'{"a": []}', RejectReason.MISSING_FIELD, True),
    (J, "pm25", b'{"a": {"0": 1}}', RejectReason.WRONG_TYPE, True),
    (Z, "pm25", b"[1, 2]", RejectReason.WRONG_TYPE, True),
    (Z, "pm25", b'{"pm25": "high"}', RejectReason.WRONG_TYPE, True),
    (Z, "pm25", b'{"pm25": true}', RejectReason.WRONG_TYPE, True),
    (Z, "pm25", b'{"pm25": {"v": 1}}', RejectReason.WRONG_TYPE, True),
    (PLAIN, "pm25", b"ON", RejectReason.WRONG_TYPE, True),
    (PLAIN, "pm25", b"1_000", RejectReason.WRONG_TYPE, True),
    (PLAIN, "pm25", b"", RejectReason.WRONG_TYPE, True),
    (Z, "pm25", b'{"pm25": null}', RejectReason.NULL, True),
    (Z, "pm25", b'{"pm25": NaN}', RejectReason.NAN, True),
    (PLAIN, "pm25", b"nan", RejectReason.NAN, True),
    (Z, "pm25", b'{"pm25": Infinity}', RejectReason.INFINITE, True),
    (Z, "pm25", b'{"pm25": 1e400}', RejectReason.INFINITE, True),
    (Z, "pm25", b'{"pm25": "-inf"}', RejectReason.INFINITE, True),
    (Z, "pm25", b'{"pm25": -1}', RejectReason.IMPLAUSIBLE, True),
    (Z, "pm25", b'{"pm25": 1000.5}', RejectReason.IMPLAUSIBLE, True),
    (PLAIN, "humidity", b"100.01", RejectReason.IMPLAUSIBLE, True),
    (PLAIN, "temperature", b"-40.5", RejectReason.IMPLAUSIBLE, True),
]


@pytest.mark.parametrize(("dec", "quantity", "payload", "reason", "per_sensor"), REJECTED)
def test_rejected(dec: dict[str, Any], quantity: str, payload: bytes, reason: RejectReason, per_sensor: bool) -> None:
    s = sensor(dec, quantity)
    readings, rejected = decode([s], payload, ts=TS, retained=False)
    assert readings == []
    assert [(r.reason, r.sensor, r.topic, r.ts) for r in rejected] == [
        (reason, "s1" if per_sensor else None, "t/x", TS)
    ]


def test_declared_plausible_range_and_conversion_before_the_check() -> None:
    s = sensor(PLAIN, "temperature", unit="°F", plausible=(10, 30))
    assert decode([s], b"50", ts=TS, retained=False)[0][0].value == pytest.approx(10.0)
    (rej,) = decode([s], b"49", ts=TS, retained=False)[1]
    assert rej.reason is RejectReason.IMPLAUSIBLE
    assert "from 49 °F" in rej.detail


def test_oversize_limit_is_configurable() -> None:
    s = sensor(PLAIN)
    assert decode([s], b"21", ts=TS, retained=False, max_bytes=1)[1][0].reason is RejectReason.OVERSIZE
    assert decode([s], b"21", ts=TS, retained=False, max_bytes=2)[0][0].value == 21.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"unit": "°F", "quantity": "pm25"}, "does not fit pm25"),
        ({"plausible": (5, 5)}, "needs min < max"),
        ({"decoder": {"type": "json", "path": "a..b"}}, "empty key"),
        ({"decoder": {"type": "xml"}}, "does not match any of the expected tags"),
        ({"decoder": {"type": "plain", "path": "x"}}, "Extra inputs are not permitted"),
        ({"topic": "sensors/+/temp"}, "wildcards are computed"),
        ({"qos": 3}, "Input should be 0, 1 or 2"),
        ({"stale_after_s": 0}, "greater than 0"),
    ],
)
def test_config_errors(change: dict[str, Any], message: str) -> None:
    data: dict[str, Any] = {"id": "s", "topic": "a/b", "zone": "z", "quantity": "temperature", "decoder": PLAIN}
    with pytest.raises(pydantic.ValidationError, match=message):
        SensorConfig.model_validate({**data, **change})


def test_router_subscriptions_and_unknown_topic() -> None:
    sensors = [
        sensor(PLAIN, id="a", topic="lobby/a/temp", qos=0),
        sensor(PLAIN, "humidity", id="a2", topic="lobby/a/temp", qos=1),
        sensor(PLAIN, id="b", topic="lobby/b/temp", qos=0),
        *[sensor(Z, "pm25", id=f"z{i}", topic=f"zigbee2mqtt/air{i}") for i in range(3)],
    ]
    assert TopicRouter(sensors).subscriptions() == [
        ("lobby/a/temp", 1),
        ("lobby/b/temp", 0),
        ("zigbee2mqtt/air0", 1),  # QoS 1 unless a sensor asks for less
        ("zigbee2mqtt/air1", 1),
        ("zigbee2mqtt/air2", 1),
    ]
    assert TopicRouter(sensors, collapse_at=2).subscriptions() == [
        ("lobby/a/temp", 1),
        ("lobby/b/temp", 0),
        ("zigbee2mqtt/+", 1),
    ]
    assert [s.id for s in TopicRouter(sensors).route("lobby/a/temp")] == ["a", "a2"]
    intake = MessageDecoder(sensors, clock=VirtualClock(TS))
    readings, rejected = intake.process("zigbee2mqtt/bridge", b"{}", ts=TS, retained=False)
    assert readings == []
    assert [r.reason for r in rejected] == [RejectReason.UNKNOWN_TOPIC]


def test_intake_counts_and_rate_limits_logging(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock(TS)
    intake = MessageDecoder([sensor(PLAIN, "pm25", topic="p")], clock=clock, log_interval_s=60)
    with caplog.at_level("WARNING", logger="lobbyd.mqtt.intake"):
        for _ in range(10):
            intake.process("p", b"oops", ts=clock.now(), retained=False)
        intake.process("p", b"12", ts=clock.now(), retained=False)
        intake.process("q", b"12", ts=clock.now(), retained=False)
        clock.set(clock.now() + 61)
        intake.process("p", b"oops", ts=clock.now(), retained=False)
    snap = intake.counters.snapshot()
    assert snap["accepted"] == 1
    assert snap["wrong_type"] == 11
    assert snap["unknown_topic"] == 1
    assert intake.counters.rejected_total == 12
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3  # first wrong_type, first unknown_topic, then the summary after 61 s
    assert lines[2].endswith("(and 9 more like it in the last 61s)")


# -- fuzz ---------------------------------------------------------------------------------------

DECODERS: list[tuple[dict[str, Any], str]] = [
    (PLAIN, "temperature"),
    ({"type": "json", "path": "a.b[0]"}, "humidity"),
    ({"type": "json", "path": "v"}, "co2"),
    ({"type": "zigbee2mqtt"}, "pm25"),
    ({"type": "zigbee2mqtt", "key": "illuminance_lux"}, "illuminance"),
    ({"type": "tasmota", "sensor": "AM2301", "key": "Temperature"}, "temperature"),
]
FUZZ_SENSORS = [sensor(d, q, id=f"f{i}", topic="fuzz") for i, (d, q) in enumerate(DECODERS)]
FUZZ_SENSORS.append(sensor(PLAIN, "temperature", id="fF", topic="fuzz", unit="°F"))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["21.5", "nan", "-Infinity", "1e999"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["a", "b", "v", "pm25", "illuminance_lux", "AM2301", "Temperature", "TempUnit", "StatusSNS"]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


def _check(payload: bytes) -> None:
    readings, rejected = decode(FUZZ_SENSORS, payload, ts=TS, retained=False)
    by_id = {s.id: s for s in FUZZ_SENSORS}
    for r in readings:
        lo, hi = by_id[r.sensor].plausible_range
        assert math.isfinite(r.value)
        assert lo <= r.value <= hi
    for j in rejected:
        assert isinstance(j.reason, RejectReason)
    # each sensor is accounted for exactly once, or the payload is rejected once as a whole
    whole = [j for j in rejected if j.sensor is None]
    if whole:
        assert len(rejected) == 1
        assert readings == []
    else:
        assert sorted([r.sensor for r in readings] + [j.sensor or "" for j in rejected]) == sorted(by_id)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(payload: bytes) -> None:
    _check(payload)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_fuzz_arbitrary_json(value: Any) -> None:
    _check(json.dumps(value).encode())


def test_default_ranges_cover_every_quantity() -> None:
    assert set(DEFAULT_PLAUSIBLE) == set(MEASURED)


# -- payloads as real installations send them (issue 18, finding 8) ------------------------------

# A Philips Hue motion sensor (SML001) through Zigbee2MQTT 1.x: ``illuminance`` is the raw Zigbee
# value (10000·log10(lx) + 1), ``illuminance_lux`` the lux the sensor saw.
Z2M_HUE_MOTION = (
    b'{"battery":100,"illuminance":17077,"illuminance_lux":51,"led_indication":false,'
    b'"linkquality":87,"motion_sensitivity":"medium","occupancy":true,"occupancy_timeout":30,'
    b'"temperature":21.78,"update":{"state":"idle"}}'
)


def test_zigbee2mqtt_illuminance_prefers_lux_over_the_raw_value() -> None:
    s = sensor({"type": "zigbee2mqtt"}, "illuminance")
    readings, rejected = decode([s], Z2M_HUE_MOTION, ts=TS, retained=False)
    assert rejected == []
    assert [r.value for r in readings] == [51.0]
    # Zigbee2MQTT 2.x sends only ``illuminance``, already in lx: still read
    assert decode([s], b'{"illuminance":51,"occupancy":true}', ts=TS, retained=False)[0][0].value == 51.0
    # a key named in the config is taken as it is, even the raw one
    raw = sensor({"type": "zigbee2mqtt", "key": "illuminance"}, "illuminance")
    assert decode([raw], Z2M_HUE_MOTION, ts=TS, retained=False)[0][0].value == 17077.0


@pytest.mark.parametrize(
    ("dec", "payload", "key"),
    [
        ({"type": "zigbee2mqtt"}, b'{"temperature": 21.5, "humidity": 40, "temperature": 99}', "temperature"),
        ({"type": "json", "path": "a.v"}, b'{"a": {"v": 1, "v": 2}}', "v"),
        ({"type": "json", "path": "x"}, b'{"x": 1, "y": {"z": 1, "z": 1}}', "z"),  # anywhere, same value too
        ({"type": "tasmota", "sensor": "AM2301", "key": "Temperature"},
         b'{"AM2301": {"Temperature": 20}, "AM2301": {"Temperature": 30}}', "AM2301"),
    ],
)  # fmt: skip
def test_duplicate_json_keys_reject_the_payload(dec: dict[str, Any], payload: bytes, key: str) -> None:
    s = sensor(dec, "temperature")
    readings, rejected = decode([s], payload, ts=TS, retained=False)
    assert readings == []
    assert [(r.reason, r.sensor) for r in rejected] == [(RejectReason.DUPLICATE_KEY, None)]
    assert repr(key) in rejected[0].detail


def test_duplicate_keys_are_counted_and_logged_once_per_topic(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock(TS)
    sensors = [sensor({"type": "zigbee2mqtt"}, id=f"s{i}", topic=f"z/{i}") for i in range(2)]
    intake = MessageDecoder(sensors, clock=clock, log_interval_s=60)
    with caplog.at_level("WARNING", logger="lobbyd.mqtt.intake"):
        for _ in range(1000):
            for i in range(2):
                intake.process(f"z/{i}", b'{"temperature": 1, "temperature": 2}', ts=clock.now(), retained=False)
    assert intake.counters.snapshot()["duplicate_key"] == 2000
    assert intake.counters.snapshot()["accepted"] == 0
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "rejected duplicate_key on z/0: key 'temperature' appears twice in one object",
        "rejected duplicate_key on z/1: key 'temperature' appears twice in one object",
    ]
