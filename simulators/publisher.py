"""The simulation's MQTT side: publishes sensor payloads and notices when the daemon is subscribed.

The daemon publishes each device's availability right after (re)subscribing to its topics, so a
*live* (non-retained) availability message proves the daemon will now receive what we publish.
That is how a simulation waits for the daemon after a broker restart without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiomqtt

__all__ = ["SimPublisher"]

_LOG = logging.getLogger("lobbyd.sim.publisher")


class SimPublisher:
    """One MQTT client: ``run()`` (re)connects while ``broker_up`` is set; ``publish`` while connected."""

    def __init__(self, host: str, port: int, *, branch: str, client_id: str = "lobbyd-sim-publisher") -> None:
        self.host, self.port, self.branch, self.client_id = host, port, branch, client_id
        self.broker_up = asyncio.Event()
        self.broker_up.set()
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.marks = 0  # live availability messages seen: the daemon (re)subscribed
        self.mark_event = asyncio.Event()
        self.published = 0
        self._client: aiomqtt.Client | None = None

    async def run(self) -> None:
        """Connect, subscribe to the daemon's availability topics, and reconnect after a broker restart."""
        while True:
            await self.broker_up.wait()
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self.client_id) as client:
                    await client.subscribe(f"lobbyd/{self.branch}/device/+/availability")
                    self._client = client
                    self.disconnected.clear()
                    self.connected.set()
                    async for m in client.messages:
                        if not m.retain:
                            self.marks += 1
                            self.mark_event.set()
            except aiomqtt.MqttError as exc:
                _LOG.debug("simulation publisher: broker lost (%s)", exc)
            finally:
                self._client = None
                self.connected.clear()
                self.disconnected.set()
            if self.broker_up.is_set():
                await asyncio.sleep(0.05)  # broker still up but refused: retry soon (not a synchronisation)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0) -> bool:
        """Publish if connected; False if the message was lost (no broker)."""
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=qos)
        except aiomqtt.MqttError:
            return False
        self.published += 1
        return True

    async def wait_mark(self, after: int, *, timeout: float) -> bool:
        """Wait (real time, bounded) until more than ``after`` live availability messages were seen."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.marks <= after:
                    self.mark_event.clear()
                    await self.mark_event.wait()
        return self.marks > after
