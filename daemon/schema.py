"""JSON Schemas of the rule files, the config file and device profiles, generated from the pydantic models.

Editors use them for completion and inline errors (VS Code's YAML extension reads the
``# yaml-language-server: $schema=...`` line at the top of each shipped file). The models stay the
single source of truth; this module only adds what pydantic cannot see: the shorthands that
``mode="before"`` validators accept (a sensor id for an input, ``sunset-30m`` for a sun time,
a bare number for ``set``). ``lobbyd check`` remains the authority: it also checks references.

A fleet file is one layer of a config (``extends:``, daemon/config.py): a branch file without the
fleet's ``mqtt``, a defaults file without ``branch`` and ``site``. They name
``config-layer.schema.json``, the config schema with every key optional wherever layers merge
(mappings, at any depth) and still complete where they do not (a list item, such as one sensor or
device, replaces the other layer's list whole). Unknown keys and wrong types still fail; whether the
merged config is complete is for ``lobbyd check`` (and the tests) to say.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.config import DaemonConfig
from daemon.rules.model import ID_PATTERN, TARGET_PATTERN, RuleFile
from drivers.modbus.profile import DeviceProfile

__all__ = ["SCHEMA_FILES", "json_schemas", "write_schemas"]

#: File name of each schema under ``config/schema/``.
SCHEMA_FILES = {
    "rules": "rules.schema.json",
    "config": "config.schema.json",
    "config-layer": "config-layer.schema.json",
    "profile": "profile.schema.json",
}

# Keywords whose value is one subschema, or a list of them, or a mapping of names to them.
_ONE = ("additionalProperties", "not", "if", "then", "else")
_LIST = ("anyOf", "allOf")
_NAMED = ("properties", "patternProperties")

_SHORTHANDS: dict[str, dict[str, Any]] = {
    "Input": {"type": "string", "description": "a sensor id, e.g. hall-lux"},
    "SunTime": {
        "type": "string",
        "pattern": r"^\s*(sunrise|sunset|noon|dawn|dusk)\s*([+-]\s*.+)?$",
        "description": "sunrise, sunset, noon, dawn or dusk with an offset, e.g. sunset-30m",
    },
    "Action": {"type": "number", "description": "a constant value for the target point"},
}


# Checks a model validator makes on one string, written as the pattern a JSON Schema can carry.
_PATTERNS = {("Rule", "id"): ID_PATTERN, ("Rule", "target"): TARGET_PATTERN}


def _with_shorthands(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.get("$defs", {})
    for (name, key), pattern in _PATTERNS.items():
        defs[name]["properties"][key]["pattern"] = pattern
    for name, short in _SHORTHANDS.items():
        if name in defs:
            full = defs[name]
            defs[name] = {
                "title": full.get("title", name),
                "description": full.get("description", ""),
                "anyOf": [short, {k: v for k, v in full.items() if k not in ("title", "description")}],
            }
    return schema


class _Layer:
    """Rewrites a schema so that a mapping may be partial, keeping list items whole (see the module doc)."""

    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs
        self.partial_defs: dict[str, Any] = {}

    def ref(self, ref: str) -> str:
        name = ref.removeprefix("#/$defs/")
        layer = f"{name}Layer"
        assert name in self.defs and layer not in self.defs, ref
        if layer not in self.partial_defs:
            self.partial_defs[layer] = {}  # placeholder: a model that refers to itself stops here
            self.partial_defs[layer] = self.schema(self.defs[name])
        return f"#/$defs/{layer}"

    def schema(self, node: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("required", "discriminator"):  # the discriminator's mapping names the complete models
                continue
            if key == "$ref":
                out[key] = self.ref(value)
            elif key == "oneOf":  # a partial section may fit several variants; the merged file decides
                assert "anyOf" not in node
                out["anyOf"] = [self.schema(v) for v in value]
            elif key in _LIST:
                out[key] = [self.schema(v) for v in value]
            elif key in _ONE and isinstance(value, dict):
                out[key] = self.schema(value)
            elif key in _NAMED:
                out[key] = {name: self.schema(v) for name, v in value.items()}
            else:  # items/prefixItems (whole), $defs (kept), type, default, enum, pattern, ...
                out[key] = value
        return out


def _config_layer(config: dict[str, Any]) -> dict[str, Any]:
    defs = config.get("$defs", {})
    layer = _Layer(defs)
    out = layer.schema({k: v for k, v in config.items() if k != "$defs"})
    out["$defs"] = {**defs, **layer.partial_defs}
    out["title"] = "lobbyd configuration layer"
    out["description"] = (
        "A config file that extends another (extends:) or that others extend (config/fleet/): every key "
        "optional where layers merge. The merged config must pass config.schema.json (lobbyd check)."
    )
    return out


def json_schemas() -> dict[str, dict[str, Any]]:
    """``{"rules": <schema of a rules/*.yaml file>, "config": <schema of lobbyd.yaml>,
    "config-layer": <schema of one layer of a fleet config>, "profile": <schema of a config/devices/*.yaml>}``."""
    rules = _with_shorthands(RuleFile.model_json_schema(by_alias=True, mode="validation"))
    rules["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    rules["title"] = "lobbyd rules file"
    rules["description"] = "rules/*.yaml: schedules and rules. See rules/README.md."
    config = DaemonConfig.model_json_schema(by_alias=True, mode="validation")
    config["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    config["title"] = "lobbyd configuration"
    config["description"] = "config/lobbyd.yaml: site, MQTT, sensors, devices, InfluxDB, safety limits."
    profile = DeviceProfile.model_json_schema(by_alias=True, mode="validation")
    profile["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    profile["title"] = "lobbyd device profile"
    profile["description"] = "config/devices/*.yaml: a device type's register map. See docs/profiles.md."
    return {"rules": rules, "config": config, "config-layer": _config_layer(config), "profile": profile}


def render(schema: dict[str, Any]) -> str:
    """The exact text written to disk (stable: sorted keys, two-space indent, final newline)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory`` (created if needed); return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for key, schema in json_schemas().items():
        path = directory / SCHEMA_FILES[key]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(render(schema), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written
