"""JSON Schemas of the rule files and the config file, generated from the pydantic models.

Editors use them for completion and inline errors (VS Code's YAML extension reads the
``# yaml-language-server: $schema=...`` line at the top of each shipped file). The models stay the
single source of truth; this module only adds what pydantic cannot see: the shorthands that
``mode="before"`` validators accept (a sensor id for an input, ``sunset-30m`` for a sun time,
a bare number for ``set``). ``lobbyd check`` remains the authority: it also checks references.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.config import DaemonConfig
from daemon.rules.model import RuleFile

__all__ = ["SCHEMA_FILES", "json_schemas", "write_schemas"]

#: File name of each schema under ``config/schema/``.
SCHEMA_FILES = {"rules": "rules.schema.json", "config": "config.schema.json"}

_SHORTHANDS: dict[str, dict[str, Any]] = {
    "Input": {"type": "string", "description": "a sensor id, e.g. hall-lux"},
    "SunTime": {
        "type": "string",
        "pattern": r"^\s*(sunrise|sunset|noon|dawn|dusk)\s*([+-]\s*.+)?$",
        "description": "sunrise, sunset, noon, dawn or dusk with an offset, e.g. sunset-30m",
    },
    "Action": {"type": "number", "description": "a constant value for the target point"},
}


def _with_shorthands(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.get("$defs", {})
    for name, short in _SHORTHANDS.items():
        if name in defs:
            full = defs[name]
            defs[name] = {
                "title": full.get("title", name),
                "description": full.get("description", ""),
                "anyOf": [short, {k: v for k, v in full.items() if k not in ("title", "description")}],
            }
    return schema


def json_schemas() -> dict[str, dict[str, Any]]:
    """``{"rules": <schema of a rules/*.yaml file>, "config": <schema of lobbyd.yaml>}``."""
    rules = _with_shorthands(RuleFile.model_json_schema(by_alias=True, mode="validation"))
    rules["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    rules["title"] = "lobbyd rules file"
    rules["description"] = "rules/*.yaml: schedules and rules. See rules/README.md."
    config = DaemonConfig.model_json_schema(by_alias=True, mode="validation")
    config["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    config["title"] = "lobbyd configuration"
    config["description"] = "config/lobbyd.yaml: site, MQTT, sensors, devices, InfluxDB, safety limits."
    return {"rules": rules, "config": config}


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
