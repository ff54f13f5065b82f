"""Override limits through the daemon's real intake, overrides and control loop (in-process, virtual clock).

Values are checked against the point (never rounded or clamped), durations are bounded, and a point
accepts at most half of its writes/hour budget in overrides, so the rules keep the other half.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from daemon.app import Daemon, build_daemon
from daemon.config import load_config
from daemon.status import format_status
from drivers.clock import VirtualClock
from drivers.mqtt.message import Message
from tests.e2e.harness import copy_rules, write_config

T0 = 1_780_475_400.0  # 2026-06-03 10:30 local: the branch is open
FAN, CCT = "fresh_air.fan_speed", "lights.cct"


def make_daemon(tmp: Path, edit: Any = None) -> tuple[Daemon, VirtualClock]:
    cfg = write_config(
        tmp, mqtt_port=1, device_ports={"fresh_air": 1, "lights": 1}, influx_url=None, rules_dir=copy_rules(tmp),
        edit=edit,
    )  # fmt: skip
    clock = VirtualClock(T0)
    return build_daemon(load_config(cfg), clock=clock, watch_rules=False), clock


def send(d: Daemon, target: str, payload: object, clock: VirtualClock) -> None:
    device, point = target.split(".")
    text = payload if isinstance(payload, str) else json.dumps(payload)
    d.parts.intake.on_message(
        Message(f"lobbyd/demo-001/device/{device}/{point}/set", text.encode(), False, clock.now())
    )


@pytest.mark.parametrize(
    ("target", "payload", "expected"),
    [
        (
            FAN,
            {"value": 1.5},
            ("out_of_range", "takes one of [0, 1, 2, 3]; 1.5 is not one of them (nothing is rounded)"),
        ),
        (FAN, {"value": 2.0000001}, ("out_of_range", "is not one of them")),
        (FAN, {"value": -1}, ("out_of_range", "-1 is not one of them")),
        (CCT, {"value": 2699}, ("out_of_range", "takes 2700..5000; 2699 is outside that range (nothing is clamped)")),
        (CCT, {"value": 1e308}, ("out_of_range", "outside that range")),
        (CCT, "Infinity", ("value", "must be a finite number")),
        (CCT, {"value": 3000, "duration": "8h1s"}, ("duration", "longer than the longest override allowed, 8h")),
        (CCT, {"value": 3000, "duration": 1e999}, ("duration", "must be finite")),
        (CCT, {"value": 3000, "duration": float("nan")}, ("duration", "must be finite")),
        (CCT, {"value": 3000, "by": "x" * 65}, ("malformed", "'by' must be a name of 1 to 64")),
        ("lights.colour", {"value": 3000}, ("unknown_point", "unknown device point 'lights.colour' (points: ")),
        (CCT, "3" * 600, ("malformed", "payload of 600 bytes; an override is at most 512")),
    ],
)
def test_a_bad_override_is_rejected_with_a_reason_and_nothing_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, target: str, payload: object, expected: tuple[str, str]
) -> None:
    kind, reason = expected
    d, clock = make_daemon(tmp_path)
    caplog.set_level(logging.WARNING, "lobbyd")
    send(d, target, payload, clock)
    o = d.parts.overrides
    assert (o.accepted, o.rejected, o.rejected_by[kind]) == (0, 1, 1)
    assert d.parts.control.memory.overrides == {}
    (record,) = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert reason in record.getMessage()
    d.parts.control.evaluate()  # and the engine runs on


def test_accepted_values_are_kept_exactly_and_bounded_in_time(tmp_path: Path) -> None:
    d, clock = make_daemon(tmp_path)
    send(d, CCT, {"value": 2700, "duration": "8h", "by": "alice"}, clock)
    send(d, FAN, "3", clock)
    ev = d.parts.control.evaluate()
    assert ev.decisions[CCT].value == 2700 and ev.decisions[FAN].value == 3
    cct = d.parts.control.memory.overrides[CCT]
    assert cct.until == T0 + 8 * 3600
    assert cct.source == "mqtt lobbyd/demo-001/device/lights/cct/set (says by 'alice'; not authenticated)"
    assert d.parts.control.memory.overrides[FAN].until == T0 + 3600  # the default hour
    assert "manual override (mqtt lobbyd/demo-001/device/lights/cct/set" in ev.decisions[CCT].reason.text


def _shorter_max(data: dict[str, Any]) -> None:
    data["overrides"]["max_duration_s"] = 600


def test_the_default_duration_never_exceeds_the_configured_maximum(tmp_path: Path) -> None:
    d, clock = make_daemon(tmp_path, _shorter_max)
    send(d, FAN, {"value": 2}, clock)
    assert d.parts.control.memory.overrides[FAN].until == T0 + 600
    send(d, FAN, {"value": 2, "duration": "11m"}, clock)
    assert d.parts.overrides.rejected_by["duration"] == 1


def test_overrides_use_at_most_half_of_a_points_write_budget(tmp_path: Path) -> None:
    """fan_speed may be written 30 times an hour (config/lobbyd.yaml): overrides get 15 of them."""
    d, clock = make_daemon(tmp_path)
    o = d.parts.overrides
    budget = d.parts.loaded.safety_for(FAN).max_writes_per_hour
    assert budget == 30
    for i in range(1000):  # a flood over one hour: one every 3.6 s, set and clear in turn
        send(d, FAN, {"value": i % 4} if i % 2 == 0 else {"clear": True}, clock)
        clock.set(T0 + (i + 1) * 3.6 - 0.001)
    assert o.accepted == budget // 2 and o.rejected_by["rate"] == 1000 - budget // 2
    # An hour after the first one, the oldest leave the window: overrides are accepted again.
    clock.set(T0 + 3600)
    send(d, FAN, {"value": 1}, clock)
    assert o.accepted == budget // 2 + 1


def _tiny_budget(data: dict[str, Any]) -> None:
    data["safety"]["lights.brightness"]["max_writes_per_hour"] = 1


def test_a_point_written_once_an_hour_leaves_no_room_for_overrides(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d, clock = make_daemon(tmp_path, _tiny_budget)
    caplog.set_level(logging.WARNING, "lobbyd")
    send(d, "lights.brightness", {"value": 50}, clock)
    assert d.parts.overrides.rejected_by["rate"] == 1
    assert "may be written 1 time(s) an hour; that is all the rules'" in caplog.text


def test_status_lists_the_overrides_in_force_with_their_source_and_the_rejections(tmp_path: Path) -> None:
    d, clock = make_daemon(tmp_path)
    send(d, FAN, {"value": 2, "duration": "30m", "by": "alice"}, clock)
    send(d, FAN, {"value": 7}, clock)
    d.parts.control.evaluate()
    text = format_status(d.status(), [])
    assert "overrides: 1 accepted, 1 rejected (out_of_range 1); over MQTT on" in text
    source = "mqtt lobbyd/demo-001/device/fresh_air/fan_speed/set (says by 'alice'; not authenticated)"
    assert f"  {FAN:<28} 2 for 0h 30m more, by {source}" in text
