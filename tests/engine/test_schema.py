"""The generated JSON Schemas: up to date, and the shipped files pass them (as an editor would check)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.rules.durations import parse_duration
from daemon.schema import SCHEMA_FILES, json_schemas, render, write_schemas
from daemon.yamlsource import load_yaml
from tests.engine.minijsonschema import errors

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "rules").glob("*.yaml"))


def test_committed_schemas_are_up_to_date_with_the_models() -> None:
    for key, schema in json_schemas().items():
        path = ROOT / "config" / "schema" / SCHEMA_FILES[key]
        assert path.read_text(encoding="utf-8") == render(schema), f"run `lobbyd schema` to refresh {path.name}"


def test_write_schemas_writes_valid_json(tmp_path: Path) -> None:
    paths = write_schemas(tmp_path / "out")
    assert [p.name for p in paths] == ["rules.schema.json", "config.schema.json"]
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
