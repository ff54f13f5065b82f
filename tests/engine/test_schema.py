"""The generated JSON Schemas: up to date, and the shipped files pass them (as an editor would check).

Validation is the ``jsonschema`` library's (Draft 2020-12, what the schemas declare);
tests/test_shipped_yaml_schemas.py runs the ``check-jsonschema`` CLI on the files themselves.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError

from daemon.rules.durations import parse_duration
from daemon.schema import SCHEMA_FILES, json_schemas, render, write_schemas
from daemon.yamlsource import load_yaml

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "rules").glob("*.yaml"))


def _as_json(value: Any) -> Any:
    """The data as an editor's YAML 1.2 parser sees it: a date (``holidays: [2026-01-01]``) is a string."""

    def text(v: object) -> str:
        if isinstance(v, dt.date | dt.time):
            return v.isoformat()
        raise TypeError(f"not JSON data: {v!r}")

    return json.loads(json.dumps(value, default=text))


def _flat(found: Iterable[ValidationError]) -> list[str]:
    out: list[str] = []
    for e in found:  # an anyOf/oneOf failure carries why each branch failed in its context
        out += [f"{e.json_path}: {e.validator}: {e.message}", *_flat(e.context or ())]
    return out


def errors(schema: dict[str, Any], value: Any) -> list[str]:
    """Every violation of ``schema`` by ``value`` as ``$.json.path: keyword: message``; empty when valid."""
    Draft202012Validator.check_schema(schema)
    return _flat(Draft202012Validator(schema).iter_errors(_as_json(value)))


def test_committed_schemas_are_up_to_date_with_the_models() -> None:
    for key, schema in json_schemas().items():
        path = ROOT / "config" / "schema" / SCHEMA_FILES[key]
        assert path.read_text(encoding="utf-8") == render(schema), f"run `lobbyd schema` to refresh {path.name}"


def test_write_schemas_writes_valid_json(tmp_path: Path) -> None:
    paths = write_schemas(tmp_path / "out")
    assert [p.name for p in paths] == [
        "rules.schema.json",
        "config.schema.json",
        "config-layer.schema.json",
        "profile.schema.json",
    ]
    rules = json.loads(paths[0].read_text(encoding="utf-8"))
    config = json.loads(paths[1].read_text(encoding="utf-8"))
    assert set(rules["properties"]) == {"schedules", "rules"}
    assert {"branch", "site", "mqtt", "sensors", "devices", "safety", "safety_defaults"} <= set(config["properties"])
    condition = rules["$defs"]["Condition"]["properties"]
    assert {"above", "below", "between", "off_below", "off_above", "for", "schedule", "sun", "cron"} <= set(condition)


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_shipped_rule_files_pass_the_schema(path: Path) -> None:
    assert errors(json_schemas()["rules"], load_yaml(path).data) == []


def test_shipped_config_passes_the_schema() -> None:
    assert errors(json_schemas()["config"], load_yaml(ROOT / "config" / "lobbyd.yaml").data) == []


def test_config_layer_schema_allows_partial_mappings_only() -> None:
    """A fleet layer may leave out any key where layers merge (mappings, nested too), but a list item
    replaces the other layer's whole list, so it must be complete; unknown keys and bad types still fail."""
    layer, full = json_schemas()["config-layer"], json_schemas()["config"]
    partial = {"extends": "defaults.yaml", "mqtt": {"port": 1884}, "influx": {"flush_interval_s": 5}}
    assert errors(layer, partial) == []
    assert errors(full, partial) != []  # the complete config still needs branch, site and mqtt.host
    assert errors(layer, {"safety": {"lights.cct": {"deadband": 50}}}) == []
    assert errors(layer, {"sensors": [{"id": "hall-lux"}]}) != []  # an incomplete sensor
    assert any("'prot'" in e for e in errors(layer, {"mqtt": {"prot": 1884}}))
    assert any("mqtt.port" in e for e in errors(layer, {"mqtt": {"port": "x"}}))
    assert any("influx.api" in e for e in errors(layer, {"influx": {"api": "v3"}}))


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"rules": [{"id": "x", "target": "a.b", "set": 1, "when": [{"sensor": "s", "abve": 3}]}]}, "'abve'"),
        ({"rules": [{"id": "x", "target": "a.b", "set": "high"}]}, "anyOf"),
        (
            {"rules": [{"id": "x", "target": "a.b", "set": 1, "when": [{"sensor": "s", "above": 1, "for": "5 mins"}]}]},
            "for",
        ),
        ({"schedules": {"o": {"mon": ["8.30", "17:30"]}}}, "schedules.o.mon"),
    ],
)
def test_schema_flags_typos(doc: dict[str, object], fragment: str) -> None:
    found = errors(json_schemas()["rules"], doc)
    assert found and any(fragment in e for e in found), found


@pytest.mark.parametrize("text", ["90s", "5m", "1h30m", "2 h", "1.5h", "1d"])
def test_duration_pattern_agrees_with_the_parser(text: str) -> None:
    schema = json_schemas()["rules"]["$defs"]["Condition"]["properties"]["for"]
    assert parse_duration(text) > 0
    assert errors(schema, text) == []
