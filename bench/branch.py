"""One simulated branch for the fleet: its config (the fleet defaults + a per-branch file), its local
mosquitto bridged to the central broker with ``config/mosquitto/bridge.conf.example``, and the
process that runs ``lobbyd``. Used by ``bench/fleet.py`` and ``tests/fleet``.
"""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Any

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parent.parent
BRIDGE_TEMPLATE = REPO / "config" / "mosquitto" / "bridge.conf.example"
FLEET_DEFAULTS = REPO / "config" / "fleet" / "defaults.yaml"

__all__ = ["BRIDGE_TEMPLATE", "FLEET_DEFAULTS", "branch_file", "render_bridge"]


OVERRIDES_IN = "# topic lobbyd/${BRANCH}/device/+/+/set in 1"


def render_bridge(
    branch: str, central_port: int, *, restart_timeout: str = "1 5", central_overrides: bool = False
) -> str:
    """The shipped bridge example with its placeholders filled in for one branch and a loopback central broker;
    ``central_overrides`` uncomments the opt-in line that imports ``.../set`` from the central broker.

    Every placeholder must be filled: a ``${...}`` left over raises ``KeyError``.
    """
    template = BRIDGE_TEMPLATE.read_text()
    if central_overrides:
        assert OVERRIDES_IN in template, "the bridge example lost its opt-in line for central overrides"
        template = template.replace(OVERRIDES_IN, OVERRIDES_IN.removeprefix("# "))
    text = Template(template).substitute(
        BRANCH=branch, CENTRAL_HOST="127.0.0.1", CENTRAL_PORT=str(central_port), RESTART_TIMEOUT=restart_timeout
    )
    return text


def branch_file(
    directory: Path,
    branch: str,
    *,
    mqtt_port: int,
    device_ports: dict[str, int],
    influx: dict[str, Any] | None,
    safety: dict[str, Any] | None = None,
    mqtt_overrides: bool = False,
) -> Path:
    """Write ``<directory>/lobbyd.yaml``: the shipped branch example with this branch's id and ports,
    ``extends:`` the shipped fleet defaults (by absolute path). Paths the defaults give relative to
    the branch file (rules, devices) are pinned to the repository's, the state to ``directory``;
    ``mqtt_overrides`` turns on overrides over MQTT (off in the fleet defaults).
    """
    yaml = YAML()
    data = yaml.load((REPO / "config" / "fleet" / "branch-b0001.yaml").read_text())
    data["extends"] = str(FLEET_DEFAULTS)
    data["branch"] = branch
    for s in data["sensors"]:
        s["topic"] = s["topic"].replace("b0001", branch)
    for d in data["devices"]:
        d["transport"]["host"] = "127.0.0.1"
        d["transport"]["port"] = device_ports[d["name"]]
    data["mqtt"] = {"port": mqtt_port}
    data["influx"] = influx
    data["rules_dir"] = str(REPO / "rules")
    data["devices_dir"] = str(REPO / "config" / "devices")
    data["state_dir"] = str(directory / "state")
    if safety is not None:
        data["safety"] = safety
    if mqtt_overrides:
        data["overrides"] = {"mqtt": True}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "lobbyd.yaml"
    with path.open("w") as f:
        yaml.dump(data, f)
    return path
