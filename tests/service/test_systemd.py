"""The real daemon under a harness that plays systemd (a NOTIFY_SOCKET the test reads).

READY comes only after the broker acknowledged the subscriptions; WATCHDOG pings stop while the
event loop is wedged; SIGTERM says STOPPING, flushes and exits 0; SIGHUP with a broken rule file keeps
the old rules and names the config sections that need a restart.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from daemon.systemd import TEST_HOOK_ENV
from tests.e2e.harness import Lobby, lobby
from tests.polling import eventually
from tests.service.fake_systemd import FakeSystemd, fake_systemd

pytestmark = pytest.mark.servers


def _fast_mqtt(data: dict[str, Any]) -> None:
    data["mqtt"]["reconnect_initial_s"] = 0.2
    data["mqtt"]["reconnect_max_s"] = 1.0
    data["mqtt"]["timeout_s"] = 2.0


async def _publish(lob: Lobby, topic: str, payload: str) -> None:
    async with aiomqtt.Client("127.0.0.1", lob.mosquitto.port) as c:
        await c.publish(topic, payload, qos=1)


def _start(lob: Lobby, sd: FakeSystemd, monkeypatch: pytest.MonkeyPatch, **extra_env: str) -> None:
    """Start the daemon with systemd's variables in ITS environment only (mosquitto, started later by a
    test, would otherwise send its own READY=1 to the same socket)."""
    with monkeypatch.context() as m:
        for k, v in {**sd.env(), **extra_env}.items():
            m.setenv(k, v)
        lob.start_daemon()


async def test_ready_only_after_mqtt_subscription(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with lobby(tmp_path, influx=False, edit=_fast_mqtt) as lob, fake_systemd(watchdog_s=2.0) as sd:
        lob.mosquitto.stop()  # the broker is down when the daemon starts
        _start(lob, sd, monkeypatch)
        # The daemon runs (devices read, rules evaluated) and keeps trying the broker ...
        await lob.wait_status(lambda st: st["evaluations"] >= 1 and st["uptime_s"] >= 3 and st["mqtt"]["connects"] == 0)
        await sd.wait_for(lambda n: "waiting for MQTT broker" in n.fields.get("STATUS", ""))
        await sd.wait_key("EXTEND_TIMEOUT_USEC")  # ... asks systemd for more start time ...
        await sd.wait_key("WATCHDOG", "1")  # ... is healthy (retrying) ...
        assert sd.with_key("READY") == []  # ... but is not ready.

        lob.mosquitto.start()
        ready = await sd.wait_key("READY", "1")
        assert ready.fields.get("STATUS"), ready.raw  # READY carries a status line
        # Published right after READY (not retained): the daemon must already be subscribed.
        await _publish(
            lob,
            f"lobbyd/{lob.loaded.config.branch}/device/fresh_air/fan_speed/set",
            json.dumps({"value": 3, "duration": "1h"}),
        )
        st = await lob.wait_status(
            lambda st: st["points"].get("fresh_air.fan_speed", {}).get("rule") == "manual-override"
        )
        assert st["mqtt"]["connected"] is True
        assert len(sd.with_key("READY")) == 1
        assert await lob.stop_daemon() == 0


async def test_watchdog_pings_stop_while_the_loop_is_wedged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = tmp_path / "block-loop"
    async with lobby(tmp_path, influx=False) as lob, fake_systemd(watchdog_s=1.0) as sd:
        _start(lob, sd, monkeypatch, **{TEST_HOOK_ENV: str(hook)})
        await sd.wait_key("READY", "1")
        n0 = len(sd.received)
        for _ in range(3):  # healthy: pinging
            n0 = sd.received.index(await sd.wait_key("WATCHDOG", "1", after=n0)) + 1
        last_before = sd.with_key("WATCHDOG")[-1]

        hook.write_text("3")
        # The daemon removes the file right before blocking its loop.
        await eventually(lambda: not hook.exists(), timeout=10, what="hook taken")
        pings_at_block = len(sd.with_key("WATCHDOG"))
        after = await sd.wait_key("WATCHDOG", "1", after=len(sd.received))
        before = max((n for n in sd.with_key("WATCHDOG")[:pings_at_block]), key=lambda n: n.at, default=last_before)
        # No ping for the whole block: systemd (WatchdogSec=1) would have restarted this daemon.
        assert after.at - before.at >= 2.5, (before, after)
        assert any("event loop was blocked" in s for s in sd.statuses())
        assert await lob.stop_daemon() == 0


@pytest.mark.parametrize("influx_up", [True, False], ids=["influx-up", "influx-down"])
async def test_sigterm_stops_flushes_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, influx_up: bool
) -> None:
    async with lobby(tmp_path, influx=True, initial={"hall-pm25": 12.0}) as lob, fake_systemd() as sd:
        _start(lob, sd, monkeypatch)
        await sd.wait_key("READY", "1")
        if not influx_up:
            assert lob.influx is not None
            lob.influx.stop()
        lob.sensors.set("hall-pm25", 33.25)
        await lob.sensors.publish_now("hall-pm25")
        await lob.wait_status(lambda st: next(s for s in st["sensors"] if s["sensor"] == "hall-pm25")["value"] == 33.25)
        await lob.wait_status(lambda st: st["points"].get("fresh_air.fan_speed") is not None)
        lob.sensors.set("hall-pm25", 12.0)  # nothing after SIGTERM may be lost either way
        assert await lob.stop_daemon(signal.SIGTERM, timeout=60) == 0
        assert sd.with_key("STOPPING", "1"), sd.received
        state = lob.loaded.state_dir
        assert (state / "engine-memory.json").exists()  # timers persisted
        assert lob.fresh_air.value("fan_speed") == 1  # the profile's shutdown state
        assert "Traceback" not in lob.log
        if influx_up:
            assert lob.influx is not None
            res = lob.influx.query(
                "SELECT value FROM reading WHERE sensor = 'hall-pm25' AND value = 33.25", db="lobbyd"
            )
            assert res["results"][0].get("series"), res  # type: ignore[index]
        else:
            spooled = b"".join(p.read_bytes() for p in (state / "spool").rglob("*") if p.is_file())
            assert b"sensor=hall-pm25" in spooled and b"value=33.25" in spooled


async def test_sighup_with_a_broken_rule_keeps_the_old_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with lobby(tmp_path, influx=False) as lob, fake_systemd() as sd:
        _start(lob, sd, monkeypatch)
        await sd.wait_key("READY", "1")
        st0 = await lob.status()
        assert st0["rules"]["errors"] == [] and st0["rules"]["count"] > 0
        rule_file = sorted((tmp_path / "rules").glob("*.yaml"))[0]
        good = rule_file.read_text()
        rule_file.write_text(good + "\n  this is: [not valid\n")
        cfg = lob.config_path.read_text()
        lob.config_path.write_text(cfg.replace("silence_after_s: 120", "silence_after_s: 300"))

        n = len(sd.received)
        assert lob.proc is not None
        lob.proc.send_signal(signal.SIGHUP)
        await sd.wait_key("RELOADING", "1", after=n)
        await sd.wait_key("READY", "1", after=n)
        st = await lob.wait_status(lambda st: st["rules"]["errors"] != [])
        assert st["rules"]["count"] == st0["rules"]["count"]
        assert st["rules"]["fingerprint"] == st0["rules"]["fingerprint"]
        assert rule_file.name in " ".join(st["rules"]["errors"])
        assert "kept last good version of " + rule_file.name in st["rules"]["last_reload"]
        assert "config changed in mqtt: NOT applied, needs a restart" in st["rules"]["last_reload"]
        assert "needs a restart" in lob.log

        rule_file.write_text(good)
        n = len(sd.received)
        lob.proc.send_signal(signal.SIGHUP)
        await sd.wait_key("READY", "1", after=n)
        st = await lob.wait_status(lambda st: st["rules"]["errors"] == [])
        assert st["rules"]["fingerprint"] == st0["rules"]["fingerprint"]
        assert await lob.stop_daemon() == 0
