"""Scenario files: the shipped ones load; errors point at file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.yamlsource import ConfigError
from simulators.scenario import Series, load_scenario

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "simulators" / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_load(path: Path) -> None:
    scn = load_scenario(path)
    assert scn.name == path.stem
    assert scn.resolve(scn.config).is_file()


def test_extends_merges_mappings() -> None:
    scn = load_scenario(next(p for p in SCENARIOS if p.stem == "pollution-episode"))
    assert scn.outdoor.pm25.at(11 * 60) == 150.0
    assert scn.outdoor.cloud_cover.at(0) == 0.4  # inherited from business-day
    assert scn.zone.volume_m3 == 630


def test_series_is_linear_between_points_and_flat_outside() -> None:
    s = Series(points=(("08:00", 10.0), ("10:00", 30.0)))
    assert [s.at(m) for m in (0, 480, 540, 600, 1400)] == [10.0, 10.0, 20.0, 30.0, 30.0]


def test_misspelt_key_is_reported_with_position(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "name: bad\ndate: 2026-06-03\nactuators: {fan_level: {device: fresh_air, point: fan_speed}}\n"
        "sensors: {}\nzone:\n  volume_m3: 630\n  filter_efficency: 0.9\n"
    )
    with pytest.raises(ConfigError) as info:
        load_scenario(f)
    text = str(info.value)
    assert f"{f}:7:" in text
    assert "filter_efficiency" in text  # did you mean


def test_event_needs_its_target(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "name: bad\ndate: 2026-06-03\nactuators: {fan_level: {device: fresh_air, point: fan_speed}}\n"
        "sensors: {}\nevents:\n  - {kind: sensor_freeze, at: '10:00', until: '11:00'}\n"
    )
    with pytest.raises(ConfigError, match="needs 'sensor'"):
        load_scenario(f)


def test_a_regular_series_gives_one_value_every_n_minutes() -> None:
    s = Series.model_validate({"from": "07:00", "every_min": 10, "values": [0.0, 1.0, 0.5]})
    assert s.points == (("07:00", 0.0), ("07:10", 1.0), ("07:20", 0.5))
    assert s.at(7 * 60 + 5) == pytest.approx(0.5)
    assert s.at(0) == 0.0 and s.at(20 * 60) == 0.5


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"from": "07:00", "every_min": 0, "values": [1.0]}, "every_min must be a positive"),
        ({"from": "07:00", "every_min": float("nan"), "values": [1.0]}, "every_min must be a positive"),
        ({"from": "07:00", "every_min": 10, "values": []}, "at least one number"),
        ({"from": "23:00", "every_min": 30, "values": [1, 2, 3, 4]}, "run past 24:00"),
        ({"from": "07:00", "every": 10, "values": [1]}, "unknown key 'every'"),
        ({"from": 700, "every_min": 10, "values": [1]}, "HH:MM"),
    ],
)
def test_a_malformed_regular_series_is_refused_in_words(data: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Series.model_validate(data)


def test_a_regular_series_in_a_file_reports_its_line(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "extends: " + str(SCENARIOS[0].parent / "business-day.yaml") + "\nname: s\n"
        "outdoor:\n  cloud_cover: {from: '07:00', every_min: -5, values: [1]}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_scenario(f)
    assert "s.yaml:4:" in str(err.value) and "every_min" in str(err.value)


def test_stuck_value_and_drop_burst_need_their_parts(tmp_path: Path) -> None:
    from simulators.scenario import Event

    with pytest.raises(ValueError, match="drop_burst event needs 'sensor'"):
        Event(kind="drop_burst", at="09:00", until="10:00")
    with pytest.raises(ValueError, match="'value' needs 'stuck: true'"):
        Event(kind="sensor_freeze", sensor="x", at="09:00", until="10:00", value=12)
    with pytest.raises(ValueError, match="finite"):
        Event(kind="sensor_freeze", sensor="x", at="09:00", until="10:00", stuck=True, value=float("inf"))


def test_fourteen_shipped_scenarios() -> None:
    assert len(SCENARIOS) >= 14
