"""``lobbyd status`` text and verdict from a status answer (pure: no daemon)."""

from __future__ import annotations

from typing import Any

from daemon.status import format_status, needs_attention


def _status(**mqtt: Any) -> dict[str, Any]:
    return {
        "version": "0.1.0",
        "branch": "demo-001",
        "uptime_s": 3600.0,
        "config": "/etc/lobbyd/lobbyd.yaml",
        "rules": {"count": 10, "errors": [], "last_reload": "initial load"},
        "mqtt": {"connected": True, "subscribed": True, "connects": 1, "silent_for_s": 0.5, "accepted": 90,
                 "discarded": 0, "not_json": 0, "wrong_type": 2, **mqtt},
        "sensors": [],
        "devices": [],
        "points": {},
        "writes": {"ok": 3, "failed": 0, "mismatch": 0},
        "influx": None,
    }  # fmt: skip


def test_only_reject_reasons_are_listed_as_rejections() -> None:
    text = format_status(_status(), [])
    assert "mqtt rejected: wrong_type 2" in text
    assert "subscribed" not in text.split("mqtt rejected:")[1]


def test_late_reports_are_counted_apart_from_rejections_and_need_no_attention() -> None:
    st = _status(out_of_order=4)
    text = format_status(st, needs_attention(st))
    assert "mqtt rejected: wrong_type 2\n" in text + "\n"  # not a rejection
    assert "readings older than the one held: 4 (recorded in the time series, not used by the rules)" in text
    assert needs_attention(st) == []
    assert "older than the one held" not in format_status(_status(out_of_order=0), [])


def test_messages_discarded_under_a_flood_need_attention() -> None:
    st = _status(discarded=17)
    problems = needs_attention(st)
    assert problems == ["MQTT: 17 incoming messages discarded (the daemon fell behind a flood)"]
    assert "17 messages discarded" in format_status(st, problems)
    assert needs_attention(_status()) == []


def test_a_read_back_mismatch_needs_attention_and_polled_values_are_listed() -> None:
    st = _status()
    st["devices"] = [
        {
            "name": "fresh_air",
            "online": True,
            "last_error": None,
            "status": {"fan_output": {"value": 40.0, "age_s": 1.2}, "fault_code": {"value": 17.0, "age_s": 1.2}},
        }
    ]
    held = "read-back mismatch (wrote 1, device reports 0)"
    st["points"] = {
        "fresh_air.fan_speed": {"desired": 1.0, "rule": "fresh-air-open", "fallback": False, "known": None,
                                "held_by": held, "mismatch": {"desired": 1.0, "readback": 0.0, "writes": 4}}
    }  # fmt: skip
    problems = needs_attention(st)
    assert problems == [f"fresh_air.fan_speed: {held}"]
    text = format_status(st, problems)
    assert "fan_output" in text and "17" in text.split("fault_code")[1].splitlines()[0]
    assert f"held by {held}" in text
