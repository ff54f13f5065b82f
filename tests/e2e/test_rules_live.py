"""Issue 3 at the daemon level: hot reload, a bad edit keeps the last good rules, `why`, timers that
survive a restart. Real broker, device simulators and daemon subprocess."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.e2e.harness import REPO, lobby, pm25_alarm_rule

pytestmark = pytest.mark.servers

CLEAN = {"hall-pm25": 10.0, "outdoor-pm25": 20.0, "hall-lux": 300.0}


async def test_file_change_reloads_without_touching_unchanged_points(tmp_path: Path) -> None:
    async with lobby(tmp_path, influx=False, strip_ramps=True, initial=CLEAN) as lob:
        lob.start_daemon()
        await lob.fresh_air.wait_for_write("fan_speed", lambda v: v == 1, timeout=20)
        await lob.lights.wait_for_write("cct", lambda v: v == 3500, timeout=20)
        fan_writes = len(lob.fresh_air.writes)

        f = lob.loaded.rules_dir / "lighting.yaml"
        f.write_text(f.read_text().replace("- [100, 3000]", "- [100, 3400]"))
        # 300 lx on the edited curve: 3400 + (300-100)/400 * 600 = 3700 K (more than the 100 K deadband).
        await lob.lights.wait_for_write("cct", lambda v: v == 3700, timeout=20)
        st = await lob.wait_status(lambda st: "ok" in st["rules"]["last_reload"])
        assert st["rules"]["errors"] == []
        await lob.seconds_after(3)
        assert len(lob.fresh_air.writes) == fan_writes  # the fan's setpoint did not change: not rewritten
        assert await lob.stop_daemon() == 0


async def test_bad_edit_is_reported_with_position_and_old_rules_keep_running(tmp_path: Path) -> None:
    async with lobby(tmp_path, influx=False, strip_ramps=True, initial=CLEAN) as lob:
        lob.start_daemon()
        await lob.lights.wait_for_write("cct", lambda v: v == 3500, timeout=20)

        f = lob.loaded.rules_dir / "lighting.yaml"
        text = f.read_text()
        f.write_text(text.replace("    ramp_per_minute", "    ramp_per_minut", 1).replace("points:", "pionts:", 1))
        st = await lob.wait_status(lambda st: bool(st["rules"]["errors"]))
        errors = "\n".join(st["rules"]["errors"])
        line = next(i for i, t in enumerate(f.read_text().splitlines(), 1) if "pionts:" in t)
        assert f"lighting.yaml:{line}:9: unknown key 'pionts' (did you mean 'points'?)" in errors
        assert st["rules"]["kept_previous"] == [str(f)]

        # The last good version of lighting.yaml still runs: daylight 1000 lx → 4500 K on the old curve.
        lob.sensors.set("hall-lux", 1000.0)
        await lob.sensors.publish_now("hall-lux")
        await lob.lights.wait_for_write("cct", lambda v: v == 4500, timeout=20)

        async with aiomqtt.Client("127.0.0.1", lob.mosquitto.port) as c:
            await c.subscribe("lobbyd/demo-001/rules/status")
            async with asyncio.timeout(5):
                m = await anext(aiter(c.messages))
        assert json.loads(bytes(m.payload))["ok"] is False

        # `lobbyd why` explains the running decision in plain words.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "daemon",
            "why",
            "lights.cct",
            "--config",
            str(lob.config_path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, stderr.decode()
        text = stdout.decode()
        assert "lights.cct" in text and "daylight-cct" in text and "hall-lux" in text
        assert await lob.stop_daemon() == 0


async def test_reboot_with_a_bad_file_runs_the_last_good_version_unless_strict(tmp_path: Path) -> None:
    async with lobby(tmp_path, influx=False, strip_ramps=True, initial=CLEAN) as lob:
        lob.start_daemon()
        await lob.lights.wait_for_write("cct", lambda v: v == 3500, timeout=20)
        assert await lob.stop_daemon() == 0

        f = lob.loaded.rules_dir / "lighting.yaml"
        f.write_text(f.read_text().replace("target: lights.cct", "target: lights.cctt", 1))
        lob.start_daemon("--strict")
        assert await lob.wait_exit() == 2
        assert "did you mean 'lights.cct'" in lob.log

        lob.start_daemon()
        st = await lob.wait_status(lambda st: st["mqtt"]["connected"])
        assert st["rules"]["kept_previous"] == [str(f)]
        lob.sensors.set("hall-lux", 1000.0)
        await lob.sensors.publish_now("hall-lux")
        await lob.lights.wait_for_write("cct", lambda v: v == 4500, timeout=20)
        assert await lob.stop_daemon() == 0


async def test_for_timer_survives_a_restart(tmp_path: Path) -> None:
    def add_rule(data: dict[str, Any]) -> None:
        Path(data["rules_dir"], "alarm.yaml").write_text(pm25_alarm_rule("1m"))

    async with lobby(tmp_path, influx=False, initial={**CLEAN, "hall-pm25": 45.0}, edit=add_rule) as lob:
        start = dt.datetime(2026, 6, 3, 10, 30)
        lob.start_daemon(start_at=start.isoformat())
        await lob.lights.wait_for_write("brightness", lambda v: v == 80, timeout=20)
        st = await lob.wait_status(lambda st: st["uptime_s"] > 3)
        assert st["points"]["lights.brightness"]["rule"] == "brightness-open"  # for: 1m not yet elapsed
        assert await lob.stop_daemon() == 0  # persists the timer

        # Restarted 70 s (daemon time) after the first start: the minute has passed, the alarm acts at once.
        n = len(lob.lights.writes)
        lob.start_daemon(start_at=(start + dt.timedelta(seconds=70)).isoformat())
        w = await lob.lights.wait_for_write("brightness", lambda v: v == 100, timeout=15, since=n)
        assert w.value == 100
        assert await lob.stop_daemon() == 0
