"""Issue 17, finding 1: hostile and careless overrides against the real daemon, broker and devices.

The daemon runs as a subprocess through its CLI (tests/e2e/harness.py); overrides arrive over real
mosquitto or through ``lobbyd override`` on the control socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.e2e.harness import REPO, Lobby, lobby
from tests.polling import eventually

pytestmark = pytest.mark.servers

FAN = "fresh_air.fan_speed"
ME = f"user {pwd.getpwuid(os.getuid()).pw_name} (uid {os.getuid()})"  # who runs `lobbyd override` here


async def _publish(lob: Lobby, point: str, payload: str) -> None:
    device, name = point.split(".")
    async with aiomqtt.Client("127.0.0.1", lob.mosquitto.port) as c:
        await c.publish(f"lobbyd/{lob.loaded.config.branch}/device/{device}/{name}/set", payload, qos=1)


async def _cli(lob: Lobby, *args: str, sudo_user: str | None = None) -> subprocess.CompletedProcess[str]:
    """``lobbyd <args>`` against the running daemon (in a thread: the simulators run on this loop)."""
    argv = [sys.executable, "-m", "daemon", *args[:1], "--config", str(lob.config_path), *args[1:]]
    env = {k: v for k, v in os.environ.items() if k != "SUDO_USER"}
    if sudo_user is not None:
        env["SUDO_USER"] = sudo_user
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, cwd=REPO, timeout=30, env=env)


async def test_an_endless_override_neither_crashes_the_daemon_nor_takes_effect(tmp_path: Path) -> None:
    async with lobby(tmp_path, influx=False) as lob:
        lob.start_daemon()
        await lob.wait_status(lambda st: st["mqtt"]["subscribed"] and FAN in st["points"])
        bad = ('"99999999d"', "1e999", "NaN", '"1e400s"', "-5", str(10**400))
        for duration in bad:
            await _publish(lob, FAN, f'{{"value": 1, "duration": {duration}}}')
        # A good override afterwards: the daemon is alive, subscribed, and still acts on operators.
        await _publish(lob, FAN, json.dumps({"value": 2, "duration": "5m"}))
        st = await lob.wait_status(lambda st: st["points"][FAN]["rule"] == "manual-override")
        assert st["points"][FAN]["desired"] == 2
        assert lob.proc is not None and lob.proc.poll() is None
        o = st["overrides"]
        assert (o["accepted"], o["rejected"], o["rejected_by"]) == (1, len(bad), {"duration": len(bad)})
        (ov,) = o["in_force"].values()
        assert ov["source"] == f"mqtt lobbyd/{lob.loaded.config.branch}/device/fresh_air/fan_speed/set"
        assert 0 < ov["ends_in_s"] <= 300
        rejected = [ln for ln in lob.log.splitlines() if "override of fresh_air.fan_speed" in ln and "rejected" in ln]
        assert len(rejected) == len(bad), rejected  # each logged once, with its reason
        assert "longer than the longest override allowed, 8h" in rejected[0]
        assert "must be finite" in rejected[1]

        # The same bad override 1000 times: all counted, logged once (the log's repeat filter), still alive.
        topic = f"lobbyd/{lob.loaded.config.branch}/device/fresh_air/fan_speed/set"
        async with aiomqtt.Client("127.0.0.1", lob.mosquitto.port) as c:
            for _ in range(1000):
                await c.publish(topic, '{"value": 9}', qos=1)
        st = await lob.wait_status(lambda st: st["overrides"]["rejected"] == len(bad) + 1000)
        assert st["overrides"]["rejected_by"]["out_of_range"] == 1000
        assert lob.log.count("9 is not one of them") == 1
        assert st["points"][FAN]["desired"] == 2


def _no_mqtt_overrides(data: dict[str, Any]) -> None:
    del data["overrides"]  # the default: off


async def test_mqtt_overrides_are_off_by_default_and_lobbyd_override_records_the_local_user(tmp_path: Path) -> None:
    async with lobby(tmp_path, edit=_no_mqtt_overrides) as lob:
        lob.start_daemon()
        await lob.wait_status(lambda st: st["mqtt"]["subscribed"] and FAN in st["points"])
        await _publish(lob, FAN, json.dumps({"value": 3, "duration": "5m"}))
        st = await lob.wait_status(lambda st: st["overrides"]["rejected"] == 1)
        assert st["overrides"]["rejected_by"] == {"disabled": 1} and st["overrides"]["mqtt"] is False
        assert st["points"][FAN]["rule"] != "manual-override"
        assert "overrides over MQTT are off" in lob.log

        # The CLI: same checks, plain words, exit 2 for a refused override.
        refused = {
            ("1.5", "--for", "30m"): "fresh_air.fan_speed takes one of [0, 1, 2, 3]; 1.5 is not one of them",
            ("4",): "fresh_air.fan_speed takes one of [0, 1, 2, 3]; 4 is not one of them",
            ("2", "--for", "99999999d"): "longer than the longest override allowed, 8h",
            ("inf",): "'value' must be a finite number",
        }
        for args, reason in refused.items():
            r = await _cli(lob, "override", FAN, *args)
            assert (r.returncode, r.stdout) == (2, ""), r
            said, refusal = r.stderr.splitlines()  # which config it used, then why it refused
            assert said.startswith("lobbyd: config ") and said.endswith(" (from --config)"), r.stderr
            assert refusal.startswith("lobbyd override: refused: ") and reason in refusal, r.stderr
        r = await _cli(lob, "override", "lights.cct", "9000")
        assert r.returncode == 2 and "lights.cct takes 2700..5000; 9000 is outside that range" in r.stderr

        since = len(lob.fresh_air.writes)
        r = await _cli(lob, "override", FAN, "2", "--for", "30m")
        assert r.returncode == 0, r.stderr
        assert "manual override 2 for 30m" in r.stdout and f"by control socket, {ME}" in r.stdout
        w = await lob.fresh_air.wait_for_write("fan_speed", lambda v: v == 2, timeout=20, since=since)
        assert w.value == 2
        st = await lob.status()
        assert st["overrides"]["in_force"][FAN]["source"] == f"control socket, {ME}"
        assert st["overrides"]["rejected"] == 1 + len(refused) + 1
        why = await _cli(lob, "why", FAN)
        assert f"manual override (control socket, {ME})" in why.stdout, why.stdout

        r = await _cli(lob, "override", FAN, "--clear", sudo_user="alice")
        assert r.returncode == 0, r
        assert f"cleared by control socket, {ME} (says by 'alice'; not authenticated)" in r.stdout, r
        await lob.wait_status(
            lambda st: st["points"][FAN]["rule"] != "manual-override" and not st["overrides"]["in_force"]
        )

        # The event log (InfluxDB) names the source of each override.
        assert lob.influx is not None
        texts: list[str] = []

        influx = lob.influx

        def events() -> bool:
            answer: Any = influx.query("SELECT text FROM event WHERE kind = 'override'", db="lobbyd")
            series = answer["results"][0].get("series", [])
            texts[:] = [row[1] for s in series for row in s["values"]]
            return len(texts) >= 2

        await eventually(events, timeout=20, what="override events in InfluxDB")
        assert any("manual override 2 for 30m" in t and ME in t for t in texts), texts
        assert any(f"cleared by control socket, {ME}" in t for t in texts), texts
