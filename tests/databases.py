"""Throw-away empty databases for tests that must start from nothing (migrations, large data sets)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text

from queue_service.store.database import normalise_url
from tests.conftest import postgres_admin_url, skip_or_fail_without_postgres


@contextmanager
def empty_database(backend: str, directory: Path) -> Iterator[Engine]:
    """A new SQLite file in `directory`, or a new PostgreSQL database that is dropped afterwards."""
    if backend == "sqlite":
        engine = create_engine(f"sqlite:///{directory / f'empty-{uuid.uuid4().hex[:8]}.sqlite3'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    admin_url = postgres_admin_url()
    if not admin_url:
        skip_or_fail_without_postgres()
    name = f"jobqueue_empty_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(normalise_url(admin_url).set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def statements_issued(
    engine: Engine, run: Callable[[Connection], object]
) -> Iterator[tuple[Connection, list[tuple[str, object]]]]:
    """Run `run` in a transaction that is rolled back; yield the connection and the (statement,
    parameters) it sent, so that the caller can EXPLAIN them on that same connection."""
    captured: list[tuple[str, object]] = []

    def capture(_connection, _cursor, statement, parameters, _context, _executemany):
        captured.append((statement, parameters))

    with engine.connect() as connection:
        event.listen(connection, "before_cursor_execute", capture)
        transaction = connection.begin()
        try:
            run(connection)
        finally:
            event.remove(connection, "before_cursor_execute", capture)
            transaction.rollback()
        yield connection, captured
