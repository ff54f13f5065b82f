"""Configuration of the time-series writer (pydantic, ``extra="forbid"``), discriminated by ``api``.

Secrets are never stored in the config itself: the config names an environment variable or a file,
and the secret is read once when the writer is opened (:func:`resolve_secret`) into a ``SecretStr``.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from .errors import InfluxConfigError

__all__ = [
    "FsyncPolicy",
    "InfluxConfig",
    "InfluxV1Config",
    "InfluxV2Config",
    "Precision",
    "daemon_series_config",
    "redact_text",
    "redact_url",
    "resolve_secret",
]

FsyncPolicy = Literal["batch", "always", "never"]
Precision = Literal["s", "ms", "us", "ns"]


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$", description="base URL of the server")
    batch_size: int = Field(
        default=5000, ge=1, le=100_000, description="points per request (InfluxDB's recommended 5000)"
    )
    flush_interval_s: float = Field(default=1.0, gt=0, description="max time a point waits in memory")
    queue_size: int = Field(default=10_000, ge=1, description="points held in memory before spooling")
    timeout_s: float = Field(default=5.0, gt=0, description="HTTP timeout of one request")
    spool_budget_mb: float = Field(default=256, gt=0, description="disk budget of the spool (MiB)")
    fsync: FsyncPolicy = Field(default="batch", description="spool durability; see docs/schema.md")
    retry_initial_s: float = Field(default=1.0, gt=0, description="first backoff delay during an outage")
    retry_max_s: float = Field(default=60.0, gt=0, description="backoff ceiling")
    precision: Precision = Field(
        default="ns",
        description="timestamp precision of the points written: s, ms, us or ns (coarser: smaller requests;"
        " points of one series within the same second, ms... overwrite each other)",
    )

    @model_validator(mode="after")
    def _retry_order(self) -> _Common:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be >= retry_initial_s")
        return self


def _one_of(env: str | None, file: Path | None, what: str) -> None:
    if env is not None and file is not None:
        raise ValueError(f"give either {what}_env or {what}_file, not both")


class InfluxV2Config(_Common):
    """InfluxDB 2.x API (``/api/v2/write``), also spoken by VictoriaMetrics and InfluxDB 1.8+."""

    api: Literal["v2"] = "v2"
    org: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    daemon_bucket: str | None = Field(
        default=None,
        min_length=1,
        description="bucket of the daemon's own series (decisions, device writes and status, availability,"
        " events, health); default: bucket, with the readings",
    )
    token_env: str | None = Field(default=None, description="environment variable holding the token")
    token_file: Path | None = Field(default=None, description="file holding the token")

    @model_validator(mode="after")
    def _token_source(self) -> InfluxV2Config:
        _one_of(self.token_env, self.token_file, "token")
        return self


class InfluxV1Config(_Common):
    """InfluxDB 1.x API (``/write?db=&rp=&precision=``), user/password by HTTP basic auth."""

    api: Literal["v1"] = "v1"
    database: str = Field(min_length=1)
    daemon_database: str | None = Field(
        default=None,
        min_length=1,
        description="database of the daemon's own series (decisions, device writes and status, availability,"
        " events, health); default: database, with the readings",
    )
    retention_policy: str | None = None
    username: str | None = None
    password_env: str | None = Field(default=None, description="environment variable holding the password")
    password_file: Path | None = Field(default=None, description="file holding the password")

    @model_validator(mode="after")
    def _password_source(self) -> InfluxV1Config:
        _one_of(self.password_env, self.password_file, "password")
        if (self.password_env or self.password_file) and not self.username:
            raise ValueError("a password needs a username")
        return self


InfluxConfig = Annotated[InfluxV2Config | InfluxV1Config, Field(discriminator="api")]
"""Either API's config; pydantic picks the class from the ``api`` key."""


def daemon_series_config(config: InfluxV2Config | InfluxV1Config) -> InfluxV2Config | InfluxV1Config | None:
    """The config for the daemon's own series when they go to a database (bucket) of their own, else None."""
    if isinstance(config, InfluxV2Config):
        if config.daemon_bucket is None or config.daemon_bucket == config.bucket:
            return None
        return config.model_copy(update={"bucket": config.daemon_bucket, "daemon_bucket": None})
    if config.daemon_database is None or config.daemon_database == config.database:
        return None
    return config.model_copy(update={"database": config.daemon_database, "daemon_database": None})


def redact_url(url: str) -> str:
    """``url`` as logs, status and events may show it: credentials (``user:password@``) become ``***@``."""
    u = urllib.parse.urlsplit(url)
    if "@" not in u.netloc:
        return url
    return urllib.parse.urlunsplit(u._replace(netloc="***@" + u.netloc.rpartition("@")[2]))


def redact_text(text: str, url: str) -> str:
    """``text`` (a library's error message) with the credentials of ``url`` replaced by ``***``."""
    userinfo = urllib.parse.urlsplit(url).netloc.rpartition("@")[0]
    for secret in {userinfo, urllib.parse.unquote(userinfo)} - {""}:
        text = text.replace(secret, "***")
    return text


def resolve_secret(env: str | None, file: Path | None, what: str) -> SecretStr | None:
    """Read a secret from an environment variable or a file (trailing newline stripped)."""
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise InfluxConfigError(f"{what}: environment variable {env} is not set")
        return SecretStr(value)
    if file is not None:
        try:
            return SecretStr(file.read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as e:
            raise InfluxConfigError(f"{what}: cannot read {file}: {e.strerror}") from None
    return None
