"""SQLite transactions take the write lock when they begin (BEGIN IMMEDIATE), and a begin that
cannot get it is a retryable StoreUnavailable, like any statement that finds the database locked."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from queue_service.store import database as database_module
from queue_service.store.database import Database
from queue_service.store.errors import StoreUnavailable


@pytest.fixture
def sqlite_path(sqlite_template, tmp_path):
    path = tmp_path / "jobs.sqlite3"
    shutil.copy(sqlite_template, path)
    return path


def _takes_write_lock(path) -> bool:
    """Whether another connection, waiting for nothing, can begin a writing transaction now."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return False
    else:
        other.execute("ROLLBACK")
        return True
    finally:
        other.close()


def test_a_transaction_holds_the_write_lock_from_its_start(sqlite_path):
    database = Database(f"sqlite:///{sqlite_path}")
    try:
        with database.transaction():
            # No statement has run yet: the lock was taken by the begin itself.
            assert not _takes_write_lock(sqlite_path)
        assert _takes_write_lock(sqlite_path)
    finally:
        database.dispose()


def test_a_begin_that_finds_the_database_locked_is_unavailable(sqlite_path, monkeypatch):
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    database = Database(f"sqlite:///{sqlite_path}")
    holder = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable), database.transaction():
            pytest.fail("the transaction began while another connection held the write lock")
        holder.execute("ROLLBACK")
        # The failed begin left its connection usable.
        with database.transaction() as repo:
            assert repo.connection.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        holder.close()
        database.dispose()
