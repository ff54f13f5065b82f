"""Issue 20's targets on every shipped scenario: the shipped config and rules through the real daemon,
a private mosquitto and the Modbus device simulators, on the virtual clock with each scenario's fixed
seed, against the fair naive baseline run the same way (``lobbyd simulate --all --naive``).

One miss is known and explained in docs/simulation.md ("Targets"); the test pins it and bounds
it, so a fix shows as a failure here (remove it from the list) and so does any other miss or the
known miss getting worse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulators.figures import Figures
from simulators.suite import run_all, shipped
from simulators.targets import check

#: (scenario, what is missed) → the worst the miss may be (lobbyd's figure; for energy, the ratio
#: of lobbyd's fan kWh over the naive baseline's)
KNOWN_MISSES: dict[tuple[str, str], float] = {
    # the hall's sensor stuck during a 200 µg/m³ outdoor episode: the rules run high fresh air (PM2.5
    # held at target); the naive rules, blind without a reading, run low (energy 17×, PM2.5 far over)
    ("stuck-pm-sensor", "fan energy"): 20.0,
}

KINDS = ("PM2.5", "writes to fresh_air", "writes to lights", "within ±150 K", "CCT changed", "reversals", "fan energy")


def _kind(sentence: str) -> tuple[str, str]:
    name, _, text = sentence.partition(": ")
    kinds = [k for k in KINDS if k in text]
    assert len(kinds) == 1, sentence
    return name, kinds[0]


# One test, so that one run of every scenario serves all its checks on one pytest-xdist worker. It is
# CPU-bound for about four minutes: marked like the tests that wait, it starts first and runs beside them.
@pytest.mark.waits(240)
@pytest.mark.timeout(900)
def test_every_target_holds_on_every_shipped_scenario_but_the_known_misses(tmp_path: Path) -> None:
    run_all(tmp_path, naive=True, jobs=2)
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    assert sorted(report["scenarios"]) == shipped() and len(shipped()) >= 14
    failed = check(report)
    assert failed == report["failed_targets"]
    assert {_kind(s) for s in failed} == set(KNOWN_MISSES), "\n".join(failed)
    for (name, kind), worst in KNOWN_MISSES.items():
        entry = report["scenarios"][name]
        own = entry["runs"]["lobbyd"]
        got = entry["fan_kwh_vs_naive"] if kind == "fan energy" else own["writes_per_device_worst_hour"]["lights"]
        assert got <= worst, f"{name}: {kind} got worse: {got} (at most {worst})"
    # report.json carries every figure of every run
    keys = set(Figures.__dataclass_fields__)
    for name, entry in report["scenarios"].items():
        assert set(entry["runs"]) == {"lobbyd", "naive"}, name
        for variant, figures in entry["runs"].items():
            assert set(figures) == keys, (name, variant)
        assert entry["fan_kwh_vs_naive"] is not None
