"""Finding 8: secrets never reach logs, status or events; bookkeeping is bounded and honest.

Real influxd and mosquitto; the real writer, link and daemon.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import struct
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.backoff import Backoff
from drivers.clock import VirtualClock
from drivers.influx import InfluxWriter
from drivers.influx.config import redact_text, redact_url
from drivers.influx.spool import MAGIC
from drivers.modbus import DeviceConfig, ModbusBus, ModbusDevice, ModbusError
from drivers.mqtt import MqttConfig, MqttLink, RateLimitedLog
from simulators.devices import DeviceSimulator
from simulators.servers import InfluxServer, MosquittoServer
from tests.drivers.influx.helpers import FastBackoffClock, dead_url, influx_rows, running
from tests.drivers.influx.test_writer import DB, now_ns, points, v1, v2
from tests.drivers.modbus.helpers import profile
from tests.drivers.mqtt.helpers import Collector, RecordingClock
from tests.e2e.harness import REPO, Lobby, lobby
from tests.polling import eventually

SECRET = "Pa55-w0rd-9c1e"


class Records(logging.Handler):
    """Every record of every logger (the root at DEBUG), formatted with its exception."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def all_logs() -> Iterator[Records]:
    root = logging.getLogger()
    handler, level = Records(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"http://lobbyd:{SECRET}@10.0.0.5:8086", "http://***@10.0.0.5:8086"),
        (f"https://lobbyd:{SECRET}@db.example/influx", "https://***@db.example/influx"),
        (f"http://{SECRET}@[::1]:8086/", "http://***@[::1]:8086/"),  # a token as the user
        ("http://user:p%40ss%3Aw0rd@h:1", "http://***@h:1"),  # percent-encoded '@' and ':'
        ("http://h:8086", "http://h:8086"),
    ],
)
def test_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    userinfo = url.split("//")[1].rpartition("@")[0]
    for text in (f"cannot reach {url}", f"cannot reach {urllib.parse.unquote(url)}"):
        assert not userinfo or urllib.parse.unquote(userinfo) not in redact_text(text, url)


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_influx_url_credentials_never_in_log_stats_or_events(api: str, tmp_path: Path, all_logs: Records) -> None:
    """A dead server behind a URL with ``user:password@``: every error path (log, last_error, events,
    repr) names the server without the password."""
    url = dead_url().replace("http://", f"http://lobbyd:{SECRET}@")
    events: list[tuple[str, str]] = []
    cfg = (v1 if api == "v1" else v2)(url)
    w = InfluxWriter(
        cfg, spool_dir=tmp_path / "spool", clock=FastBackoffClock(), on_event=lambda k, t: events.append((k, t))
    )
    async with running(w):
        for p in points(20, now_ns()):
            w.submit(p)
        await eventually(lambda: w.stats().spooled_points == 20 and w.stats().last_error is not None, what="spooled")
    seen = "\n".join([all_logs.text, repr(w), json.dumps(w.stats().__repr__()), *(t for _, t in events)])
    assert SECRET not in seen
    assert "***@127.0.0.1" in str(w.stats().last_error), w.stats().last_error


async def test_last_error_is_cleared_on_recovery_and_its_time_kept(influxd: InfluxServer, tmp_path: Path) -> None:
    influxd.create_database(DB)
    url = influxd.url.replace("http://", f"http://lobbyd:{SECRET}@")  # auth is off: the password is ignored
    w = InfluxWriter(v1(url), spool_dir=tmp_path / "spool", clock=FastBackoffClock())
    async with running(w):
        w.submit(points(1, now_ns())[0])
        await eventually(lambda: w.stats().sent_points == 1, what="the first point")
        assert (w.stats().last_error, w.stats().last_error_at) == (None, None)
        await asyncio.to_thread(influxd.stop)
        w.submit(points(1, now_ns() + 1_000_000)[0])
        await eventually(lambda: w.stats().last_error is not None, what="an error")
        failed_at = w.stats().last_error_at
        assert failed_at is not None and SECRET not in str(w.stats().last_error)
        await asyncio.to_thread(influxd.start)
        await eventually(lambda: w.stats().spooled_bytes == 0 and w.stats().sent_points == 2, what="replay")
        assert w.stats().last_error is None
        kept = w.stats().last_error_at
        assert kept is not None and kept >= failed_at


def _record_offsets(data: bytes) -> list[int]:
    offs, off = [], len(MAGIC)
    while off < len(data):
        offs.append(off)
        (length,) = struct.unpack(">I", data[off : off + 4])
        off += 20 + length
    return offs


@pytest.mark.parametrize(("damage", "dropped"), [("torn", 10), ("flip", 10), ("torn-header", 0)])
async def test_a_torn_spool_record_counts_its_points_as_dropped(
    damage: str, dropped: int, influxd: InfluxServer, tmp_path: Path
) -> None:
    """Three records of 10 points; the last is damaged as a killed write or a bad sector leaves it.
    20 points replay; the 10 of the damaged record are counted in ``dropped_points`` (when its header
    survived to say how many) and every point is either delivered or counted."""
    influxd.create_database(DB)
    spool, base = tmp_path / "spool", now_ns()
    w = InfluxWriter(v1(dead_url(), batch_size=10), spool_dir=spool)
    for p in points(30, base):
        w.submit(p)
    await w.flush(5)
    (seg,) = sorted(spool.glob("*.seg"))
    data = seg.read_bytes()
    third = _record_offsets(data)[2]
    if damage == "torn":
        seg.write_bytes(data[:-7])  # the body's end never reached the disk
    elif damage == "flip":
        seg.write_bytes(data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:])
    else:
        seg.write_bytes(data[: third + 11])  # part of the 20-byte header: the count is gone
    events: list[str] = []
    w2 = InfluxWriter(
        v1(influxd.url), spool_dir=spool, clock=FastBackoffClock(), on_event=lambda k, t: events.append(t)
    )
    async with running(w2):
        await eventually(lambda: w2.stats().replayed_points == 20 and not w2.stats().spooled_bytes, what="replay")
    st = w2.stats()
    assert (st.corrupt_records, st.dropped_points) == (1, dropped)
    assert len(influx_rows(influxd, DB, "reading")) + st.dropped_points == 20 + dropped
    (event,) = [e for e in events if "corrupt spool record" in e]
    assert ("10 points" if dropped else "an unknown number of points") in event


async def test_mqtt_password_never_in_logs_or_errors(tmp_path: Path, all_logs: Records) -> None:
    """Right password, then a wrong one (read again at each connect): DEBUG logs of lobbyd, aiomqtt and
    paho, the link's errors and its failure counts carry no password."""
    broker = MosquittoServer(tmp_path / "mosquitto", users={"lobbyd": SECRET})
    broker.start()
    pw = tmp_path / "mqtt.password"
    pw.write_text(SECRET + "\n")
    config = MqttConfig.model_validate(
        {"host": "127.0.0.1", "port": broker.port, "username": "lobbyd", "password_file": str(pw)}
    )
    link = MqttLink(config, branch="b42", subscriptions=[("s/#", 1)], clock=RecordingClock(), rng=random.Random(1))
    task = asyncio.create_task(link.run(Collector()))
    try:
        await eventually(lambda: link.connected, what="connected with the right password")
        pw.write_text(SECRET + "-wrong\n")
        await asyncio.to_thread(broker.restart)
        await eventually(lambda: link.failures["auth"] >= 2, what="refused with the wrong password")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        broker.close()
    assert "lobbyd.mqtt.wire" in all_logs.text  # the wire log was captured
    assert SECRET not in all_logs.text + str(link.last_error) + str(dict(link.failures)) + str(link.last_disconnect)


def test_rate_limited_log_remembers_a_bounded_number_of_keys() -> None:
    """Keys come from topics a client chose: 100 000 distinct ones keep at most ``max_keys``."""
    logger = logging.getLogger("tests.faults.ratelimit")
    logger.setLevel(logging.CRITICAL + 1)  # counted, not printed
    log = RateLimitedLog(logger, interval_s=60.0, clock=VirtualClock(0.0), max_keys=100)
    assert all(log.log(f"zigbee2mqtt/x{i}\0\0unknown_topic", "rejected") for i in range(100_000))
    assert log.emitted == 100_000
    assert not log.log("zigbee2mqtt/x99999\0\0unknown_topic", "again")  # the newest is still remembered
    assert log.log("zigbee2mqtt/x0\0\0unknown_topic", "again")  # the oldest was forgotten: logged anew


async def test_link_bookkeeping_stays_bounded_over_many_failed_attempts(tmp_path: Path) -> None:
    # A port held bound but not listening: every connection is refused, and no server of a test
    # running beside this one (pytest-xdist) can take the port over during the 300 attempts.
    with socket.socket() as hold:
        hold.bind(("127.0.0.1", 0))
        config = MqttConfig.model_validate({"host": "127.0.0.1", "port": hold.getsockname()[1]})
        link = MqttLink(config, branch="b42", subscriptions=[], clock=RecordingClock(0.001), rng=random.Random(2))
        task = asyncio.create_task(link.run(Collector()))
        try:
            await eventually(lambda: link.connect_attempts_total >= 300, timeout=60, what="300 failed attempts")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert link.connect_attempts == link.connect_attempts_total >= 300
    assert set(link.failures) == {"unreachable"}
    assert link.last_disconnect is None and link.down_since is not None


async def _cli(lob: Lobby, *args: str) -> str:
    argv = [sys.executable, "-m", "daemon", *args, "--config", str(lob.config_path)]
    done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, cwd=REPO, check=False)
    return done.stdout + done.stderr


@pytest.mark.servers
async def test_influx_url_credentials_never_in_the_daemons_log_status_or_events(tmp_path: Path) -> None:
    """The real daemon at DEBUG with ``url: http://lobbyd:<password>@…``: InfluxDB goes away and comes
    back; the password is in no log line, no status answer and no event written to InfluxDB."""

    def creds_in_url(data: dict[str, Any]) -> None:
        data["influx"]["url"] = data["influx"]["url"].replace("http://", f"http://lobbyd:{SECRET}@")

    async with lobby(tmp_path, edit=creds_in_url) as lob:
        assert lob.influx is not None
        lob.start_daemon()
        await lob.wait_status(lambda st: st["mqtt"]["connected"] and st["influx"]["sent_points"] > 0, timeout=30)
        await asyncio.to_thread(lob.influx.stop)
        down = await lob.wait_status(lambda st: st["influx"]["spooled_bytes"] > 0 and st["influx"]["last_error"])
        text_down = await _cli(lob, "status")
        await asyncio.to_thread(lob.influx.start)
        up = await lob.wait_status(lambda st: st["influx"]["spooled_bytes"] == 0 and not st["influx"]["last_error"])
        assert up["influx"]["last_error_at"] is not None
        text_up = await _cli(lob, "status") + await _cli(lob, "status", "--json")
        assert await lob.stop_daemon() == 0
        events = influx_rows(lob.influx, "lobbyd", "event")
    assert "***@127.0.0.1" in down["influx"]["last_error"]
    assert any("spool" in str(e.get("kind")) for e in events), events
    for name, text in (
        ("log", lob.log),
        ("status", json.dumps(down) + json.dumps(up) + text_down + text_up),
        ("events", json.dumps(events)),
    ):
        assert SECRET not in text, f"the InfluxDB password is in the {name}"


async def test_a_device_clears_its_last_error_when_it_answers_again() -> None:
    """A real pymodbus device stops and starts again on the same port: while it is away the bus counts
    attempts since its last connection; once it answers, ``last_error`` is cleared, its time kept."""
    clock = VirtualClock(1_000.0)
    light = profile("lighting-standard")
    async with DeviceSimulator.tcp(light, 1) as sim:
        cfg = DeviceConfig.model_validate(
            {"name": "dev", "profile": "x", "unit_id": 1, "timeout_s": 0.5, "retries": 0, "offline_after": 1,
             "transport": {"type": "tcp", "host": "127.0.0.1", "port": sim.port}}
        )  # fmt: skip
        async with ModbusBus(cfg.transport, clock=clock, backoff=Backoff(0.5, 1.0)) as bus:
            dev = ModbusDevice(cfg, light, bus, clock=clock, probe_backoff=Backoff(100.0, 100.0))
            assert await dev.read_point("cct") == 2700
            assert (dev.last_error, dev.last_error_at, bus.stats.attempts_since_connect) == (None, None, 0)
            await sim.stop()
            with pytest.raises(ModbusError):
                await dev.read_point("cct")
            failed_at = dev.last_error_at
            assert dev.last_error is not None and failed_at == clock.now() and not dev.online
            for n in range(1, 4):
                await eventually(lambda: clock.next_deadline is not None, what="the bus's reconnect wait")
                await clock.advance(1)
                await eventually(lambda n=n: bus.stats.attempts_since_connect >= n, what=f"failed attempt {n}")  # type: ignore[misc]
            await sim.start()
            await clock.advance(1)
            await eventually(lambda: bus.connected, what="reconnect")
            assert bus.stats.attempts_since_connect == 0 and bus.stats.connect_attempts >= 5
            assert await dev.read_point("cct") == 2700
            assert dev.online and dev.last_error is None and dev.last_error_at == failed_at
