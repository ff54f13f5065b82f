"""Every shipped YAML file that names a JSON Schema passes it, checked by the ``check-jsonschema`` CLI.

The schema a file is checked against is the one its ``# yaml-language-server: $schema=`` line names,
resolved like an editor does (relative to the file), so a wrong or stale line fails here too. A fleet
file is one layer of a config and names config-layer.schema.json; a branch file that ``extends:``
the defaults is also checked merged (as ``lobbyd check`` loads it) against the complete
config.schema.json. The defaults file alone is never a complete config (it has no branch or site), so
only its layer check and the merged check of the branch files that extend it apply to it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from daemon.config import load_layers
from daemon.yamlsource import load_yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "config" / "schema"
CLI = Path(sys.executable).parent / "check-jsonschema"
_SCHEMA_LINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)\s*$", re.MULTILINE)
# rules_corpus: rule files broken on purpose (tests/engine/test_rules_corpus.py)
_SKIP_DIRS = {
    "rules_corpus",
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
}


def _shipped_yaml() -> list[Path]:
    files = [*ROOT.rglob("*.yaml"), *ROOT.rglob("*.yml")]
    return sorted(p for p in files if not _SKIP_DIRS & set(p.relative_to(ROOT).parts))


def _schema_of(path: Path) -> Path | None:
    head = path.read_text(encoding="utf-8")[:2000]
    m = _SCHEMA_LINE.search(head)
    return (path.parent / m.group(1)).resolve() if m else None


def _check(schema: Path, files: list[Path]) -> subprocess.CompletedProcess[str]:
    assert CLI.is_file(), f"{CLI} is missing: pip install -e '.[dev]'"
    argv = [str(CLI), "--schemafile", str(schema), *map(str, files)]
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=False, timeout=120)


def test_every_file_that_names_a_schema_passes_it() -> None:
    by_schema: dict[Path, list[Path]] = defaultdict(list)
    for path in _shipped_yaml():
        schema = _schema_of(path)
        if schema is not None:
            by_schema[schema].append(path)
    named = {
        s.relative_to(ROOT).as_posix(): sorted(p.relative_to(ROOT).as_posix() for p in ps)
        for s, ps in by_schema.items()
    }
    # The files that must carry a schema line do (a dropped line would silently skip a file).
    rule_files = [*(ROOT / "rules").glob("*.yaml"), *(ROOT / "tests" / "e2e" / "rules").glob("*.yaml")]
    assert named["config/schema/rules.schema.json"] == sorted(p.relative_to(ROOT).as_posix() for p in rule_files)
    assert named["config/schema/config.schema.json"] == ["config/lobbyd.yaml"]
    assert named["config/schema/config-layer.schema.json"] == sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "config" / "fleet").glob("*.yaml")
    )
    assert named["config/schema/profile.schema.json"] == sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "config" / "devices").glob("*.yaml")
    )
    for schema, files in by_schema.items():
        assert schema.is_file(), f"{schema} named by {files} does not exist"
        done = _check(schema, files)
        assert done.returncode == 0, f"{schema.name}:\n{done.stdout}{done.stderr}"


def test_fleet_branches_merged_pass_the_complete_config_schema(tmp_path: Path) -> None:
    branches = [p for p in sorted((ROOT / "config" / "fleet").glob("*.yaml")) if "extends" in load_yaml(p).data]
    assert branches, "config/fleet/ has a branch file that extends the defaults"
    merged = []
    for path in branches:
        out = tmp_path / f"{path.stem}.merged.json"
        out.write_text(json.dumps(load_layers(path).data), encoding="utf-8")
        merged.append(out)
    done = _check(SCHEMAS / "config.schema.json", merged)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("schema", "text", "fragment"),
    [
        ("rules.schema.json", "rules:\n  - {id: x, target: a.b, set: 1, when: [{sensor: s, abve: 3}]}\n", "abve"),
        ("config-layer.schema.json", "mqtt: {prot: 1884}\n", "prot"),
        ("config.schema.json", "extends: defaults.yaml\nbranch: b1\n", "required"),
        ("profile.schema.json", "name: x\npoints:\n  p: {address: 1, writeable: true}\n", "writeable"),
        ("profile.schema.json", "name: x\npoints:\n  p: {address: 1, encoder: {kind: dali}}\n", "dali"),
    ],
)
def test_the_check_fails_on_a_broken_file(schema: str, text: str, fragment: str, tmp_path: Path) -> None:
    """The CLI run above would also catch a typo: a passing check is not a check that cannot fail."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    done = _check(SCHEMAS / schema, [bad])
    assert done.returncode == 1 and fragment in done.stdout, done.stdout + done.stderr
