"""Fuzzing override payloads through the daemon's real intake, override checks and engine (issue 17).

Every message either puts an override in force or is rejected with a reason that is counted and
logged; nothing raises, and the rules evaluate after each one. Deterministic (derandomized) and
bounded in time: 1 500 cases by default, at least 10 000 with ``LOBBYD_FUZZ=long`` (about 15 s on a small
host).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.overrides import REJECTION_KINDS, OverrideRejected
from drivers.mqtt.message import Message
from tests.faults.test_override_limits import T0, make_daemon
from tests.fuzzing import examples

MQTT_CASES = examples(10_000, 1_500)
SOCKET_CASES = examples(2_000, 400)

POINTS = ("fresh_air", "fan_speed"), ("lights", "cct"), ("lights", "brightness"), ("lights", "colour")

numbers = st.one_of(
    st.integers(min_value=-5, max_value=6000),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, 3, 2700, 5000, 100, 1e308, -0.0, 5e-324]),
)
durations = st.one_of(
    numbers,
    st.from_regex(r"\A\s*(\d{1,12}(\.\d{1,3})?\s*(d|h|m|min|s|sec)\s*){1,3}\Z"),
    st.sampled_from(["99999999d", "1e999", "8h", "8h1s", "30m", "0s", "", "-5m", "NaN"]),
    st.text(max_size=20),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=30))
junk = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "value": st.one_of(numbers, numbers.map(str), junk),
        "duration": st.one_of(durations, junk),
        "clear": st.one_of(st.just(True), junk),
        "by": st.one_of(st.text(max_size=70), junk),
        "extra": junk,
    },
)
plausible = st.fixed_dictionaries(
    {"value": st.sampled_from([0, 1, 2, 3, 2700, 3500, 5000, 0.5, 50, 100, 5001, -1])},
    optional={"duration": st.sampled_from([1, 60, "30m", "1h30m", "8h", 28800.5, "9h"]), "by": st.just("alice")},
)
payloads = st.one_of(
    plausible.map(lambda f: json.dumps(f).encode()),
    fields.map(lambda f: json.dumps(f).encode()),  # NaN and Infinity as JSON writes them (Python's json reads them)
    numbers.map(lambda n: str(n).encode()),
    st.binary(max_size=600),
    st.text(max_size=600).map(str.encode),
    st.integers(1, 2000).map(lambda n: b"[" * n + b"]" * n),
)


def _blank(payload: bytes) -> bool:
    try:
        return not payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


class Reasons(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_override_payloads_never_crash_and_every_rejection_has_a_reason() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d, clock = make_daemon(Path(tmp))
        o, control = d.parts.overrides, d.parts.control
        reasons = Reasons()
        logging.getLogger("lobbyd").addHandler(reasons)
        cases = [0]

        @settings(max_examples=MQTT_CASES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
        @given(point=st.sampled_from(POINTS), payload=payloads, retained=st.sampled_from([False] * 9 + [True]))
        def one(point: tuple[str, str], payload: bytes, retained: bool) -> None:
            cases[0] += 1
            clock.set(T0 + cases[0] * 3600.0)  # a new hour each case: the rate limit does not hide the checks
            before = (o.accepted, o.rejected, len(reasons.messages))
            had = f"{point[0]}.{point[1]}" in control.memory.overrides
            topic = f"lobbyd/demo-001/device/{point[0]}/{point[1]}/set"
            d.parts.intake.on_message(Message(topic, payload, retained, clock.now()))
            accepted, rejected = o.accepted - before[0], o.rejected - before[1]
            if (accepted, rejected) == (0, 0):  # nothing to do: a cleared retained topic, or nothing to clear
                assert (retained and _blank(payload)) or (b'"clear"' in payload and not had), payload
            else:
                assert accepted + rejected == 1, (payload, accepted, rejected)
            if rejected:
                (message,) = reasons.messages[before[2] :]
                assert f"override of {point[0]}.{point[1]} from mqtt {topic} rejected: " in message
                assert len(message.split(" rejected: ", 1)[1]) > 10, message
            if not accepted:
                return
            ev = control.evaluate()
            for target, ov in control.memory.overrides.items():
                assert math.isfinite(ov.value) and 0 < ov.until - clock.now() <= 8 * 3600
                assert ev.decisions[target].value == ov.value  # in force, as sent: not rounded, not clamped

        try:
            one()
        finally:
            logging.getLogger("lobbyd").removeHandler(reasons)
        assert cases[0] >= MQTT_CASES
        assert o.accepted > MQTT_CASES // 20 and set(o.rejected_by) == set(REJECTION_KINDS)
        assert all(o.rejected_by[k] for k in ("retained", "malformed", "value", "duration", "out_of_range"))


def test_control_socket_requests_never_crash_and_every_rejection_has_a_reason() -> None:
    """The same checks behind ``lobbyd override``: any JSON fields, any target."""
    with tempfile.TemporaryDirectory() as tmp:
        d, clock = make_daemon(Path(tmp))
        o, control = d.parts.overrides, d.parts.control
        cases = [0]

        @settings(max_examples=SOCKET_CASES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
        @given(target=st.one_of(st.sampled_from(["fresh_air.fan_speed", "lights.cct"]), st.text(max_size=300)),
               req=st.one_of(plausible, fields))  # fmt: skip
        def one(target: str, req: dict[str, object]) -> None:
            cases[0] += 1
            clock.set(T0 + cases[0] * 3600.0)
            before = o.rejected
            try:
                text = o.request(target, req, "control socket, user test (uid 0)")
            except OverrideRejected as exc:
                assert o.rejected == before + 1 and len(str(exc)) > 10 and exc.kind in REJECTION_KINDS
                return
            assert o.rejected == before and target in text
            control.evaluate()

        one()
        assert o.accepted > SOCKET_CASES * 3 // 200 and o.rejected > SOCKET_CASES // 2
