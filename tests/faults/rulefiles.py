"""Hostile rule files for the fault tests: an alias bomb, a large file, a file nested too deeply."""

from __future__ import annotations

__all__ = ["alias_bomb", "big_rules", "nested"]


def alias_bomb(levels: int = 9) -> str:
    """ "Billion laughs": each anchor is ten aliases of the one before; ``rules`` expands to 10**(levels+1) values."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append(f"rules: *a{levels}")
    return "\n".join(lines) + "\n"


def big_rules(size: int, *, tail: str = "") -> str:
    """Valid-looking rules (ids unique, but unknown targets) up to about ``size`` bytes, then ``tail``."""
    out = ["rules:\n"]
    n, total = 0, 7
    while total < size - len(tail):
        block = f"  - id: big-{n}\n    target: nowhere.point\n    when:\n      - sensor: hall-pm25\n        above: 35\n"
        block += "    set: 3\n"
        out.append(block)
        total += len(block)
        n += 1
    out.append(tail)
    return "".join(out)


def nested(depth: int) -> str:
    return "rules: " + "[" * depth + "]" * depth + "\n"
