"""Engine set-up for SQLite and PostgreSQL, and the transaction boundary for the core."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import URL, Connection, Engine, make_url

from queue_service.domain import JSON_TEXT
from queue_service.store import sqlite_faults
from queue_service.store.errors import LockConflict, StoreCorrupted, StoreUnavailable, TransactionLost
from queue_service.store.prepared import PreparedStatements, split_capacity
from queue_service.store.repository import Repository

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLite has one writer: while a sweep batch runs, every lease and report waits for it. This many
# jobs, row triggers included, take a few milliseconds, so that a lease waits no longer.
SQLITE_SWEEP_BATCH = 20
# A pooled PostgreSQL connection unused for longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 1.0
# SQLSTATE read_only_sql_transaction: the server is up but refuses writes (a standby, or a
# primary fenced read-only for a switchover).
READ_ONLY_SQLSTATE = "25006"
# SQLSTATE deadlock_detected: PostgreSQL cancelled this statement to break a cycle of lock waits.
DEADLOCK_SQLSTATE = "40P01"
# libpq's PQTRANS_ACTIVE, PQTRANS_INTRANS and PQTRANS_INERROR: a transaction is open.
LIBPQ_TRANSACTION_OPEN = frozenset({1, 2, 3})
READ_ONLY_MESSAGE = "database is read-only (a standby, or a primary being switched over); retry later"


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL; plain `postgresql://` means psycopg2."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


# Set by Database.snapshot around the one begin it makes: that transaction starts deferred.
_deferred_begin = threading.local()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let the dialect's do_begin (below) decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: in WAL mode NORMAL may lose the last commits on power loss; FULL syncs the WAL on
        # every commit, so a job the service acknowledged survives a crash of the machine too.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    def begin_immediate(dbapi_connection) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that later
        # writes can fail with "database is locked" without waiting for busy_timeout. A
        # snapshot read never writes, and a deferred one waits for no writer (WAL).
        # Sent by the dialect, straight to the driver, which wraps its errors as a statement's:
        # as a statement of the connection (a "begin" event) it cost a statement's execution
        # context, once per transaction.
        dbapi_connection.execute("BEGIN" if getattr(_deferred_begin, "on", False) else "BEGIN IMMEDIATE")

    engine.dialect.do_begin = begin_immediate


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle, instead of before every transaction.

    SQLAlchemy's pool_pre_ping costs one round trip per transaction. Connections that a database
    restart or an idle timeout broke are the idle ones, and they still get pinged (and replaced
    when dead); a connection in steady use skips the ping, and if the server dies under it, its
    call fails with UNAVAILABLE as any call in flight would.
    """

    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection, record, _proxy):
        idle_since = record.info.pop("idle_since", None)
        if idle_since is not None and time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(f"pooled connection is dead: {error}") from error
        if not alive:
            raise exc.DisconnectionError("pooled connection is dead")


def _is_read_only_error(error: BaseException | None) -> bool:
    return getattr(error, "pgcode", None) == READ_ONLY_SQLSTATE


def _drop_connections_to_read_only_servers(engine: Engine) -> None:
    """Handle a refused write like a lost connection: the connection and the whole pool are discarded.

    Pooled connections outlive a switchover; those to the old primary still answer but can no
    longer write. Discarding them makes the next checkout connect again, and with a multi-host
    URL and `target_session_attrs=read-write` libpq then picks whichever server takes writes.
    """

    @event.listens_for(engine, "handle_error")
    def on_error(context):
        if _is_read_only_error(context.original_exception):
            context.is_disconnect = True


def create_database_engine(url: str | URL, *, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    # hide_parameters: job data and results are bound parameters, and must not reach error messages or logs.
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=max_overflow,
            hide_parameters=True,
            # SQLite keeps documents as text: the text a payload was measured as (JSON_TEXT).
            json_serializer=JSON_TEXT.encode,
        )
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        parsed, prepared_capacity = split_capacity(parsed)
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=10,
            hide_parameters=True,
            connect_args={"options": "-c timezone=UTC", "connect_timeout": 5},
        )
        _ping_idle_connections(engine)
        _drop_connections_to_read_only_servers(engine)
        # After the ping: a connection is known alive before its statements are prepared.
        PreparedStatements(engine, prepared_capacity)
        return engine
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}; use sqlite or postgresql")


def _transaction_open(connection: Connection) -> bool:
    """Whether the database still holds the connection's transaction, as the driver last heard
    from it (SQLite ends one by itself after some errors; PostgreSQL only when told to)."""
    driver_connection = connection.connection.dbapi_connection
    if hasattr(driver_connection, "in_transaction"):  # sqlite3
        return driver_connection.in_transaction
    status = getattr(getattr(driver_connection, "info", None), "transaction_status", None)  # psycopg2: libpq's
    return status is None or status in LIBPQ_TRANSACTION_OPEN


class FairLock:
    """A re-entrant lock granted in order of arrival; a waiter that times out gives up its turn.

    SQLite has one writer at a time, and its busy handler polls with growing sleeps, so a
    transaction that commits and begins again (a sweep going from batch to batch) takes the
    lock back before a waiting call wakes up: a lease could wait for a whole sweep. Queuing the
    transactions of this process here first serves them in turn.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._abandoned: set[int] = set()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self, timeout: float) -> bool:
        me = threading.get_ident()
        with self._condition:
            if self._owner == me:
                self._depth += 1
                return True
            ticket = self._next_ticket
            self._next_ticket += 1
            if not self._condition.wait_for(lambda: self._serving == ticket, timeout):
                self._abandoned.add(ticket)
                return False
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._condition:
            self._depth -= 1
            if self._depth:
                return
            self._owner = None
            self._serving += 1
            while self._serving in self._abandoned:
                self._abandoned.remove(self._serving)
                self._serving += 1
            self._condition.notify_all()


def _return_to_pool(connection: Connection) -> None:
    """Returns the connection to the pool, which resets it for transactions. A connection the server
    dropped after its statements fails that reset with a raw driver error: it is discarded instead,
    and what its statements did stands (each committed, or failed, on its own)."""
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - the driver's own error, raised outside SQLAlchemy's wrapping
        try:
            connection.invalidate()
        except Exception:  # noqa: BLE001
            logger.debug("discarding a connection the server dropped", exc_info=True)


class Database:
    """Owns the engine; hands the core a repository bound to one transaction."""

    def __init__(self, url: str | URL, **engine_options) -> None:
        self.url = normalise_url(url)
        self.engine = create_database_engine(self.url, **engine_options)
        # SQLite serves one transaction at a time anyway; this process's go in arrival order.
        self._turns = FairLock() if self.engine.dialect.name == "sqlite" else None
        # Set once a query found the SQLite file damaged; health stays NOT_SERVING from then on.
        self.corruption: str | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def sweep_batch_size(self, requested: int) -> int:
        """The rows a sweep batch may hold locked: `requested`, bounded on SQLite, where a batch
        blocks every other writer, not only the rows it locks."""
        return min(requested, SQLITE_SWEEP_BATCH) if self.dialect == "sqlite" else requested

    @contextmanager
    def transaction(self) -> Iterator[Repository]:
        """One transaction; connection loss, lock time-outs and pool exhaustion become StoreUnavailable."""
        turns = self._turns
        if turns is not None and not turns.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise StoreUnavailable("database busy; retry later")
        try:
            with self._store_errors(), self.engine.begin() as connection:
                repo = Repository(connection)
                yield repo
        finally:
            if turns is not None:
                turns.release()
        repo.run_after_commit()

    @contextmanager
    def statements_alone(self) -> Iterator[Repository]:
        """A repository in which each statement commits on its own (autocommit): work that is one
        statement saves the BEGIN and COMMIT round trips. Only for PostgreSQL, where each such
        statement is atomic and durable on its own; after-commit callbacks run once it ends."""
        if self.dialect != "postgresql":
            raise ValueError("statements_alone is for PostgreSQL")
        with self._store_errors(), self._driver_session(autocommit=True) as connection:
            repo = Repository(connection)
            yield repo
        repo.run_after_commit()

    @contextmanager
    def reading(self) -> Iterator[Repository]:
        """A repository for reads that one statement answers: on PostgreSQL the statement runs
        alone, one round trip with no BEGIN or COMMIT; on SQLite, a snapshot."""
        if self.dialect == "postgresql":
            with self.statements_alone() as repo:
                yield repo
        else:
            with self.snapshot() as repo:
                yield repo

    @contextmanager
    def snapshot(self) -> Iterator[Repository]:
        """A repository for reads only, whose statements all see one state of the database: what
        was committed when the first of them ran.

        On SQLite, a deferred transaction outside this process's turns: in WAL mode it waits for no
        writer, and no writer for it, where a transaction would queue behind every write of the
        process and hold the file's one write lock. On PostgreSQL, a REPEATABLE READ, READ ONLY
        transaction: a plain one (READ COMMITTED) lets each statement see commits made between
        them, so that two counts read together could disagree."""
        if self.dialect == "postgresql":
            with self._postgres_snapshot() as repo:
                yield repo
            return
        with self._store_errors(), self.engine.connect() as connection:
            _deferred_begin.on = True
            try:
                transaction = connection.begin()
            finally:
                _deferred_begin.on = False
            with transaction:
                repo = Repository(connection)
                yield repo
        repo.run_after_commit()

    @contextmanager
    def _postgres_snapshot(self) -> Iterator[Repository]:
        with (
            self._store_errors(),
            self._driver_session(isolation_level="REPEATABLE READ", readonly=True) as connection,
            connection.begin(),
        ):
            repo = Repository(connection)
            yield repo
        repo.run_after_commit()

    @contextmanager
    def _driver_session(self, **settings: Any) -> Iterator[Connection]:
        """A pooled PostgreSQL connection whose driver session has `settings` (psycopg2's
        `set_session`: autocommit, isolation_level, readonly) for the block, and its defaults after.

        Set at the driver, not through SQLAlchemy's isolation level: psycopg2 sends them with the
        BEGIN, or needs none, where SQLAlchemy's costs a round trip to set and one to reset. A
        connection found closed is UNAVAILABLE; one that cannot be reset is discarded."""
        connection = self.engine.connect()
        try:
            driver_connection = connection.connection.dbapi_connection
            try:
                driver_connection.set_session(**settings)
            except connection.dialect.loaded_dbapi.Error as error:
                connection.invalidate()
                raise StoreUnavailable("database connection lost") from error
            try:
                yield connection
            finally:
                try:
                    driver_connection.set_session(
                        **{name: False if name == "autocommit" else "DEFAULT" for name in settings}
                    )
                except connection.dialect.loaded_dbapi.Error:
                    connection.invalidate()
        finally:
            _return_to_pool(connection)

    @contextmanager
    def savepoint(self, repo: Repository, name: str) -> Iterator[Repository]:
        """Savepoint `name` inside `repo`'s transaction: an error undoes only what was written since.

        It is not released on success: the commit releases it with the transaction, which saves
        a round trip. The repository yielded keeps its own after-commit callbacks, which the
        caller runs once the enclosing transaction has committed (and drops if it did not)."""
        connection = repo.connection
        with self._store_errors():
            connection.dialect.do_savepoint(connection, name)
        try:
            with self._store_errors():
                yield Repository(connection)
        except Exception as error:
            # After some errors SQLite rolls the whole transaction back; the statements that
            # follow would then commit one by one. Nothing more may run in it.
            if not _transaction_open(connection):
                raise TransactionLost("the transaction was rolled back by the database; retry later") from error
            with self._store_errors():
                connection.dialect.do_rollback_to_savepoint(connection, name)
            raise

    @contextmanager
    def _store_errors(self) -> Iterator[None]:
        """Database errors as the core knows them: StoreUnavailable (retry) or StoreCorrupted."""
        try:
            yield
        except (exc.OperationalError, exc.TimeoutError, exc.InterfaceError) as error:
            if getattr(getattr(error, "orig", None), "pgcode", None) == DEADLOCK_SQLSTATE:
                raise LockConflict("transactions waited for each other's locks; retry the call") from error
            raise StoreUnavailable("database unavailable; retry later") from error
        except exc.DBAPIError as error:
            if _is_read_only_error(error.orig):
                raise StoreUnavailable(READ_ONLY_MESSAGE) from error
            if error.connection_invalidated:
                raise StoreUnavailable("database connection lost") from error
            if sqlite_faults.is_corruption(error):
                self.report_corruption(error)
                raise StoreCorrupted(self.corruption) from error
            raise

    def report_corruption(self, error: BaseException) -> None:
        """Remember that the file is damaged, and say so loudly the first time."""
        if self.corruption is None:
            self.corruption = f"database file damaged: {sqlite_faults.describe(error)}; restore it from a backup"
            logger.critical("%s (%s)", self.corruption, self.url.render_as_string(hide_password=True))

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query, or (PostgreSQL) answers but refuses writes."""
        with self.engine.connect() as connection:
            if self.dialect != "postgresql":
                connection.execute(text("SELECT 1"))
            elif connection.execute(text("SHOW transaction_read_only")).scalar_one() == "on":
                connection.invalidate()  # the next checkout connects again, and may find the new primary
                raise StoreUnavailable(READ_ONLY_MESSAGE)
            connection.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
