"""`lobbyd check --diff`: which points an edit would give another value right now, and why."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.check import check
from daemon.config import load_config
from daemon.diff import diff_rules, format_diff

ROOT = Path(__file__).resolve().parents[2]
OPEN = dt.datetime(2026, 6, 3, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()  # a Wednesday, open


def status(pm25: float, *, at: float = OPEN) -> dict[str, object]:
    """What `lobbyd status` answers about the sensors (the part the diff reads)."""
    values = {"hall-pm25": pm25, "outdoor-pm25": 20.0, "hall-lux": 300.0}
    return {
        "time": at,
        "uptime_s": 3600.0,
        "sensors": [
            {"sensor": s, "value": v, "age_s": 5.0, "fresh": True, "retained": False} for s, v in values.items()
        ],
    }


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A copy of the shipped config and rules, with its own (empty) state directory."""
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copytree(ROOT / "config" / "devices", tmp_path / "devices")
    text = (ROOT / "config" / "lobbyd.yaml").read_text()
    cfg = tmp_path / "lobbyd.yaml"
    text = text.replace("rules_dir: ../rules", "rules_dir: rules").replace(
        "state_dir: ../var/state", "state_dir: state"
    )
    cfg.write_text(text)
    return cfg


def edited(site: Path, old: str, new: str) -> Path:
    copy = site.parent / "edits" / "air-quality.yaml"
    copy.parent.mkdir(exist_ok=True)
    text = (site.parent / "rules" / "air-quality.yaml").read_text()
    assert old in text
    copy.write_text(text.replace(old, new, 1))
    return copy


def test_an_edit_shows_the_point_it_changes_now_and_the_rules_behind(site: Path) -> None:
    copy = edited(site, "    set: 1\n", "    set: 2\n")  # fresh-air-open: low → medium while open
    result = check(site, [copy])
    assert result.ok and result.loaded is not None and result.rules is not None
    diff = diff_rules(result.loaded, result.rules, files_given=True, status=status(10.0))
    assert diff.rule_lines == ["rule changed: fresh-air-open (fresh_air.fan_speed)"]
    assert list(diff.points) == ["fresh_air.fan_speed"]
    before, after = diff.points["fresh_air.fan_speed"]
    assert before is not None and after is not None
    assert (before.value, after.value) == (1, 2)
    text = format_diff(diff)
    assert "compared with the rules directory as it is" in text
    assert "on the running daemon's sensor values (3 fresh)" in text
    assert "fresh_air.fan_speed: 1 → 2" in text
    assert "now:  1 by rule fresh-air-open" in text and "then: 2 by rule fresh-air-open" in text

    # With PM2.5 at 40 µg/m³ pm25-high (priority 50) sets the fan either way: the edit changes nothing now.
    quiet = diff_rules(result.loaded, result.rules, files_given=True, status=status(40.0))
    assert quiet.points == {}
    assert "right now no point would get another value" in format_diff(quiet)


def test_the_rules_in_force_are_the_daemons_last_good_copies(site: Path) -> None:
    state = site.parent / "state" / "rules-last-good"
    state.mkdir(parents=True)
    for f in (site.parent / "rules").glob("*.yaml"):
        shutil.copy(f, state / f.name)
    (state / "air-quality.yaml").write_text(
        (state / "air-quality.yaml").read_text().replace("    set: 1\n", "    set: 3\n", 1)
    )  # what the daemon runs differs from the directory: the diff is against what it runs
    result = check(site)
    assert result.ok and result.loaded is not None and result.rules is not None
    diff = diff_rules(result.loaded, result.rules, files_given=False, status=status(10.0))
    assert diff.base.startswith("the rules in force (")
    assert {t: (a.value if a else None, b.value if b else None) for t, (a, b) in diff.points.items()} == {
        "fresh_air.fan_speed": (3, 1)
    }


def test_a_threshold_edit_says_which_rule_would_win_and_why(site: Path) -> None:
    high = "above: 35\n        off_below: 34\n    set: 3\n    release_after: 5min\n    safe_value: 1"  # pm25-high
    result = check(site, [edited(site, high, high.replace("35", "33").replace("34", "30"))])
    assert result.ok and result.loaded is not None and result.rules is not None
    text = format_diff(diff_rules(result.loaded, result.rules, files_given=True, status=status(34.0)))
    assert "fresh_air.fan_speed: 2 → 3" in text
    assert "now:  2 by rule pm25-elevated: opening-hours is open; max(hall.pm25) = 34 µg/m³ is above 32" in text
    assert "then: 3 by rule pm25-high: opening-hours is open; max(hall.pm25) = 34 µg/m³ is above 33" in text


def test_without_a_daemon_every_sensor_is_unknown_and_it_says_so(site: Path) -> None:
    loaded = load_config(site)
    high = "above: 35\n        off_below: 34\n    set: 3\n    release_after: 5min\n    safe_value: 1"  # pm25-high
    result = check(site, [edited(site, high, high.replace("35", "33").replace("34", "30"))])
    assert result.ok and result.rules is not None
    diff = diff_rules(loaded, result.rules, files_given=True)  # no control socket in the temporary state dir
    assert diff.sensors == "every sensor unknown (no daemon answered on its control socket)"
    assert diff.rule_lines == ["rule changed: pm25-high (fresh_air.fan_speed)"]
    assert diff.points == {}  # a threshold edit changes nothing while PM2.5 is unknown (safe values rule)


def test_check_diff_on_the_command_line(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import main

    copy = edited(site, "    set: 1\n", "    set: 2\n")
    assert main(["check", "--config", str(site), "--diff", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "ok: " in out and "rule changed: fresh-air-open (fresh_air.fan_speed)" in out
    assert "every sensor unknown (no daemon answered on its control socket)" in out
