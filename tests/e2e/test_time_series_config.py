"""The daemon's time series as configured (issue 18, finding 10), end to end: the real daemon writes to the
real influxd in millisecond precision, readings to one database and its own series to another."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import lobby
from tests.polling import eventually

pytestmark = pytest.mark.servers


async def test_millisecond_precision_and_the_daemons_own_database(tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["influx"]["precision"] = "ms"
        data["influx"]["daemon_database"] = "lobbyd_daemon"

    async with lobby(tmp_path, strip_ramps=True, edit=edit, initial={"hall-pm25": 12.0}) as lob:
        assert lob.influx is not None
        idb = lob.influx
        idb.create_database("lobbyd_daemon")
        lob.start_daemon()
        await lob.fresh_air.wait_for_write("fan_speed", lambda v: v == 1, timeout=20)
        await lob.wait_status(lambda st: all(s["value"] is not None for s in st["sensors"]))
        st = await lob.wait_status(
            lambda st: st["influx"]["sent_points"] > 0 and st["influx_daemon"]["sent_points"] > 0
        )
        assert st["influx_daemon"]["dropped_points"] == st["influx_daemon"]["rejected_points"] == 0
        assert await lob.stop_daemon() == 0  # flushes both writers

        def times(db: str, measurement: str) -> list[int]:
            res = idb.query(f'SELECT * FROM "{measurement}"', db=db)["results"][0]  # type: ignore[index]
            return [v[0] for s in res.get("series", []) for v in s["values"]]

        await eventually(lambda: len(times("lobbyd", "reading")) > 0, what="readings in lobbyd")
        readings = times("lobbyd", "reading")
        writes = times("lobbyd_daemon", "device_write")
        decisions = times("lobbyd_daemon", "decision")
        assert writes and decisions
        assert all(t % 1_000_000 == 0 for t in readings + writes + decisions)  # milliseconds, as configured
        assert any(t % 1_000_000_000 for t in readings)  # ... and not whole seconds
        assert times("lobbyd", "device_write") == times("lobbyd", "decision") == times("lobbyd", "event") == []
        assert times("lobbyd_daemon", "reading") == []
        assert {p.name for p in (tmp_path / "state").iterdir() if p.name.startswith("spool")} == {
            "spool-ms",
            "spool-ms-daemon",
        }
