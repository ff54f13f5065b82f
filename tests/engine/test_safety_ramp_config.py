"""The ``safety:`` block's ``ramp_per_minute``: reaches the engine as the point's ramp; wrong values are
refused in plain words with file:line:column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.config import load_config
from daemon.yamlsource import ConfigError
from tests.e2e.harness import copy_rules, write_config

CCT, FAN = "lights.cct", "fresh_air.fan_speed"


def config(tmp: Path, edit: Any) -> Path:
    return write_config(
        tmp, mqtt_port=1, device_ports={"fresh_air": 1, "lights": 1}, influx_url=None, rules_dir=copy_rules(tmp),
        edit=edit,
    )  # fmt: skip


def test_a_points_ramp_reaches_the_engines_limits(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["safety"][CCT]["ramp_per_minute"] = 250

    limits = load_config(config(tmp_path, edit)).point_limits()
    assert limits[CCT].ramp_per_minute == 250
    assert limits["lights.brightness"].ramp_per_minute is None


@pytest.mark.parametrize(
    ("target", "value", "fragment"),
    [
        (CCT, float("inf"), "ramp_per_minute"),
        (CCT, float("nan"), "ramp_per_minute"),
        (CCT, -5, "ramp_per_minute"),
        (CCT, 0, "ramp_per_minute"),
        (CCT, 1e9, "ramp_per_minute"),
        (CCT, "fast", "ramp_per_minute"),
        (FAN, 1, "fresh_air.fan_speed takes only one of [0, 1, 2, 3]; a ramp gives values between them"),
        (CCT, 200, "ramp_per_minute (200) must be more than twice the deadband (100)"),  # a step could be 100
    ],
)
def test_a_wrong_ramp_is_refused_at_its_place(tmp_path: Path, target: str, value: Any, fragment: str) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["safety"][target]["ramp_per_minute"] = value

    path = config(tmp_path, edit)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = path.read_text().splitlines()
    line_no = next(i for i, text in enumerate(lines, 1) if "ramp_per_minute" in text)
    text = str(info.value)
    assert f"{path}:{line_no}:" in text and fragment in text
    for banned in ("pydantic", "Input should", "type=", "errors.pydantic.dev"):
        assert banned not in text
