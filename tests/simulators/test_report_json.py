"""report.json, issue 20's figures and targets, and the report without matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.day import NO_PNG, simulate_day
from simulators.figures import max_change_in_window, reversals, worst_hour
from simulators.targets import check

REPO = Path(__file__).resolve().parents[2]

FIGURE_KEYS = {
    "variant", "open_h", "pm25_ok_pct", "plant_limited_min", "pm25_ok_reachable_pct",
    "writes_per_device_worst_hour", "writes_per_device_mean_per_h", "cct_in_band_pct", "cct_in_band_instant_pct",
    "cct_max_change_per_min_k", "cct_reversals_worst_hour", "fan_kwh", "dropped_random",
    "dropped_burst", "lost_broker",
}  # fmt: skip


def test_worst_hour_counts_a_rolling_hour() -> None:
    assert worst_hour([0, 100, 3599, 3600, 3700]) == 3  # never four within 3600 s
    assert worst_hour([0, 100, 3599, 3650, 3699]) == 4
    assert worst_hour([]) == 0


def test_the_largest_change_in_a_minute_adds_steps_within_it() -> None:
    # 2700 → 2900 at 10 s, → 3100 at 40 s: 400 K within one minute although no step exceeds 200 K.
    assert max_change_in_window(2700, [(10, 2900), (40, 3100)]) == 400
    assert max_change_in_window(2700, [(10, 2900), (200, 3100)]) == 200


def test_reversals_are_changes_of_direction() -> None:
    assert reversals(3000, [(1, 3100), (2, 3200), (3, 3100), (4, 3300), (5, 3300)]) == [3, 4]


def _report(**own: object) -> dict[str, object]:
    base = {
        "pm25_ok_reachable_pct": 100.0,
        "writes_per_device_worst_hour": {"fresh_air": 3, "lights": 5},
        "cct_in_band_pct": 99.0,
        "cct_max_change_per_min_k": 100.0,
        "cct_reversals_worst_hour": 2,
        "fan_kwh": 1.0,
    }
    runs = {"lobbyd": {**base, **own}, "naive": {**base, "fan_kwh": 1.5}}
    return {"scenarios": {"s": {"runs": runs}}}


@pytest.mark.parametrize(
    ("own", "words"),
    [
        ({"pm25_ok_reachable_pct": 98.9}, "PM2.5 <= target for 98.9 %"),
        ({"writes_per_device_worst_hour": {"lights": 7}}, "7 writes to lights in one hour"),
        ({"cct_in_band_pct": 94.0}, "within ±150 K"),
        ({"cct_max_change_per_min_k": 301.0}, "CCT changed 301 K"),
        ({"cct_reversals_worst_hour": 5}, "5 CCT reversals"),
        ({"fan_kwh": 1.6}, "more than the naive baseline"),
    ],
)
def test_check_names_each_missed_target(own: dict[str, object], words: str) -> None:
    assert check(_report()) == []
    failed = check(_report(**own))
    assert len(failed) == 1 and words in failed[0] and failed[0].startswith("s: ")


def test_check_refuses_an_empty_report() -> None:
    assert check({}) == ["the report has no scenarios"]


async def test_a_scenario_writes_its_figures_as_json(tmp_path: Path) -> None:
    from simulators.scenario import load_scenario

    scn = load_scenario(REPO / "simulators" / "scenarios" / "outdoor-300.yaml")
    window = tmp_path / "w.yaml"
    window.write_text(
        f"extends: {scn.source}\nname: outdoor-300\nconfig: {REPO / 'config/lobbyd.yaml'}\n"
        "start: '09:00'\nduration_h: 1.5\n"
    )
    outcome = await simulate_day(window, out=tmp_path / "out", naive=True)
    doc = json.loads((tmp_path / "out" / "outdoor-300.json").read_text())
    entry = doc["scenarios"]["outdoor-300"]
    assert doc["schema_version"] == 1
    assert set(entry["runs"]) == {"lobbyd", "naive"}
    own = entry["runs"]["lobbyd"]
    assert set(own) == FIGURE_KEYS
    # 300 µg/m³ outside from 09:30: even the top fan level cannot hold 35 for part of the window.
    assert own["plant_limited_min"] > 0
    assert own["pm25_ok_reachable_pct"] >= own["pm25_ok_pct"]
    assert entry["fan_kwh_vs_naive"] == pytest.approx(own["fan_kwh"] / entry["runs"]["naive"]["fan_kwh"], rel=1e-2)
    assert 0 < own["cct_in_band_pct"] <= 100
    assert outcome.figures[0].fan_kwh == own["fan_kwh"]


_NO_MPL = """
import sys, asyncio, builtins
real = builtins.__import__
def block(name, *a, **k):
    if name == "matplotlib" or name.startswith("matplotlib."):
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")
    return real(name, *a, **k)
builtins.__import__ = block
from simulators.day import simulate_day
out = sys.argv[2]
o = asyncio.run(simulate_day(sys.argv[1], out=__import__("pathlib").Path(out)))
print(o.text)
"""


def test_without_matplotlib_the_text_and_json_still_come_and_say_how_to_get_the_png(tmp_path: Path) -> None:
    scn = tmp_path / "w.yaml"
    scn.write_text(f"extends: {REPO / 'simulators/scenarios/business-day.yaml'}\nname: w\nstart: '09:00'\n"
                   "duration_h: 0.25\n" f"config: {REPO / 'config/lobbyd.yaml'}\n")  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", _NO_MPL, str(scn), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert NO_PNG in done.stdout
    assert done.stdout.count("pip install") == 1
    assert (tmp_path / "out" / "w.txt").is_file() and (tmp_path / "out" / "w.json").is_file()
    assert not (tmp_path / "out" / "w.png").exists()


@pytest.mark.parametrize(
    "argv",
    [["simulate"], ["simulate", "business-day", "--all"], ["simulate", "--all", "--jobs", "0"]],
    ids=["nothing", "both", "no-jobs"],
)
def test_simulate_wants_one_scenario_or_all(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import main

    assert main(argv) != 0
    assert "give one scenario, or --all" in capsys.readouterr().err


def test_all_runs_every_shipped_scenario() -> None:
    from simulators.suite import shipped

    names = shipped()
    assert len(names) >= 14 and {"outdoor-300", "partly-cloudy", "noisy-pm-sd15"} <= set(names)


async def test_the_text_report_says_what_each_lost_reading_was(tmp_path: Path) -> None:
    scn = tmp_path / "w.yaml"
    scn.write_text(
        f"extends: {REPO / 'simulators/scenarios/dropped-bursts.yaml'}\nname: w\nstart: '09:35'\n"
        f"duration_h: 0.5\nconfig: {REPO / 'config/lobbyd.yaml'}\n"
    )
    text = (await simulate_day(scn)).text
    assert "dropped" not in text
    assert "readings lost in drop bursts" in text and "readings lost at random" in text
    line = next(ln for ln in text.splitlines() if "drop bursts" in ln)
    assert line.split()[-1] == "30"


def test_figures_use_the_true_daylight_and_the_shadow_zone() -> None:
    from simulators.device_model import SimWrite
    from simulators.figures import figures
    from simulators.results import RunResult, Sample
    from simulators.scenario import load_scenario

    scn = load_scenario(REPO / "simulators" / "scenarios" / "business-day.yaml").model_copy(update={"step_s": 60.0})

    def sample(i: int, *, pm25: float, shadow: float) -> Sample:
        day = 200.0  # daylight at the sensor; the lamps add 450 lx more, which must not count
        return Sample(
            t=1000.0 + 60 * i, pm25=pm25, pm25_out=20, pm25_max_fan=shadow, temperature_c=25, humidity_rh=50,
            daylight_lux=day, lux=day + 450, fan_level=1, brightness=100, cct=scn.cct_goal(day),
            occupants=10, occupied=True, fallbacks=(), offline=(),
        )  # fmt: skip

    # 10 open minutes: 2 above target and plant-limited, 1 above target although the plant could reach
    # it, 1 plant-limited but at target (it counts in neither part of the reachable figure).
    ss = [sample(i, pm25=50 if i < 3 else 20, shadow=40 if i < 2 or i == 9 else 10) for i in range(10)]
    r = RunResult(scn, "lobbyd", samples=ss)
    r.writes = {"lights": [SimWrite(1100.0, "cct", 3200.0, ()), SimWrite(1130.0, "cct", 3000.0, ())]}
    f = figures(r)
    assert f.cct_in_band_pct == 100.0
    assert f.pm25_ok_pct == 70.0
    assert f.plant_limited_min == 3.0
    assert f.pm25_ok_reachable_pct == 85.71  # 6 of the 7 reachable minutes
    assert f.writes_per_device_worst_hour == {"lights": 2}
    assert f.cct_reversals_worst_hour == 0  # from 3250 K (the curve at 200 lx) down, down
    assert f.cct_max_change_per_min_k == 250.0  # 3250 → 3200 → 3000 within 30 s
    assert f.fan_kwh == pytest.approx(700 * (500 / 1600) ** 3 * 600 / 3.6e6, abs=1e-3)


async def test_progress_off_a_terminal_is_plain_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scn = tmp_path / "w.yaml"
    scn.write_text(
        f"extends: {REPO / 'simulators/scenarios/business-day.yaml'}\nname: w\nstart: '09:00'\n"
        f"duration_h: 0.1\nconfig: {REPO / 'config/lobbyd.yaml'}\n"
    )
    await simulate_day(scn, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert [ln.split()[-2] for ln in err.splitlines() if ln.startswith("  w [lobbyd]")] == ["0", "50", "100"]


def test_the_cct_target_follows_the_daylight_of_the_last_half_hour_not_each_cloud() -> None:
    from simulators.figures import cct_goals, trailing_mean
    from simulators.results import RunResult, Sample
    from simulators.scenario import load_scenario

    # a trailing time-weighted mean: each sample stands for the step that ended at it
    assert trailing_mean([0, 10, 20, 30], [10, 10, 10, 10], [0, 100, 100, 0], 20) == [0, 50, 100, 50]
    scn = load_scenario(REPO / "simulators" / "scenarios" / "business-day.yaml").model_copy(update={"step_s": 60.0})

    def sample(i: int, day: float) -> Sample:
        return Sample(
            t=1000.0 + 60 * i, pm25=10, pm25_out=20, pm25_max_fan=10, temperature_c=25, humidity_rh=50,
            daylight_lux=day, lux=day, fan_level=1, brightness=0, cct=3000, occupants=10, occupied=True,
            fallbacks=(), offline=(),
        )  # fmt: skip

    # clouds every 5 minutes: 100 lx and 500 lx in turn; the target is the curve at their 30-minute mean
    ss = [sample(i, 100.0 if (i // 5) % 2 == 0 else 500.0) for i in range(60)]
    goals = cct_goals(RunResult(scn, "lobbyd", samples=ss))
    assert goals[0] == scn.cct_goal(100.0) == 3000
    assert all(abs(g - scn.cct_goal(300.0)) <= 100 for g in goals[30:])  # about 3500 K, not 3000/4000
    instant = cct_goals(RunResult(scn.model_copy(update={"cct_target_average_min": 0}), "lobbyd", samples=ss))
    assert instant == [scn.cct_goal(s.daylight_lux) for s in ss]
