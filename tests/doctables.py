"""Key tables in docs/*.md checked against the pydantic models they document.

A documented model is a ``### heading`` followed by a table ``| key | type | default | meaning |``.
:func:`rows` renders what the type and default cells must say for each key of a model, so a key
added, removed, retyped or given another default without the doc changing fails a test, which prints
the row to paste. ``python -m tests.doctables drivers.mqtt.config:JsonDecoder`` prints a model's rows.
"""

from __future__ import annotations

import enum
import importlib
import re
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import pydantic
from pydantic_core import PydanticUndefined

__all__ = ["Row", "rows", "tables"]

Row = tuple[str, str]  # (type cell, default cell)

_SCALARS = {int: "integer", float: "number", str: "text", bool: "true/false"}


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _bounds(metadata: list[Any]) -> str:
    low = high = ""
    extra = []
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            low = f"≥ {_num(m.ge)}"
        elif isinstance(m, annotated_types.Gt):
            low = f"> {_num(m.gt)}"
        elif isinstance(m, annotated_types.Le):
            high = f"≤ {_num(m.le)}"
        elif isinstance(m, annotated_types.MinLen) and m.min_length:
            extra.append("not empty")
    if low.startswith("≥") and high:
        return ", ".join([f"{low[2:]}–{high[2:]}", *extra])
    return ", ".join(x for x in (low, high, *extra) if x)


def render_type(ann: Any, names: dict[Any, str]) -> str:
    """Words for an annotation: ``integer``, ``one of `a`, `b```, ``mapping of name → point`` ..."""
    if ann in names:
        return names[ann]
    origin = get_origin(ann)
    if origin is Annotated:
        return render_type(get_args(ann)[0], names)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        if frozenset(args) in names:
            return names[frozenset(args)]
        return " or ".join(render_type(a, names) for a in args)
    if origin is Literal:
        values = get_args(ann)
        if all(isinstance(v, enum.Enum) for v in values):  # some members of an enum
            return "one of " + ", ".join(f"`{v.value}`" for v in values)
        return " or ".join(f"`{v}`" for v in values)
    if origin is dict:
        k, v = get_args(ann)
        key = "name" if k is str else render_type(k, names)
        return f"mapping of {key} → {render_type(v, names)}"
    if origin is tuple:
        items = get_args(ann)
        if len(items) == 2 and items[1] is Ellipsis:
            return f"list of {render_type(items[0], names)}"
        return "[" + ", ".join(render_type(a, names) for a in items) + "]"
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in ann)
    if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
        return names.get(ann, ann.__name__)
    if ann in _SCALARS:
        return _SCALARS[ann]
    if isinstance(ann, type):
        return {"Path": "path"}.get(ann.__name__, ann.__name__)
    return str(ann)


def render_default(info: Any) -> str:
    if info.is_required() or (get_origin(info.annotation) is Literal and len(get_args(info.annotation)) == 1):
        return "required"  # a single-value Literal is a union tag: the file must say it
    value = info.default_factory() if info.default_factory is not None else info.default
    if value is PydanticUndefined or value is None:
        return "none"
    if isinstance(value, pydantic.BaseModel):
        kind = getattr(value, "kind", None) or getattr(value, "type", None)
        return f"`{{kind: {kind}}}`" if kind else "`{}`"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`' if value == "" else f"`{value}`"
    if isinstance(value, dict | list | tuple):
        return "`{}`" if isinstance(value, dict) and not value else f"`{value}`"
    return f"`{_num(value)}`"


def rows(model: type[pydantic.BaseModel], names: dict[Any, str] | None = None) -> dict[str, Row]:
    """``{key: (type cell, default cell)}`` for every key of ``model`` (aliases as written in files)."""
    out: dict[str, Row] = {}
    for name, info in model.model_fields.items():
        typ = render_type(info.annotation, names or {})
        bounds = _bounds(list(info.metadata))
        out[info.alias or name] = (f"{typ}, {bounds}" if bounds else typ, render_default(info))
    return out


_HEADING = re.compile(r"^#{2,4} (.+?)\s*$")
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(.*)\|(.*)\|(.*)\|\s*$")


def tables(path: Path) -> dict[str, dict[str, Row]]:
    """``{heading: {key: (type, default)}}`` for every key table in a markdown file."""
    out: dict[str, dict[str, Row]] = {}
    heading = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _HEADING.match(line)
        if m:
            heading = m.group(1)
            continue
        r = _ROW.match(line)
        if r:
            out.setdefault(heading, {})[r.group(1)] = (r.group(2).strip(), r.group(3).strip())
    return out


def table_text(model: type[pydantic.BaseModel], names: dict[Any, str] | None = None) -> str:
    """The rows to paste into a doc (meaning left as ``...``)."""
    return "\n".join(f"| `{k}` | {t} | {d} | ... |" for k, (t, d) in rows(model, names).items())


if __name__ == "__main__":  # pragma: no cover - a helper for writing docs
    for arg in sys.argv[1:]:
        mod, _, cls = arg.partition(":")
        print(table_text(getattr(importlib.import_module(mod), cls)))
