"""`lobbyd check --diff` against a running daemon: its rules in force and its sensor values, over its
control socket. Real broker, device simulators and daemon subprocess."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, lobby

pytestmark = pytest.mark.servers

CLEAN = {"hall-pm25": 10.0, "outdoor-pm25": 20.0, "hall-lux": 300.0}


async def test_check_diff_uses_the_running_daemons_sensor_values(tmp_path: Path) -> None:
    async with lobby(tmp_path, influx=False, strip_ramps=True, initial=CLEAN) as lob:
        lob.start_daemon()  # a Wednesday, 10:30: open
        await lob.fresh_air.wait_for_write("fan_speed", lambda v: v == 1, timeout=20)
        await lob.wait_status(lambda st: all(s["fresh"] for s in st["sensors"] if s["sensor"] in CLEAN))
        edit = tmp_path / "edits" / "air-quality.yaml"
        edit.parent.mkdir()
        text = (lob.loaded.rules_dir / "air-quality.yaml").read_text()
        edit.write_text(text.replace("    set: 1\n", "    set: 2\n", 1))  # fresh-air-open: low → medium

        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "check", "--diff", str(edit),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
            env={"LOBBYD_CONFIG": str(lob.config_path), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
        out = stdout.decode()
        assert proc.returncode == 0, out + stderr.decode()
        assert f"lobbyd: config {lob.config_path} (from LOBBYD_CONFIG)" in stderr.decode()
        assert f"compared with the rules in force ({lob.loaded.state_dir / 'rules-last-good'})" in out
        assert "on the running daemon's sensor values (" in out
        assert "fresh_air.fan_speed: 1 → 2" in out
        assert "now:  1 by rule fresh-air-open" in out and "then: 2 by rule fresh-air-open" in out
        assert len(lob.fresh_air.writes) == 1, "a diff writes nothing"
        assert await lob.stop_daemon() == 0
