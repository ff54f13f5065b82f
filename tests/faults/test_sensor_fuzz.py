"""Issue 17: hostile sensor payloads through the real intake (:class:`drivers.mqtt.MessageDecoder`).

Hypothesis feeds 1 700 payloads (10 500 with ``LOBBYD_FUZZ=long``; deterministic: ``derandomize``) to
the decoder the daemon builds from the shipped config/lobbyd.yaml's sensors, plus sensors covering every
decoder type (plain, json with a path, zigbee2mqtt, tasmota and its ``StatusSNS`` wrapper) and every kind
of unit conversion: random bytes, invalid UTF-8, JSON with huge, negative, NaN and infinite numbers,
numbers as strings, duplicated keys, deep nesting, very long strings and numbers, unknown topics.
Nothing may raise; each payload gives finite, in-range readings of the sensors on its topic, or
rejections with a reason, all counted.
Decoding is bounded: a payload over the size limit is rejected before any parsing.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.config import load_config
from drivers.clock import VirtualClock
from drivers.mqtt import DEFAULT_MAX_BYTES, MessageDecoder, Rejected, RejectReason, SensorConfig
from drivers.mqtt.message import Message
from tests.e2e.harness import REPO
from tests.fuzzing import examples

TS = 1_780_475_400.0
SHIPPED = load_config(REPO / "config" / "lobbyd.yaml").config.sensors


def _sensor(sid: str, topic: str, quantity: str, decoder: dict[str, Any], **kw: Any) -> SensorConfig:
    data = {"id": sid, "topic": topic, "zone": "fuzz", "quantity": quantity, "decoder": decoder, **kw}
    return SensorConfig.model_validate(data)


EXTRA = [
    _sensor("j-path", "fuzz/json", "temperature", {"type": "json", "path": "a.b[0].c"}),
    _sensor("j-index", "fuzz/json", "humidity", {"type": "json", "path": "[1]"}),
    _sensor("j-co2-pct", "fuzz/json", "co2", {"type": "json", "path": "v"}, unit="%"),
    _sensor("z-temp", "fuzz/z2m", "temperature", {"type": "zigbee2mqtt"}),
    _sensor("z-klx", "fuzz/z2m", "illuminance", {"type": "zigbee2mqtt", "key": "illuminance_lux"}, unit="klx"),
    _sensor("z-frac", "fuzz/z2m", "humidity", {"type": "zigbee2mqtt"}, unit="fraction"),
    _sensor("t-temp", "fuzz/tasmota", "temperature", {"type": "tasmota", "sensor": "AM2301", "key": "Temperature"}),
    _sensor("t-pm-mg", "fuzz/tasmota", "pm25", {"type": "tasmota", "sensor": "SDS0X1", "key": "PM2.5"}, unit="mg/m³"),
    _sensor("t-lux", "fuzz/tasmota", "illuminance", {"type": "tasmota", "sensor": "BH1750", "key": "Illuminance"}),
    _sensor("p-kelvin", "fuzz/plain-k", "temperature", {"type": "plain"}, unit="K"),
    _sensor("p-fahr", "fuzz/plain-f", "temperature", {"type": "plain"}, unit="°F", plausible=(-10, 50)),
]
SENSORS = [*SHIPPED, *EXTRA]
BY_ID = {s.id: s for s in SENSORS}
TOPICS = sorted({s.topic for s in SENSORS})
KEYS = sorted(
    {"a", "b", "c", "v", "lux", "pm25", "temperature", "humidity", "illuminance_lux", "linkquality"}
    | {"AM2301", "Temperature", "SDS0X1", "PM2.5", "BH1750", "Illuminance", "TempUnit", "StatusSNS"}
)
DECODER = MessageDecoder(SENSORS, clock=VirtualClock(TS))
FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same cases on every run: CI stays deterministic
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def _check(topic: str, payload: bytes) -> tuple[int, list[Rejected]]:
    """Process one message; assert the intake's promises; return (readings, rejections)."""
    before = DECODER.counters.snapshot()
    readings, rejected = DECODER.process_message(Message(topic, payload, False, TS))
    on_topic = {s.id for s in SENSORS if s.topic == topic}
    for r in readings:
        assert r.sensor in on_topic, (topic, r)
        assert type(r.value) is float and math.isfinite(r.value), r
        lo, hi = BY_ID[r.sensor].plausible_range
        assert lo <= r.value <= hi, r
    for j in rejected:
        assert isinstance(j.reason, RejectReason)
        assert j.detail and len(j.detail) <= 200, j
    whole = [j for j in rejected if j.sensor is None]
    if whole:  # the payload as a whole: once, nothing else
        assert len(rejected) == 1 and readings == [], rejected
    else:  # each sensor on the topic once: a reading or a rejection
        assert sorted([r.sensor for r in readings] + [j.sensor or "" for j in rejected]) == sorted(on_topic)
    after = DECODER.counters.snapshot()
    assert after["accepted"] - before["accepted"] == len(readings)
    counted = sum(after[k] - before[k] for k in after if k != "accepted")
    assert counted == len(rejected)
    return len(readings), rejected


# -- strategies: cheap to draw, hostile where it matters ---------------------------------------------

long_digits = st.integers(0, 70_000).map(lambda n: "9" * n)
number_words = st.sampled_from(
    ["21.5", "-0", "1e308", "1e309", "-1e999", "1e-400", "nan", "NaN", "-Infinity", "inf", "1_000", "0x1A", "", " "]
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.integers(0, 4000).map(lambda n: -(10**n)),  # up to 4001 digits (Python's str limit is 4300)
    st.floats(),  # NaN and ±infinity included: json.dumps writes them as NaN / Infinity
    st.floats(-120, 1200),
    number_words,
    long_digits,
    st.text(max_size=8),
    st.sampled_from(["C", "F", "K"]),
)
documents = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=10,
)


def _object(pairs: list[tuple[str, Any]]) -> str:
    """A JSON object as text, duplicated keys kept (json.dumps of a dict cannot write them)."""
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"


def _nested(brackets: tuple[str, str], depth: int, core: str) -> str:
    return brackets[0] * depth + core + brackets[1] * depth


raw_json = st.one_of(
    st.lists(st.tuples(st.sampled_from(KEYS), leaves), max_size=6).map(_object),  # duplicated keys
    st.builds(  # deep nesting, up to 40 000 levels (the deepest fit under the size limit)
        _nested,
        st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"AM2301":', "}"), ('{"StatusSNS":', "}")]),
        st.integers(1, 40_000),
        st.sampled_from(["1", "21.5", "[]", "{}", "null"]),
    ),
    st.builds(lambda k, n: f'{{"{k}": {"1" * n}}}', st.sampled_from(KEYS), st.integers(1, 70_000)),  # huge ints
    st.builds(lambda k, e: f'{{"{k}": 1e{e}}}', st.sampled_from(KEYS), st.integers(-(10**6), 10**6)),
    st.builds(lambda k, w: f'{{"{k}": {w}}}', st.sampled_from(KEYS), st.sampled_from(["NaN", "-Infinity", "Infinity"])),
    st.builds(lambda d: "\ufeff" + json.dumps(d), documents),  # a byte-order mark
    st.builds(lambda d: json.dumps(d).replace('"', "'"), documents),  # single quotes
    st.builds(lambda d, cut: json.dumps(d)[:cut], documents, st.integers(0, 40)),  # truncated
)


# The edges every run covers, whatever the number of generated cases: NaN, infinities, huge and
# negative numbers, empty and malformed payloads, on a plain, a JSON and a zigbee2mqtt topic.
EDGES = [b"", b" ", b"NaN", b"nan", b"inf", b"-Infinity", b"1e999", b"-1e999", b"9" * 400, b"-40000", b"1..2", b"\xff"]
EDGES += [b'{"temperature": NaN}', b'{"humidity": Infinity}', b'{"temperature": 1e999}', b"{}", b"[]", b"{"]
EDGES += [b'{"temperature": ' + b"9" * 400 + b"}", b'{"temperature": -1e308}', b'{"humidity": "50"}']
EDGE_TOPICS = ["sensors/demo-001/hall/pm25", "zigbee2mqtt/demo-001/hall-climate", "fuzz/json", "fuzz/plain-f"]


def test_edge_payloads_on_every_decoder() -> None:
    assert set(EDGE_TOPICS) <= set(TOPICS)
    for topic in EDGE_TOPICS:
        for payload in EDGES:
            _check(topic, payload)


@settings(FUZZ, max_examples=examples(3500, 500))
@given(st.sampled_from(TOPICS), st.binary(max_size=512))
def test_fuzz_random_bytes(topic: str, payload: bytes) -> None:
    _check(topic, payload)


@settings(FUZZ, max_examples=examples(2500, 400))
@given(st.sampled_from(TOPICS), documents)
def test_fuzz_json_documents(topic: str, doc: Any) -> None:
    _check(topic, json.dumps(doc).encode())


@settings(FUZZ, max_examples=examples(2500, 400))
@given(st.sampled_from(TOPICS), raw_json, st.sampled_from([b"", b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]))
def test_fuzz_hostile_json_text(topic: str, text: str, junk: bytes) -> None:
    data = text.encode("utf-8", "surrogatepass")
    _check(topic, data)
    if junk:  # invalid UTF-8 inside or after the document (a lone surrogate encoded, a cut sequence)
        _, rejected = _check(topic, data[: len(data) // 2] + junk + data[len(data) // 2 :])
        assert [j.reason for j in rejected] == [RejectReason.NOT_UTF8] or len(data) + len(junk) > DEFAULT_MAX_BYTES


plain_text = st.text(alphabet=st.sampled_from("0123456789.+-eE_ \t\ninfatyINFATY٣\u00a0,x"), max_size=40)


@settings(FUZZ, max_examples=examples(1500, 250))
@given(
    st.sampled_from([s.topic for s in SENSORS if s.decoder.type == "plain"]), plain_text | number_words | long_digits
)
def test_fuzz_plain_numbers(topic: str, text: str) -> None:
    _check(topic, text.encode())


@settings(FUZZ, max_examples=examples(500, 150))
@given(st.text(min_size=1, max_size=60), st.binary(max_size=16))
def test_fuzz_unknown_topics(topic: str, payload: bytes) -> None:
    readings, rejected = _check(topic if topic not in TOPICS else topic + "/x", payload)
    assert readings == 0 and [j.reason for j in rejected] == [RejectReason.UNKNOWN_TOPIC]


def test_invented_topics_log_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock(TS)
    intake = MessageDecoder(SENSORS, clock=clock, log_interval_s=60)
    with caplog.at_level(logging.WARNING, logger="lobbyd.mqtt.intake"):
        for i in range(1000):  # e.g. under a collapsed "+" subscription
            intake.process(f"sensors/demo-001/x{i}\nrejected forged line", b"1", ts=clock.now(), retained=False)
        clock.set(TS + 61)
        intake.process("sensors/demo-001/" + "y" * 5000, b"1", ts=clock.now(), retained=False)
    assert intake.counters.snapshot()["unknown_topic"] == 1001  # every one counted
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines[:3]
    assert "\n" not in lines[0] and "x0\\nrejected forged line" in lines[0]  # quoted: no forged log line
    assert lines[1].endswith("(and 999 more like it in the last 61s)") and len(lines[1]) < 300


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 40_000 + b"]" * 40_000,  # nesting over the limit: rejected for its size, never parsed
        b"[" * 10_000_000,
        b'{"lux": ' + b"1" * 10_000_000 + b"}",
    ],
    ids=["deep-80KB", "brackets-10MB", "digits-10MB"],
)
def test_payloads_over_the_size_limit_are_not_parsed(payload: bytes) -> None:
    t0 = time.perf_counter()
    _, rejected = _check("sensors/demo-001/hall/lux", payload)
    elapsed = time.perf_counter() - t0
    assert [j.reason for j in rejected] == [RejectReason.OVERSIZE], rejected
    assert elapsed < 0.05, elapsed


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 32_000 + b"]" * 32_000,  # the deepest nesting that fits: Python's recursion limit, caught
        b'{"lux": ' + b"1" * (DEFAULT_MAX_BYTES - 9) + b"}",  # more digits than int() converts
        b'{"lux": "' + b"9" * (DEFAULT_MAX_BYTES - 11) + b'"}',  # a number as a 64 KB string: infinite
        b'{"lux": 1e' + b"9" * (DEFAULT_MAX_BYTES - 11) + b"}",
    ],
    ids=["deep-64KB", "int-digits", "numeric-string", "exponent"],
)
def test_the_worst_payload_under_the_limit_is_rejected_quickly(payload: bytes) -> None:
    assert len(payload) <= DEFAULT_MAX_BYTES
    t0 = time.perf_counter()
    readings, rejected = _check("sensors/demo-001/hall/lux", payload)
    elapsed = time.perf_counter() - t0
    assert readings == 0 and len(rejected) == 1, rejected
    assert rejected[0].reason in (RejectReason.NOT_JSON, RejectReason.INFINITE), rejected
    assert elapsed < 0.25, elapsed  # bounded work on the event loop (a few ms in practice)
