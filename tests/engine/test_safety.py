"""SafetyGate: deadband, minimum hold time, write cap per hour; manual overrides skip only the hold."""

from __future__ import annotations

from daemon.config import SafetyConfig
from daemon.safety import SafetyGate

P = "lights.cct"


def test_unchanged_value_is_never_written() -> None:
    gate = SafetyGate()
    gate.observed(P, 3000)
    adm = gate.admit(P, 3000, 0, SafetyConfig())
    assert (adm.write, adm.held_by) == (False, None)


def test_deadband() -> None:
    gate, cfg = SafetyGate(), SafetyConfig(deadband=50)
    gate.observed(P, 3000)
    adm = gate.admit(P, 3050, 0, cfg)
    assert (adm.held_by, adm.retry_at) == ("deadband ±50", None)  # time alone never lets it through
    assert gate.admit(P, 2950, 0, cfg).held_by == "deadband ±50"
    assert gate.admit(P, 3051, 0, cfg).write


def test_min_hold_between_changes_and_manual_bypass() -> None:
    gate, cfg = SafetyGate(), SafetyConfig(min_hold_s=120)
    assert gate.admit(P, 1, 0, cfg).write  # unknown device state, no earlier change
    gate.wrote(P, 1, 0, ok=True)
    adm = gate.admit(P, 3, 100, cfg)
    assert (adm.write, adm.held_by, adm.retry_at) == (False, "minimum hold time 120s (20s left)", 120)
    assert gate.admit(P, 3, 100, cfg, manual=True).write
    assert gate.admit(P, 3, 120, cfg).write


def test_failed_write_counts_against_the_cap_but_changes_nothing() -> None:
    gate = SafetyGate()
    gate.wrote(P, 5, 0, ok=False)
    assert gate.track(P).known is None and gate.track(P).last_change is None
    assert gate.writes_last_hour(P, 1) == 1


def test_write_cap_per_hour_slides() -> None:
    gate, cfg = SafetyGate(), SafetyConfig(max_writes_per_hour=3)
    for i in range(3):
        assert gate.admit(P, 3000 + 100 * i, 60 * i, cfg).write
        gate.wrote(P, 3000 + 100 * i, 60 * i, ok=True)
    adm = gate.admit(P, 4000, 200, cfg)
    assert (adm.write, adm.held_by, adm.retry_at) == (False, "write cap 3/h reached", 3600)
    assert not gate.admit(P, 4000, 3599, cfg).write
    assert gate.admit(P, 4000, 3600, cfg).write  # the first write is an hour old
    assert gate.writes_last_hour(P, 3600) == 2


def test_hold_and_cap_survive_a_restart_via_json() -> None:
    import json

    gate, cfg = SafetyGate(), SafetyConfig(min_hold_s=120, max_writes_per_hour=2)
    gate.wrote(P, 1, 0, ok=True)
    gate.wrote(P, 2, 10, ok=True)
    restored = SafetyGate.from_json(json.loads(json.dumps(gate.to_json())))
    assert restored.track(P).known is None  # re-read from the device at start
    restored.observed(P, 2)
    assert restored.admit(P, 3, 100, cfg).held_by == "minimum hold time 120s (30s left)"
    assert restored.admit(P, 3, 200, cfg).held_by == "write cap 2/h reached"
    assert SafetyGate.from_json({}).points == {}
