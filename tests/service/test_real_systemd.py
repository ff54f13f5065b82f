"""The shipped unit under a real systemd: install as docs/install.md says, start, status, reload, stop.

The rest of tests/service plays systemd with a fake NOTIFY_SOCKET; this test runs Debian's own systemd
as PID 1 of a private PID and mount namespace (``unshare``), so its sandbox (DynamicUser, ProtectSystem,
SystemCallFilter, MemoryDenyWriteExecute, ...), Type=notify with READY/STATUS/WATCHDOG, ExecReload and
the stop sequence are those a gateway runs. The network namespace is shared, so the service reaches
this test's mosquitto, device simulators and influxd on 127.0.0.1.

It installs exactly as docs/install.md §1–3 do: Debian's python3 makes /opt/lobbyd/releases/<version>,
pip installs (a copy of) this checkout, /opt/lobbyd/venv links to it; /etc/lobbyd holds the config, devices and
rules; the unit file is config/systemd/lobbyd.service unchanged (placed under the namespace's own /run,
so the host's systemd, if any, never sees it). boot_systemd.sh keeps the boot from touching the host: a
private /tmp and /run, a volatile journal, and every unit of the host's targets masked.

It is skipped, saying why, where that cannot run (not root, no systemd or unshare, or an existing
lobbyd install it must not touch, or systemd does not boot in a namespace). With ``LOBBYD_REQUIRE_SYSTEMD=1``
(set by .ci/run) each of those reasons fails the test instead, so CI cannot be green without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NoReturn

import aiomqtt
import pytest
from ruamel.yaml import YAML

from bench.rig import device_sims
from simulators.servers import InfluxServer, MosquittoServer
from tests.e2e.harness import write_config

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "config" / "systemd" / "lobbyd.service"
SYSTEMD = Path("/lib/systemd/systemd")
BOOT = Path(__file__).with_name("boot_systemd.sh")  # a contained boot: see its header
OPT, ETC, STATE = Path("/opt/lobbyd"), Path("/etc/lobbyd"), Path("/var/lib/lobbyd")
VERSION = "0.1.0"
REQUIRE_ENV = "LOBBYD_REQUIRE_SYSTEMD"  # "1": this test may not skip itself
SENSOR_MESSAGES = {  # one message for each sensor of the shipped config
    "sensors/demo-001/hall/pm25": b"31.5",
    "zigbee2mqtt/demo-001/hall-climate": b'{"temperature": 23.4, "humidity": 48, "linkquality": 120}',
    "sensors/demo-001/hall/lux": b'{"lux": 420}',
    "sensors/demo-001/outdoor/pm25": b"18",
}


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("unshare", "nsenter", "adduser"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if not SYSTEMD.exists():
        return "systemd not installed"
    if not Path("/usr/bin/python3").exists():
        return "Debian's python3 not installed"
    for p in (OPT,):
        if p.exists() or p.is_symlink():
            return f"{p} exists: a lobbyd install this test must not touch"
    return None


def _cannot_run(reason: str) -> NoReturn:
    """Skip, saying why; or fail, when the environment requires a real systemd run (CI)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but the real-systemd test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


async def _run(*args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
    )
    async with asyncio.timeout(timeout):
        out, err = await proc.communicate()
    res = subprocess.CompletedProcess(list(args), proc.returncode or 0, out.decode(), err.decode())
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


class Systemd:
    """Debian's systemd as PID 1 of a private PID and mount namespace (started by boot_systemd.sh)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0

    async def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - started once, killed at the end
            ["unshare", "--pid", "--fork", "--mount", "--mount-proc", "--propagation", "private",
             str(BOOT), str(UNIT)],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        async with asyncio.timeout(30):
            while not self.pid:
                if self.proc.poll() is not None:
                    _cannot_run(f"systemd did not start in a namespace here: {self.log.read_text()[-500:]}")
                kids = await _run("pgrep", "-P", str(self.proc.pid), check=False)
                self.pid = int(kids.stdout.split()[0]) if kids.stdout.strip() else 0
                await asyncio.sleep(0.1)
        state = subprocess.CompletedProcess[str]([], 1, "", "")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):  # until its socket answers and the boot is over
                while state.stdout.strip() not in ("running", "degraded"):
                    state = await self.ctl("is-system-running", "--wait", check=False, timeout=60)
                    await asyncio.sleep(0.2)
        if state.stdout.strip() not in ("running", "degraded"):
            _cannot_run(f"systemd in a namespace is '{state.stdout.strip()}' here: {state.stderr[-300:]}")

    async def ctl(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return await self.inside("systemctl", "--no-pager", *args, check=check, timeout=timeout)

    async def inside(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return await _run("nsenter", "-t", str(self.pid), "-a", *args, check=check, timeout=timeout)

    async def journal(self) -> str:
        res = await self.inside("journalctl", "-u", "lobbyd", "--no-pager", "-o", "cat", check=False)
        return res.stdout[-4000:]

    async def show(self, *props: str) -> dict[str, str]:
        res = await self.ctl("show", "lobbyd", *(f"--property={p}" for p in props))
        return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)

    @property
    def root(self) -> Path:
        """The namespace's view of the file system (its /etc overlay), from outside."""
        return Path(f"/proc/{self.pid}/root")

    def kill(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)  # PID 1 of the namespace: everything in it dies too
        if self.proc is not None:
            self.proc.wait(30)


def _remove_install() -> None:
    shutil.rmtree(OPT, ignore_errors=True)  # the rest is in the namespace's /etc and /var/lib overlays


@contextlib.asynccontextmanager
async def installed(
    sd: Systemd, tmp: Path, mqtt_port: int, device_ports: dict[str, int], influx_url: str
) -> AsyncIterator[None]:
    """docs/install.md §1–2: a release venv made by Debian's python3, the venv link, the service's
    system user, /etc/lobbyd group-readable by it. /etc is the namespace's overlay (boot_systemd.sh)."""
    try:
        release = OPT / "releases" / VERSION
        await _run("/usr/bin/python3", "-m", "venv", str(release))
        src = await asyncio.to_thread(_checkout_copy, tmp)
        await _run(str(release / "bin" / "pip"), "install", "-q", str(src), timeout=600)
        await asyncio.to_thread((OPT / "venv").symlink_to, release)
        await sd.inside("adduser", "--system", "--group", "--no-create-home", "--home", "/nonexistent", "lobbyd")
        await sd.inside("install", "-d", "-m", "0750", "-o", "root", "-g", "lobbyd", str(ETC))
        await asyncio.to_thread(_configure, sd.root / ETC.relative_to("/"), tmp, mqtt_port, device_ports, influx_url)
        await sd.inside("chgrp", "-R", "lobbyd", str(ETC))
        await sd.inside("chmod", "-R", "g+rX,o-rwx", str(ETC))
        await sd.inside(str(OPT / "venv" / "bin" / "lobbyd"), "check", "--config", str(ETC / "lobbyd.yaml"))
        yield
    finally:
        _remove_install()


def _checkout_copy(tmp: Path) -> Path:
    """What pip installs of this checkout (pyproject.toml, README.md, the packages), copied under ``tmp``.

    pip builds in the source tree (build/, lobbyd.egg-info/); tests running beside this one on other
    pytest-xdist workers read the checkout (every shipped YAML file, say) and must not see it change."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in find["include"]:  # "daemon*": the package and its subpackages, all under daemon/
        name = package.rstrip("*")
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    return src


def _configure(etc: Path, tmp: Path, mqtt_port: int, device_ports: dict[str, int], influx_url: str) -> None:
    """/etc/lobbyd as docs/install.md §2 fills it, written through the namespace's root (``etc``)."""
    shutil.copytree(REPO / "config" / "devices", etc / "devices")
    shutil.copytree(REPO / "rules", etc / "rules")
    src = write_config(
        tmp,
        mqtt_port=mqtt_port,
        device_ports=device_ports,
        influx_url=influx_url,
        rules_dir=ETC / "rules",
        as_shipped=True,  # the shipped rules read the shipped config's filters and daylight sensor
    )
    yaml = YAML()
    data = yaml.load(src.read_text())
    data.update(rules_dir="rules", devices_dir="devices", state_dir=str(STATE))
    with (etc / "lobbyd.yaml").open("w") as f:
        yaml.dump(data, f)


async def _status(sd: Systemd) -> tuple[int, dict[str, Any]]:
    res = await sd.inside(
        str(OPT / "venv" / "bin" / "lobbyd"), "status", "--config", str(ETC / "lobbyd.yaml"), "--json", check=False
    )
    return res.returncode, json.loads(res.stdout) if res.stdout.strip().startswith("{") else {}


async def test_the_shipped_unit_under_real_systemd(tmp_path: Path) -> None:
    why_not = _why_not()
    if why_not is not None:
        _cannot_run(why_not)
    mosq, idb = MosquittoServer(tmp_path / "mosquitto"), InfluxServer(tmp_path / "influxd")
    mosq.start()
    idb.start()
    sd = Systemd(tmp_path / "systemd.log")
    try:
        idb.create_database("lobbyd")
        async with device_sims() as sims:
            ports = {name: sim.port for name, sim in sims.items()}
            await sd.start()
            async with installed(sd, tmp_path, mosq.port, ports, idb.url):
                await sd.ctl("daemon-reload")  # boot_systemd.sh put the unit, unchanged, in the private /run
                # Type=notify: `systemctl start` returns once the daemon sent READY=1 (subscribed, devices read)
                start = await sd.ctl("start", "lobbyd", timeout=150, check=False)
                assert start.returncode == 0, start.stderr + await sd.journal()
                props = await sd.show("ActiveState", "SubState", "StatusText", "MainPID", "User", "Type")
                assert (props["ActiveState"], props["SubState"], props["Type"]) == ("active", "running", "notify")
                assert props["StatusText"], "the daemon sends STATUS= lines"
                ps = await sd.inside("ps", "-o", "uid=", "-p", props["MainPID"])
                assert int(ps.stdout.split()[0]) != 0, "runs as its dynamic user, not root"

                code, st = await _status(sd)  # the control socket under /var/lib/lobbyd
                assert st["mqtt"]["subscribed"] is True, st
                assert {d["name"]: d["online"] for d in st["devices"]} == {"fresh_air": True, "lights": True}
                assert code == 1, "no sensor has spoken yet: status says so, for a monitoring check"

                # readings go through the sandbox's network rules into the daemon and on to InfluxDB
                async with aiomqtt.Client("127.0.0.1", mosq.port, identifier="test-sensors") as pub:
                    for topic, payload in SENSOR_MESSAGES.items():
                        await pub.publish(topic, payload)
                async with asyncio.timeout(30):
                    while not _rows(idb, "SELECT value FROM reading WHERE sensor = 'hall-pm25' AND value = 31.5"):  # noqa: ASYNC110
                        await asyncio.sleep(0.2)
                code, st = await _status(sd)
                assert code == 0, st  # every sensor fresh, devices online, broker subscribed: all well
                why = await sd.inside(str(OPT / "venv" / "bin" / "lobbyd"), "why", "fresh_air.fan_speed")
                assert "31.5" in why.stdout, why.stdout  # the reading that decided the fan level

                # the watchdog is fed (WatchdogSec=30: a ping every 15 s at most)
                first = (await sd.show("WatchdogTimestampMonotonic"))["WatchdogTimestampMonotonic"]
                async with asyncio.timeout(40):
                    while (await sd.show("WatchdogTimestampMonotonic"))["WatchdogTimestampMonotonic"] == first:  # noqa: ASYNC110
                        await asyncio.sleep(0.5)

                # ExecReload= sends SIGHUP: the rules are reloaded and the daemon says so
                await sd.ctl("reload", "lobbyd")
                try:
                    async with asyncio.timeout(30):
                        while True:
                            _, st = await _status(sd)
                            if str(st.get("rules", {}).get("last_reload", "")).startswith("rules reload (SIGHUP)"):
                                break
                            await asyncio.sleep(0.2)
                except TimeoutError:
                    more = await sd.show("MainPID", "NRestarts", "ActiveState", "SubState")
                    raise AssertionError(f"no reload seen: {st}\n{more}\n{await sd.journal()}") from None
                assert "config unchanged" in st["rules"]["last_reload"], st["rules"]
                assert (await sd.show("ActiveState"))["ActiveState"] == "active"

                security = await sd.inside("systemd-analyze", "security", "--no-pager", "lobbyd", check=False)
                exposure = [ln for ln in security.stdout.splitlines() if "Overall exposure level" in ln]
                assert exposure and float(exposure[0].split(":")[1].split()[0]) <= 2.0, security.stdout

                # SIGTERM: stop intake, finish writes, flush time series, exit 0; a reading just before is kept
                n = st["mqtt"]["accepted"]
                async with aiomqtt.Client("127.0.0.1", mosq.port, identifier="test-last") as pub:
                    await pub.publish("sensors/demo-001/hall/pm25", b"33.25")
                async with asyncio.timeout(30):
                    while (await _status(sd))[1]["mqtt"]["accepted"] == n:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                await sd.ctl("stop", "lobbyd", timeout=90)
                props = await sd.show("Result", "ExecMainStatus", "ExecMainCode", "ActiveState")
                assert props["ActiveState"] == "inactive"
                assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), props
                journal = await sd.journal()
                assert "stopping" in journal, journal
                assert _rows(idb, "SELECT value FROM reading WHERE sensor = 'hall-pm25' AND value = 33.25")
    finally:
        sd.kill()
        _remove_install()
        mosq.close()
        idb.close()


def _rows(idb: InfluxServer, q: str) -> list[list[Any]]:
    res = idb.query(q, db="lobbyd")["results"][0]  # type: ignore[index]
    return [v for series in res.get("series", []) for v in series["values"]]
