"""Load YAML with positions, validate with pydantic, report errors as ``file:line:column``.

Facilities staff edit these files by hand; every error must say where it is and, for a misspelt
key, what was probably meant. Validation never mutates the loaded data.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import pydantic
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.reader import ReaderError

from daemon.wording import bad_date, example, is_tag, plain_union, yaml_problem
from daemon.yamllimits import LimitExceeded, YamlLimits, check_nodes, deepest_position, read_limited, too_big

__all__ = [
    "DEFAULT_LIMITS",
    "ConfigError",
    "ErrorItem",
    "SourceDoc",
    "YamlLimits",
    "deep_merge",
    "did_you_mean",
    "load_model",
    "load_yaml",
    "read_text",
    "validate",
]

T = TypeVar("T", bound=pydantic.BaseModel)
DEFAULT_LIMITS = YamlLimits()
Loc = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class ErrorItem:
    """One problem in one file, with a 1-based line and column."""

    file: str
    line: int
    column: int
    message: str
    path: str = ""

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {self.message}{where}"


class ConfigError(Exception):
    """One or more problems in configuration or rule files. ``str()`` lists them one per line."""

    def __init__(self, errors: Iterable[ErrorItem]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass
class SourceDoc:
    """Plain Python data from one YAML file, plus where each key/value stood in it."""

    path: str
    data: Any
    positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def key_position(self, loc: Sequence[int | str]) -> tuple[int, int]:
        """Where the key at ``loc`` stands (for unknown keys); falls back to :meth:`position`."""
        return self.key_positions.get(tuple(loc)) or self.position(loc)

    def position(self, loc: Sequence[int | str]) -> tuple[int, int]:
        """Best position for ``loc``: the deepest prefix that exists in the file."""
        best = self.positions.get((), (1, 1))
        node: Any = self.data
        walked: list[int | str] = []
        for part in loc:
            if (isinstance(node, Mapping) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            ):
                walked.append(part)
                node = node[part]  # type: ignore[index]
            else:
                continue  # pydantic adds union tags / model names that are not in the file
            best = self.positions.get(tuple(walked), best)
        return best

    def error(self, loc: Sequence[int | str], message: str, *, at_key: bool = False) -> ErrorItem:
        line, col = self.key_position(loc) if at_key else self.position(loc)
        return ErrorItem(self.path, line, col, message, _dotted(loc))


def _dotted(loc: Sequence[int | str]) -> str:
    """``rules[0].when[1].above`` from a location, without the union tags pydantic adds (``function-before[...]``)."""
    out = ""
    for part in loc:
        if is_tag(part):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _plain(node: Any, loc: Loc, positions: dict[Loc, tuple[int, int]], keys: dict[Loc, tuple[int, int]]) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            child = (*loc, key)
            try:
                kl, kc = node.lc.key(key)
                positions[child] = keys[child] = (kl + 1, kc + 1)
            except (KeyError, TypeError, AttributeError):
                positions[child] = positions.get(loc, (1, 1))
            out[key] = _plain(value, child, positions, keys)
            if not isinstance(value, CommentedMap | CommentedSeq):
                try:
                    vl, vc = node.lc.value(key)
                    positions[child] = (vl + 1, vc + 1)
                except (KeyError, TypeError, AttributeError):
                    pass
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for i, value in enumerate(node):
            child = (*loc, i)
            try:
                il, ic = node.lc.item(i)
                positions[child] = (il + 1, ic + 1)
            except (KeyError, TypeError, AttributeError, IndexError):
                positions[child] = positions.get(loc, (1, 1))
            items.append(_plain(value, child, positions, keys))
        return items
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool | int | float) or node is None:
        return node
    return node


def read_text(path: str | Path, limits: YamlLimits = DEFAULT_LIMITS) -> str:
    """A file's UTF-8 text, refused unread when larger than ``limits.max_bytes``; raises :class:`ConfigError`."""
    try:
        return read_limited(Path(path), limits)
    except LimitExceeded as exc:
        raise ConfigError([ErrorItem(str(path), exc.line, exc.column, exc.message)]) from None
    except OSError as exc:
        raise ConfigError([ErrorItem(str(path), 1, 1, f"cannot read file: {exc.strerror or exc}")]) from None


def load_yaml(path: str | Path, *, text: str | None = None, limits: YamlLimits = DEFAULT_LIMITS) -> SourceDoc:
    """Parse one YAML file within ``limits``; every problem becomes :class:`ConfigError` with a position.

    The file is refused unread when too large; aliases are counted on the composed nodes (where an
    anchored block is shared, not copied) before anything expands them.
    """
    name = str(path)
    if text is None:
        text = read_text(path, limits)
    try:
        if len(text) > limits.max_bytes and len(text.encode("utf-8")) > limits.max_bytes:
            raise too_big(len(text.encode("utf-8")), limits)
        yaml = YAML(typ="rt")
        yaml.allow_duplicate_keys = False
        node = yaml.compose(text)
        if node is not None:
            check_nodes(node, limits)
        raw = yaml.constructor.construct_document(node) if node is not None else None
    except LimitExceeded as exc:
        raise ConfigError([ErrorItem(name, exc.line, exc.column, exc.message)]) from None
    except MarkedYAMLError as exc:
        quote = "quoted scalar" in str(exc.context or "") and exc.context_mark is not None
        mark = exc.context_mark if quote else (exc.problem_mark or exc.context_mark)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        tab = None if "\\t" in str(exc.problem) else _first_tab(text, line)
        if tab is not None:  # a tab in the indentation above confuses the parser later on
            line, col = tab
        message = yaml_problem(str(exc.problem or ""), str(exc.context or ""), text, line, col)
        raise ConfigError([ErrorItem(name, line, col, f"YAML syntax: {message}")]) from None
    except ReaderError as exc:
        line, col = _line_col(text, exc.position)
        what = f"character U+{exc.character:04X}" if isinstance(exc.character, int) else "a byte"
        raise ConfigError([ErrorItem(name, line, col, f"{what} is not allowed in a YAML file")]) from None
    except RecursionError:
        line, col = deepest_position(text, limits.max_depth)
        too_deep = f"nested too deeply: more than {limits.max_depth} levels"
        raise ConfigError([ErrorItem(name, line, col, too_deep)]) from None
    except Exception:  # ruamel raises a few unmarked errors (a date such as 2026-13-01)
        line, col, message = bad_date(text) or (1, 1, yaml_problem("", "", text, 1, 1))
        raise ConfigError([ErrorItem(name, line, col, f"YAML syntax: {message}")]) from None
    positions: dict[Loc, tuple[int, int]] = {(): (1, 1)}
    keys: dict[Loc, tuple[int, int]] = {}
    data = _plain(raw, (), positions, keys)
    return SourceDoc(name, data, positions, keys)


def _first_tab(text: str, upto: int) -> tuple[int, int] | None:
    """Where the first tab in a line's indentation stands, up to line ``upto``."""
    for i, row in enumerate(text.splitlines()[:upto], 1):
        indent = row[: len(row) - len(row.lstrip(" \t"))]
        if "\t" in indent and row.strip() and not row.strip().startswith("#"):
            return i, indent.index("\t") + 1
    return None


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def deep_merge(base: Any, over: Any, *, discriminators: tuple[str, ...] = ()) -> Any:
    """``over`` layered on ``base``: mappings merge key by key, anything else is replaced.

    A mapping whose value for one of ``discriminators`` (e.g. ``api``, ``type``) differs from the base's
    replaces it whole, so keys of the other kind do not leak in. Neither input is modified.
    """
    if isinstance(base, dict) and isinstance(over, dict):
        if any(k in base and k in over and base[k] != over[k] for k in discriminators):
            return over
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v, discriminators=discriminators) if k in base else v
        return out
    return over


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``" (did you mean 'above'?)"`` for a close match, else ``""``."""
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _allowed_keys(model: type[pydantic.BaseModel], loc: Loc) -> list[str]:
    """Field names (and aliases) of the model that owns the key at ``loc``; best effort.

    Walks the annotations: a field of a model, then a key of a ``dict[str, Model]`` or an index of a
    ``list[Model]``; union tags that pydantic adds to ``loc`` are skipped.
    """
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(_first_model(current), "model_fields", None)
        if isinstance(part, str) and fields and part in fields:
            current = fields[part].annotation
            continue
        container = _container_value(current)
        if container is not None:
            current = container
    fields = getattr(_first_model(current), "model_fields", None) or {}
    names = list(fields)
    names += [f.alias for f in fields.values() if f.alias]
    return names


def _container_value(ann: Any) -> Any:
    """The value type of a dict/list/tuple annotation (through Optional/unions), else ``None``."""
    origin = get_origin(ann)
    args = get_args(ann)
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    if origin in (list, tuple, Sequence) and args:
        return args[0]
    for arg in args:
        found = _container_value(arg)
        if found is not None:
            return found
    return None


def _first_model(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
        return ann
    if get_origin(ann) in (dict, Mapping, list, tuple, Sequence):
        return None
    for arg in get_args(ann):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def validate(model: type[T], doc: SourceDoc, *, context: dict[str, Any] | None = None) -> T:
    """Validate ``doc.data`` against ``model``; pydantic errors become positioned :class:`ConfigError`."""
    try:
        return model.model_validate(doc.data, context=context)
    except pydantic.ValidationError as exc:
        items: list[ErrorItem] = []
        groups: dict[Loc, list[Any]] = {}
        errs = exc.errors(include_url=False)
        deeper = [tuple(e["loc"]) for e in errs]
        for err in errs:
            loc: Loc = tuple(err["loc"])
            if err["type"] in ("too_short", "too_long") and any(d[: len(loc)] == loc != d for d in deeper):
                continue  # a list "too short" because some of its items are wrong: those items say why
            if err["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
                msg = f"unknown key '{loc[-1]}'" + did_you_mean(loc[-1], _allowed_keys(model, loc))
                items.append(doc.error(loc, msg, at_key=True))
            elif err["type"] == "missing" and loc:
                items.append(doc.error(loc, f"missing required key '{loc[-1]}'" + example(str(loc[-1]))))
            else:  # the branches of a union are one mistake at one place in the file
                groups.setdefault(_in_file(doc.data, loc), []).append(err)
        for where, errs in groups.items():
            for msg in plain_union(errs, _value_at(doc.data, where)):
                items.append(doc.error(tuple(errs[0]["loc"]), msg))
        items.sort(key=lambda e: (e.line, e.column))
        raise ConfigError(items) from None


def _in_file(data: Any, loc: Loc) -> Loc:
    """The part of a pydantic location that names places in the file (without the union tags)."""
    node, walked = data, []
    for part in loc:
        if (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            walked.append(part)
            node = node[part]  # type: ignore[index]
    return tuple(walked)


def _value_at(data: Any, loc: Loc) -> Any:
    for part in loc:
        data = data[part]
    return data


def load_model(model: type[T], path: str | Path, *, context: dict[str, Any] | None = None) -> T:
    """Read, parse and validate one file."""
    return validate(model, load_yaml(path), context=context)
