"""PostgreSQL: the statements a connection runs again and again are planned once on it.

psycopg2 sends every statement as text, so PostgreSQL parses and plans it on every call, and for
the service's short statements planning costs more than running them (0.1 to 0.25 ms against
0.06 ms for the read of a failing job). Here a statement text seen twice on a connection is
PREPAREd on that connection the next time it is checked out of the pool, while no transaction is
open; from then on the same text is sent as `EXECUTE name(values)`. SQLAlchemy never knows: the
statement it compiled, its parameters and its result columns are unchanged.

- Each connection keeps at most `capacity` statements, the least recently used ones are
  DEALLOCATEd first; a text the server cannot prepare (a parameter whose type nothing fixes) is
  remembered and sent as text.
- A migration that changes the type of a column a prepared statement returns makes PostgreSQL
  refuse that statement: the call fails as retryable and the pool's connections are replaced.
- A pooler that hands each transaction to another server connection (PgBouncer in transaction
  mode) loses them. The URL's `prepared_statement_cache_size=0` turns this off, as it does for
  asyncpg; and the first EXECUTE of a statement the server does not know turns it off for the
  engine, discards that connection and fails that one call as retryable.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine

logger = logging.getLogger(__name__)

# The URL query parameter that sets the per-connection capacity, as SQLAlchemy's asyncpg dialect names it.
CACHE_SIZE_PARAMETER = "prepared_statement_cache_size"
DEFAULT_CAPACITY = 100
# Each prepared statement holds its plan in the server connection's memory.
MAX_CAPACITY = 10_000
# A text is prepared once it has been sent this many times on one connection: a statement run once
# (an admin page, a batch of an odd size) is not worth a round trip to prepare.
PREPARE_AFTER = 2
# SQLSTATE invalid_sql_statement_name: EXECUTE of a statement the server connection does not hold.
UNKNOWN_STATEMENT_SQLSTATE = "26000"
# SQLSTATE feature_not_supported, with this message: a migration changed a column's type under a
# prepared statement that returns it.
FEATURE_NOT_SUPPORTED_SQLSTATE = "0A000"
RESULT_TYPE_CHANGED = "cached plan must not change result type"
_INFO_KEY = "prepared_statements"
PARAMETER_TYPES = "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = %(name)s"
_BIND = re.compile(r"%\((?P<name>[^)]+)\)s|%%")
PREPARABLE = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|VALUES)\b", re.IGNORECASE)


def split_capacity(url: URL) -> tuple[URL, int]:
    """The URL without the service's own query parameter (libpq would refuse it), and the capacity it sets."""
    value = url.query.get(CACHE_SIZE_PARAMETER)
    if value is None:
        return url, DEFAULT_CAPACITY
    if isinstance(value, tuple) or not value.isdigit() or int(value) > MAX_CAPACITY:
        raise ValueError(
            f"{CACHE_SIZE_PARAMETER} must be a whole number of statements up to {MAX_CAPACITY}, 0 to turn it off"
        )
    return url.difference_update_query([CACHE_SIZE_PARAMETER]), int(value)


@dataclass(frozen=True)
class PreparedForm:
    """A statement text as PREPARE takes it, and the names of its parameters in `$n` order."""

    body: str
    parameters: tuple[str, ...]

    def prepare(self, name: str) -> str:
        return f"PREPARE {name} AS {self.body}"

    @staticmethod
    def deallocate(name: str) -> str:
        return f"DEALLOCATE {name}"

    def execute(self, name: str, types: list[str]) -> str:
        """The EXECUTE, each value cast to the type PostgreSQL gave its parameter. Without the casts,
        an argument is only coerced by assignment, and a value psycopg2 spells as `ARRAY['…']` (text[])
        would not become the jsonb[] the statement's own CAST made of it."""
        if not self.parameters:
            return f"EXECUTE {name}"
        arguments = ", ".join(f"CAST(%({parameter})s AS {type_})" for parameter, type_ in zip(self.parameters, types))
        return f"EXECUTE {name}({arguments})"


def prepared_form(statement: str) -> PreparedForm:
    """`%(name)s` placeholders become `$1, $2, …` (one number per name) and `%%` a plain `%`, as
    PREPARE takes them; the EXECUTE passes the named values in that order, for psycopg2 to fill in."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            return "%"
        return f"${numbers.setdefault(name, len(numbers) + 1)}"

    body = _BIND.sub(number, statement)
    return PreparedForm(body, tuple(numbers))


@dataclass(frozen=True)
class _Prepared:
    """A statement prepared on one server connection: its name there, and the EXECUTE to send."""

    name: str
    execute: str


@dataclass
class _ConnectionStatements:
    """What one server connection holds: prepared texts by recency, and what it will prepare next."""

    capacity: int
    prepared: OrderedDict[str, _Prepared] = field(default_factory=OrderedDict)
    seen: dict[str, int] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)
    next_number: int = 0

    def statement_for(self, statement: str) -> str:
        """The text to send: an EXECUTE of the prepared statement, or the statement itself."""
        found = self.prepared.get(statement)
        if found is not None:
            self.prepared.move_to_end(statement)
            return found.execute
        if statement in self.refused or not PREPARABLE.match(statement):
            return statement
        count = self.seen.get(statement, 0) + 1
        if count == PREPARE_AFTER:
            self.pending.append(statement)
        if len(self.seen) >= 10 * self.capacity:
            self.seen.clear()  # a bound on texts seen once: odd batch sizes, one-off admin reads
        if len(self.refused) >= 10 * self.capacity:
            self.refused.clear()
        self.seen[statement] = count
        return statement


class PreparedStatements:
    """Installs the per-connection statement cache on a PostgreSQL engine.

    The statements it prepares are SQLAlchemy's own compiled texts, their values still placeholders,
    under names it makes itself (queue_service_N): no value of a request is ever written into SQL."""

    def __init__(self, engine: Engine, capacity: int) -> None:
        self.engine = engine
        self.capacity = capacity
        self.enabled = capacity > 0
        if not self.enabled:
            return
        event.listen(engine, "connect", self._on_connect)
        event.listen(engine, "checkout", self._on_checkout)
        event.listen(engine, "before_cursor_execute", self._before_cursor_execute, retval=True)
        event.listen(engine, "handle_error", self._on_error)

    def _on_connect(self, _dbapi_connection, record) -> None:
        record.info[_INFO_KEY] = _ConnectionStatements(self.capacity)

    def _on_checkout(self, dbapi_connection, record, _proxy) -> None:
        statements: _ConnectionStatements | None = record.info.get(_INFO_KEY)
        if not self.enabled or statements is None or not statements.pending:
            return
        # Out of any transaction, so that a text the server refuses aborts nothing of the caller's.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                for statement in statements.pending:
                    self._prepare(cursor, statements, statement)
        except self.engine.dialect.loaded_dbapi.OperationalError as error:
            raise exc.DisconnectionError(f"pooled connection is dead: {error}") from error
        finally:
            statements.pending.clear()
            if not dbapi_connection.closed:
                dbapi_connection.autocommit = autocommit

    def _prepare(self, cursor, statements: _ConnectionStatements, statement: str) -> None:
        dbapi = self.engine.dialect.loaded_dbapi
        if len(statements.prepared) >= statements.capacity:
            _, oldest = statements.prepared.popitem(last=False)
            try:
                cursor.execute(PreparedForm.deallocate(oldest.name))
            except dbapi.OperationalError:
                raise
            except dbapi.DatabaseError:
                pass  # already gone: the server connection holds one statement fewer, as intended
        name = f"queue_service_{statements.next_number}"
        statements.next_number += 1
        form = prepared_form(statement)
        try:
            cursor.execute(form.prepare(name))
            cursor.execute(PARAMETER_TYPES, {"name": name})
            (types,) = cursor.fetchone()
        except dbapi.OperationalError:
            raise
        except dbapi.DatabaseError:
            statements.refused.add(statement)
            return
        statements.prepared[statement] = _Prepared(name, form.execute(name, types))

    def _before_cursor_execute(self, connection, _cursor, statement, parameters, _context, executemany):
        if executemany or not self.enabled or not isinstance(parameters, dict):
            return statement, parameters
        statements: _ConnectionStatements | None = connection.info.get(_INFO_KEY)
        if statements is None:
            return statement, parameters
        return statements.statement_for(statement), parameters

    def _on_error(self, context) -> None:
        error = context.original_exception
        code = getattr(error, "pgcode", None)
        if code == FEATURE_NOT_SUPPORTED_SQLSTATE and RESULT_TYPE_CHANGED in str(error):
            logger.warning(
                "the schema changed under a prepared statement (a migration ran while this process served): "
                "its pooled connections are replaced, and the call is answered as retryable"
            )
            context.is_disconnect = True  # new connections prepare the statements anew, against the new schema
            return
        if code != UNKNOWN_STATEMENT_SQLSTATE:
            return
        if self.enabled:
            self.enabled = False
            logger.warning(
                "a prepared statement vanished from its server connection: the database is reached through a pooler "
                "that does not keep them (PgBouncer in transaction mode). Prepared statements are off for this "
                "process; add %s=0 to the database URL to say so up front",
                CACHE_SIZE_PARAMETER,
            )
        context.is_disconnect = True  # the connection's cache no longer says what its server holds
