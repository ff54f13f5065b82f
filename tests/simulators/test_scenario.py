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
