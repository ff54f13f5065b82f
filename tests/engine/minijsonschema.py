"""A small JSON Schema (2020-12 subset) checker, enough for the schemas pydantic generates.

``jsonschema`` is not a dependency of lobbyd; this covers the keywords our schemas use so a test can
prove the shipped files pass the schema an editor will apply (and that a typo fails it).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any


def _type_ok(value: Any, t: str) -> bool:
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str | dt.date | dt.time)  # YAML dates are strings to an editor
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "null":
        return value is None
    raise ValueError(f"unsupported type {t}")


def errors(schema: dict[str, Any], value: Any, root: dict[str, Any] | None = None, at: str = "") -> list[str]:
    """Every violation of ``schema`` by ``value`` as ``path: message``; empty when valid."""
    root = root if root is not None else schema
    out: list[str] = []
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        out += errors(root["$defs"][ref.removeprefix("#/$defs/")], value, root, at)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, t) for t in types):
            return [*out, f"{at}: {value!r} is not of type {types}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: {value!r} not in {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{at}: {value!r} != {schema['const']!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        checks: dict[str, Callable[[float, float], bool]] = {
            "minimum": lambda v, m: v < m,
            "maximum": lambda v, m: v > m,
            "exclusiveMinimum": lambda v, m: v <= m,
            "exclusiveMaximum": lambda v, m: v >= m,
        }
        for key, bad in checks.items():
            if key in schema and bad(value, schema[key]):
                out.append(f"{at}: {value} violates {key} {schema[key]}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{at}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            out.append(f"{at}: too short")
    if isinstance(value, list):
        prefix = schema.get("prefixItems", [])
        for i, item in enumerate(value):
            sub = prefix[i] if i < len(prefix) else schema.get("items")
            if isinstance(sub, dict):
                out += errors(sub, item, root, f"{at}[{i}]")
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            out.append(f"{at}: {len(value)} items")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                out.append(f"{at}: missing {key}")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                out += errors(props[key], item, root, f"{at}.{key}")
            elif extra is False:
                out.append(f"{at}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                out += errors(extra, item, root, f"{at}.{key}")
    if "anyOf" in schema and all(errors(s, value, root, at) for s in schema["anyOf"]):
        out.append(f"{at}: matches none of anyOf")
    if "oneOf" in schema and sum(not errors(s, value, root, at) for s in schema["oneOf"]) != 1:
        out.append(f"{at}: does not match exactly one of oneOf")
    for s in schema.get("allOf", []):
        out += errors(s, value, root, at)
    return out
