"""Manual override payloads: what is accepted, and a clear reason for everything else."""

from __future__ import annotations

import pytest

from daemon.overrides import OverrideRequest, parse_override, target_of

PREFIX = "lobbyd/b1/device/"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"value": 3, "duration": "30m"}', OverrideRequest(False, 3.0, 1800.0)),
        (b'{"value": "2"}', OverrideRequest(False, 2.0, 3600.0)),
        (b"4000", OverrideRequest(False, 4000.0, 3600.0)),
        (b" 1.5 ", OverrideRequest(False, 1.5, 3600.0)),
        (b'{"value": 1, "duration": 90}', OverrideRequest(False, 1.0, 90.0)),
        (b'{"clear": true}', OverrideRequest(True)),
    ],
)
def test_accepted(payload: bytes, expected: OverrideRequest) -> None:
    assert parse_override(payload, retained=False) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty payload"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a number"),
        (b'{"valeu": 3}', "unknown key(s) 'valeu'"),
        (b'{"duration": "5m"}', "missing 'value'"),
        (b'{"value": true}', "must be a number"),
        (b'{"value": "lots"}', "must be a number"),
        (b"nan", "finite"),
        (b'{"value": 1e999}', "finite"),
        (b'{"value": 3, "duration": "soon"}', "not a duration"),
        (b'{"value": 3, "duration": 0}', "longer than zero"),
    ],
)
def test_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_override(payload, retained=False)
    assert reason in str(info.value)


def test_retained_overrides_are_refused_and_an_empty_retained_one_is_ignored() -> None:
    with pytest.raises(ValueError, match="retained override ignored"):
        parse_override(b'{"value": 3}', retained=True)
    assert parse_override(b"", retained=True) is None


@pytest.mark.parametrize(
    ("topic", "target"),
    [
        (PREFIX + "fresh_air/fan_speed/set", "fresh_air.fan_speed"),
        (PREFIX + "fresh_air/fan_speed/state", None),
        (PREFIX + "fresh_air/set", None),
        (PREFIX + "a/b/c/set", None),
        ("lobbyd/other/device/fresh_air/fan_speed/set", None),
    ],
)
def test_target_of(topic: str, target: str | None) -> None:
    assert target_of(topic, PREFIX) == target
