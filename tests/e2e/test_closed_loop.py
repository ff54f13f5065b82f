"""Issue 2's end-to-end claim, on real components only: mosquitto, influxd, pymodbus simulators, the daemon.

The daemon's clock starts on a Wednesday at 10:30 local time (``--start-at``), so the branch is open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import lobby
from tests.polling import eventually

pytestmark = pytest.mark.servers


async def test_pm25_hysteresis_lux_curve_and_time_series(tmp_path: Path) -> None:
    initial = {"hall-pm25": 12.0, "outdoor-pm25": 20.0, "hall-lux": 300.0}
    async with lobby(tmp_path, strip_ramps=True, initial=initial) as lob:
        fan, lights, sensors = lob.fresh_air, lob.lights, lob.sensors
        lob.start_daemon()
        await lob.wait_status(lambda st: st["mqtt"]["connected"])

        # Open, clean air: low fan; 300 lx on the curve (100→3000, 500→4000) gives 3500 K.
        await fan.wait_for_write("fan_speed", lambda v: v == 1, timeout=20)
        await lights.wait_for_write("cct", lambda v: v == 3500, timeout=20)
        assert fan.value("fan_speed") == 1
        assert lights.value("cct") == 3500

        # PM2.5 spike above 35: high fan.
        sensors.set("hall-pm25", 50.0)
        await sensors.publish_now("hall-pm25")
        w = await fan.wait_for_write("fan_speed", lambda v: v == 3, timeout=20)
        n_writes = len(fan.writes)

        # Down to 30: below the on-threshold but above the off-threshold (25): stays high.
        sensors.set("hall-pm25", 30.0)
        await sensors.publish_now("hall-pm25")
        await lob.wait_status(lambda st: next(s for s in st["sensors"] if s["sensor"] == "hall-pm25")["value"] == 30.0)
        st = await lob.seconds_after(5)
        assert fan.value("fan_speed") == 3
        assert len(fan.writes) == n_writes, f"unexpected writes: {fan.writes[n_writes:]}"
        assert st["points"]["fresh_air.fan_speed"]["rule"] == "pm25-high"

        # Below 25: pm25-high releases; pm25-elevated (on above 25, off below 15) still holds medium.
        sensors.set("hall-pm25", 20.0)
        await sensors.publish_now("hall-pm25")
        await fan.wait_for_write("fan_speed", lambda v: v == 2, timeout=20, since=n_writes)
        # Clean again: back to the opening-hours baseline.
        sensors.set("hall-pm25", 10.0)
        await sensors.publish_now("hall-pm25")
        await fan.wait_for_write("fan_speed", lambda v: v == 1, timeout=20, since=n_writes)
        assert [x.value for x in fan.writes[n_writes - 1 :]] == [3, 2, 1]
        assert w.value == 3

        # Daylight up to 1000 lx: curve gives 4000 + (1000-500)/1000*1000 = 4500 K.
        sensors.set("hall-lux", 1000.0)
        await sensors.publish_now("hall-lux")
        await lights.wait_for_write("cct", lambda v: v == 4500, timeout=20)
        assert lights.value("cct") == 4500

        assert await lob.stop_daemon() == 0
        assert lob.influx is not None
        idb = lob.influx

        def rows(q: str) -> list[list[Any]]:
            res = idb.query(q, db="lobbyd")["results"][0]  # type: ignore[index]
            series = res.get("series", [])
            return [v for s in series for v in s["values"]]

        # Readings and writes are queryable, with the rule that caused each write.
        await eventually(
            lambda: bool(rows("SELECT value FROM reading WHERE sensor = 'hall-pm25' AND value = 50")),
            what="pm25 reading in influx",
        )
        writes = rows(
            "SELECT value, rule, outcome FROM device_write WHERE device = 'fresh_air' AND point = 'fan_speed'"
        )
        assert [(r[1], r[2], r[3]) for r in writes] == [
            (1.0, "fresh-air-open", "ok"),
            (3.0, "pm25-high", "ok"),
            (2.0, "pm25-elevated", "ok"),
            (1.0, "fresh-air-open", "ok"),
        ]
        cct = rows("SELECT value, rule FROM device_write WHERE point = 'cct'")
        assert [(r[1], r[2]) for r in cct] == [(3500.0, "daylight-cct"), (4500.0, "daylight-cct")]
        assert rows("SELECT value FROM decision WHERE rule = 'pm25-high'")


async def test_invalid_rule_file_stops_a_strict_start_with_position(tmp_path: Path) -> None:
    """``--strict`` keeps the refuse-to-start behaviour (without it the daemon starts degraded on the last
    good rules: tests/faults/test_rule_files.py)."""
    async with lobby(tmp_path, influx=False) as lob:
        bad = Path(lob.loaded.rules_dir) / "air-quality.yaml"
        bad.write_text(bad.read_text().replace("off_below: 25", "off_below: 45"))
        lob.start_daemon("--strict")
        assert lob.proc is not None
        assert await lob.wait_exit() == 2
        assert "air-quality.yaml:" in lob.log
        assert "'off_below' (45) must be lower than 'above' (35)" in lob.log
        assert lob.fresh_air.writes == [] and lob.lights.writes == []
