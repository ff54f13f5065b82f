"""What Grafana would send to InfluxDB for a dashboard: every query, with variables substituted.

Follows Grafana's InfluxQL data source: ``$timeFilter`` becomes ``time >= <from>ms and time <= <to>ms``;
``$__interval`` the range divided by the panel's data points, rounded to a nice duration and never
below the data source's ``timeInterval``; ``${__from}``/``${__to}`` epoch milliseconds; a multi-value
or include-All query variable becomes a regex-escaped ``(a|b)`` alternation (one value: the value).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DashboardQuery", "interpolate", "nice_interval", "queries", "regex_escape"]

_NICE_S = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class DashboardQuery:
    """One InfluxQL query of a dashboard and where it lives (for assertion messages)."""

    where: str  # e.g. "panel 1 'PM2.5' A", "variable zone", "annotation Events"
    kind: str  # "panel" | "variable" | "annotation"
    query: str


def queries(dashboard: Mapping[str, Any]) -> Iterator[DashboardQuery]:
    """Every query of ``dashboard``: panel targets, query variables, annotation queries."""
    for panel in dashboard.get("panels", []):
        for t in panel.get("targets", []):
            yield DashboardQuery(f"panel {panel['id']} {panel['title']!r} {t['refId']}", "panel", t["query"])
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var["query"]
            yield DashboardQuery(f"variable {var['name']}", "variable", q if isinstance(q, str) else q["query"])
    for anno in dashboard.get("annotations", {}).get("list", []):
        if anno.get("builtIn"):
            continue
        q = anno.get("target", {}).get("query") or anno["query"]
        yield DashboardQuery(f"annotation {anno['name']}", "annotation", q)


def regex_escape(value: str) -> str:
    """Grafana's escaping of a variable value inside an InfluxQL ``/regex/``."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


def format_values(values: Sequence[str]) -> str:
    escaped = [regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def nice_interval(span_s: float, max_points: int = 1000, min_s: int = 10) -> str:
    raw = span_s / max_points
    secs = next((n for n in _NICE_S if n >= raw), _NICE_S[-1])
    secs = max(secs, min_s)
    return f"{secs // 60}m" if secs % 60 == 0 and secs < 3600 else f"{secs}s"


def interpolate(query: str, *, variables: Mapping[str, Sequence[str]], from_ms: int, to_ms: int, interval: str) -> str:
    """``query`` as Grafana sends it for the time range [from_ms, to_ms] and the selected variables."""
    out = query.replace("$timeFilter", f"time >= {from_ms}ms and time <= {to_ms}ms")
    out = out.replace("$__interval", interval)
    out = out.replace("${__from}", str(from_ms)).replace("${__to}", str(to_ms))
    for name in sorted(variables, key=len, reverse=True):
        value = format_values(variables[name])
        out = out.replace("${" + name + "}", value).replace("$" + name, value)
    leftover = re.search(r"\$\{?[A-Za-z_]\w*", out)
    if leftover:
        raise ValueError(f"unknown variable {leftover.group(0)} in {out}")
    return out
