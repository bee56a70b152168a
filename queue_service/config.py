"""Server configuration: defaults, environment variables and validation."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from queue_service.core.jobs import LifecycleSettings

DEFAULT_DATABASE_URL = "sqlite:///jobqueue.sqlite3"
DEFAULT_PORT = 50051


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the flag or variable."""


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    database_url: str = DEFAULT_DATABASE_URL
    # None: migrate on start for SQLite only; PostgreSQL deployments run `queue-service migrate`.
    migrate_on_start: bool | None = None
    grpc_threads: int = 64
    max_message_bytes: int = 8 * 1024 * 1024
    health_check_interval: float = 2.0
    shutdown_grace: float = 10.0
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_migrate(self) -> bool:
        return self.is_sqlite if self.migrate_on_start is None else self.migrate_on_start

    def validate(self) -> ServerConfig:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port / QUEUE_PORT must be between 0 and 65535, got {self.port}")
        try:
            url = make_url(self.database_url)
        except ArgumentError:
            raise ConfigError(f"--database-url / QUEUE_DATABASE_URL is not a database URL: {self.database_url!r}") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ConfigError(f"--database-url / QUEUE_DATABASE_URL must be sqlite or postgresql, got {url.get_backend_name()!r}")
        if self.grpc_threads < 2:
            raise ConfigError("--grpc-threads must be at least 2")
        return self


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
