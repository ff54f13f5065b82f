"""Moving one batch of line protocol to the server, and classifying the answer.

Two transports with one shape: ``write(lines)`` sends the lines as ONE body and raises
:class:`InfluxUnavailable` (retry later) or :class:`InfluxRejected` (the points are bad). Both run
their blocking HTTP call in a worker thread (``asyncio.to_thread``); ``max_in_flight`` says how many
may run at once (v1: one kept-alive connection; v2: two requests over influxdb-client's pool).

Classification: 2xx ok; connection errors, timeouts, 5xx, 429, and 401/403/404 (credentials or
database missing: the points are fine, the setup is not) are *unavailable*; other 4xx are *rejected*.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import threading
import urllib.parse
from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import SecretStr

from .config import InfluxV1Config, InfluxV2Config, redact_text, redact_url
from .errors import InfluxRejected, InfluxUnavailable

__all__ = ["Transport", "V1Transport", "V2Transport", "classify_status", "open_transport"]

_RETRY_STATUS = {401, 403, 404, 408, 429}
_V1_PRECISION = {"s": "s", "ms": "ms", "us": "u", "ns": "ns"}  # InfluxDB 1.x names microseconds "u"


def _message(body: bytes | str | None) -> str:
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        decoded = json.loads(text)
        if isinstance(decoded, dict):
            text = str(decoded.get("error") or decoded.get("message") or text)
    except ValueError:
        pass
    return text.strip()[:500]


def classify_status(status: int, body: bytes | str | None, where: str) -> None:
    """Return on 2xx; raise :class:`InfluxUnavailable` or :class:`InfluxRejected` otherwise."""
    if 200 <= status < 300:
        return
    msg = _message(body)
    if status >= 500 or status in _RETRY_STATUS:
        raise InfluxUnavailable(f"{where}: HTTP {status}: {msg}")
    raise InfluxRejected(status, msg)


class Transport(Protocol):
    """Sends one batch; raises ``InfluxUnavailable`` / ``InfluxRejected``."""

    max_in_flight: int  # concurrent write() calls it supports (the writer keeps at most this many going)

    async def write(self, lines: Sequence[str]) -> None: ...

    def close(self) -> None: ...


class V1Transport:
    """InfluxDB 1.x ``POST /write?db=&rp=&precision=`` over a kept-alive ``http.client`` connection."""

    max_in_flight = 1  # one connection, one request at a time

    def __init__(self, config: InfluxV1Config, password: SecretStr | None) -> None:
        u = urllib.parse.urlsplit(config.url)
        self._https = u.scheme == "https"
        self._host = u.hostname or "localhost"
        self._port = u.port
        self._timeout = config.timeout_s
        params = {"db": config.database, "precision": _V1_PRECISION[config.precision]}
        if config.retention_policy:
            params["rp"] = config.retention_policy
        self._path = f"{u.path.rstrip('/')}/write?{urllib.parse.urlencode(params)}"
        self._url = config.url
        self._where = f"influx v1 {redact_url(f'{u.scheme}://{u.netloc}')}"
        self._auth: SecretStr | None = None
        if config.username:
            raw = f"{config.username}:{password.get_secret_value() if password else ''}".encode()
            self._auth = SecretStr("Basic " + base64.b64encode(raw).decode())
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"V1Transport({self._where})"

    async def write(self, lines: Sequence[str]) -> None:
        """POST the lines as one body."""
        body = "\n".join(lines).encode("utf-8")
        await asyncio.to_thread(self._post, body)

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self._timeout)

    def _post(self, body: bytes) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._auth is not None:
            headers["Authorization"] = self._auth.get_secret_value()
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None
                conn = self._conn or self._connect()
                self._conn = conn
                try:
                    conn.request("POST", self._path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as e:
                    self._drop_conn()
                    stale = isinstance(e, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError)
                    if reused and stale and attempt == 1:
                        continue  # a kept-alive connection the server closed meanwhile: one fresh try
                    raise InfluxUnavailable(
                        f"{self._where}: {type(e).__name__}: {redact_text(str(e), self._url)}"
                    ) from None
                if resp.will_close:
                    self._drop_conn()
                break
        classify_status(resp.status, data, self._where)

    def _drop_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the kept-alive connection."""
        with self._lock:
            self._drop_conn()


class V2Transport:
    """InfluxDB 2.x write API through influxdb-client (imported lazily: it costs ~50 MB RSS).

    Two requests may be in flight (influxdb-client's urllib3 pool is thread-safe): its per-request
    overhead, about as long as the server takes for 1000 points, then overlaps with the server's work.
    """

    max_in_flight = 2

    def __init__(self, config: InfluxV2Config, token: SecretStr | None) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        self._api_exc: type[Exception] = ApiException
        self._precision = {"s": WritePrecision.S, "ms": WritePrecision.MS, "us": WritePrecision.US}.get(
            config.precision, WritePrecision.NS
        )
        self._bucket = config.bucket
        self._org = config.org
        self._url = config.url
        self._where = f"influx v2 {redact_url(config.url)}"
        self._client: Any = InfluxDBClient(
            url=config.url,
            token=token.get_secret_value() if token else "",
            org=config.org,
            timeout=int(config.timeout_s * 1000),
        )
        self._api: Any = self._client.write_api(write_options=SYNCHRONOUS)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"V2Transport({self._where})"

    async def write(self, lines: Sequence[str]) -> None:
        """Write the lines as ONE pre-joined UTF-8 body (a list costs ~4x, a str ~1.5x)."""
        await asyncio.to_thread(self._post, "\n".join(lines).encode("utf-8"))

    def _post(self, body: bytes) -> None:
        import urllib3

        try:
            self._api.write(bucket=self._bucket, org=self._org, record=body, write_precision=self._precision)
        except self._api_exc as e:
            status, answer = int(getattr(e, "status", 0) or 0), getattr(e, "body", None)
        except (OSError, urllib3.exceptions.HTTPError) as e:
            raise InfluxUnavailable(f"{self._where}: {type(e).__name__}: {redact_text(str(e), self._url)}") from None
        else:
            return
        if status == 0:
            raise InfluxUnavailable(f"{self._where}: no HTTP status")
        classify_status(status, redact_text(_message(answer), self._url), self._where)

    def close(self) -> None:
        """Close the client's connection pool."""
        with self._lock:
            self._api.close()
            self._client.close()


def open_transport(config: InfluxV1Config | InfluxV2Config, secret: SecretStr | None) -> V1Transport | V2Transport:
    """The transport for ``config.api``."""
    if isinstance(config, InfluxV2Config):
        return V2Transport(config, secret)
    return V1Transport(config, secret)
