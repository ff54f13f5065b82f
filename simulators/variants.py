"""The rule sets a scenario runs: lobbyd's own rules and the two baselines, plus the run's config.

Baselines are alternative rule files run through the same daemon (same MQTT, safety gate, Modbus):
every rule targeting the fan-level point is removed and replaced by

* ``fixed``: one rule, no conditions, the fan at ``baselines.fixed_fan_level`` all day;
* ``naive``: on the same schedule as lobbyd's rules (``baselines.schedule``), high above
  ``baselines.naive_threshold`` (no ``off_below``: no hysteresis, no ``for:``), low otherwise while
  open, ``naive_closed_level`` (off) while closed: a fair comparison, not one that runs all night.

Lighting rules are left as they are, so lighting figures are the same in all three.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML

from simulators.scenario import Scenario

__all__ = ["VARIANTS", "Variant", "write_config", "write_rules"]

Variant = Literal["lobbyd", "fixed", "naive"]
VARIANTS: dict[Variant, str] = {
    "lobbyd": "lobbyd rules",
    "fixed": "baseline: fixed fan level",
    "naive": "baseline: naive threshold",
}


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    return y


def _baseline_rules(scn: Scenario, variant: Variant, pm25_sensors: int) -> list[dict[str, Any]]:
    fan = f"{scn.actuators.fan_level.device}.{scn.actuators.fan_level.point}"
    b = scn.baselines
    if variant == "fixed":
        return [{"id": "baseline-fixed", "target": fan, "set": b.fixed_fan_level}]
    open_: list[dict[str, Any]] = [{"schedule": b.schedule}] if b.schedule else []
    high: dict[str, Any] = {
        "id": "baseline-naive-high",
        "target": fan,
        "priority": 50,
        "when": [
            *open_,
            {"zone": scn.zone.name, "quantity": "pm25", "aggregate": "max", "above": b.naive_threshold},
        ],
        "set": b.naive_high_level,
    }
    if pm25_sensors == 0:
        high["when"] = open_
    low = {"id": "baseline-naive-low", "target": fan, "priority": 10, "when": open_, "set": b.naive_low_level}
    if not b.schedule:
        return [high, low]
    closed = {"id": "baseline-naive-closed", "target": fan, "priority": 0, "set": b.naive_closed_level}
    return [high, low, closed]


def write_rules(scn: Scenario, variant: Variant, rules_dir: Path, out: Path, *, pm25_sensors: int = 1) -> Path:
    """Copy ``rules_dir`` to ``out``; for a baseline, swap the fan rules for the baseline's."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(rules_dir, out, ignore=shutil.ignore_patterns("*.tmp", ".*"))
    if variant == "lobbyd":
        return out
    fan = f"{scn.actuators.fan_level.device}.{scn.actuators.fan_level.point}"
    y = _yaml()
    for f in sorted(out.glob("*.yaml")):
        data = y.load(f.read_text())
        if isinstance(data, dict) and isinstance(data.get("rules"), list):
            data["rules"] = [r for r in data["rules"] if not (isinstance(r, dict) and r.get("target") == fan)]
            with f.open("w") as fh:
                y.dump(data, fh)
    with (out / "zz-baseline.yaml").open("w") as fh:
        y.dump({"rules": _baseline_rules(scn, variant, pm25_sensors)}, fh)
    return out


def write_config(
    source: Path,
    out: Path,
    *,
    mqtt_port: int,
    device_ports: dict[str, int],
    influx_url: str | None,
    rules_dir: Path,
    state_dir: Path,
) -> Path:
    """The scenario's daemon config pointed at this run's servers, rules and a private state directory."""
    y = _yaml()
    data: Any = y.load(source.read_text())
    base = source.parent

    def absolute(key: str, default: str) -> None:
        p = Path(str(data.get(key, default)))
        data[key] = str(p if p.is_absolute() else (base / p).resolve())

    if "extends" in data:
        absolute("extends", "")
    absolute("devices_dir", "devices")
    data["mqtt"]["port"] = mqtt_port
    data["mqtt"]["host"] = "127.0.0.1"
    for dev in data.get("devices", []):
        if dev["name"] in device_ports:
            dev["transport"] = {"type": "tcp", "host": "127.0.0.1", "port": device_ports[dev["name"]]}
    if influx_url is None:
        data["influx"] = None
    else:
        data["influx"] = {"api": "v1", "url": influx_url, "database": "lobbyd", "flush_interval_s": 0.5}
    data["rules_dir"] = str(rules_dir)
    data["state_dir"] = str(state_dir)
    data.pop("control_socket", None)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as fh:
        y.dump(data, fh)
    return out
