"""Generate ``dashboards/branch.json``, the Grafana dashboard of one branch (or a fleet of them).

The dashboard is code so that every panel filters the same way (``$branch``, ``$zone``,
``$timeFilter``) and the thresholds come from one table. Plain dictionaries, no dependency: the JSON
is the dashboard model Grafana 9–12 imports (schemaVersion 39). Queries are raw InfluxQL, so the same
dashboard serves InfluxDB 1.x, 2.x (through a DBRP mapping) and 3.x. Schema: docs/schema.md.

    python config/grafana/build_dashboard.py            # rewrite dashboards/branch.json
    python config/grafana/build_dashboard.py --check    # exit 1 if the committed file is stale

tests/grafana/ checks that the committed JSON is what this script produces, and runs every query of
it against a real InfluxDB filled through the daemon.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["DATASOURCE_UID", "OUT", "REJECT_REASONS", "build", "main", "render"]

DATASOURCE_UID = "lobbyd-influx"
OUT = Path(__file__).resolve().parent / "dashboards" / "branch.json"
DS: dict[str, str] = {"type": "influxdb", "uid": DATASOURCE_UID}
TIMEZONE = "Asia/Shanghai"  # calendar days of the daily PM2.5 means (the fleet's local time)

# drivers.mqtt.decode.RejectReason, spelled out so the dashboard does not import the daemon.
# (tests/grafana checks the two lists agree.)
REJECT_REASONS = (
    "not_utf8",
    "oversize",
    "not_json",
    "missing_field",
    "wrong_type",
    "null",
    "nan",
    "infinite",
    "implausible",
    "unknown_topic",
)

BRANCH = '"branch" =~ /^$branch$/'
ZONE = '"zone" =~ /^$zone$/'
PM25_LIMIT_24H = 50.0  # GB/T 18883-2022, 24 h mean, µg/m³

Json = dict[str, Any]


# ---- building blocks ----------------------------------------------------------------------------
def _steps(*steps: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def _target(ref: str, query: str, alias: str = "", *, fmt: str = "time_series") -> Json:
    t: Json = {"datasource": DS, "refId": ref, "rawQuery": True, "query": query, "resultFormat": fmt}
    if alias:
        t["alias"] = alias
    return t


def _panel(
    pid: int,
    title: str,
    kind: str,
    grid: tuple[int, int, int, int],
    targets: list[Json],
    *,
    description: str,
    unit: str = "short",
    thresholds: Json | None = None,
    custom: Json | None = None,
    overrides: list[Json] | None = None,
    mappings: list[Json] | None = None,
    options: Json | None = None,
    extra: Json | None = None,
) -> Json:
    x, y, w, h = grid
    defaults: Json = {"unit": unit}
    if thresholds is not None:
        defaults["thresholds"] = thresholds
    if custom is not None:
        defaults["custom"] = custom
    if mappings is not None:
        defaults["mappings"] = mappings
    panel: Json = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
        "targets": targets,
    }
    panel.update(extra or {})
    return panel


def _row(pid: int, title: str, y: int) -> Json:
    return {"id": pid, "type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}}


def _band(style: str = "area") -> Json:
    return {"drawStyle": "line", "lineWidth": 2, "spanNulls": True, "thresholdsStyle": {"mode": style}}


def _right_axis(regex: str, unit: str) -> Json:
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [{"id": "custom.axisPlacement", "value": "right"}, {"id": "unit", "value": unit}],
    }


def _reading(quantity: str, agg: str = 'mean("value")') -> str:
    return (
        f'SELECT {agg} FROM "reading" WHERE "quantity" = \'{quantity}\' AND {BRANCH} AND {ZONE} AND $timeFilter '
        'GROUP BY time($__interval), "branch", "zone", "sensor" fill(none)'
    )


def _health(component: str, select: str) -> str:
    return (
        f'SELECT {select} FROM "health" WHERE "component" = \'{component}\' AND {BRANCH} AND $timeFilter '
        'GROUP BY time($__interval), "branch" fill(none)'
    )


# ---- panels ----------------------------------------------------------------------------------------
def _air_panels() -> list[Json]:
    pm25_bands = _steps((None, "green"), (25, "yellow"), (35, "orange"), (PM25_LIMIT_24H, "red"))
    mean_24h = (
        f'SELECT mean("value") FROM "reading" WHERE "quantity" = \'pm25\' AND {BRANCH} AND {ZONE} '
        'AND time > ${__to}ms - 24h AND time <= ${__to}ms GROUP BY "branch", "zone"'
    )
    daily = (
        f'SELECT mean("value") FROM "reading" WHERE "quantity" = \'pm25\' AND {BRANCH} AND {ZONE} AND $timeFilter '
        f'GROUP BY time(1d), "branch", "zone" fill(none) tz(\'{TIMEZONE}\')'
    )
    return [
        _row(100, "Air", 0),
        _panel(
            1,
            "PM2.5",
            "timeseries",
            (0, 1, 16, 8),
            [_target("A", _reading("pm25"), "$tag_branch $tag_sensor")],
            description="PM2.5 per sensor (µg/m³). Bands: green = target (below 25), yellow = elevated "
            "(fresh air medium), orange = above 35 (fresh air high), red = above the 24 h limit of 50 "
            "(GB/T 18883-2022). Outdoor sensors are in zone 'outdoor'.",
            unit="conμgm3",
            thresholds=pm25_bands,
            custom=_band(),
        ),
        _panel(
            2,
            "PM2.5 24 h mean vs limit 50 µg/m³",
            "stat",
            (16, 1, 8, 4),
            [_target("A", mean_24h, "$tag_branch $tag_zone")],
            description="Mean PM2.5 of the 24 hours ending at the right edge of the time range, per branch "
            "and zone, against the GB/T 18883-2022 limit (24 h mean ≤ 50 µg/m³). Red means non-compliant.",
            unit="conμgm3",
            thresholds=_steps((None, "green"), (35, "orange"), (PM25_LIMIT_24H, "red")),
            options={"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"]}},
        ),
        _panel(
            3,
            "PM2.5 daily mean",
            "barchart",
            (16, 5, 8, 4),
            [_target("A", daily, "$tag_branch $tag_zone")],
            description=f"Calendar-day ({TIMEZONE}) mean PM2.5 per branch and zone; red above 50.",
            unit="conμgm3",
            thresholds=_steps((None, "green"), (PM25_LIMIT_24H, "red")),
            options={"xTickLabelRotation": -45},
        ),
        _panel(
            4,
            "Temperature",
            "timeseries",
            (0, 9, 12, 8),
            [_target("A", _reading("temperature"), "$tag_branch $tag_sensor")],
            description="Air temperature (°C). Green = 22–26 °C (GB 50736-2012 level I: 22–24 heating "
            "season, 24–26 cooling season); yellow = level II (18–22, 26–28); blue below 18, red above 28.",
            unit="celsius",
            thresholds=_steps((None, "blue"), (18, "yellow"), (22, "green"), (26, "yellow"), (28, "red")),
            custom=_band(),
        ),
        _panel(
            5,
            "Humidity",
            "timeseries",
            (12, 9, 12, 8),
            [_target("A", _reading("humidity"), "$tag_branch $tag_sensor")],
            description="Relative humidity (%RH). Green = 40–60 %RH (GB 50736-2012 level I, cooling season); "
            "yellow 30–40 and 60–70; red below 30 (too dry) or above 70.",
            unit="humidity",
            thresholds=_steps((None, "red"), (30, "yellow"), (40, "green"), (60, "yellow"), (70, "red")),
            custom=_band(),
        ),
    ]


def _device_panels() -> list[Json]:
    lux = _reading("illuminance")
    cct_actual = (
        f'SELECT mean("value") FROM "device_status" WHERE "point" = \'cct_actual\' AND {BRANCH} AND $timeFilter '
        'GROUP BY time($__interval), "branch", "device" fill(previous)'
    )
    cct_decided = (
        f'SELECT last("value") FROM "decision" WHERE "point" = \'cct\' AND {BRANCH} AND $timeFilter '
        'GROUP BY time($__interval), "branch", "device" fill(previous)'
    )
    fan_written = (
        f'SELECT last("value") FROM "device_write" WHERE "point" = \'fan_speed\' AND "outcome" = \'ok\' '
        f'AND {BRANCH} AND $timeFilter GROUP BY time($__interval), "branch", "device" fill(previous)'
    )
    fan_output = (
        f'SELECT mean("value") FROM "device_status" WHERE "point" = \'fan_output\' AND {BRANCH} AND $timeFilter '
        'GROUP BY time($__interval), "branch", "device" fill(previous)'
    )
    availability = (
        f'SELECT min("online") FROM "availability" WHERE {BRANCH} AND $timeFilter '
        'GROUP BY time($__interval), "branch", "device" fill(previous)'
    )
    writes = (
        f'SELECT count("value") FROM "device_write" WHERE {BRANCH} AND $timeFilter '
        'GROUP BY time($__interval), "branch", "device", "outcome" fill(none)'
    )
    decisions = (
        f'SELECT "text", "rule", "device", "point", "value", "fallback" FROM "decision" WHERE {BRANCH} '
        "AND $timeFilter ORDER BY time DESC LIMIT 200"
    )
    return [
        _row(101, "Light and fresh air", 17),
        _panel(
            6,
            "Daylight vs colour temperature",
            "timeseries",
            (0, 18, 12, 8),
            [
                _target("A", lux, "$tag_branch $tag_sensor (lx)"),
                _target("B", cct_actual, "$tag_branch $tag_device CCT (K)"),
                _target("C", cct_decided, "$tag_branch $tag_device CCT decided (K)"),
            ],
            description="Measured daylight (lux, left axis) and the colour temperature the fixtures report "
            "and the rules chose (kelvin, right axis, 2700–5000 K). Brighter daylight should go with cooler "
            "(higher K) light.",
            unit="lux",
            custom={"drawStyle": "line", "lineWidth": 2, "spanNulls": True},
            overrides=[_right_axis(r".*\(K\)$", "kelvin")],
        ),
        _panel(
            7,
            "Fan level",
            "timeseries",
            (12, 18, 12, 8),
            [
                _target("A", fan_written, "$tag_branch $tag_device level written"),
                _target("B", fan_output, "$tag_branch $tag_device output (%)"),
            ],
            description="Fresh-air fan level written and verified (0 off, 1 low, 2 medium, 3 high; left "
            "axis, steps) and the unit's reported fan output (%, right axis).",
            custom={"drawStyle": "line", "lineInterpolation": "stepAfter", "lineWidth": 2, "spanNulls": True},
            overrides=[_right_axis(r".*\(%\)$", "percent")],
        ),
        _panel(
            8,
            "Device availability",
            "state-timeline",
            (0, 26, 12, 5),
            [_target("A", availability, "$tag_branch $tag_device")],
            description="Whether each Modbus device answers (green) or is offline (red: 3 consecutive "
            "failures). Writes to an offline device are retried when it returns.",
            mappings=[
                {
                    "type": "value",
                    "options": {"0": {"text": "offline", "color": "red"}, "1": {"text": "online", "color": "green"}},
                }
            ],
            thresholds=_steps((None, "red"), (1, "green")),
        ),
        _panel(
            9,
            "Modbus writes by outcome",
            "timeseries",
            (12, 26, 12, 5),
            [_target("A", writes, "$tag_branch $tag_device $tag_outcome")],
            description="Verified writes per interval: ok, mismatch (read-back differs), failed.",
            custom={"drawStyle": "bars", "stacking": {"mode": "normal"}},
        ),
        _panel(
            10,
            "Rule decisions",
            "table",
            (0, 31, 24, 7),
            [_target("A", decisions, fmt="table")],
            description="Newest first: which rule set which point to what, and why (the same text as the "
            "annotations and `lobbyd why`). fallback = a sensor went quiet and the rule's safe value applies.",
        ),
    ]


def _health_panels() -> list[Json]:
    reasons = "|".join(REJECT_REASONS)
    return [
        _row(102, "Daemon health", 38),
        _panel(
            11,
            "Time-series queue and spool",
            "timeseries",
            (0, 39, 8, 7),
            [
                _target("A", _health("influx", 'last("queue_depth")'), "$tag_branch queue (points)"),
                _target("B", _health("influx", 'last("spooled_bytes")'), "$tag_branch spool (bytes)"),
                _target("C", _health("influx", 'last("spool_oldest_s")'), "$tag_branch spool age (s)"),
            ],
            description="Points waiting in memory, bytes waiting in the disk spool and the age of the "
            "oldest spooled batch. A growing spool means InfluxDB is unreachable; it replays by itself.",
            overrides=[_right_axis(r".*\(bytes\)$", "bytes")],
        ),
        _panel(
            12,
            "Points lost or set aside",
            "timeseries",
            (8, 39, 8, 7),
            [
                _target(
                    "A",
                    _health(
                        "influx",
                        'non_negative_difference(last("dropped_points")) AS "dropped", '
                        'non_negative_difference(last("rejected_points")) AS "rejected", '
                        'non_negative_difference(last("corrupt_records")) AS "corrupt records"',
                    ),
                    "$tag_branch $col",
                )
            ],
            description="Should stay at 0. dropped = spool over its disk budget (oldest deleted); rejected = "
            "InfluxDB refused a point (kept in rejected.lp); corrupt = a torn spool record skipped.",
            thresholds=_steps((None, "green"), (1, "red")),
            custom={"drawStyle": "bars", "thresholdsStyle": {"mode": "line"}},
        ),
        _panel(
            13,
            "Rejected sensor messages",
            "timeseries",
            (16, 39, 8, 7),
            [
                _target(
                    "A",
                    _health("mqtt", f"non_negative_difference(last(/^rejected_({reasons})$/))"),
                    "$tag_branch $col",
                ),
                _target(
                    "B",
                    _health("mqtt", 'non_negative_difference(last("messages_in")) AS "messages in"'),
                    "$tag_branch $col",
                ),
            ],
            description="MQTT messages received and rejected per interval, by reason (decode errors, "
            "implausible values, ...). The daemon logs each reason once a minute with the topic.",
            custom={"drawStyle": "bars"},
        ),
    ]


def _annotations() -> list[Json]:
    def anno(name: str, color: str, query: str, tags: str) -> Json:
        return {
            "name": name,
            "datasource": DS,
            "enable": True,
            "iconColor": color,
            # Grafana ≥ 10 reads `target`; older versions read the top-level fields.
            "target": {
                "refId": "Anno",
                "query": query,
                "rawQuery": True,
                "fromAnnotations": True,
                "textColumn": "text",
                "tagsColumn": tags,
            },
            "query": query,
            "textColumn": "text",
            "tagsColumn": tags,
        }

    builtin: Json = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return [
        builtin,
        anno(
            "Rule decisions",
            "purple",
            f'SELECT "text", "rule", "device", "point" FROM "decision" WHERE {BRANCH} AND $timeFilter',
            "rule,device,point",
        ),
        anno(
            "Events",
            "orange",
            f'SELECT "text", "kind", "device" FROM "event" WHERE {BRANCH} AND $timeFilter',
            "kind,device",
        ),
    ]


def _variable(name: str, label: str, query: str) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": query,
        "definition": query,
        "refresh": 1,
        "multi": True,
        "includeAll": True,
        "sort": 1,
        "current": {},
        "options": [],
        "hide": 0,
    }


def build() -> Json:
    """The dashboard model (a JSON-serialisable dict)."""
    return {
        "uid": "lobbyd-branch",
        "title": "lobbyd — branch lobby",
        "description": "Lobby air, light and fresh air of one branch or a fleet (branch variable). "
        "Generated by config/grafana/build_dashboard.py; see docs/grafana.md.",
        "tags": ["lobbyd"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "annotations": {"list": _annotations()},
        "templating": {
            "list": [
                _variable("branch", "Branch", 'SHOW TAG VALUES FROM "reading" WITH KEY = "branch"'),
                _variable("zone", "Zone", f'SHOW TAG VALUES FROM "reading" WITH KEY = "zone" WHERE {BRANCH}'),
            ]
        },
        "panels": [*_air_panels(), *_device_panels(), *_health_panels()],
    }


def render() -> str:
    """The dashboard as the text of ``branch.json``."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--check", action="store_true", help="exit 1 if the committed JSON differs")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
