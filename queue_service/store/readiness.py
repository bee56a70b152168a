"""Whether the database can be served: checked once at start, where a problem stops the server,
and then periodically behind grpc.health.v1."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import exc

from queue_service.store import migrate, sqlite_faults
from queue_service.store.database import Database

logger = logging.getLogger(__name__)

MIGRATE_HINT = "run `queue-service migrate` with the same --database-url"


class NotReady(Exception):
    """The database cannot serve calls; the message says why, in one line."""


class DatabaseReadiness:
    def __init__(self, database: Database, *, probe_timeout: float = 2.0) -> None:
        self.database = database
        self.head = migrate.head_revision(database.engine)
        self.probe_timeout = probe_timeout
        name = database.url.database
        self.sqlite_path = (
            Path(name).expanduser() if database.dialect == "sqlite" and name and name != ":memory:" else None
        )

    def schema_problem(self) -> str | None:
        """None when the database is at the code's revision, else what is wrong and what to run."""
        engine = self.database.engine
        revisions = migrate.current_revisions(engine)
        if revisions == (self.head,):
            return None
        if not revisions:
            return f"the database has no queue-service schema (it needs revision {self.head}); {MIGRATE_HINT}"
        unknown = [revision for revision in revisions if not migrate.revision_known(engine, revision)]
        if unknown:
            return (
                f"the database schema is at revision {unknown[0]}, newer than this queue-service knows "
                f"(up to {self.head}); run the queue-service release that migrated it"
            )
        return (
            f"the database schema is at revision {', '.join(revisions)}, this queue-service needs {self.head}; "
            f"{MIGRATE_HINT}"
        )

    def check_at_start(self, *, migrate_first: bool = False) -> None:
        """Migrate if asked, then raise NotReady for a damaged or unwritable SQLite file, or a schema
        other than the code's.

        An unreachable PostgreSQL is no reason to refuse to start: health reports NOT_SERVING
        until it answers, and the schema is checked then.
        """
        sqlite = self.sqlite_path is not None
        if sqlite:
            problem = sqlite_faults.header_problem(self.sqlite_path)
            if problem:
                raise NotReady(f"cannot use SQLite database {self.sqlite_path}: {problem}; restore it from a backup")
        elif migrate_first:
            migrate.upgrade(self.database.engine)  # PostgreSQL: a failure stops the start as it did before
        try:
            if sqlite and migrate_first:
                migrate.upgrade(self.database.engine)
            problem = self.schema_problem()
            if problem is None and sqlite:
                self._sqlite_storage_check()
        except (exc.DBAPIError, sqlite_faults.sqlite3.Error) as error:
            if not sqlite:
                logger.warning(
                    "cannot check the database schema at start (%s); health stays NOT_SERVING until it can",
                    type(error).__name__,
                )
                return
            raise NotReady(f"cannot use SQLite database {self.sqlite_path}: {sqlite_faults.describe(error)}") from None
        if problem:
            raise NotReady(problem)

    def check(self) -> None:
        """Raise when calls cannot be served now: NotReady with the reason, or the driver's error."""
        if self.database.corruption:
            raise NotReady(self.database.corruption)
        try:
            self.database.ping()
            problem = self.schema_problem()
            if problem:
                raise NotReady(f"schema changed under the running server: {problem}")
            if self.sqlite_path is not None:
                self._sqlite_storage_check()
        except (exc.DBAPIError, sqlite_faults.sqlite3.Error) as error:
            if self.sqlite_path is None:
                raise
            if sqlite_faults.is_corruption(error):
                self.database.report_corruption(error)
                raise NotReady(self.database.corruption) from None
            raise NotReady(f"SQLite database {self.sqlite_path}: {sqlite_faults.describe(error)}") from None

    def _sqlite_storage_check(self) -> None:
        assert self.sqlite_path is not None
        path = self.sqlite_path
        problem = sqlite_faults.read_only_problem(path) or sqlite_faults.free_space_problem(path)
        if problem:
            raise NotReady(problem)
        sqlite_faults.write_probe(path, self.probe_timeout)
