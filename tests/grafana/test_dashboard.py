"""The Grafana provisioning and dashboard: generated file up to date, provisioning consistent, and
every query of the dashboard returns series from a real influxd filled through the real daemon."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import aiomqtt
import pytest

from daemon.yamlsource import load_yaml
from drivers.mqtt.decode import RejectReason
from tests.e2e.harness import Lobby, lobby
from tests.grafana.grafana_queries import interpolate, nice_interval, queries, regex_escape
from tests.polling import eventually
from tests.timeseries.helpers import KnownPublisher, influx_query

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "config" / "grafana"


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboard", GRAFANA / "build_dashboard.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["build_dashboard"] = mod
    spec.loader.exec_module(mod)
    return mod


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "branch.json").read_text(encoding="utf-8"))
    return data


# ---- static checks ------------------------------------------------------------------------------------
def test_committed_dashboard_is_what_the_generator_builds() -> None:
    builder = _builder()
    assert (GRAFANA / "dashboards" / "branch.json").read_text(encoding="utf-8") == builder.render()
    assert builder.main(["--check"]) == 0


def test_reject_reasons_match_the_mqtt_driver() -> None:
    assert tuple(r.value for r in RejectReason) == _builder().REJECT_REASONS


def test_provisioning_files_agree_with_the_dashboard() -> None:
    ds = load_yaml(GRAFANA / "datasources" / "lobbyd.yaml").data
    (source,) = ds["datasources"]
    assert (source["type"], source["uid"], source["access"]) == ("influxdb", "lobbyd-influx", "proxy")
    assert source["jsonData"]["timeInterval"] == "10s"
    assert "password" not in source and "${" in source["secureJsonData"]["password"]
    prov = load_yaml(GRAFANA / "dashboards" / "lobbyd.yaml").data
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]

    dash = _dashboard()
    uids = set()
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        uids.add(panel["datasource"]["uid"])
        uids.update(t["datasource"]["uid"] for t in panel["targets"])
    uids.update(v["datasource"]["uid"] for v in dash["templating"]["list"])
    uids.update(a["datasource"]["uid"] for a in dash["annotations"]["list"] if not a.get("builtIn"))
    assert uids == {source["uid"]}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for anno in dash["annotations"]["list"]:
        if not anno.get("builtIn"):
            assert anno["query"] == anno["target"]["query"]  # old and new Grafana read the same query


def test_panels_keep_grafanas_defaults_where_the_sdk_has_others() -> None:
    """Every panel has options (Grafana reads ``null`` as none) and every legend is shown: the SDK's model
    default would hide the legends of the bar chart and state timeline."""
    for panel in _dashboard()["panels"]:
        if panel["type"] == "row":
            continue
        assert isinstance(panel["options"], dict), panel["title"]
        legend = panel["options"].get("legend")
        if legend is not None:
            assert legend["showLegend"] and panel["options"]["tooltip"]["sort"] == "none", panel["title"]
    names = [a["name"] for a in _dashboard()["annotations"]["list"]]
    assert names == ["Rule decisions", "Events"]  # Grafana adds its built-in one itself


@pytest.mark.parametrize(
    ("values", "expected"),
    [(["demo-001"], "demo-001"), (["a.b", "c"], r"(a\.b|c)"), (["x/y(1)"], r"x\/y\(1\)")],
)
def test_variable_formatting_like_grafana(values: list[str], expected: str) -> None:
    q = interpolate('"branch" =~ /^$branch$/', variables={"branch": values}, from_ms=0, to_ms=1, interval="10s")
    assert q == f'"branch" =~ /^{expected}$/'
    assert regex_escape("a-b") == "a-b"


def test_interval_is_never_below_the_health_period() -> None:
    assert nice_interval(60) == "10s"
    assert nice_interval(86400) == "2m"
    assert nice_interval(7 * 86400) == "15m"


# ---- every query against a real InfluxDB filled by the daemon ----------------------------------------
def _fast_devices(data: dict[str, Any]) -> None:
    for dev in data["devices"]:
        dev["offline_after"] = 1
        dev["timeout_s"] = 0.3
        dev["retries"] = 0
    data["safety"]["fresh_air.fan_speed"]["min_hold_s"] = 0  # let the PM2.5 spike reach the fan now


async def _fill(lob: Lobby) -> tuple[int, int]:
    """Drive the lobby so every measurement the dashboard reads gets data; return the time range (ms)."""
    lob.sensors.silent = set(lob.sensors.signals)  # the test publishes; nothing else does
    lob.start_daemon()
    # subscribed, not only connected: the readings below are published once, and a broker drops a message
    # that no subscription matches yet
    st = await lob.wait_status(lambda s: s["mqtt"]["subscribed"] and all(d["online"] for d in s["devices"]))
    t0 = st["time"]
    sensors = lob.loaded.config.sensors
    async with aiomqtt.Client("127.0.0.1", lob.mosquitto.port, identifier="grafana-test") as client:
        pub = KnownPublisher(sensors, client)
        for _ in range(3):
            await pub.round()
        await lob.wait_status(lambda s: s["mqtt"]["accepted"] >= pub.readings)
        # A PM2.5 spike: rule decisions (annotations) and a fan write.
        pm25 = next(s for s in sensors if s.id == "hall-pm25")
        await client.publish(pm25.topic, b"40", qos=1)
        await lob.fresh_air.wait_for_write("fan_speed", lambda v: v == 3, timeout=20)
        # Device availability: the lighting controller goes away for a moment.
        await lob.lights.stop()
        await lob.wait_status(lambda s: not next(d for d in s["devices"] if d["name"] == "lights")["online"])
        await lob.lights.start()
        await lob.wait_status(lambda s: next(d for d in s["devices"] if d["name"] == "lights")["online"])
        # Health is written every 10 s; the rate panels need two records, with a rejected message between.
        idb = lob.influx
        assert idb is not None

        def health_records() -> int:
            res = influx_query(idb, 'SELECT count("queue_depth") FROM "health" WHERE "component" = \'influx\'')
            return int(res["series"][0]["values"][0][1]) if "series" in res else 0

        async def wait_health(n: int) -> None:
            await eventually(lambda: health_records() >= n, timeout=25, what=f"{n} health records", every=0.2)

        await wait_health(1)
        await client.publish(pm25.topic, b"not a number", qos=1)
        await lob.wait_status(lambda s: s["mqtt"]["wrong_type"] + s["mqtt"]["not_json"] >= 1)
        await wait_health(2)
    st = await lob.status()
    assert await lob.stop_daemon() == 0
    return int(t0 * 1000) - 60_000, int(st["time"] * 1000) + 60_000


def _has_values(result: dict[str, Any]) -> bool:
    return any(any(v is not None for row in s["values"] for v in row[1:]) for s in result.get("series", []))


@pytest.mark.servers
async def test_every_dashboard_query_returns_series(tmp_path: Path) -> None:
    async with lobby(tmp_path, edit=_fast_devices, initial={"hall-pm25": 12.0}) as lob:
        from_ms, to_ms = await _fill(lob)
        idb = lob.influx
        assert idb is not None
        dash = _dashboard()
        interval = nice_interval((to_ms - from_ms) / 1000)
        all_q = list(queries(dash))
        assert {q.kind for q in all_q} == {"panel", "variable", "annotation"}

        def run(q: str, variables: dict[str, list[str]]) -> dict[str, Any]:
            text = interpolate(q, variables=variables, from_ms=from_ms, to_ms=to_ms, interval=interval)
            return influx_query(idb, text)

        # Variables first, as Grafana resolves them: branch, then zone for the chosen branches.
        def tag_values(res: dict[str, Any]) -> list[str]:
            return sorted(v[1] for s in res.get("series", []) for v in s["values"])

        var_q = {q.where: q.query for q in all_q if q.kind == "variable"}
        branches = tag_values(run(var_q["variable branch"], {}))
        assert branches == ["demo-001"]
        zones = tag_values(run(var_q["variable zone"], {"branch": branches}))
        assert zones == ["hall", "outdoor"]

        selections = [{"branch": branches, "zone": zones}, {"branch": ["demo-001"], "zone": ["hall"]}]
        results: dict[str, dict[str, Any]] = {}
        for sel in selections:
            for q in all_q:
                res = run(q.query, sel)
                assert _has_values(res), f"{q.where} returned no series for {sel}:\n{q.query}"
                results.setdefault(q.where, res)

        def column(where: str, name: str) -> list[Any]:
            out = []
            for s in results[where].get("series", []):
                i = s["columns"].index(name)
                out += [row[i] for row in s["values"] if row[i] is not None]
            return out

        # Spot checks that the panels show what they claim.
        # The 40 µg/m³ spike lifts one interval's mean above every published round (12.01 .. 12.03).
        assert max(column("panel 1 'PM2.5' A", "mean")) > 12.03
        # min per interval: an outage shorter than the interval still shows as 0 (last() would hide it)
        assert 0 in column("panel 8 'Device availability' A", "min")
        assert 3 in column("panel 7 'Fan level' A", "last")
        anno = column("annotation Rule decisions", "text")
        assert any("pm25-high" in t or "35" in t for t in anno), anno
        events = column("annotation Events", "text")
        assert any("lights offline" in t for t in events), events
        rejected = column("panel 13 'Rejected sensor messages' A", "non_negative_difference_rejected_wrong_type")
        rejected += column("panel 13 'Rejected sensor messages' A", "non_negative_difference_rejected_not_json")
        assert sum(rejected) == 1
        day = dt.datetime.fromtimestamp(from_ms / 1000, dt.UTC)
        assert day.year == 2026
