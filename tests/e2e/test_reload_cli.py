"""`lobbyd reload` says what changed and every error, line for line as the daemon logs it; exit 0 or 2.

Real broker, device simulators and a daemon subprocess that reloads only when asked (``--no-watch``),
so that each reload sees exactly the edits made before it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, Lobby, lobby, pm25_alarm_rule

pytestmark = pytest.mark.servers

CLEAN = {"hall-pm25": 10.0, "outdoor-pm25": 20.0, "hall-lux": 300.0}


async def reload_cli(lob: Lobby) -> tuple[int, list[str], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "reload", "--config", str(lob.config_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, stdout.decode().splitlines(), stderr.decode()


def assert_logged(lob: Lobby, lines: list[str]) -> None:
    """Each printed line is a line of the daemon's log (``LEVEL lobbyd: <line>``), in the same order."""
    log = lob.log.splitlines()
    at = 0
    for line in lines:
        found = [i for i, entry in enumerate(log) if i >= at and entry.endswith(f" lobbyd: {line}")]
        assert found, f"not in the log after line {at}: {line!r}\n" + "\n".join(log[-30:])
        at = found[0] + 1


async def test_reload_prints_what_changed_and_every_error_as_logged(tmp_path: Path) -> None:
    async with lobby(tmp_path, influx=False, strip_ramps=True, initial=CLEAN) as lob:
        lob.start_daemon("--no-watch")
        await lob.wait_status(lambda st: st["mqtt"]["connected"])
        rules = lob.loaded.rules_dir

        # Nothing edited: ok, unchanged, exit 0.
        code, out, err = await reload_cli(lob)
        assert code == 0, [*out, err]
        assert out == ["rules reload (lobbyd reload): ok, 10 rules (unchanged)", "reload: config unchanged"]
        assert_logged(lob, out)
        assert f"lobbyd: config {lob.config_path} (from --config)" in err

        # A rule added (new file), one removed and one changed (lighting.yaml), a schedule changed,
        # a safety limit changed in the config.
        (rules / "alarm.yaml").write_text(pm25_alarm_rule("1m"))
        light = rules / "lighting.yaml"
        text = light.read_text()
        edited = text.replace("- [100, 3000]", "- [100, 3400]")
        start = edited.index("  - id: after-hours-lights")
        end = edited.find("\n  - id:", start + 1)
        edited = edited[:start] + (edited[end + 1 :] if end != -1 else "")
        light.write_text(edited)
        sched = rules / "schedules.yaml"
        sched.write_text(sched.read_text().replace('mon: ["08:30"', 'mon: ["08:00"', 1))
        cfg = lob.config_path.read_text()
        assert "max_writes_per_hour: 30" in cfg
        lob.config_path.write_text(cfg.replace("max_writes_per_hour: 30", "max_writes_per_hour: 20", 1))

        code, out, err = await reload_cli(lob)
        assert code == 0, [*out, err]
        assert out == [
            "rules reload (lobbyd reload): ok, 10 rules",
            "rules: rule removed: after-hours-lights (lights.cct)",
            "rules: rule changed: daylight-cct (lights.cct)",
            "rules: rule added: pm25-alarm-light (lights.brightness)",
            "rules: schedule changed: opening-hours",
            "reload: config changed in safety: NOT applied, needs a restart",
            "reload: safety limits of fresh_air.fan_speed changed: max_writes_per_hour 30 → 20: "
            "NOT applied, needs a restart",
        ], "\n".join(out)
        assert_logged(lob, out)

        # Errors in two files: each printed as logged, exit 2, last good versions kept. (The config is put
        # back: the log folds a warning repeated within a minute, which the command still prints.)
        lob.config_path.write_text(cfg)
        light.write_text(edited.replace("points:", "pionts:", 1))
        (rules / "alarm.yaml").write_text(pm25_alarm_rule("1m").replace("target:", "targt:"))
        code, out, err = await reload_cli(lob)
        assert code == 2, [*out, err]
        # each file: the misspelt key, and the required key now missing
        assert out[0] == "rules reload (lobbyd reload): 4 error(s); kept last good version of alarm.yaml, lighting.yaml"
        errors = [line for line in out if line.startswith("rules: /")]
        assert len(errors) == 4, out
        assert any("lighting.yaml:" in e and "unknown key 'pionts' (did you mean 'points'?)" in e for e in errors)
        assert any("alarm.yaml:" in e and "targt" in e for e in errors)
        assert not any(line.startswith("rules: rule ") for line in out), "the old versions run: nothing changed"
        assert_logged(lob, out)
        st = await lob.status()
        assert [f"rules: {e}" for e in st["rules"]["errors"]] == errors
        assert await lob.stop_daemon() == 0
