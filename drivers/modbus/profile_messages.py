"""Plain-word messages for a device profile that does not fit its model.

pydantic's own texts ("Input should be ...", "Input tag ... found using ...") never reach the person
editing a profile: each error becomes what is wrong, what was found and what would be right, at the
file's line and column, with a did-you-mean for a misspelt key, register type, data type or encoder
kind. Union tags that pydantic adds to an error's location (``encoder.enum.write``) are dropped, so
the key path shown is the one in the file.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

import pydantic
from pydantic_core import ErrorDetails

from daemon.yamlsource import ErrorItem, SourceDoc, did_you_mean

__all__ = ["profile_errors"]

_EXPECTED = re.compile(r"'((?:[^'\\]|\\.)*)'|(-?\d+(?:\.\d+)?)")
_SHAPES = {
    "model_type": "a mapping (lines of 'key: value')",
    "model_attributes_type": "a mapping (lines of 'key: value')",
    "dict_type": "a mapping (lines of 'key: value')",
    "list_type": "a list (lines starting with '- ', or [a, b])",
    "tuple_type": "a list (lines starting with '- ', or [a, b])",
}
_KINDS = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


def _found(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return f"'{value[:60]}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}"
    return type(value).__name__


def _unwrap(ann: Any) -> Any:
    """``Annotated[X, ...]`` → X; ``X | None`` → X."""
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    if get_origin(ann) in (Union, types.UnionType):
        args = [a for a in get_args(ann) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return ann


def _step(ann: Any, part: int | str) -> Any:
    """The annotation one location part below ``ann`` (a field, a mapping value, a list item, a union member)."""
    ann = _unwrap(ann)
    if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
        for name, info in ann.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    origin = get_origin(ann)
    if origin in (dict, Mapping):
        return get_args(ann)[1]
    if origin in (list, tuple):
        return get_args(ann)[0]
    if origin in (Union, types.UnionType):
        for member in get_args(ann):
            tags = [f.default for f in getattr(member, "model_fields", {}).values() if get_origin(f.annotation)]
            if part in tags:
                return member
    return None


def _keys(ann: Any) -> list[str]:
    ann = _unwrap(ann)
    if not (isinstance(ann, type) and issubclass(ann, pydantic.BaseModel)):
        return []
    return [info.alias or name for name, info in ann.model_fields.items()]


def _in_file(doc: SourceDoc, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """``loc`` without the parts pydantic adds (union tags, ``[key]``) that are not in the file."""
    out: list[int | str] = []
    node: Any = doc.data
    for i, part in enumerate(loc):
        if part == "[key]":
            continue
        present = (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if present:
            node = node[part]
        elif i < len(loc) - 1:
            continue
        out.append(part)
    return tuple(out)


def _message(model: type[pydantic.BaseModel], err: ErrorDetails, loc: tuple[int | str, ...]) -> tuple[str, bool]:
    """(message, at_key) for one pydantic error."""
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    value = err.get("input")
    names = [p for p in loc if isinstance(p, str) and p != "[key]"]
    field = names[-1] if names else "the file"
    if loc and loc[-1] == "[key]":
        what = _KINDS.get(kind, "something else")
        under = names[-2] if len(names) > 1 else field
        return f"the key {_found(value)} under '{under}' must be {what}", True
    if kind == "extra_forbidden":
        owner: Any = model
        for part in loc[:-1]:
            owner = _step(owner, part)
        known = _keys(owner)
        hint = did_you_mean(str(loc[-1]), known) or f" (known keys here: {', '.join(known)})"
        return f"unknown key '{loc[-1]}'" + hint, True
    if kind == "missing":
        return f"missing required key '{field}'", False
    if kind in ("enum", "literal_error"):
        allowed = [a or b for a, b in _EXPECTED.findall(str(ctx.get("expected", "")))]
        hint = did_you_mean(str(value), allowed)
        return f"{_found(value)} is not a valid {field}{hint}; use one of: {', '.join(allowed)}", False
    if kind == "union_tag_invalid":
        disc = str(ctx.get("discriminator", "kind")).strip("'")
        allowed = [a or b for a, b in _EXPECTED.findall(str(ctx.get("expected_tags", "")))]
        hint = did_you_mean(str(ctx.get("tag", "")), allowed)
        return f"unknown {field} {disc} '{ctx.get('tag')}'{hint}; use one of: {', '.join(allowed)}", False
    if kind == "union_tag_not_found":
        disc = str(ctx.get("discriminator", "kind")).strip("'")
        union: Any = model
        for part in loc:
            union = _step(union, part)
        tags = [str(getattr(m, "model_fields", {})[disc].default) for m in get_args(_unwrap(union))]
        return f"{field} needs a '{disc}': one of {', '.join(tags)}", False
    if kind in _SHAPES and not names:
        return f"the file must be {_SHAPES[kind]} with at least name: and points:, found {_found(value)}", False
    if kind in _SHAPES:
        return f"'{field}' must be {_SHAPES[kind]}, found {_found(value)}", False
    if kind in _KINDS:
        return f"{field} must be {_KINDS[kind]}, found {_found(value)}", False
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"{field} must be {words} {_found(ctx.get(key))}, found {_found(value)}", False
    if kind == "too_short":
        return f"{field} must not be empty", False
    if kind == "value_error":
        return str(ctx.get("error", err["msg"].removeprefix("Value error, "))), False
    return f"{field}: this value is not accepted here, found {_found(value)}", False


def profile_errors(model: type[pydantic.BaseModel], doc: SourceDoc, exc: pydantic.ValidationError) -> list[ErrorItem]:
    """Every error of ``exc`` in plain words with its position in ``doc``, in file order."""
    items: list[ErrorItem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        message, at_key = _message(model, err, loc)
        where = _in_file(doc, loc)
        if err["type"] == "union_tag_invalid":  # point at the tag itself
            where = _in_file(doc, (*loc, str(dict(err.get("ctx") or {}).get("discriminator", "")).strip("'")))
        items.append(doc.error(where, message, at_key=at_key))
    return sorted(items, key=lambda e: (e.line, e.column))
