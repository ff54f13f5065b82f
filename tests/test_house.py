"""The house rules of the code base, checked so that they stay true (docs/architecture.md).

* No module of the daemon, the drivers or the simulators is over 400 lines.
* No import cycles between the project's modules.
* Drivers know nothing of the daemon but its value types (daemon.model) and its YAML reader with
  file:line:column (daemon.yamlsource); the engine does no I/O.
* Tests use public interfaces: no ``something._private`` of an object from another module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("daemon", "drivers", "simulators")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """The project modules ``name`` imports (anywhere in the file, lazily or not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for t in targets:
            if t in MODULES:
                yield t


GRAPH = {name: sorted(set(_imports(name, path)) - {name}) for name, path in MODULES.items()}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_400_lines(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines: split it by concern"


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in GRAPH[node]:
            if nxt.startswith(node + "."):  # a package importing its own modules is not a cycle
                continue
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [*path, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("drivers")))
def test_drivers_import_nothing_of_the_daemon_but_its_value_types(name: str) -> None:
    shared = {"daemon", "daemon.model", "daemon.yamlsource"}  # value types; YAML with file:line:column
    wrong = [m for m in GRAPH[name] if m.startswith("daemon") and m not in shared]
    assert not wrong, f"{name} imports {wrong}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("daemon.engine")))
def test_the_engine_does_no_io(name: str) -> None:
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
        n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    }
    io = {m for m in imported if m.split(".")[0] in {"asyncio", "socket", "os", "time", "drivers", "pathlib"}}
    assert not io, f"{name} imports {sorted(io)}"
    allowed = ("daemon.engine", "daemon.model", "daemon.rules", "daemon.sun")
    assert all(m.startswith(allowed) for m in GRAPH[name]), GRAPH[name]


def _private_uses(path: Path) -> Iterator[tuple[int, str]]:
    """``x._name`` where ``x`` is not ``self``/``cls``, unless a class of this same file defines ``_name``
    (a test's own helper class); dunders aside."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own: set[str] = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for n in ast.walk(cls):
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef):
                own.add(n.name)
            elif isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self":
                own.add(n.attr)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        base = node.value
        if (isinstance(base, ast.Name) and base.id in {"self", "cls"}) or node.attr in own:
            continue
        yield node.lineno, ast.unparse(node)


def test_tests_use_public_interfaces() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line, text in _private_uses(path)
    ]
    assert not found, "tests reach into private attributes:\n" + "\n".join(found)
