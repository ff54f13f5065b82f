"""A reading's time taken from its payload (a decoder's ``time:``): formats, the window, the two clocks."""

from __future__ import annotations

import json
import logging
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.clock import SteadyClock, VirtualClock
from drivers.mqtt import TIME_REASONS, MessageDecoder, RejectReason, SensorConfig, decode

TS = 1_700_000_000.0  # 2023-11-14T22:13:20Z, the time of receipt in these tests


def sensor(time: dict[str, Any] | None, decoder: dict[str, Any] | None = None, **kw: Any) -> SensorConfig:
    dec = {**(decoder or {"type": "json", "path": "v"}), **({"time": time} if time is not None else {})}
    return SensorConfig.model_validate(
        {"id": "s1", "topic": kw.pop("topic", "t/x"), "zone": "hall", "quantity": "temperature", "decoder": dec, **kw}
    )


# (format, stated time in the payload, seconds before receipt it means)
STATED: list[tuple[str, Any, float]] = [
    ("s", 1_699_999_990, 10.0),
    ("s", 1_699_999_990.25, 9.75),
    ("s", "1699999990", 10.0),  # a number as text
    ("ms", 1_699_999_998_500, 1.5),
    ("us", 1_699_999_999_000_000, 1.0),
    ("ns", 1_699_999_940_000_000_000, 60.0),
    ("iso8601", "2023-11-14T22:13:00Z", 20.0),
    ("iso8601", "2023-11-14T22:13:19.5+00:00", 0.5),
    ("iso8601", "2023-11-15T00:13:10+02:00", 10.0),
    ("iso8601", "20231114T221310Z", 10.0),  # the basic format
    ("iso8601", "2023-11-14T22:18:20Z", 0.0),  # the sensor's clock 300 s ahead: inside the window, receipt
    ("ms", 1_700_000_000_001, 0.0),  # never fresher than its arrival
]


@pytest.mark.parametrize(("fmt", "stated", "before"), STATED)
def test_the_payload_time_stamps_the_reading(fmt: str, stated: Any, before: float) -> None:
    s = sensor({"path": "meta.at", "format": fmt})
    readings, rejected = decode([s], f'{{"v": 21.5, "meta": {{"at": {stated!r}}}}}'.replace("'", '"').encode(),
                                ts=TS, retained=False)  # fmt: skip
    assert rejected == []
    (r,) = readings
    assert r.value == 21.5
    assert r.ts == pytest.approx(TS - before, abs=1e-6)


def test_a_time_without_offset_is_read_in_the_named_zone() -> None:
    # Tasmota's telemetry: local time without offset, e.g. in Zurich (UTC+1 in November)
    tasmota = {"type": "tasmota", "sensor": "AM2301", "key": "Temperature"}
    payload = b'{"StatusSNS": {"Time": "2023-11-14T23:13:05", "AM2301": {"Temperature": 20.5}, "TempUnit": "C"}}'
    s = sensor({"path": "Time", "format": "iso8601", "timezone": "Europe/Zurich"}, tasmota)
    readings, rejected = decode([s], payload, ts=TS, retained=False)
    assert (rejected, [r.ts for r in readings]) == ([], [TS - 15])
    unzoned = sensor({"path": "Time", "format": "iso8601"}, tasmota)
    readings, rejected = decode([unzoned], payload, ts=TS, retained=False)
    assert [r.ts for r in readings] == [TS]  # not used: no zone to read it in
    assert [(r.reason, r.sensor) for r in rejected] == [(RejectReason.TIME_UNPARSEABLE, "s1")]
    assert "no UTC offset" in rejected[0].detail


UNUSABLE: list[tuple[str, bytes, RejectReason]] = [
    ("s", b'{"v": 1, "at": 1699996400}', RejectReason.TIME_OUTSIDE_WINDOW),  # an hour old
    ("s", b'{"v": 1, "at": 1700000301}', RejectReason.TIME_OUTSIDE_WINDOW),  # just past the window ahead
    ("ms", b'{"v": 1, "at": 1700000000}', RejectReason.TIME_OUTSIDE_WINDOW),  # seconds sent, ms configured
    ("s", b'{"v": 1, "at": 1700000000000000000}', RejectReason.TIME_OUTSIDE_WINDOW),  # ns sent, s configured
    ("s", b'{"v": 1, "at": -1e308}', RejectReason.TIME_OUTSIDE_WINDOW),
    ("s", b'{"v": 1, "at": 0}', RejectReason.TIME_OUTSIDE_WINDOW),
    ("s", b'{"v": 1}', RejectReason.TIME_UNPARSEABLE),
    ("s", b'{"v": 1, "at": null}', RejectReason.TIME_UNPARSEABLE),
    ("s", b'{"v": 1, "at": true}', RejectReason.TIME_UNPARSEABLE),
    ("s", b'{"v": 1, "at": "yesterday"}', RejectReason.TIME_UNPARSEABLE),
    ("s", b'{"v": 1, "at": NaN}', RejectReason.TIME_UNPARSEABLE),
    ("s", b'{"v": 1, "at": 1e999}', RejectReason.TIME_UNPARSEABLE),
    ("s", b'{"v": 1, "at": [1700000000]}', RejectReason.TIME_UNPARSEABLE),
    ("iso8601", b'{"v": 1, "at": 1700000000}', RejectReason.TIME_UNPARSEABLE),
    ("iso8601", b'{"v": 1, "at": "2023-13-45T99:00:00Z"}', RejectReason.TIME_UNPARSEABLE),
    ("iso8601", b'{"v": 1, "at": ""}', RejectReason.TIME_UNPARSEABLE),
    ("iso8601", b'{"v": 1, "at": "9999-12-31T23:59:59+00:00"}', RejectReason.TIME_OUTSIDE_WINDOW),
    ("iso8601", b'{"v": 1, "at": "0001-01-01T00:00:00+14:00"}', RejectReason.TIME_OUTSIDE_WINDOW),
]


@pytest.mark.parametrize(("fmt", "payload", "reason"), UNUSABLE)
def test_an_unusable_time_keeps_the_reading_stamped_on_receipt(fmt: str, payload: bytes, reason: RejectReason) -> None:
    s = sensor({"path": "at", "format": fmt})
    readings, rejected = decode([s], payload, ts=TS, retained=False)
    assert [(r.value, r.ts) for r in readings] == [(1.0, TS)]
    assert [(r.reason, r.sensor, r.ts) for r in rejected] == [(reason, "s1", TS)]


def test_the_window_is_configured() -> None:
    payload = b'{"v": 1, "at": 1699999000}'  # 1000 s old
    assert decode([sensor({"path": "at", "format": "s", "window_s": 1000})], payload, ts=TS, retained=False)[0][
        0
    ].ts == (TS - 1000)
    assert (
        decode([sensor({"path": "at", "format": "s", "window_s": 999})], payload, ts=TS, retained=False)[0][0].ts == TS
    )


def test_a_payload_time_is_wall_time_and_lands_on_the_steady_line(caplog: pytest.LogCaptureFixture) -> None:
    """The daemon's wall clock was stepped an hour forward (NTP after a reset RTC): its steady line did not
    move. A sensor stating a time 5 s before receipt on the (now right) wall clock gets a reading 5 s before
    receipt on the steady line, and the time series, converting back, records the sensor's own time."""
    vc = VirtualClock(TS)
    clock = SteadyClock(vc)
    vc.step_wall(3600)
    intake = MessageDecoder([sensor({"path": "at", "format": "s"}, topic="t")], clock=clock)
    stated = clock.wall() - 5
    (r,), rejected = intake.process("t", f'{{"v": 2, "at": {stated!r}}}'.encode(), ts=clock.now(), retained=False)
    assert rejected == []
    assert r.ts == pytest.approx(clock.now() - 5)  # staleness and timers measure from here, on the steady line
    assert clock.to_wall(r.ts) == pytest.approx(stated)  # what the time series records
    # the same message compared with the steady line's receipt would have fallen outside the window
    (r,), rejected = intake.process("t", f'{{"v": 2, "at": {TS - 5!r}}}'.encode(), ts=clock.now(), retained=False)
    assert r.ts == clock.now() and [j.reason for j in rejected] == [RejectReason.TIME_OUTSIDE_WINDOW]


def test_unusable_times_are_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    vc = VirtualClock(TS)
    intake = MessageDecoder([sensor({"path": "at", "format": "ms"}, topic="t")], clock=vc, log_interval_s=60)
    with caplog.at_level(logging.WARNING, logger="lobbyd.mqtt.intake"):
        for i in range(1000):
            intake.process("t", f'{{"v": {i % 30}, "at": {TS!r}}}'.encode(), ts=vc.now(), retained=False)
    counts = intake.counters.snapshot()
    assert (counts["accepted"], counts["time_outside_window"], counts["time_unparseable"]) == (1000, 1000, 0)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("payload time not used (time_outside_window on t for sensor s1): time 1700000.000 is")
    assert line.endswith("(allowed ±300s); the reading is stamped on receipt")


@pytest.mark.parametrize(
    ("time", "message"),
    [
        ({"path": "a..b", "format": "s"}, "empty key"),
        ({"path": "at", "format": "minutes"}, "Input should be 's', 'ms', 'us', 'ns' or 'iso8601'"),
        ({"path": "at", "format": "s", "window_s": 0}, "greater than 0"),
        ({"path": "at", "format": "s", "window_s": float("inf")}, "less than or equal to 86400"),
        ({"path": "at", "format": "iso8601", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"format": "s"}, "Field required"),
        ({"path": "at", "format": "s", "zone": "UTC"}, "Extra inputs are not permitted"),
    ],
)
def test_time_config_errors(time: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        sensor(time)
    with pytest.raises(pydantic.ValidationError, match="Extra inputs are not permitted"):
        sensor({"path": "at", "format": "s"}, {"type": "plain"})  # a plain payload has no time


json_times = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.lists(st.integers())
    | st.floats(min_value=TS - 120, max_value=TS + 120) | st.integers(int(TS - 120) * 1000, int(TS + 120) * 1000)
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(json_times, st.sampled_from(["s", "ms", "us", "ns", "iso8601"]))
def test_fuzz_any_time_keeps_the_reading_inside_the_window(value: Any, fmt: str) -> None:
    s = sensor({"path": "at", "format": fmt, "window_s": 60})
    payload = json.dumps({"v": 20.0, "at": value}).encode()
    (r,), rejected = decode([s], payload, ts=TS, retained=False)
    assert r.value == 20.0
    assert TS - 60 <= r.ts <= TS
    assert all(j.reason in TIME_REASONS and j.sensor == "s1" for j in rejected)
    assert (r.ts == TS) or not rejected
