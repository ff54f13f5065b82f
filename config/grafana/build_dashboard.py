"""Generate ``dashboards/branch.json``, the Grafana dashboard of one branch (or a fleet of them).

The dashboard is code so that every panel filters the same way (``$branch``, ``$zone``,
``$timeFilter``) and the thresholds come from one table. It is built with Grafana's
``grafana-foundation-sdk`` (the dev extra pins the version; the JSON is its dashboard model). Queries
are raw InfluxQL, so the same dashboard serves InfluxDB 1.x, 2.x (through a DBRP mapping) and 3.x.
Schema: docs/schema.md. Two things that SDK version cannot express are added here, and
docs/grafana.md says why: an InfluxQL target (:class:`InfluxQL`, the SDK's documented way to add a
query type it does not ship) and the InfluxQL query of an annotation (:func:`_with_annotation_queries`).

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
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import barchart, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

__all__ = ["DATASOURCE_UID", "OUT", "REJECT_REASONS", "build", "main", "render"]

DATASOURCE_UID = "lobbyd-influx"
OUT = Path(__file__).resolve().parent / "dashboards" / "branch.json"
DS = dm.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)
TIMEZONE = "Asia/Shanghai"  # calendar days of the daily PM2.5 means (the fleet's local time)

# drivers.mqtt.decode.RejectReason, spelled out so the dashboard does not import the daemon.
# (tests/grafana checks the two lists agree.)
REJECT_REASONS = (
    "not_utf8",
    "oversize",
    "not_json",
    "duplicate_key",
    "missing_field",
    "wrong_type",
    "null",
    "nan",
    "infinite",
    "implausible",
    "unknown_topic",
    "time_unparseable",  # the payload's time only: the reading was kept, stamped on receipt
    "time_outside_window",
)

BRANCH = '"branch" =~ /^$branch$/'
ZONE = '"zone" =~ /^$zone$/'
PM25_LIMIT_24H = 50.0  # GB/T 18883-2022, 24 h mean, µg/m³

Json = dict[str, Any]
AnyPanel = TypeVar("AnyPanel", timeseries.Panel, stat.Panel, barchart.Panel, statetimeline.Panel, table.Panel)


# ---- what the SDK lacks: an InfluxQL target ------------------------------------------------------
class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target of Grafana's InfluxDB data source."""

    def __init__(self, ref_id: str, query: str, alias: str = "", result_format: str = "time_series") -> None:
        self.ref_id, self.query, self.alias, self.result_format = ref_id, query, alias, result_format

    def to_json(self) -> Json:
        out: Json = {
            "datasource": DS.to_json(),
            "refId": self.ref_id,
            "rawQuery": True,
            "query": self.query,
            "resultFormat": self.result_format,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder of :class:`InfluxQLQuery`, usable wherever the SDK takes a query builder."""

    def __init__(self, ref_id: str, query: str, alias: str = "", result_format: str = "time_series") -> None:
        self._query = InfluxQLQuery(ref_id, query, alias, result_format)

    def build(self) -> InfluxQLQuery:
        return self._query


# ---- building blocks ----------------------------------------------------------------------------
def _steps(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([dm.Threshold(v, c) for v, c in steps])


def _panel(
    panel: AnyPanel,
    pid: int,
    title: str,
    grid: tuple[int, int, int, int],
    targets: list[tuple[str, str]],
    *,
    unit: str = "short",
    fmt: str = "time_series",
) -> AnyPanel:
    """What every panel has: id, place (x, y, w, h), the data source, its text (:data:`ABOUT`), a unit and
    ``(query, legend alias)`` targets A, B, ... (``fmt="table"`` for rows)."""
    x, y, w, h = grid
    queries = [InfluxQL(chr(ord("A") + i), q, alias, fmt) for i, (q, alias) in enumerate(targets)]
    return (
        panel.id(pid)
        .title(title)
        .description(ABOUT[pid])
        .datasource(DS)
        .grid_pos(dm.GridPos(h=h, w=w, x=x, y=y))
        .unit(unit)
        .targets(list[cogbuilder.Builder[cogvariants.Dataquery]](queries))
    )


def _row(d: db.Dashboard, pid: int, title: str, y: int) -> db.Dashboard:
    return d.with_row(db.Row(title).id(pid).grid_pos(dm.GridPos(h=1, w=24, x=0, y=y)))


BARS = cm.GraphDrawStyle.BARS


def _legend() -> cb.VizLegendOptions:
    """Grafana's default legend (the SDK's model default would hide it)."""
    legend = cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST).placement(cm.LegendPlacement.BOTTOM)
    return legend.show_legend(True)


def _tooltip() -> cb.VizTooltipOptions:
    return cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.SINGLE).sort(cm.SortOrder.NONE)


def _series(style: cm.GraphDrawStyle = cm.GraphDrawStyle.LINE) -> timeseries.Panel:
    """A time-series panel with Grafana's default legend and tooltip, lines 2 px wide or bars."""
    panel = timeseries.Panel().legend(_legend()).tooltip(_tooltip()).draw_style(style)
    return panel.line_width(2).span_nulls(True) if style == cm.GraphDrawStyle.LINE else panel


def _thresholds_as(mode: cm.GraphTresholdsStyleMode) -> cb.GraphThresholdsStyleConfig:
    return cb.GraphThresholdsStyleConfig().mode(mode)


def _right_axis(panel: timeseries.Panel, regex: str, unit: str) -> timeseries.Panel:
    placement = dm.DynamicConfigValue("custom.axisPlacement", "right")
    return panel.override_by_regexp(regex, [placement, dm.DynamicConfigValue("unit", unit)])


def _reading(quantity: str, agg: str = 'mean("value")') -> str:
    return (
        f'SELECT {agg} FROM "reading" WHERE "quantity" = \'{quantity}\' AND {BRANCH} AND {ZONE} AND $timeFilter '
        'GROUP BY time($__interval), "branch", "zone", "sensor" fill(none)'
    )


def _by_device(measurement: str, select: str, where: str) -> str:
    return (
        f'SELECT {select} FROM "{measurement}" WHERE {where}{BRANCH} AND $timeFilter '
        'GROUP BY time($__interval), "branch", "device" fill(previous)'
    )


def _health(component: str, select: str) -> str:
    return (
        f'SELECT {select} FROM "health" WHERE "component" = \'{component}\' AND {BRANCH} AND $timeFilter '
        'GROUP BY time($__interval), "branch" fill(none)'
    )


# ---- panels ----------------------------------------------------------------------------------------
ABOUT = {  # panel id: its description (hover the "i" in the panel title)
    1: "PM2.5 per sensor (µg/m³). Bands: green = target (below 25), yellow = elevated (fresh air medium), "
    "orange = above 35 (fresh air high), red = above the 24 h limit of 50 (GB/T 18883-2022). Outdoor sensors "
    "are in zone 'outdoor'.",
    2: "Mean PM2.5 of the 24 hours ending at the right edge of the time range, per branch and zone, against the "
    "GB/T 18883-2022 limit (24 h mean ≤ 50 µg/m³). Red means non-compliant.",
    3: f"Calendar-day ({TIMEZONE}) mean PM2.5 per branch and zone; red above 50.",
    4: "Air temperature (°C). Green = 22–26 °C (GB 50736-2012 level I: 22–24 heating season, 24–26 cooling "
    "season); yellow = level II (18–22, 26–28); blue below 18, red above 28.",
    5: "Relative humidity (%RH). Green = 40–60 %RH (GB 50736-2012 level I, cooling season); yellow 30–40 and "
    "60–70; red below 30 (too dry) or above 70.",
    6: "Measured daylight (lux, left axis) and the colour temperature the fixtures report and the rules chose "
    "(kelvin, right axis, 2700–5000 K). Brighter daylight should go with cooler (higher K) light.",
    7: "Fresh-air fan level written and verified (0 off, 1 low, 2 medium, 3 high; left axis, steps) and the "
    "unit's reported fan output (%, right axis).",
    8: "Whether each Modbus device answers (green) or is offline (red: 3 consecutive failures). Writes to an "
    "offline device are retried when it returns.",
    9: "Verified writes per interval: ok, mismatch (read-back differs), failed.",
    10: "Newest first: which rule set which point to what, and why (the same text as the annotations and "
    "`lobbyd why`). fallback = a sensor went quiet and the rule's safe value applies.",
    11: "Points waiting in memory, bytes waiting in the disk spool and the age of the oldest spooled batch. A "
    "growing spool means InfluxDB is unreachable; it replays by itself.",
    12: "Should stay at 0. dropped = spool over its disk budget (oldest deleted); rejected = InfluxDB refused a "
    "point (kept in rejected.lp); corrupt = a torn spool record skipped.",
    13: "MQTT messages received and rejected per interval, by reason (decode errors, implausible values, ...). "
    "The daemon logs each reason once a minute with the topic.",
}


def _air(d: db.Dashboard) -> db.Dashboard:
    pm25 = f'SELECT mean("value") FROM "reading" WHERE "quantity" = \'pm25\' AND {BRANCH} AND {ZONE} '
    mean_24h = pm25 + 'AND time > ${__to}ms - 24h AND time <= ${__to}ms GROUP BY "branch", "zone"'
    daily = pm25 + f'AND $timeFilter GROUP BY time(1d), "branch", "zone" fill(none) tz(\'{TIMEZONE}\')'
    sensor, zone = "$tag_branch $tag_sensor", "$tag_branch $tag_zone"
    band = _thresholds_as(cm.GraphTresholdsStyleMode.AREA)
    pm25_bands = _steps((None, "green"), (25, "yellow"), (35, "orange"), (PM25_LIMIT_24H, "red"))
    d = _row(d, 100, "Air", 0)
    d = d.with_panel(
        _panel(_series(), 1, "PM2.5", (0, 1, 16, 8), [(_reading("pm25"), sensor)], unit="conμgm3")
        .thresholds(pm25_bands)
        .thresholds_style(band)
    )
    d = d.with_panel(
        _panel(stat.Panel(), 2, "PM2.5 24 h mean vs limit 50 µg/m³", (16, 1, 8, 4), [(mean_24h, zone)], unit="conμgm3")
        .thresholds(_steps((None, "green"), (35, "orange"), (PM25_LIMIT_24H, "red")))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    bars = barchart.Panel().legend(_legend()).tooltip(_tooltip())
    d = d.with_panel(
        _panel(bars, 3, "PM2.5 daily mean", (16, 5, 8, 4), [(daily, zone)], unit="conμgm3")
        .thresholds(_steps((None, "green"), (PM25_LIMIT_24H, "red")))
        .x_tick_label_rotation(-45)
    )
    d = d.with_panel(
        _panel(_series(), 4, "Temperature", (0, 9, 12, 8), [(_reading("temperature"), sensor)], unit="celsius")
        .thresholds(_steps((None, "blue"), (18, "yellow"), (22, "green"), (26, "yellow"), (28, "red")))
        .thresholds_style(band)
    )
    return d.with_panel(
        _panel(_series(), 5, "Humidity", (12, 9, 12, 8), [(_reading("humidity"), sensor)], unit="humidity")
        .thresholds(_steps((None, "red"), (30, "yellow"), (40, "green"), (60, "yellow"), (70, "red")))
        .thresholds_style(band)
    )


def _devices(d: db.Dashboard) -> db.Dashboard:
    device = "$tag_branch $tag_device"
    light = [
        (_reading("illuminance"), "$tag_branch $tag_sensor (lx)"),
        (_by_device("device_status", 'mean("value")', "\"point\" = 'cct_actual' AND "), f"{device} CCT (K)"),
        (_by_device("decision", 'last("value")', "\"point\" = 'cct' AND "), f"{device} CCT decided (K)"),
    ]
    fan = [
        (
            _by_device("device_write", 'last("value")', "\"point\" = 'fan_speed' AND \"outcome\" = 'ok' AND "),
            f"{device} level written",
        ),
        (_by_device("device_status", 'mean("value")', "\"point\" = 'fan_output' AND "), f"{device} output (%)"),
    ]
    availability = _by_device("availability", 'min("online")', "")
    writes = (
        f'SELECT count("value") FROM "device_write" WHERE {BRANCH} AND $timeFilter '
        'GROUP BY time($__interval), "branch", "device", "outcome" fill(none)'
    )
    decisions = (
        f'SELECT "text", "rule", "device", "point", "value", "fallback" FROM "decision" WHERE {BRANCH} '
        "AND $timeFilter ORDER BY time DESC LIMIT 200"
    )
    on_off = {
        v: dm.ValueMappingResult(text=t, color=c) for v, t, c in [("0", "offline", "red"), ("1", "online", "green")]
    }
    timeline = statetimeline.Panel().legend(_legend()).tooltip(_tooltip())
    light_panel = _panel(_series(), 6, "Daylight vs colour temperature", (0, 18, 12, 8), light, unit="lux")
    fan_panel = _panel(_series(), 7, "Fan level", (12, 18, 12, 8), fan).line_interpolation(
        cm.LineInterpolation.STEP_AFTER
    )
    d = _row(d, 101, "Light and fresh air", 17)
    d = d.with_panel(_right_axis(light_panel, r".*\(K\)$", "kelvin"))
    d = d.with_panel(_right_axis(fan_panel, r".*\(%\)$", "percent"))
    d = d.with_panel(
        _panel(timeline, 8, "Device availability", (0, 26, 12, 5), [(availability, device)])
        .mappings([dm.ValueMap(on_off)])
        .thresholds(_steps((None, "red"), (1, "green")))
        .show_value(cm.VisibilityMode.AUTO)
    )
    stacked = cb.StackingConfig().mode(cm.StackingMode.NORMAL)
    d = d.with_panel(
        _panel(
            _series(BARS), 9, "Modbus writes by outcome", (12, 26, 12, 5), [(writes, f"{device} $tag_outcome")]
        ).stacking(stacked)
    )
    return d.with_panel(
        _panel(table.Panel(), 10, "Rule decisions", (0, 31, 24, 7), [(decisions, "")], fmt="table").show_header(True)
    )


def _health_panels(d: db.Dashboard) -> db.Dashboard:
    reasons = "|".join(REJECT_REASONS)
    spool = [
        (_health("influx", 'last("queue_depth")'), "$tag_branch queue (points)"),
        (_health("influx", 'last("spooled_bytes")'), "$tag_branch spool (bytes)"),
        (_health("influx", 'last("spool_oldest_s")'), "$tag_branch spool age (s)"),
    ]
    lost = (
        'non_negative_difference(last("dropped_points")) AS "dropped", '
        'non_negative_difference(last("rejected_points")) AS "rejected", '
        'non_negative_difference(last("corrupt_records")) AS "corrupt records"'
    )
    rejected = [
        (_health("mqtt", f"non_negative_difference(last(/^rejected_({reasons})$/))"), "$tag_branch $col"),
        (_health("mqtt", 'non_negative_difference(last("messages_in")) AS "messages in"'), "$tag_branch $col"),
        # not a rejection: a late report, recorded at its own time, that the rules do not use
        (_health("mqtt", 'non_negative_difference(last("out_of_order")) AS "late (recorded)"'), "$tag_branch $col"),
    ]
    d = _row(d, 102, "Daemon health", 38)
    spool_panel = _panel(_series(), 11, "Time-series queue and spool", (0, 39, 8, 7), spool)
    d = d.with_panel(_right_axis(spool_panel, r".*\(bytes\)$", "bytes"))
    lost_q = [(_health("influx", lost), "$tag_branch $col")]
    d = d.with_panel(
        _panel(_series(BARS), 12, "Points lost or set aside", (8, 39, 8, 7), lost_q)
        .thresholds(_steps((None, "green"), (1, "red")))
        .thresholds_style(_thresholds_as(cm.GraphTresholdsStyleMode.LINE))
    )
    return d.with_panel(_panel(_series(BARS), 13, "Rejected sensor messages", (16, 39, 8, 7), rejected))


# ---- variables and annotations --------------------------------------------------------------------
ANNOTATIONS = {  # name: (icon colour, InfluxQL query, tag columns)
    "Rule decisions": (
        "purple",
        f'SELECT "text", "rule", "device", "point" FROM "decision" WHERE {BRANCH} AND $timeFilter',
        "rule,device,point",
    ),
    "Events": (
        "orange",
        f'SELECT "text", "kind", "device" FROM "event" WHERE {BRANCH} AND $timeFilter',
        "kind,device",
    ),
}


def _variable(name: str, label: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .multi(True)
        .include_all(True)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def _with_annotation_queries(model: Json) -> Json:
    """The hand-written part: the SDK's AnnotationQuery has no field for a data source's own query
    (its ``target`` only knows the built-in Grafana annotations), so each InfluxQL annotation gets its
    query here, under ``target`` (Grafana ≥ 10) and at the top level (older versions)."""
    for anno in model["annotations"]["list"]:
        _, query, tags = ANNOTATIONS[anno["name"]]
        fields = {"query": query, "textColumn": "text", "tagsColumn": tags}
        anno["target"] = {"refId": "Anno", "rawQuery": True, "fromAnnotations": True, **fields}
        anno.update(fields)
    return model


def build() -> Json:
    """The dashboard model (a JSON-serialisable dict)."""
    d = (
        db.Dashboard("lobbyd — branch lobby")
        .uid("lobbyd-branch")
        .description(
            "Lobby air, light and fresh air of one branch or a fleet (branch variable). "
            "Generated by config/grafana/build_dashboard.py; see docs/grafana.md."
        )
        .tags(["lobbyd"])
        .timezone("browser")
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .refresh("1m")
        .version(1)
        .time("now-24h", "now")
        .with_variable(_variable("branch", "Branch", 'SHOW TAG VALUES FROM "reading" WITH KEY = "branch"'))
        .with_variable(_variable("zone", "Zone", f'SHOW TAG VALUES FROM "reading" WITH KEY = "zone" WHERE {BRANCH}'))
    )
    for name, (color, _, _) in ANNOTATIONS.items():
        d = d.annotation(db.AnnotationQuery().name(name).datasource(DS).enable(True).icon_color(color))
    d = _health_panels(_devices(_air(d)))
    model: Json = json.loads(JSONEncoder().encode(d.build()))
    return _with_annotation_queries(model)


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
