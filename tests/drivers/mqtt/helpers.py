"""Test helpers for the MQTT driver: polling with a deadline, a probe client, a recording clock, a PKI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest

from drivers.clock import SystemClock
from drivers.mqtt import Message
from simulators.servers import MosquittoServer


class RecordingClock(SystemClock):
    """The real time, except that a sleep (the link's backoff) is recorded and lasts only ``real_s``."""

    def __init__(self, real_s: float = 0.02) -> None:
        self.real_s = real_s
        self.delays: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(self.real_s)


class Collector:
    """A ``handle`` callback that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def on(self, topic: str) -> list[Message]:
        return [m for m in self.messages if m.topic == topic]


@dataclass
class Probe:
    """A plain aiomqtt client watching a topic filter (the other side of the broker)."""

    client: aiomqtt.Client
    seen: list[tuple[str, bytes, bool]] = field(default_factory=list)

    def payloads(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.seen if t == topic]


@contextlib.asynccontextmanager
async def probe(
    port: int, *subscribe: str, username: str | None = None, password: str | None = None
) -> AsyncIterator[Probe]:
    """Connect a probe, subscribe (QoS 1) and collect messages in the background."""
    client = aiomqtt.Client("127.0.0.1", port, username=username, password=password)
    async with client:
        p = Probe(client)
        for topic in subscribe:
            await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for m in client.messages:
                assert isinstance(m.payload, bytes)
                p.seen.append((m.topic.value, m.payload, m.retain))

        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(collect(), name="probe-collect")
            try:
                yield p
            finally:
                task.cancel()


@dataclass(frozen=True)
class Pki:
    """A throwaway CA with server and client certificates (made with the openssl CLI)."""

    ca: Path
    server_cert: Path
    server_key: Path
    wrong_name_cert: Path  # valid CA signature, but for "other.example" only
    wrong_name_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> Pki:
    """Create the CA and sign three EC certificates (fast) in ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=lobbyd test CA", cwd=d)  # fmt: skip

    def leaf(name: str, cn: str, san: str, usage: str) -> None:
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\nextendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n")
        _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip

    leaf("server", "localhost", "DNS:localhost,IP:127.0.0.1", "serverAuth")
    leaf("other", "other.example", "DNS:other.example", "serverAuth")
    leaf("client", "lobbyd-test", "DNS:lobbyd-test", "clientAuth")
    for key in d.glob("*.key"):
        key.chmod(0o644)  # mosquitto may drop privileges before reading it
    return Pki(
        d / "ca.crt", d / "server.crt", d / "server.key", d / "other.crt", d / "other.key",
        d / "client.crt", d / "client.key",
    )  # fmt: skip


_DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")


def subscribe_acl_broker(workdir: Path, allowed: str) -> MosquittoServer:
    """A mosquitto that lets anonymous clients subscribe only to ``allowed`` (a filter pattern).

    The ACL files of mosquitto 2.0 grant every subscription and filter at delivery; its dynamic
    security plugin refuses the others in the SUBACK (0x80 in MQTT 3.1.1), which is what a link must
    count. Not started; the test is skipped where the plugin is not installed.
    """
    if not _DYNSEC_PLUGIN.exists():
        pytest.skip(f"mosquitto's dynamic security plugin is not installed ({_DYNSEC_PLUGIN})")
    workdir.mkdir(parents=True, exist_ok=True)
    dynsec = workdir / "dynamic-security.json"
    dynsec.write_text(
        json.dumps(
            {
                "defaultACLAccess": {
                    "publishClientSend": True,
                    "publishClientReceive": True,
                    "subscribe": False,
                    "unsubscribe": True,
                },
                "clients": [],
                "groups": [{"groupname": "anonymous", "roles": [{"rolename": "reader"}]}],
                "roles": [
                    {
                        "rolename": "reader",
                        "acls": [{"acltype": "subscribePattern", "topic": allowed, "allow": True, "priority": 0}],
                    }
                ],
                "anonymousGroup": "anonymous",
            }
        )
    )
    extra = f"plugin {_DYNSEC_PLUGIN}\nplugin_opt_config_file {dynsec}\n"
    return MosquittoServer(workdir / "mosquitto", extra_config=extra)
