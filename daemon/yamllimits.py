"""Bounds on reading a YAML file: its size, how far aliases expand it, how deeply it nests.

A hand-edited file must not be able to take the daemon down: a huge file is refused before it is
read, and a file whose aliases (``*name``) repeat an anchored block (``&name``) into millions of
values (a "billion laughs" bomb) is refused after ruamel has composed it (which shares an anchored
node between its aliases, so composing is linear in the text) and before anything expands it.
Problems raise :class:`LimitExceeded` with a 1-based line and column; ``daemon.yamlsource`` turns
them into positioned errors.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import MappingEndEvent, MappingStartEvent, SequenceEndEvent, SequenceStartEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode

__all__ = ["LimitExceeded", "YamlLimits", "check_nodes", "deepest_position", "read_limited", "too_big"]

#: A long text counts as one value per this many characters when an alias repeats it.
CHARS_PER_VALUE = 256


class YamlLimits(BaseModel):
    """Bounds on one YAML file (the daemon config's ``rule_files`` section sets them for rule files)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: int = Field(
        1_048_576, ge=1, description="a larger file is refused before it is read (the shipped rules are ~10 kB)"
    )
    max_alias_values: int = Field(
        10_000,
        ge=0,
        description="how many values aliases (*name) may repeat in all (a long text counts one per 256 characters)",
    )
    max_depth: int = Field(64, ge=2, le=200, description="how deeply lists and mappings may nest")
    parse_timeout_s: float = Field(
        10.0, gt=0, description="the running daemon gives up on a file whose reading takes longer than this"
    )


class LimitExceeded(Exception):
    """A file is beyond a :class:`YamlLimits` bound, or cannot be read as UTF-8 text."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


def _mib(n: int) -> str:
    return f"{n / 1_048_576:.1f} MiB" if n >= 104_858 else f"{n / 1024:.1f} kB"


def too_big(size: int, limits: YamlLimits) -> LimitExceeded:
    return LimitExceeded(
        1,
        1,
        f"file too large: {_mib(size)} ({size} bytes); at most {_mib(limits.max_bytes)} ({limits.max_bytes} bytes) "
        "is read (rule_files.max_bytes in the daemon config); split it or remove what is not needed",
    )


def read_limited(path: Path, limits: YamlLimits) -> str:
    """The file's text, refused unread when larger than ``limits.max_bytes`` (raises ``OSError`` as is)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read for ever, a device never end
        raise LimitExceeded(1, 1, "not a regular file (a pipe, device or directory cannot be a YAML file)")
    size = st.st_size
    if size > limits.max_bytes:
        raise too_big(size, limits)
    with path.open("rb") as f:
        raw = f.read(limits.max_bytes + 1)  # the file may have grown since stat (or not be a regular file)
    if len(raw) > limits.max_bytes:
        raise too_big(len(raw), limits)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = raw[exc.start]
        guess = bytes([byte]).decode("cp1252", errors="replace")
        hint = (
            f" (in Latin-1 or Windows-1252 it is '{guess}': the file was probably saved so)"
            if guess.isprintable() and byte >= 0xA0
            else ""
        )
        raise LimitExceeded(
            line, column, f"not UTF-8 text: byte 0x{byte:02x} cannot be read{hint}; save the file as UTF-8"
        ) from None


class _Walk:
    """Counts, in document order, the values that aliases repeat; stops at the first bound passed."""

    def __init__(self, limits: YamlLimits) -> None:
        self.limits = limits
        self.sizes: dict[int, int] = {}  # id(node) -> how many values it stands for, expanded
        self.open: set[int] = set()
        self.repeated = 0

    def visit(self, node: Node, depth: int, at: Any) -> int:
        key = id(node)
        if key in self.sizes:  # a second visit: an alias
            self.repeated += self.sizes[key]
            if self.repeated > self.limits.max_alias_values:
                name = f"&{node.anchor}" if getattr(node, "anchor", None) else "an anchored block"
                raise LimitExceeded(
                    at.line + 1,
                    at.column + 1,
                    f"aliases repeat too much: with this one they repeat {self.repeated} values in all "
                    f"(at most {self.limits.max_alias_values}); {name} from line {node.start_mark.line + 1} is "
                    "repeated too often (write the values out, or use fewer aliases)",
                )
            return self.sizes[key]
        if key in self.open:
            raise LimitExceeded(
                at.line + 1,
                at.column + 1,
                f"an alias refers to the block it stands in (anchored at line {node.start_mark.line + 1}): "
                "it would repeat forever",
            )
        if depth > self.limits.max_depth:
            mark = node.start_mark
            raise LimitExceeded(
                mark.line + 1, mark.column + 1, f"nested too deeply: more than {self.limits.max_depth} levels"
            )
        size = 1
        self.open.add(key)
        if isinstance(node, MappingNode):
            for k, v in node.value:
                size += self.visit(k, depth + 1, k.start_mark)
                size += self.visit(v, depth + 1, k.start_mark)
        elif isinstance(node, SequenceNode):
            prev = node.start_mark  # an alias has no mark of its own: the end of the item before it
            for item in node.value:
                alias = id(item) in self.sizes
                size += self.visit(item, depth + 1, prev)
                prev = prev if alias else item.end_mark
        elif isinstance(node.value, str):
            size += len(node.value) // CHARS_PER_VALUE
        self.open.discard(key)
        self.sizes[key] = size
        return size


def check_nodes(node: Node, limits: YamlLimits) -> None:
    """Raise :class:`LimitExceeded` if ``node`` (from ``YAML.compose``) nests or expands beyond ``limits``."""
    _Walk(limits).visit(node, 1, node.start_mark)


def deepest_position(text: str, max_depth: int) -> tuple[int, int]:
    """Where nesting first goes beyond ``max_depth`` (for a file too deep for the composer to recurse)."""
    depth = 0
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, MappingStartEvent | SequenceStartEvent):
                depth += 1
                if depth > max_depth:
                    return event.start_mark.line + 1, event.start_mark.column + 1
            elif isinstance(event, MappingEndEvent | SequenceEndEvent):
                depth -= 1
    except YAMLError:
        pass
    return 1, 1
