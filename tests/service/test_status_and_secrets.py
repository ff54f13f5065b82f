"""``lobbyd status`` against a running daemon, and secrets that never reach a log line or a status answer."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import REPO, Lobby, lobby

pytestmark = pytest.mark.servers

MQTT_SECRET = "mqtt-Pa55-7f3c9e1d"
INFLUX_SECRET = "influx-T0ken-b8a2e4f6"


async def _cli(lob: Lobby, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "daemon", *args, "--config", str(lob.config_path)]
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, cwd=REPO, check=False)


def _all_well(st: dict[str, Any]) -> bool:
    return (
        st["mqtt"]["connected"]
        and all(s["fresh"] or s["warming_up"] for s in st["sensors"])  # the shipped trend needs 7.5 min
        and all(d["online"] for d in st["devices"])
        and (st["influx"] or {}).get("sent_points", 0) > 0
    )


async def test_status_exit_codes_and_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mqtt.password").write_text(MQTT_SECRET + "\n")
    monkeypatch.setenv("LOBBYD_TEST_INFLUX_PASSWORD", INFLUX_SECRET)

    def secrets(data: dict[str, Any]) -> None:
        data["mqtt"]["username"] = "lobbyd"
        data["mqtt"]["password_file"] = str(tmp_path / "mqtt.password")
        data["influx"]["username"] = "lobbyd"
        data["influx"]["password_env"] = "LOBBYD_TEST_INFLUX_PASSWORD"
        data["safety"]["fresh_air.fan_speed"]["min_hold_s"] = 0

    async with lobby(tmp_path, influx=True, edit=secrets) as lob:
        lob.start_daemon()
        await lob.wait_status(_all_well)

        text = await _cli(lob, "status")
        assert text.returncode == 0, text.stdout + text.stderr
        out = text.stdout
        for needle in (
            "lobbyd 0.",
            "branch demo-001",
            "up ",
            f"config {lob.config_path}",
            "rules ",
            "last reload",
            "sensors:",
            "fresh",
            "devices:",
            "online",
            "time series: queue",
            "spool",
            "dropped",
            "rejected",
            "mqtt rejected:",
        ):
            assert needle in out, f"{needle!r} missing from:\n{out}"
        assert out.rstrip().endswith("OK")

        js = await _cli(lob, "status", "--json")
        assert js.returncode == 0
        st = json.loads(js.stdout)
        assert st["problems"] == []
        assert {d["name"] for d in st["devices"]} == {"fresh_air", "lights"}
        assert st["influx"]["dropped_points"] == 0 and st["influx"]["rejected_points"] == 0

        # Something needs attention (a broken rule file): non-zero exit, and the problem is named.
        rule_file = sorted((tmp_path / "rules").glob("*.yaml"))[0]
        rule_file.write_text(rule_file.read_text() + "\n  broken: [\n")
        reload = await _cli(lob, "reload")
        assert reload.returncode == 2
        bad = await _cli(lob, "status", "--json")
        assert bad.returncode == 1
        assert any(rule_file.name in p for p in json.loads(bad.stdout)["problems"])

        # Error paths log URLs and reasons: the database goes away while the daemon writes.
        assert lob.influx is not None
        lob.influx.stop()
        await lob.wait_status(lambda st: st["influx"]["spooled_bytes"] > 0)
        assert await lob.stop_daemon() == 0

        for name, output in (("log", lob.log), ("status", text.stdout + js.stdout + bad.stdout)):
            assert MQTT_SECRET not in output, f"MQTT password in {name}"
            assert INFLUX_SECRET not in output, f"InfluxDB password in {name}"
        assert "MQTT connected" in lob.log  # the password was used: the log is the real one
