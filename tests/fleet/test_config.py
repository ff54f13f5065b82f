"""Fleet config layering: the shipped defaults + a small per-branch file, validated together."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.branch import BRIDGE_TEMPLATE, branch_file, render_bridge
from daemon.config import load_config
from daemon.yamlsource import ConfigError

REPO = Path(__file__).resolve().parents[2]
BRANCH = REPO / "config" / "fleet" / "branch-b0001.yaml"


def test_shipped_branch_file_passes_lobbyd_check() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "check", "--config", str(BRANCH)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LOBBYD_INFLUX_TOKEN": "t"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok:" in proc.stdout


def test_layering_takes_fleet_defaults_and_branch_values() -> None:
    loaded = load_config(BRANCH)
    cfg = loaded.config
    assert cfg.branch == "b0001"
    # from the defaults
    assert cfg.mqtt.host == "127.0.0.1"
    assert cfg.influx is not None and cfg.influx.api == "v2" and cfg.influx.flush_interval_s == 5
    assert loaded.safety_for("fresh_air.fan_speed").min_hold_s == 120
    assert loaded.rules_dir == (REPO / "rules").resolve()
    # the branch's own
    assert cfg.site.latitude == pytest.approx(31.2304)
    assert [d.transport.port for d in cfg.devices] == [502, 502]
    assert len(cfg.sensors) == 5


def test_branch_id_in_every_sensor_topic_of_the_fleet_example() -> None:
    cfg = load_config(BRANCH).config
    missing = [s.topic for s in cfg.sensors if "/b0001/" not in s.topic]
    assert missing == []


def test_a_branch_value_overrides_one_key_of_a_default_mapping(tmp_path: Path) -> None:
    path = branch_file(
        tmp_path,
        "b0042",
        mqtt_port=1999,
        device_ports={"fresh_air": 1502, "lights": 1503},
        influx=None,
        safety={"fresh_air.fan_speed": {"min_hold_s": 0}},
    )
    loaded = load_config(path)
    assert loaded.config.mqtt.port == 1999
    assert loaded.config.mqtt.silence_after_s == 120  # merged from the defaults
    assert loaded.config.influx is None
    fan = loaded.safety_for("fresh_air.fan_speed")
    assert (fan.min_hold_s, fan.max_writes_per_hour) == (0, 30)
    assert loaded.config.sensors[0].topic == "sensors/b0042/hall/pm25"


def test_a_mistake_in_the_branch_file_is_reported_with_its_position(tmp_path: Path) -> None:
    path = branch_file(tmp_path, "b0043", mqtt_port=1999, device_ports={"fresh_air": 1, "lights": 2}, influx=None)
    text = path.read_text().replace("latitude:", "latitud:")
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "latitud:" in t)
    msgs = [str(e) for e in err.value.errors]
    assert any(f"lobbyd.yaml:{line}:" in m and "latitud" in m for m in msgs), msgs


def test_bridge_template_renders_every_placeholder() -> None:
    text = render_bridge("b0007", 18830)
    assert "${" not in text
    assert "address 127.0.0.1:18830" in text
    assert "\ntopic lobbyd/b0007/device/+/+/set" not in text  # overrides from the centre: only on opt-in
    assert "\ntopic lobbyd/b0007/device/+/+/set in 1\n" in render_bridge("b0007", 18830, central_overrides=True)
    assert "topic sensors/b0007/# out 0" in text
    assert BRIDGE_TEMPLATE.read_text().count("${BRANCH}") >= 10


def test_a_branch_may_switch_the_influx_api_of_the_defaults(tmp_path: Path) -> None:
    v1 = {"api": "v1", "url": "http://127.0.0.1:8086", "database": "lobbyd"}
    path = branch_file(tmp_path, "b0044", mqtt_port=1999, device_ports={"fresh_air": 1, "lights": 2}, influx=v1)
    influx = load_config(path).config.influx
    assert influx is not None and influx.api == "v1" and influx.database == "lobbyd"
    assert influx.flush_interval_s == 1.0  # the v2 defaults' keys (org, bucket, token_env, 5 s) did not leak in
