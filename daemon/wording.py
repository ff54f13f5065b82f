"""Library errors in plain words: what is wrong, the value seen, what would be right, an example.

Facilities staff read these messages. No text of pydantic's or ruamel's reaches them: each pydantic
error type and each YAML syntax problem known here is rewritten, and anything unknown gets a general
sentence rather than the library's own.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["bad_date", "example", "is_tag", "kind", "plain_error", "plain_union", "yaml_problem"]

_YAML11 = {"yes", "no", "on", "off", "y", "n", "true", "false"}
_EXPECTED = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "model_type": "a mapping (lines of 'key: value')",
    "model_attributes_type": "a mapping (lines of 'key: value')",
    "dict_type": "a mapping (lines of 'key: value')",
    "list_type": "a list (lines starting with '- ', or [a, b])",
    "tuple_type": "a list (lines starting with '- ', or [a, b])",
    "date_type": "a date such as 2026-10-01",
    "date_parsing": "a date such as 2026-10-01",
    "date_from_datetime_parsing": "a date such as 2026-10-01",
    "date_from_datetime_inexact": "a date such as 2026-10-01",
    "none_required": "nothing",
}


_TAGS = {"float", "int", "str", "bool", "list", "dict", "tuple", "date", "none"}


def is_tag(part: object) -> bool:
    """Whether a part of a pydantic location is a union tag (``function-before[...]``, ``Input``), not a key."""
    return isinstance(part, str) and (
        part in _TAGS or (part.isidentifier() and part[:1].isupper()) or any(c in part for c in "[](),")
    )


def kind(value: Any) -> str:
    """What a value is, in words, for "expected ..., found ..."."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return f"the text {value[:60]!r}"
    if isinstance(value, bool):
        return f"the value {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, dt.date):
        return f"the date {value.isoformat()}"
    return "a value of another kind"


def _seen(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:60])
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and math.isnan(value):
        return ".nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    return kind(value) if isinstance(value, Mapping | list | tuple) or value is None else repr(value)


def _word_note(value: Any) -> str:
    if isinstance(value, str) and value.strip().lower() in _YAML11:
        return f" ('{value}' is a word here, not true/false or a number)"
    return ""


_EXAMPLE_OF = {
    "id": "id: pm25-high",
    "target": "target: fresh_air.fan_speed",
    "set": "set: 3",
    "input": "input: hall-lux",
    "points": "points: [[0, 2700], [1500, 5000]]",
    "table": "table: [[0, 100], [300, 80]]",
}


def example(key: str) -> str:
    """`` (e.g. target: fresh_air.fan_speed)`` for a key of the rule language, else ``""``."""
    return f" (e.g. {_EXAMPLE_OF[key]})" if key in _EXAMPLE_OF else ""


def plain_error(err: Mapping[str, Any]) -> str:
    """One pydantic error (from ``ValidationError.errors()``) in plain words."""
    typ = str(err.get("type", ""))
    value = err.get("input")
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    field = next((p for p in reversed(tuple(err.get("loc", ()))) if isinstance(p, str) and not is_tag(p)), "value")
    if typ in ("value_error", "assertion_error"):
        text = str(ctx.get("error", "")) or str(err.get("msg", ""))
        return text.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if typ == "finite_number":
        return f"{_seen(value)} is not a usable number (not-a-number or infinity); write an ordinary number, e.g. 35"
    if typ in ("float_type", "float_parsing"):
        return f"{_seen(value)} is not a number{_word_note(value)}; write a plain number, e.g. 35 or 24.5"
    if typ in ("int_type", "int_parsing", "int_from_float"):
        return f"{_seen(value)} is not a whole number{_word_note(value)}; write e.g. {field}: 50"
    if typ in ("bool_type", "bool_parsing"):
        return f"{_seen(value)} is not true or false{_word_note(value)}; write {field}: true or {field}: false"
    if typ in ("literal_error", "enum"):
        return f"{_seen(value)} is not allowed for '{field}'{_word_note(value)}; write one of {_expected(ctx)}"
    bounds = {"greater_than": "greater than", "greater_than_equal": "at least", "less_than": "less than"}
    if typ in bounds or typ == "less_than_equal":
        word = bounds.get(typ, "at most")
        limit = next((ctx[k] for k in ("gt", "ge", "lt", "le") if k in ctx), "")
        return f"'{field}' must be {word} {limit}, found {_seen(value)}"
    if typ in ("too_short", "too_long"):
        lo = ctx.get("min_length")
        hi = ctx.get("max_length")
        need = f"at least {lo}" if typ == "too_short" else f"at most {hi}"
        return f"'{field}' needs {need} item(s), found {ctx.get('actual_length', '?')}"
    if typ in _EXPECTED:
        return f"expected {_EXPECTED[typ]} for '{field}', found {kind(value)}"
    if typ == "union_tag_invalid":
        key = str(ctx.get("discriminator", "")).strip("'")
        tags = ctx.get("expected_tags")
        return f"{str(ctx.get('tag'))!r} is not allowed for '{key}' in '{field}'; write one of {tags}"
    if typ == "union_tag_not_found":
        return f"'{field}' needs a '{str(ctx.get('discriminator', '')).strip(chr(39))}' key naming its kind"
    if typ == "missing":
        return f"missing required key '{field}'"
    return f"{_seen(value)} is not allowed here for '{field}'"


_RANK = {"value_error": 0, "assertion_error": 0, "finite_number": 1, "too_short": 2, "too_long": 2}


def plain_union(errors: Sequence[Mapping[str, Any]], value: Any) -> list[str]:
    """Errors of the branches of one union (one place in the file) as one or more plain messages."""
    best = min(_RANK.get(str(e.get("type")), 3) for e in errors)
    chosen = [e for e in errors if _RANK.get(str(e.get("type")), 3) == best]
    if best < 3 or len(chosen) == 1:
        return list(dict.fromkeys(plain_error(e) for e in chosen))
    types = [str(e.get("type")) for e in chosen]
    wanted = list(dict.fromkeys(_EXPECTED[t] for t in types if t in _EXPECTED))
    literals = [_expected(e.get("ctx") or {}) for e in chosen if e.get("type") == "literal_error"]
    wanted += [f"one of {x}" for x in literals]
    if not wanted:
        return list(dict.fromkeys(plain_error(e) for e in chosen))
    return [f"expected {' or '.join(wanted)}, found {kind(value)}{_word_note(value)}"]


_ENUM_REPR = re.compile(r"<\w+\.\w+: ('[^']*')>")


def _expected(ctx: Mapping[str, Any]) -> str:
    """pydantic's list of allowed values, an enum member's repr (``<Quantity.PM25: 'pm25'>``) as its value."""
    return _ENUM_REPR.sub(r"\1", str(ctx.get("expected", "")))


def bad_date(text: str) -> tuple[int, int, str] | None:
    """The first date-like value that is no date (``2026-13-01``): YAML cannot read it at all."""
    for i, row in enumerate(text.splitlines(), 1):
        for m in re.finditer(r"(?<![\w.-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\w.:-])", row.split("#", 1)[0]):
            try:
                dt.date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return (
                    i,
                    m.start() + 1,
                    f"'{m[0]}' is not a date: months go from 01 to 12, days up to the last of the month; "
                    "write year-month-day, e.g. 2026-10-01",
                )
    return None


def yaml_problem(problem: str, context: str, text: str, line: int, column: int) -> str:
    """A ruamel syntax problem at ``line``/``column`` (1-based) in plain words."""
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    shown = here.strip()[:60]
    if "'\\t'" in problem or "\t" in here[: max(column, 1)]:
        return (
            f"a tab character in line {line} ({here[:60]!r}): YAML lines must be indented with spaces only; "
            "replace the tab with spaces"
        )
    if "mapping values are not allowed" in problem:
        return (
            f"a ':' where none can stand, in '{shown}': either this line is indented more than the key above it "
            "(keys of one block start in the same column), or a text containing ': ' needs quotes, "
            'e.g. description: "open: yes"'
        )
    if "expected <block end>" in problem or "did not find expected key" in problem:
        return (
            f"the indentation of '{shown}' does not match the lines above it: keys of one rule must start in the "
            "same column, e.g. '    target:' under '  - id:' (4 spaces)"
        )
    if "could not find expected ':'" in problem:
        return f"'{shown}' needs a ':' after its key, e.g. 'target: fresh_air.fan_speed'"
    if "undefined alias" in problem:
        return f"an alias (*name) in '{shown}' refers to no anchor (&name) above it"
    if "end of stream" in problem and "quoted" in context:
        return "a quote opened here is never closed: add the closing quote at the end of the text"
    if "flow sequence" in context or "flow mapping" in context:
        return f"a list [ ... ] or mapping {{ ... }} opened in '{shown}' is not closed, or lacks a comma between items"
    if "duplicate key" in problem:
        m = re.search(r'duplicate key "(.*?)"', problem)
        key = f"'{m.group(1)}' " if m else ""
        return f"the key {key}appears twice in one block (again in '{shown}'): keep one of them"
    if "found character" in problem:
        return f"'{shown}' starts with a character that cannot begin a value here: put the value in quotes"
    return (
        f"this line cannot be read as YAML ('{shown}'): look for a missing ':' or quote, or indentation that "
        "differs from the lines around it"
    )
