"""Issue 17, finding 4: a full or read-only state directory degrades the daemon; it never stops it.

Real parts only: the daemon through its CLI, mosquitto, influxd, pymodbus simulators, and a real small
tmpfs as the state directory, filled up with zeros (or remounted read-only) while the daemon runs.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import REPO, Lobby, lobby
from tests.faults.disk import fill, remount, tmpfs

pytestmark = pytest.mark.servers

INITIAL = {"hall-pm25": 10.0, "outdoor-pm25": 20.0, "hall-lux": 300.0}


def _fast_saves(data: dict[str, Any]) -> None:
    """A state save at every housekeeping round (10 s): the engine file's clocks may lag by 1 s only."""
    data["resume_grace_s"] = 2


def _running(st: dict[str, Any]) -> bool:
    return bool(st["mqtt"]["connected"] and all(d["online"] for d in st["devices"]))


def _degraded_by(st: dict[str, Any], text: str) -> bool:
    return any(text in d for d in st["degraded"])


async def _status_text(lob: Lobby) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "daemon", "status", "--config", str(lob.config_path)]
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, cwd=REPO, check=False)


async def _fan_follows_pm25(lob: Lobby) -> None:
    """The daemon still controls the lobby: a PM2.5 spike takes the fan to high, clean air back to low."""
    fan, sensors = lob.fresh_air, lob.sensors
    since = len(fan.writes)
    sensors.set("hall-pm25", 50.0)
    await sensors.publish_now("hall-pm25")
    await fan.wait_for_write("fan_speed", lambda v: v == 3, timeout=20, since=since)
    sensors.set("hall-pm25", 10.0)
    await sensors.publish_now("hall-pm25")
    await fan.wait_for_write("fan_speed", lambda v: v == 1, timeout=20, since=since)


async def test_a_full_disk_degrades_and_the_daemon_restarts_on_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with tmpfs(state, "2m"):
        async with lobby(tmp_path, strip_ramps=True, initial=INITIAL, edit=_fast_saves) as lob:
            assert lob.influx is not None
            lob.start_daemon()
            await lob.wait_status(lambda st: _running(st) and st["influx"]["sent_points"] > 0)
            await lob.fresh_air.wait_for_write("fan_speed", lambda v: v == 1, timeout=20)

            fill(state)
            st = await lob.wait_status(lambda st: _degraded_by(st, "state not saved"), timeout=25)
            assert f"state not saved: disk full: {state}" in st["degraded"][0], st["degraded"]
            await _fan_follows_pm25(lob)

            # InfluxDB away: what must be spooled cannot be, and is counted as lost to the full disk.
            lob.influx.stop()
            st = await lob.wait_status(lambda st: st["influx"]["dropped_by_reason"].get("disk full", 0) >= 50)
            assert set(st["influx"]["dropped_by_reason"]) == {"disk full"}, st["influx"]
            assert _degraded_by(st, f"time-series spool not written: disk full: {state}"), st["degraded"]
            t0 = st["time"]  # two more housekeeping rounds, each failing to save the state again:
            await lob.wait_status(lambda st: st["time"] >= t0 + 21, timeout=40)
            out = await _status_text(lob)
            assert out.returncode == 1, out.stdout + out.stderr
            assert f"degraded: state not saved: disk full: {state}" in out.stdout, out.stdout
            assert "points dropped (disk full " in out.stdout, out.stdout
            assert "spool budget" not in out.stdout, out.stdout
            # Once per episode, not once per failed write.
            assert lob.log.count("cannot write state") == 1, lob.log[-3000:]
            assert lob.log.count("time series: spool: cannot write the spool") == 1, lob.log[-3000:]
            assert lob.log.count("influx unavailable") == 1, lob.log[-3000:]

            # A stop on a full disk is a clean stop; a start on it is a start (before: both failed).
            assert await lob.stop_daemon() == 0, lob.log[-3000:]
            lob.start_daemon()
            st = await lob.wait_status(lambda st: _running(st) and _degraded_by(st, "last good rules not saved"))
            assert f"last good rules not saved: disk full: {state}" in " ".join(st["degraded"]), st["degraded"]
            await lob.wait_status(lambda st: _degraded_by(st, "state not saved"))
            await _fan_follows_pm25(lob)

            # Space again: every degraded entry clears by itself (the last good rules at the next save).
            (state / "filler").unlink()
            st = await lob.wait_status(lambda st: _running(st) and not st["degraded"], timeout=25)
            assert (state / "rules-last-good").is_dir()
            log = lob.log
            assert f"state to {state} written again after disk full" in log, log[-3000:]
            assert "rules: last good copies saved again after disk full" in log, log[-3000:]
            assert "the spool is written again; points lost so far: " in log, log[-3000:]
            assert await lob.stop_daemon() == 0


async def test_a_read_only_state_directory_degrades_and_the_daemon_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"

    def edit(data: dict[str, Any]) -> None:
        _fast_saves(data)
        data["control_socket"] = str(tmp_path / "run" / "control.sock")  # where a read-only disk is no matter

    with tmpfs(state, "4m"):
        async with lobby(tmp_path, strip_ramps=True, initial=INITIAL, edit=edit) as lob:
            lob.start_daemon()
            await lob.wait_status(_running)
            assert await lob.stop_daemon() == 0
            remount(state, "ro")
            try:
                lob.start_daemon()
                st = await lob.wait_status(lambda st: _running(st) and _degraded_by(st, "state not saved"), timeout=25)
                assert f"last good rules not saved: read-only file system: {state}" in " ".join(st["degraded"])
                assert f"state not saved: read-only file system: {state}" in " ".join(st["degraded"])
                await _fan_follows_pm25(lob)
            finally:
                remount(state, "rw")
            st = await lob.wait_status(lambda st: not st["degraded"], timeout=25)
            assert await lob.stop_daemon() == 0
