"""Issue 20's targets on every shipped scenario: the shipped config and rules through the real daemon,
a private mosquitto and the Modbus device simulators, on the virtual clock with each scenario's fixed
seed, against the fair naive baseline run the same way (``lobbyd simulate --all --naive``).

Every target holds. One scenario's fan energy is not compared with the naive baseline's, because
that baseline misses the air target there (docs/simulation.md, "Targets"): the test pins which one
and bounds its energy, so it cannot grow unseen; another scenario joining it fails here too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulators.figures import Figures
from simulators.suite import run_all, shipped
from simulators.targets import check, not_compared

#: scenario whose naive baseline misses the air target → the most lobbyd's fan kWh may be over it.
#: stuck-pm-sensor: the hall's sensor stuck during a 200 µg/m³ outdoor episode; the rules run high
#: fresh air (PM2.5 at target 100 %), the naive rules, blind, run low (energy 17×, PM2.5 far over)
NOT_COMPARED: dict[str, float] = {"stuck-pm-sensor": 20.0}


# One test, so that one run of every scenario serves all its checks on one pytest-xdist worker. It is
# CPU-bound for about four minutes: marked like the tests that wait, it starts first and runs beside them.
@pytest.mark.waits(240)
@pytest.mark.timeout(900)
def test_every_target_holds_on_every_shipped_scenario(tmp_path: Path) -> None:
    run_all(tmp_path, naive=True, jobs=2)
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    assert sorted(report["scenarios"]) == shipped() and len(shipped()) >= 14
    failed = check(report)
    assert failed == report["failed_targets"] == [], "\n".join(failed)
    assert not_compared(report) == report["energy_not_compared"]
    assert [s.partition(":")[0] for s in report["energy_not_compared"]] == sorted(NOT_COMPARED)
    for name, worst in NOT_COMPARED.items():
        entry = report["scenarios"][name]
        assert entry["runs"]["lobbyd"]["pm25_ok_reachable_pct"] >= 99.0  # the air target, held
        assert entry["fan_kwh_vs_naive"] <= worst, f"{name}: fan energy got worse: {entry['fan_kwh_vs_naive']}"
    # both runs have the same lighting rules and the same day: the same lighting figures, or the
    # simulation is not deterministic (it was not, by the order of a reading and a write in one step).
    # A broker outage is the exception: how many readings it takes depends on real reconnect time.
    lighting = ("cct_in_band_pct", "cct_in_band_instant_pct", "cct_max_change_per_min_k", "cct_reversals_worst_hour")
    lost = ("dropped_random", "dropped_burst", "lost_broker")
    for name, entry in report["scenarios"].items():
        own, naive = entry["runs"]["lobbyd"], entry["runs"]["naive"]
        if any(own[k] != naive[k] for k in lost):
            continue
        assert {k: own[k] for k in lighting} == {k: naive[k] for k in lighting}, name
        assert own["writes_per_device_worst_hour"]["lights"] == naive["writes_per_device_worst_hour"]["lights"], name
    # report.json carries every figure of every run
    keys = set(Figures.__dataclass_fields__)
    for name, entry in report["scenarios"].items():
        assert set(entry["runs"]) == {"lobbyd", "naive"}, name
        for variant, figures in entry["runs"].items():
            assert set(figures) == keys, (name, variant)
        assert entry["fan_kwh_vs_naive"] is not None
