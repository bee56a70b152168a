"""Server configuration: defaults, environment variables and validation."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from queue_service.api.tokens import TokenError, TokenSet, load_tokens
from queue_service.core.jobs import LifecycleSettings
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.store.prepared import split_capacity

DEFAULT_DATABASE_URL = "sqlite:///jobqueue.sqlite3"
DEFAULT_PORT = 50051
# Off unless asked for: no surprise listener, and local instances and test servers never collide on it.
# The container image turns it on at 9464, the port registered for Prometheus exporters of this kind.
DEFAULT_METRICS_PORT = 0
PAGE_TOKEN_KEY_ENV = "QUEUE_PAGE_TOKEN_KEY"
MIN_PAGE_TOKEN_KEY_LENGTH = 16


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the flag or variable."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for TLS; with client_ca_file the server also requires client certificates (mutual TLS)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    @property
    def mode(self) -> str:
        return "mutual TLS" if self.client_ca_file else "TLS"

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        """(certificate chain, private key, client CA bundle or None), or ConfigError naming the flag."""

        def load(path: str, flag: str) -> bytes:
            try:
                return Path(path).read_bytes()
            except OSError as error:
                raise ConfigError(f"{flag}: cannot read {path}: {error.strerror}") from None

        return (
            load(self.cert_file, "--tls-cert"),
            load(self.key_file, "--tls-key"),
            load(self.client_ca_file, "--tls-client-ca") if self.client_ca_file else None,
        )


def tls_files(cert_file: str | None, key_file: str | None, client_ca_file: str | None) -> TlsFiles | None:
    if not cert_file and not key_file:
        if client_ca_file:
            raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
        return None
    if not (cert_file and key_file):
        raise ConfigError("--tls-cert and --tls-key go together")
    return TlsFiles(cert_file, key_file, client_ca_file or None)


def server_tokens(tokens_file: str | None, environ: dict[str, str] | None = None) -> TokenSet:
    """Tokens from QUEUE_ADMIN_TOKEN, QUEUE_WORKER_TOKEN and --tokens-file / QUEUE_TOKENS_FILE."""
    try:
        return load_tokens(os.environ if environ is None else environ, tokens_file)
    except TokenError as error:
        raise ConfigError(str(error)) from None


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


@dataclass(frozen=True)
class SweeperAddress:
    """Where the sweeper process of `serve --workers N` takes sweeps from: a Unix socket in a
    directory only this user can enter, and the key both ends prove they hold."""

    path: str
    authkey: bytes = field(repr=False)


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    database_url: str = DEFAULT_DATABASE_URL
    # None: migrate on start for SQLite only; PostgreSQL deployments run `queue-service migrate`.
    migrate_on_start: bool | None = None
    grpc_threads: int = 64
    # Long-polls that may wait at once; the others get an immediate answer, so that waiting
    # leases never take every RPC thread. None: half of grpc_threads.
    max_waiting_leases: int | None = None
    max_message_bytes: int = 8 * 1024 * 1024
    health_check_interval: float = 2.0
    shutdown_grace: float = 10.0
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    # No tokens means authentication is off, which is only allowed on loopback unless insecure.
    tokens: TokenSet = field(default_factory=TokenSet)
    insecure: bool = False
    tls: TlsFiles | None = None
    # /metrics HTTP port on `host`; 0 turns it off.
    metrics_port: int = DEFAULT_METRICS_PORT
    # The per-queue gauges are read from the database at most this often.
    queue_gauge_ttl: float = 5.0
    # Set for `serve --workers N`: the N processes bind the same port (SO_REUSEPORT).
    reuse_port: bool = False
    # False in all but one process of `serve --workers N`: process-wide singletons such as
    # the recovery scheduler run only where this is True.
    runs_scheduler: bool = True
    # Set for `serve --workers N`: the node id of the process that runs this replica's scheduler,
    # so that each of them can tell whether the replica leads. None: this process's own.
    scheduler_node_id: str | None = None
    # Set for the serving processes of `serve --workers N`: they hand sweeps to the sweeper process there.
    sweeper: SweeperAddress | None = None
    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    # Signs page tokens (QUEUE_PAGE_TOKEN_KEY); empty: see `page_token_key`.
    page_token_key: str = field(default="", repr=False)
    # An OpenTelemetry TracerProvider for a span per RPC. None: one from the OTEL_* variables, if they ask.
    tracer_provider: Any = field(default=None, repr=False)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def waiting_lease_limit(self) -> int:
        return self.grpc_threads // 2 if self.max_waiting_leases is None else self.max_waiting_leases

    @property
    def should_migrate(self) -> bool:
        return self.is_sqlite if self.migrate_on_start is None else self.migrate_on_start

    def validate(self) -> ServerConfig:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port / QUEUE_PORT must be between 0 and 65535, got {self.port}")
        try:
            url = make_url(self.database_url)
        except ArgumentError:
            raise ConfigError(
                f"--database-url / QUEUE_DATABASE_URL is not a database URL: {self.database_url!r}"
            ) from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"--database-url / QUEUE_DATABASE_URL must be sqlite or postgresql, got {url.get_backend_name()!r}"
            )
        if url.get_backend_name() == "postgresql":
            try:
                split_capacity(url)
            except ValueError as error:
                raise ConfigError(f"--database-url / QUEUE_DATABASE_URL: {error}") from None
        if self.grpc_threads < 2:
            raise ConfigError(f"--grpc-threads / QUEUE_GRPC_THREADS must be at least 2, got {self.grpc_threads}")
        if not 1 <= self.waiting_lease_limit < self.grpc_threads:
            raise ConfigError(
                "--max-waiting-leases / QUEUE_MAX_WAITING_LEASES must be at least 1 and less than "
                f"--grpc-threads ({self.grpc_threads}), got {self.waiting_lease_limit}"
            )
        if not self.tokens and not self.insecure and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to listen on {self.host} without authentication: set QUEUE_ADMIN_TOKEN / "
                "QUEUE_WORKER_TOKEN or --tokens-file, bind a loopback address, or pass --insecure"
            )
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(
                f"--metrics-port / QUEUE_METRICS_PORT must be between 0 and 65535, got {self.metrics_port}"
            )
        if self.metrics_port and self.metrics_port == self.port:
            raise ConfigError(f"--metrics-port / QUEUE_METRICS_PORT must differ from --port, both are {self.port}")
        if self.shutdown_grace < 0:
            raise ConfigError(
                f"--shutdown-grace / QUEUE_SHUTDOWN_GRACE must not be negative, got {self.shutdown_grace}"
            )
        if self.health_check_interval <= 0:
            raise ConfigError(
                f"--health-check-interval / QUEUE_HEALTH_CHECK_INTERVAL must be positive, got {self.health_check_interval}"
            )
        if self.queue_gauge_ttl < 0:
            raise ConfigError(f"queue_gauge_ttl must not be negative, got {self.queue_gauge_ttl}")
        if self.lifecycle.stall_timeout <= timedelta(0):
            raise ConfigError("--stall-timeout / QUEUE_STALL_TIMEOUT must be positive")
        validate_recovery(self.recovery)
        if self.page_token_key and len(self.page_token_key) < MIN_PAGE_TOKEN_KEY_LENGTH:
            raise ConfigError(f"{PAGE_TOKEN_KEY_ENV} must be at least {MIN_PAGE_TOKEN_KEY_LENGTH} characters")
        return self

    def resolved_page_token_key(self) -> bytes:
        return page_token_key(self.page_token_key, self.tokens)


def page_token_key(configured: str, tokens: TokenSet) -> bytes:
    """The key page tokens are signed with; every replica behind one address needs the same one.

    QUEUE_PAGE_TOKEN_KEY when set. Else derived from the configured tokens, which replicas share
    anyway; with no tokens (authentication off, loopback only) a random key, so page tokens end
    with the process.
    """
    if configured:
        return configured.encode()
    if tokens:
        material = b"".join(sorted(token.digest for token in tokens.tokens))
        return hmac.new(material, b"queue-service page tokens", hashlib.sha256).digest()
    return secrets.token_bytes(32)


def validate_recovery(settings: RecoverySettings) -> RecoverySettings:
    if settings.interval < timedelta(0):
        raise ConfigError("--recovery-interval / QUEUE_RECOVERY_INTERVAL must not be negative (0 turns it off)")
    if settings.completed_retention < timedelta(0):
        raise ConfigError("--completed-retention / QUEUE_COMPLETED_RETENTION must not be negative (0 keeps jobs)")
    if settings.retry_log_retention < timedelta(0):
        raise ConfigError("--retry-log-retention / QUEUE_RETRY_LOG_RETENTION must not be negative (0 keeps rows)")
    if settings.dlq_alert_threshold < 0:
        raise ConfigError("--dlq-alert-threshold / QUEUE_DLQ_ALERT_THRESHOLD must not be negative (0 turns alerts off)")
    url = settings.dlq_alert_webhook_url
    if url and (urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc):
        raise ConfigError(f"--dlq-alert-webhook / QUEUE_DLQ_ALERT_WEBHOOK must be an http(s) URL, got {url!r}")
    if settings.leader_lease_term < timedelta(seconds=1):
        raise ConfigError("--leader-lease-term / QUEUE_LEADER_LEASE_TERM must be at least 1 second")
    if settings.batch_size < 1:
        raise ConfigError("the recovery batch size must be at least 1")
    return settings


def env_str(name: str, default: str) -> str:
    return os.environ.get(name) or default


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(raw: str, name: str) -> timedelta:
    """A duration such as "300", "90s", "5m", "12h" or "7d"; a bare number is seconds."""
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(f"{name} must be a duration such as 300, 90s, 5m, 12h or 7d, got {raw!r}")
    try:
        return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    except OverflowError:
        raise ConfigError(f"{name} is too long, got {raw!r}") from None
