"""SQLite transactions take the write lock when they begin (BEGIN IMMEDIATE), and a begin that
cannot get it is a retryable StoreUnavailable, like any statement that finds the database locked.
Snapshot reads take neither the write lock nor a turn among this process's transactions."""

from __future__ import annotations

import shutil
import sqlite3
import threading

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


def test_a_snapshot_takes_no_write_lock_and_sees_only_what_was_committed(sqlite_path):
    database = Database(f"sqlite:///{sqlite_path}")
    holder = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        with database.snapshot():
            assert _takes_write_lock(sqlite_path)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute(
            "INSERT INTO queues (name, paused, created_at, updated_at) "
            "VALUES ('uncommitted', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
        with database.snapshot() as repo:
            assert repo.get_queue("uncommitted") is None
        holder.execute("COMMIT")
        with database.snapshot() as repo:
            assert repo.get_queue("uncommitted") is not None
    finally:
        holder.close()
        database.dispose()


def test_a_snapshot_does_not_queue_behind_this_process_s_transactions(sqlite_path, monkeypatch):
    """Transactions of one process take turns (FairLock); a snapshot read takes none."""
    monkeypatch.setattr(database_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    database = Database(f"sqlite:///{sqlite_path}")
    began, release = threading.Event(), threading.Event()

    def hold_a_transaction() -> None:
        with database.transaction():
            began.set()
            release.wait(10)

    holder = threading.Thread(target=hold_a_transaction)
    holder.start()
    try:
        assert began.wait(10)
        with pytest.raises(StoreUnavailable), database.transaction():
            pytest.fail("a second transaction began while the first held its turn")
        with database.snapshot() as repo:
            assert repo.connection.exec_driver_sql("SELECT count(*) FROM queue_jobs").scalar_one() == 0
    finally:
        release.set()
        holder.join(10)
        database.dispose()
