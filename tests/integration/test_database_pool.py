"""Pooled PostgreSQL connections: dead idle ones are replaced, busy ones skip the ping, read-only ones are dropped."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from queue_service.store import database as database_module
from queue_service.store.database import Database
from queue_service.store.errors import StoreUnavailable

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres(postgres_session_url):
    db = Database(postgres_session_url, pool_size=1, max_overflow=0)
    yield db
    db.dispose()


def backend_pid(db: Database) -> int:
    with db.transaction() as repo:
        return repo.connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def terminate(db_url: str, pid: int) -> None:
    other = Database(db_url, pool_size=1, max_overflow=0)
    try:
        with other.transaction() as repo:
            assert repo.connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        other.dispose()


def test_an_idle_connection_killed_by_the_server_is_replaced_before_use(postgres, postgres_session_url, monkeypatch):
    first = backend_pid(postgres)
    terminate(postgres_session_url, first)
    monkeypatch.setattr(database_module, "IDLE_PING_SECONDS", 0.0)  # every pooled connection counts as idle

    assert backend_pid(postgres) != first


def test_a_connection_in_steady_use_is_not_pinged(postgres, monkeypatch):
    dialect = postgres.engine.dialect
    pings: list[object] = []
    real_ping = dialect.do_ping

    def counting_ping(dbapi_connection):
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    backend_pid(postgres)  # a new connection: pinged once
    for _ in range(5):
        backend_pid(postgres)
    assert len(pings) == 1

    monkeypatch.setattr(database_module, "IDLE_PING_SECONDS", 0.0)
    backend_pid(postgres)
    assert len(pings) == 2


def make_read_only(db: Database) -> None:
    """The pooled connection now refuses writes (SQLSTATE 25006), as one to a primary fenced for a switchover."""
    with db.engine.connect() as connection:
        connection.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        connection.commit()


def test_a_write_refused_as_read_only_is_unavailable_and_its_connection_is_replaced(postgres):
    first = backend_pid(postgres)
    make_read_only(postgres)

    with pytest.raises(StoreUnavailable, match="read-only"):
        with postgres.transaction() as repo:
            repo.connection.execute(text("UPDATE queue_jobs SET priority = priority WHERE false"))

    assert backend_pid(postgres) != first
    with postgres.transaction() as repo:
        repo.connection.execute(text("UPDATE queue_jobs SET priority = priority WHERE false"))


def test_the_health_ping_fails_on_a_read_only_connection_and_drops_it(postgres):
    postgres.ping()
    first = backend_pid(postgres)
    make_read_only(postgres)

    with pytest.raises(StoreUnavailable, match="read-only"):
        postgres.ping()

    postgres.ping()
    assert backend_pid(postgres) != first
