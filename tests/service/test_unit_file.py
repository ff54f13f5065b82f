"""The shipped systemd unit: hardened (exposure <= 2.0 by systemd's own judge), valid, and complete."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "config" / "systemd" / "lobbyd.service"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_security_exposure_at_most_2() -> None:
    res = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    m = re.search(r"Overall exposure level for lobbyd\.service: (\d+\.\d+)", res.stdout)
    assert m is not None, res.stdout + res.stderr
    assert float(m.group(1)) <= 2.0, res.stdout


def test_verify_passes_in_a_root_that_has_the_install_paths(tmp_path: Path) -> None:
    """``verify`` checks that ExecStart exists; give it a root with /opt/lobbyd/venv/bin/lobbyd."""
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for stub in ("opt/lobbyd/venv/bin/lobbyd", "bin/kill"):
        path = root / stub
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    shutil.copy(UNIT, root / "etc/systemd/system/lobbyd.service")
    res = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", "lobbyd.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    # verify exits 0 on "ignoring" warnings too: any output about our unit is a failure.
    assert res.returncode == 0 and "lobbyd" not in res.stdout + res.stderr, res.stdout + res.stderr


def test_verify_catches_a_typo(tmp_path: Path) -> None:
    """The previous test can fail: the same check on a unit with a misspelt value reports it."""
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system/lobbyd.service").write_text(
        UNIT.read_text().replace("Type=notify", "Type=notifyy").replace("/opt/lobbyd/venv/bin/lobbyd", "/bin/true")
    )
    res = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", "lobbyd.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "notifyy" in res.stdout + res.stderr


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", "/opt/lobbyd/venv/bin/lobbyd run --config /etc/lobbyd/lobbyd.yaml"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("StateDirectory", "lobbyd"),
        ("ConfigurationDirectory", "lobbyd"),
        ("DynamicUser", "yes"),
        ("SupplementaryGroups", "dialout"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallArchitectures", "native"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("DevicePolicy", "closed"),
    ],
)
def test_directive(key: str, expected: str) -> None:
    assert expected in _directives(UNIT.read_text()).get(key, [])


def test_bounds_and_serial_ports() -> None:
    d = _directives(UNIT.read_text())
    assert "@system-service" in d["SystemCallFilter"]
    assert int(d["WatchdogSec"][0]) > 0
    assert int(d["TimeoutStopSec"][0]) >= 30  # write drain (15 s) + flush (10 s) fit inside
    assert int(d["StartLimitBurst"][0]) >= 1 and int(d["StartLimitIntervalSec"][0]) > 0
    assert {v.split()[0] for v in d["DeviceAllow"]} == {"char-ttyS", "char-ttyUSB", "char-ttyACM"}
    assert "PrivateDevices" not in d  # it would hide the serial ports
    assert "PrivateUsers" not in d  # it would unmap the dialout group
