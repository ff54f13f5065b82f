"""Issue 17, finding 6: one daemon per state directory. A second ``lobbyd run`` exits 1, naming the
first one's pid, and touches nothing: not the control socket, the state, the spool, nor any device.

The daemon runs through its real CLI, against mosquitto, influxd and pymodbus simulators.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.instance import LOCK_FILE, AlreadyRunning, StateLock
from simulators.servers import free_port
from tests.e2e.harness import REPO, lobby, write_config
from tests.faults.disk import remount, tmpfs

INITIAL = {"hall-pm25": 10.0, "outdoor-pm25": 20.0, "hall-lux": 300.0}
HOUSEKEEPING_S = 2  # rounds of state saves (10 s in the shipped config)
Entry = tuple[int, int, int]  # inode, size, mtime in ns


def _snapshot(state: Path) -> dict[str, Entry]:
    """Every entry under the state directory with its inode, size and modification time."""
    out: dict[str, Entry] = {}
    for path in sorted(state.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(state))] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def _second(config: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """``lobbyd run`` on ``config``; killed (and the test failed by the caller) if it keeps running."""
    argv = [sys.executable, "-m", "daemon", "run", "--config", str(config), "--start-at", "2026-06-03T10:30"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return subprocess.CompletedProcess(argv, -9, out, f"still running after {timeout:g}s\n{err}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.servers
async def test_a_second_daemon_exits_1_and_touches_nothing(tmp_path: Path) -> None:
    edit = lambda data: data.update(housekeeping_s=HOUSEKEEPING_S)  # noqa: E731
    async with lobby(tmp_path, strip_ramps=True, initial=INITIAL, edit=edit) as lob:
        fan, sensors = lob.fresh_air, lob.sensors
        lob.start_daemon()
        assert lob.proc is not None
        await lob.wait_status(lambda st: st["mqtt"]["connected"] and (st["influx"] or {}).get("sent_points", 0) > 0)
        # The fan on high: a shutdown write by a second daemon (fan_speed 1) would show on the device.
        sensors.set("hall-pm25", 50.0)
        await sensors.publish_now("hall-pm25")
        await fan.wait_for_write("fan_speed", lambda v: v == 3, timeout=20)
        t0 = (await lob.status())["time"]  # a housekeeping round saves what the spike changed
        await lob.wait_status(lambda st: st["time"] >= t0 + HOUSEKEEPING_S + 1, timeout=30)

        state = lob.loaded.state_dir
        before = _snapshot(state)
        writes = (len(fan.writes), len(lob.lights.writes))
        second = await asyncio.to_thread(_second, lob.config_path)

        assert second.returncode == 1, second.stderr[-3000:]
        assert f"another lobbyd (pid {lob.proc.pid}) holds {state}" in second.stderr, second.stderr
        assert _snapshot(state) == before, "the second daemon touched the state directory"
        assert (len(fan.writes), len(lob.lights.writes)) == writes, fan.writes[writes[0] :]
        assert fan.value("fan_speed") == 3
        st = await lob.status()  # the first one's control socket still answers
        assert st["mqtt"]["connected"] and st["points"]["fresh_air.fan_speed"]["desired"] == 3

        # The lock dies with its holder, however it ends: a killed daemon does not block the next start.
        lob.proc.send_signal(signal.SIGKILL)
        await lob.wait_exit()
        lob.start_daemon()
        await lob.wait_status(lambda st: st["mqtt"]["connected"])
        assert await lob.stop_daemon() == 0


def _config(tmp_path: Path) -> Path:
    """A valid config on ports where nothing listens: a second daemon must stop before it connects."""
    port = free_port()
    return write_config(
        tmp_path,
        mqtt_port=port,
        device_ports={"fresh_air": port, "lights": port},
        influx_url=f"http://127.0.0.1:{port}",
        rules_dir=REPO / "rules",
        as_shipped=True,
    )


def test_the_lock_names_its_holder_even_without_the_pid_in_the_file(tmp_path: Path) -> None:
    config = _config(tmp_path)
    state = tmp_path / "state"
    lock = StateLock(state)
    lock.acquire()  # this process is the first daemon
    try:
        assert (state / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        second = _second(config)
        assert second.returncode == 1, second.stderr[-3000:]
        assert second.stderr.strip() == f"lobbyd: another lobbyd (pid {os.getpid()}) holds {state}; not starting"
        assert sorted(p.name for p in state.iterdir()) == [LOCK_FILE], "nothing else was created"

        (state / LOCK_FILE).write_text("")  # a full disk kept the holder from writing its pid: /proc/locks says
        second = _second(config)
        assert f"another lobbyd (pid {os.getpid()}) holds {state}" in second.stderr, second.stderr
    finally:
        lock.release()


def test_a_read_only_state_directory_still_locks(tmp_path: Path) -> None:
    """On a read-only disk the lock file is opened read-only: it still excludes a second daemon."""
    with tmpfs(tmp_path / "state", "1m") as state:
        first = StateLock(state)
        first.acquire()
        try:
            remount(state, "ro")
            with pytest.raises(AlreadyRunning, match=rf"another lobbyd \(pid {os.getpid()}\) holds {state}"):
                StateLock(state).acquire()
            first.release()
            again = StateLock(state)
            again.acquire()  # released: a read-only disk does not keep a daemon from starting
            again.release()
        finally:
            first.release()
            remount(state, "rw")
