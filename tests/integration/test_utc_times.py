"""Times read from either store are timezone-aware UTC: from the service's own connections, and on
PostgreSQL also from a session that runs in another time zone, and a time without a zone as UTC."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, literal, literal_column, select

from queue_service.store.database import Database, normalise_url
from queue_service.store.schema import UTCDateTime

MOMENT = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC)


def read_back(engine) -> datetime:
    with engine.connect() as connection:
        return connection.execute(select(literal(MOMENT, UTCDateTime()))).scalar_one()


def test_the_service_reads_utc(database_url):
    database = Database(database_url)
    try:
        value = read_back(database.engine)
    finally:
        database.dispose()
    assert value == MOMENT
    assert value.tzinfo is UTC


def test_a_postgresql_session_in_another_zone_still_reads_utc(postgres_session_url):
    engine = create_engine(normalise_url(postgres_session_url), connect_args={"options": "-c timezone=Asia/Tokyo"})
    try:
        with engine.connect() as connection:
            # The driver's own value is in the session's zone: the type has something to convert.
            raw = connection.exec_driver_sql("SELECT TIMESTAMPTZ '2026-03-29 01:30:15.123456+00'").scalar_one()
        value = read_back(engine)
    finally:
        engine.dispose()
    assert raw.utcoffset() == timedelta(hours=9)
    assert raw.tzinfo != UTC
    assert value == MOMENT
    assert value.tzinfo is UTC


@pytest.fixture
def local_zone_not_utc(monkeypatch) -> Iterator[None]:
    """This process's local time zone set ahead of UTC, so that reading a time as local shows."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_postgresql_time_without_zone_reads_as_utc(postgres_session_url, local_zone_not_utc):
    database = Database(postgres_session_url)
    try:
        with database.engine.connect() as connection:
            value = connection.execute(
                select(literal_column("TIMESTAMP '2026-03-29 01:30:15.123456'", UTCDateTime()))
            ).scalar_one()
    finally:
        database.dispose()
    assert value == MOMENT
    assert value.tzinfo is UTC
