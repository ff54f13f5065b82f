"""Username/password, ACL and TLS (CA, hostname verification, client certificates) on real mosquitto."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.clock import SystemClock
from drivers.mqtt import AuthRejected, MqttConfig, MqttLink, TlsFailed
from simulators.servers import MosquittoServer
from tests.drivers.mqtt.helpers import (
    Collector,
    Pki,
    RecordingClock,
    make_pki,
    probe,
    subscribe_acl_broker,
)
from tests.polling import eventually

ACL = """\
user lobbyd
topic read sensors/allowed/#
topic readwrite lobbyd/#

user sensor
topic write sensors/#
"""
SECRET = "s3cr3t-Passw0rd"
# Run as root, mosquitto drops to user "mosquitto" before reading the password, ACL and key files,
# which live in pytest's private (0700) temp directories: keep it as the invoking user instead.
STAY = "user root\n"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[MosquittoServer]:
    server = MosquittoServer(tmp_path / "mq", users={"lobbyd": SECRET, "sensor": "spw"}, acl=ACL, extra_config=STAY)
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def make_link(port: int, clock: RecordingClock, subs: list[tuple[str, int]] | None = None, **cfg: Any) -> MqttLink:
    config = MqttConfig.model_validate(
        {"host": "127.0.0.1", "port": port, "reconnect_initial_s": 0.2, "reconnect_max_s": 2.0, **cfg}
    )
    return MqttLink(config, branch="b7", subscriptions=subs or [], clock=clock, rng=random.Random(1))


async def run_until(link: MqttLink, condition: Any, what: str, handle: Collector | None = None) -> None:
    """Run the link until ``condition()`` holds, then cancel it (structured: one TaskGroup)."""
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(link.run(handle or Collector()), name="mqtt-link")
        try:
            await eventually(condition, what=what)
        finally:
            task.cancel()


async def test_wrong_password_is_classified_and_retried_with_backoff(
    secured: MosquittoServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pw = tmp_path / "pw"
    pw.write_text("not-the-password\n")
    clock = RecordingClock(real_s=0.01)
    link = make_link(secured.port, clock, username="lobbyd", password_file=str(pw))
    with caplog.at_level(logging.DEBUG):
        await run_until(link, lambda: link.failures["auth"] >= 5, "five refused connects")
    assert (link.connected, link.connects) == (False, 0)
    assert set(link.failures) == {"auth"}
    assert isinstance(link.last_error, AuthRejected)
    assert len(clock.delays) >= 5
    for n, delay in enumerate(clock.delays):
        assert min(2.0, 0.2 * 2**n) / 2 <= delay <= min(2.0, 0.2 * 2**n)
    warnings = [r for r in caplog.records if r.name == "lobbyd.mqtt.link" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # the same failure is logged once, then rate-limited
    assert "auth" in warnings[0].getMessage()
    assert "not-the-password" not in caplog.text


async def test_password_from_env_and_acl_denied_topic_never_arrives(
    secured: MosquittoServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LOBBYD_TEST_MQTT_PW", SECRET)
    link = make_link(
        secured.port,
        RecordingClock(),
        [("sensors/allowed/#", 1), ("sensors/denied/#", 1)],
        username="lobbyd",
        password_env="LOBBYD_TEST_MQTT_PW",
    )
    got = Collector()

    async def scenario() -> None:
        await eventually(lambda: link.connected, what="authenticated connect")
        async with probe(secured.port, username="sensor", password="spw") as sensor:
            for i in range(5):  # one connection, QoS 1, in order: denied ones go first
                await sensor.client.publish(f"sensors/denied/{i}", str(i), qos=1)
                await sensor.client.publish(f"sensors/allowed/{i}", str(i), qos=1)
        await eventually(lambda: len(got.messages) >= 5, what="allowed messages")

    with caplog.at_level(logging.DEBUG):
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(link.run(got))
            try:
                await scenario()
            finally:
                task.cancel()
    assert [m.topic for m in got.messages] == [f"sensors/allowed/{i}" for i in range(5)]
    assert (link.connects, sum(link.failures.values())) == (1, 0)
    assert SECRET not in caplog.text
    assert SECRET not in repr(link.config)


async def test_a_subscription_the_broker_refuses_is_counted_and_the_rest_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = subscribe_acl_broker(tmp_path, allowed="sensors/allowed/#")
    server.start()
    try:
        subs = [("sensors/allowed/#", 1), ("sensors/denied/#", 1)]
        link = make_link(server.port, RecordingClock(), subs)
        got = Collector()

        async def scenario() -> None:
            await eventually(lambda: link.connected, what="connect")
            async with probe(server.port) as sensor:
                await sensor.client.publish("sensors/denied/1", "1", qos=1)
                await sensor.client.publish("sensors/allowed/1", "2", qos=1)
            await eventually(lambda: len(got.messages) == 1, what="the allowed message")

        with caplog.at_level(logging.WARNING, logger="lobbyd.mqtt.link"):
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(link.run(got))
                try:
                    await scenario()
                finally:
                    task.cancel()
    finally:
        server.close()
    assert link.subscribe_refused == 1
    assert [m.topic for m in got.messages] == ["sensors/allowed/1"]
    assert (link.connects, sum(link.failures.values())) == (1, 0)
    refused = [r.getMessage() for r in caplog.records if "refused subscription" in r.getMessage()]
    assert refused == ["broker refused subscription 'sensors/denied/#' (code 128)"]


def tls_server(tmp_path: Path, pki: Pki, *, wrong_name: bool = False, require_cert: bool = False) -> MosquittoServer:
    cert, key = (pki.wrong_name_cert, pki.wrong_name_key) if wrong_name else (pki.server_cert, pki.server_key)
    extra = STAY + ("require_certificate true\n" if require_cert else "")
    server = MosquittoServer(tmp_path / "mq-tls", tls=(pki.ca, cert, key), extra_config=extra)
    server.start()
    return server


async def test_tls_with_ca_verification(tmp_path: Path, pki: Pki) -> None:
    server = tls_server(tmp_path, pki)
    try:
        link = make_link(server.port, RecordingClock(), tls={"ca_file": str(pki.ca)})
        await run_until(link, lambda: link.connected, "TLS connect")
        assert (link.connects, sum(link.failures.values())) == (1, 0)

        untrusted = make_link(server.port, RecordingClock(), tls={})  # system CAs do not know ours
        await run_until(untrusted, lambda: untrusted.failures["tls"] >= 2, "untrusted CA refused")
        assert untrusted.connects == 0
        assert isinstance(untrusted.last_error, TlsFailed)
        assert "certificate verify failed" in str(untrusted.last_error).lower()
    finally:
        server.close()


async def test_tls_hostname_verification_is_on_by_default(tmp_path: Path, pki: Pki) -> None:
    server = tls_server(tmp_path, pki, wrong_name=True)  # signed by our CA, but for other.example
    try:
        strict = make_link(server.port, RecordingClock(), tls={"ca_file": str(pki.ca)})
        assert strict.config.tls is not None and strict.config.tls.verify_hostname is True
        await run_until(strict, lambda: strict.failures["tls"] >= 2, "hostname mismatch refused")
        assert strict.connects == 0
        assert "ip address mismatch" in str(strict.last_error).lower()

        lax = make_link(server.port, RecordingClock(), tls={"ca_file": str(pki.ca), "verify_hostname": False})
        await run_until(lax, lambda: lax.connected, "connect without hostname check")
        assert lax.connects == 1
    finally:
        server.close()


async def test_tls_client_certificate_required(tmp_path: Path, pki: Pki) -> None:
    server = tls_server(tmp_path, pki, require_cert=True)
    try:
        # TLS 1.3 reports the missing certificate only after the handshake; paho then closes the
        # socket, and the link sees no CONNACK within timeout_s.
        anonymous = make_link(server.port, RecordingClock(), tls={"ca_file": str(pki.ca)}, timeout_s=0.5)
        await run_until(anonymous, lambda: anonymous.failures["protocol"] >= 2, "no client cert refused")
        assert anonymous.connects == 0
        assert set(anonymous.failures) == {"protocol"}

        tls = {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
        with_cert = make_link(server.port, RecordingClock(), tls=tls)
        await run_until(with_cert, lambda: with_cert.connected, "connect with client cert")
        assert (with_cert.connects, sum(with_cert.failures.values())) == (1, 0)
    finally:
        server.close()


async def test_missing_password_env_is_a_config_failure_not_a_crash(secured: MosquittoServer) -> None:
    link = make_link(secured.port, RecordingClock(), username="lobbyd", password_env="LOBBYD_UNSET_VARIABLE_X")
    await run_until(link, lambda: link.failures["config"] >= 2, "config failure retried")
    assert link.connects == 0
    assert "LOBBYD_UNSET_VARIABLE_X" in str(link.last_error)


async def test_a_burst_over_tls_arrives_whole_and_in_order(tmp_path: Path, pki: Pki) -> None:
    """A burst over TLS: decrypted bytes the SSL object holds after a socket read are all parsed (aiomqtt
    drains them), none waits for a next wake-up that would not come."""
    import ssl

    import aiomqtt

    server = tls_server(tmp_path, pki)
    try:
        got = Collector()
        subscribed = asyncio.Event()

        async def on_connect() -> None:  # runs after the broker acknowledged the subscriptions
            subscribed.set()

        config = MqttConfig.model_validate({"host": "127.0.0.1", "port": server.port, "tls": {"ca_file": str(pki.ca)}})
        link = MqttLink(config, branch="b7", subscriptions=[("burst/#", 0)], clock=SystemClock(), on_connect=on_connect)
        sent = [(f"burst/{i % 5}", (b"x" * 3000 if i % 97 == 0 else str(i).encode())) for i in range(2000)]
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(link.run(got))
            try:
                async with asyncio.timeout(30):
                    await subscribed.wait()
                async with aiomqtt.Client("127.0.0.1", server.port, tls_context=ctx) as pub:
                    for topic, payload in sent:
                        await pub.publish(topic, payload)
                    await eventually(lambda: len(got.messages) >= len(sent), what="the burst over TLS")
            finally:
                task.cancel()
        assert [(m.topic, m.payload) for m in got.messages] == sent
    finally:
        server.close()
