"""Sensor conditioning and daylight in lobbyd.yaml: accepted, and refused in plain words with positions."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from daemon.config import load_config
from daemon.model import Quantity
from daemon.yamlsource import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _config(tmp: Path, edit: dict[str, object]) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "config" / "devices", tmp / "devices")
    yaml = YAML()
    data = yaml.load((REPO / "config" / "lobbyd.yaml").read_text())
    data["rules_dir"] = str(REPO / "rules")
    data["state_dir"] = str(tmp / "state")
    data.update(edit)
    path = tmp / "lobbyd.yaml"
    with path.open("w") as f:
        yaml.dump(data, f)
    return path


def test_daylight_is_a_sensor_the_rules_can_read(tmp_path: Path) -> None:
    loaded = load_config(_config(tmp_path, {"daylight": [{"id": "hall-daylight", "lux_sensor": "hall-lux"}]}))
    info = loaded.sensor_infos()["hall-daylight"]
    assert info.quantity == Quantity.ILLUMINANCE and info.stale_after_s == 120
    assert "hall-daylight" in loaded.rule_context().sensors


@pytest.mark.parametrize(
    ("daylight", "words"),
    [
        (
            {"id": "hall-daylight", "lux_sensor": "hall-lx"},
            "'hall-lx' is not a configured sensor (did you mean 'hall-lux'?)",
        ),
        ({"id": "hall-daylight", "lux_sensor": "hall-pm25"}, "'hall-pm25' is not an illuminance sensor"),
        ({"id": "hall-pm25", "lux_sensor": "hall-lux"}, "sensor id 'hall-pm25' is used twice"),
        ({"id": "d", "lux_sensor": "hall-lux", "lamps": "lights.brightnes"}, "unknown device point 'lights.brightnes'"),
        # the daylight sensor's own filter (applied after the lamps are taken out)
        (
            {"id": "d", "lux_sensor": "hall-lux", "filter": {"median_of": 5, "ema_s": 30}},
            ":3: a filter is either median_of: N or ema_s: T (give exactly one) (daylight[0].filter)",
        ),
        (
            {"id": "d", "lux_sensor": "hall-lux", "filter": {"ema_s": 0}},
            "'ema_s' must be greater than 0.0, found 0 (daylight[0].filter.ema_s)",
        ),
        (
            {"id": "d", "lux_sensor": "hall-lux", "filter": {"median_of": "five"}},
            "'five' is not a whole number; write e.g. median_of: 50 (daylight[0].filter.median_of)",
        ),
    ],
)
def test_bad_daylight_entries_are_refused_with_position(tmp_path: Path, daylight: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(_config(tmp_path, {"daylight": [daylight]}))
    text = str(exc.value)
    assert words in text and "lobbyd.yaml:" in text
    assert "pydantic" not in text and "ruamel" not in text


def test_a_bad_filter_is_refused_in_plain_words(tmp_path: Path) -> None:
    yaml = YAML()
    sensors = yaml.load((REPO / "config" / "lobbyd.yaml").read_text())["sensors"]
    sensors[0]["filter"] = {"median_of": 5, "ema_s": 30}
    with pytest.raises(ConfigError) as exc:
        load_config(_config(tmp_path, {"sensors": sensors}))
    text = str(exc.value)
    assert "exactly one" in text and "lobbyd.yaml:" in text and "pydantic" not in text


def test_a_reload_says_filter_and_daylight_changes_need_a_restart(tmp_path: Path) -> None:
    from daemon.reload import config_changes

    running = load_config(_config(tmp_path / "a", {"state_dir": str(tmp_path / "state")}))
    sensors = YAML().load((REPO / "config" / "lobbyd.yaml").read_text())["sensors"]
    sensors[0]["filter"] = {"median_of": 5}
    sensors[0]["stuck"] = {"after_s": 1800, "min_change": 0.5}
    daylight = [{"id": "d", "lux_sensor": "hall-lux"}]
    edited = _config(tmp_path / "b", {"sensors": sensors, "daylight": daylight, "state_dir": str(tmp_path / "state")})
    assert config_changes(running, edited) == ["sensors", "daylight"]


def test_a_trend_is_a_sensor_the_rules_can_read_stale_with_its_source(tmp_path: Path) -> None:
    trends = [{"id": "pm-trend", "sensor": "hall-pm25", "over_s": 900}, {"id": "day-trend", "sensor": "hall-daylight"}]
    loaded = load_config(_config(tmp_path, {"trends": trends}))
    info = loaded.sensor_infos()["pm-trend"]
    assert (info.quantity, info.zone, info.stale_after_s) == (Quantity.TREND, "trends", 120)
    assert info.warmup_s == 450  # half its window: not yet known, rather than stale, that much longer
    assert loaded.sensor_infos()["day-trend"].stale_after_s == 120  # the daylight sensor's, from hall-lux
    assert {"pm-trend", "day-trend"} <= set(loaded.rule_context().sensors)


@pytest.mark.parametrize(
    ("trend", "words"),
    [
        ({"id": "t", "sensor": "hall-pm2"}, "'hall-pm2' is not a configured sensor (did you mean 'hall-pm25'?)"),
        ({"id": "hall-pm25", "sensor": "hall-lux"}, "sensor id 'hall-pm25' is used twice"),
        ({"id": "t", "sensor": "t"}, "'t' is a trend itself; a trend follows a measured or a daylight sensor"),
        ({"id": "t", "sensor": "hall-pm25", "over_s": 30}, "'over_s' must be at least 60.0, found 30 (trends[0]"),
        ({"id": "t", "sensor": "hall-pm25", "over_s": 1e9}, "'over_s' must be at most 21600.0"),
        ({"id": "t", "sensor": "hall-pm25", "over_s": ".nan"}, "found .nan (trends[0].over_s)"),
        ({"id": "t", "sensor": "hall-pm25", "over_s": "ten minutes"}, "'ten minutes' is not a number"),
        ({"id": "t", "sensor": "hall-pm25", "window": 600}, "unknown key 'window' (trends[0].window)"),
    ],
)
def test_bad_trends_are_refused_at_their_line_in_plain_words(tmp_path: Path, trend: dict[str, Any], words: str) -> None:
    if trend.get("over_s") == ".nan":
        trend = {**trend, "over_s": float("nan")}
    with pytest.raises(ConfigError) as exc:
        load_config(_config(tmp_path, {"trends": [trend]}))
    text = str(exc.value)
    assert words in text and "lobbyd.yaml:" in text
    assert "pydantic" not in text and "ruamel" not in text and "Input should" not in text


def test_a_measured_sensor_cannot_say_it_is_a_trend(tmp_path: Path) -> None:
    sensors = YAML().load((REPO / "config" / "lobbyd.yaml").read_text())["sensors"]
    sensors[0]["quantity"] = "trend"
    with pytest.raises(ConfigError) as exc:
        load_config(_config(tmp_path, {"sensors": sensors}))
    text = str(exc.value)
    assert "'trend' is not allowed for 'quantity'; write one of 'temperature', 'humidity', 'pm25'," in text
    assert "lobbyd.yaml:" in text and "Quantity." not in text
