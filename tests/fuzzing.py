"""How many cases the hypothesis fuzz tests run.

By default (CI, a developer's machine) each fuzz test runs a modest, fixed share of its full count, so
the suite stays fast; ``LOBBYD_FUZZ=long`` runs the full count (before a release, after changing an
intake). The strategies are the same either way: derandomized, so both runs are deterministic, and the
generators still produce NaN, infinities, huge numbers, empty and malformed values.
"""

from __future__ import annotations

import os

LONG = os.environ.get("LOBBYD_FUZZ", "").strip().lower() == "long"


def examples(full: int, short: int) -> int:
    """``full`` cases under ``LOBBYD_FUZZ=long``, else ``short``."""
    if short > full or short < 1:
        raise ValueError(f"short count {short} must be in 1..{full}")
    return full if LONG else short
