"""The daemon's one MQTT connection: connect, announce, subscribe, deliver, reconnect — forever.

``MqttLink.run(handle)`` is one explicit loop: a session (``async with aiomqtt.Client``) that
publishes the retained ``lobbyd/<branch>/status`` "online" (the broker's will says "offline"),
subscribes (on every connect, so a restarted broker is never left without subscriptions), flushes
retained values buffered while down, and then hands every message of ``async for message in
client.messages`` to ``handle`` until the connection drops; then a bounded, jittered exponential
backoff (:class:`drivers.backoff.Backoff`) on the injected :class:`drivers.clock.Clock`; then again.
Failures are classified once (:func:`drivers.mqtt.errors.classify`) and counted by kind.

No reading is lost while the daemon is away from a broker that stays up: the session is persistent
(``clean_session=False`` under the fixed client id ``lobbyd-<branch>``), so the broker keeps the
subscriptions and queues QoS 1 messages for the link until it is back, and hands them over right
after the CONNACK. A good connection (connected, subscribed, flushed) resets the backoff, so the
first retry after the next loss comes within ``reconnect_initial_s``.

Messages wait in aiomqtt's queue between the socket and ``handle``; it holds at most
``incoming_queue`` of them, so a flood costs bounded memory. aiomqtt discards what does not fit
and says so in a warning to the logger it is given, one per message: the link gives it its own
logger, counts those warnings as ``discarded`` and logs them rate-limited instead.

Only aiomqtt's public API is used: its ``Client`` and ``messages``, nothing of the paho client under
it. ``tests/drivers/mqtt/test_library_contract.py`` pins the library behaviour this relies on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import aiomqtt

from drivers.backoff import Backoff
from drivers.clock import Clock
from drivers.mqtt.config import MqttConfig
from drivers.mqtt.errors import ConnectionLost, LinkConfigError, MqttLinkError, classify
from drivers.mqtt.intake import RateLimitedLog
from drivers.mqtt.message import Message

__all__ = ["MqttLink"]

_LOG = logging.getLogger("lobbyd.mqtt.link")
# What aiomqtt and paho log themselves. paho logs every packet at DEBUG: this logger inherits its
# level (INFO in the daemon), so those calls stop at a level check unless the daemon runs at DEBUG.
_WIRE_LOG = logging.getLogger("lobbyd.mqtt.wire")
_QUEUE_FULL = "Message queue is full"  # how aiomqtt's warning for a discarded incoming message begins

Handler = Callable[[Message], None]


class MqttLink:
    """Long-running MQTT connection of the daemon. See the module docstring for the life cycle.

    Observable state: ``connected``, ``connects`` (successful connects), ``failures`` (by kind),
    ``connect_attempts`` (since the last good connection) and ``connect_attempts_total``,
    ``last_error`` (cleared by a good connection) and ``last_error_at`` (kept), ``last_disconnect``
    (why the last connection ended, in plain words) and ``last_disconnect_at``, ``down_since`` (None while connected),
    ``last_message_at``, ``received``, ``discarded`` (incoming messages that found
    the queue full), ``published``, ``dropped`` (non-retained publishes while down),
    ``retained_overflow``, ``handler_errors``, ``subscribe_refused``, and :meth:`silent_for`.
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        branch: str,
        subscriptions: Sequence[tuple[str, int]],
        clock: Clock,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.branch = branch
        self.status_topic = f"lobbyd/{branch}/status"
        self.client_id = config.client_id or f"lobbyd-{branch}"
        self.subscriptions: tuple[tuple[str, int], ...] = tuple(subscriptions)  # (filter, QoS), fixed
        self._clock = clock
        self._on_connect = on_connect
        self.backoff = Backoff(config.reconnect_initial_s, config.reconnect_max_s, rng=rng)
        self._client: aiomqtt.Client | None = None  # set only while connected and flushed
        self._pending: OrderedDict[str, tuple[str | bytes, int]] = OrderedDict()
        self._errors = RateLimitedLog(_LOG, interval_s=60.0, clock=clock)
        self._wire_log = _WIRE_LOG.getChild(self.client_id)  # aiomqtt's and paho's log for this link
        self._discards = _Discards(self._discarded)
        self._started_at: float | None = None
        self.connected = False
        self.connects = 0
        self.failures: Counter[str] = Counter()  # keys: the few MqttLinkError kinds
        self.connect_attempts = 0
        self.connect_attempts_total = 0
        self.last_error: MqttLinkError | None = None
        self.last_error_at: float | None = None
        self.last_disconnect: str | None = None
        self.last_disconnect_at: float | None = None
        self.down_since: float | None = None
        self.last_message_at: float | None = None
        self.received = 0
        self.discarded = 0
        self.published = 0
        self.dropped = 0
        self.retained_overflow = 0
        self.handler_errors = 0
        self.subscribe_refused = 0

    # -- observation ---------------------------------------------------------------------------
    def silent_for(self, now: float) -> float:
        """Seconds since the last message (or since :meth:`run` started, if none came yet)."""
        since = self.last_message_at if self.last_message_at is not None else self._started_at
        return 0.0 if since is None else max(0.0, now - since)

    def is_silent(self, now: float) -> bool:
        """True when nothing arrived for ``silence_after_s``: a broker that accepts but delivers nothing."""
        return self.silent_for(now) >= self.config.silence_after_s

    @property
    def pending_retained(self) -> int:
        """Retained values waiting for the next connection."""
        return len(self._pending)

    # -- publishing ----------------------------------------------------------------------------
    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 0) -> None:
        """Best effort; never raises. While down, the latest retained value per topic is kept
        (at most ``retained_buffer`` topics, oldest dropped) and other messages are dropped."""
        client = self._client
        if client is not None:
            try:
                await client.publish(topic, payload, qos=qos, retain=retain, timeout=self.config.timeout_s)
            except aiomqtt.MqttError as exc:
                self._errors.log(f"publish:{topic}", f"publish to {topic} failed: {exc}")
            else:
                self.published += 1
                return
        if retain:
            self._keep(topic, payload, qos)
        else:
            self.dropped += 1

    def _keep(self, topic: str, payload: str | bytes, qos: int) -> None:
        self._pending[topic] = (payload, qos)
        self._pending.move_to_end(topic)
        while len(self._pending) > self.config.retained_buffer:
            self._pending.popitem(last=False)
            self.retained_overflow += 1

    async def _flush(self, client: aiomqtt.Client) -> None:
        while self._pending:
            topic, (payload, qos) = self._pending.popitem(last=False)
            try:
                await client.publish(topic, payload, qos=qos, retain=True, timeout=self.config.timeout_s)
            except BaseException:
                if topic not in self._pending:  # not superseded meanwhile: keep it for next time
                    self._pending[topic] = (payload, qos)
                    self._pending.move_to_end(topic, last=False)
                raise
            self.published += 1

    # -- the loop ------------------------------------------------------------------------------
    async def run(self, handle: Handler) -> None:
        """Connect and deliver forever. Returns never; raises only ``CancelledError``."""
        self._started_at = self.down_since = self._clock.now()
        self._wire_log.addFilter(self._discards)
        try:
            await self._sessions(handle)
        finally:
            self._wire_log.removeFilter(self._discards)

    async def _sessions(self, handle: Handler) -> None:
        while True:
            _raise_if_cancelling()
            up_since: float | None = None
            self.connect_attempts += 1
            self.connect_attempts_total += 1
            try:
                async with self._new_client() as client:
                    up_since = self._clock.now()
                    await self._session(client, handle)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # classified at the edge; the loop itself never dies
                err = (
                    ConnectionLost(str(exc), host=self.config.host, port=self.config.port)
                    if up_since is not None
                    else classify(exc, host=self.config.host, port=self.config.port)
                )
                self._failed(err)
                if up_since is not None:
                    self.last_disconnect = f"connection to the broker lost: {exc}"
                    self.last_disconnect_at = self._clock.now()
            finally:
                self._client = None
                if self.down_since is None:
                    self.down_since = self._clock.now()
                self.connected = False
            _raise_if_cancelling()
            await self._clock.sleep(self.backoff.next_delay())

    def _discarded(self) -> None:
        self.discarded += 1
        self._errors.log("discarded", f"incoming queue full ({self.config.incoming_queue}): message discarded")

    def _failed(self, err: MqttLinkError) -> None:
        self.failures[err.kind] += 1
        self.last_error = err
        self.last_error_at = self._clock.now()
        self._errors.log(f"link:{err.kind}", f"MQTT {err.kind}: {err}; retrying with backoff")

    async def _session(self, client: aiomqtt.Client, handle: Handler) -> None:
        self.connected = True
        self.connects += 1
        _LOG.info("MQTT connected to %s:%d as %s", self.config.host, self.config.port, self.client_id)
        try:
            await client.publish(self.status_topic, "online", qos=1, retain=True)
            _raise_if_cancelling()
            if self.subscriptions:
                granted = await client.subscribe(list(self.subscriptions))
                self._check_granted(granted)
                _raise_if_cancelling()
            await self._flush(client)
            _raise_if_cancelling()
            self._client = client
            self._good_connection()
            if self._on_connect is not None:
                try:
                    await self._on_connect()
                except Exception as exc:  # the daemon's hook must not tear the connection down
                    self.handler_errors += 1
                    self._errors.log("on_connect", f"on_connect hook failed: {exc!r}")
            _raise_if_cancelling()
            await self._deliver(client, handle)
        except asyncio.CancelledError:
            self._client = None
            with contextlib.suppress(aiomqtt.MqttError):  # else the broker's will says "offline"
                await client.publish(self.status_topic, "offline", qos=1, retain=True, timeout=2.0)
            raise

    def _good_connection(self) -> None:
        """Connected, subscribed and flushed: the next loss starts the backoff from the beginning."""
        self.backoff.reset()
        self.connect_attempts = 0
        self.down_since = None
        self.last_error = None

    async def _deliver(self, client: aiomqtt.Client, handle: Handler) -> None:
        """Hand each message to ``handle`` until the connection drops (aiomqtt raises ``MqttError``)."""
        clock = self._clock
        async for m in client.messages:
            now = clock.now()
            self.last_message_at = now
            self.received += 1
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            message = Message(m.topic.value, payload, m.retain, now)
            try:
                handle(message)
            except Exception as exc:  # a bug in the handler must not end the session
                self.handler_failed(message, exc)

    def _check_granted(self, granted: Sequence[object]) -> None:
        """Count and report filters the broker refused (SUBACK 0x80, e.g. an ACL in MQTT 5)."""
        for (topic, _qos), code in zip(self.subscriptions, granted, strict=False):
            value = getattr(code, "value", code)
            if isinstance(value, int) and value >= 0x80:
                self.subscribe_refused += 1
                self._errors.log(f"suback:{topic}", f"broker refused subscription {topic!r} (code {value})")

    def _new_client(self) -> aiomqtt.Client:
        cfg = self.config
        try:
            password = cfg.password()
            tls = _tls_context(cfg) if cfg.tls is not None else None
        except (LookupError, OSError, ssl.SSLError) as exc:
            raise LinkConfigError(str(exc), host=cfg.host, port=cfg.port) from None
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=password.get_secret_value() if password is not None else None,
            identifier=self.client_id,
            will=aiomqtt.Will(self.status_topic, "offline", qos=1, retain=True),
            clean_session=False,  # the broker keeps our subscriptions and QoS 1 messages while we are away
            timeout=cfg.timeout_s,
            keepalive=cfg.keepalive_s,
            tls_context=tls,
            max_queued_incoming_messages=cfg.incoming_queue,
            logger=self._wire_log,
        )

    def handler_failed(self, message: Message, exc: Exception) -> None:
        """Count and log (rate-limited) a message handler that raised: for the handler this link calls,
        and for a caller that handles messages later (the daemon's batch)."""
        self.handler_errors += 1
        self._errors.log("handler", f"message handler failed on {message.topic}: {exc!r}")


class _Discards(logging.Filter):
    """Turns aiomqtt's warning for each incoming message it discarded into a call of ``on_discard``."""

    def __init__(self, on_discard: Callable[[], None]) -> None:
        super().__init__()
        self._on_discard = on_discard

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_QUEUE_FULL):
            self._on_discard()
            return False
        return True


def _raise_if_cancelling() -> None:
    """Honour a cancellation that was swallowed on the way.

    aiomqtt waits with ``asyncio.wait_for``, which on Python 3.11 can return a result and drop a
    cancellation that arrived at the same moment; the task is then still *cancelling* but running.
    Without this check the link would carry on (and a daemon's shutdown would wait for it forever).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _tls_context(cfg: MqttConfig) -> ssl.SSLContext:
    tls = cfg.tls
    assert tls is not None
    ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    ctx.check_hostname = tls.verify_hostname
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx
