"""Hot statements run on the driver's cursor, past SQLAlchemy's per-call execution machinery.

SQLAlchemy compiles a statement once and caches it, but each call still builds an execution
context, processes its parameters, dispatches events and wraps the cursor in a result with its own
metadata: about 150 µs of CPU a statement on a two-core benchmark machine, as much as a round trip
to PostgreSQL there. A DirectStatement is compiled by SQLAlchemy once per
dialect; a call then does only what that machinery would do to it:

- its values go through their types' bind processors, its rows through the columns' result
  processors (the rows are plain tuples, in the statement's column order);
- the engine's cursor listeners see it (`before_cursor_execute`, `after_cursor_execute`, with no
  execution context), so the connection's prepared-statement cache (prepared.py) serves it as it
  serves any statement;
- a driver error goes through SQLAlchemy's own handling: the same wrapped exceptions (which
  Database turns into store errors), the `handle_error` listeners, and a dead connection invalidated.

It runs on a Connection SQLAlchemy holds, inside its transaction or alone (Database.statements_alone).
Statements with expanding or literal parameters are refused when compiled: they need SQLAlchemy.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement


@dataclass(frozen=True)
class _Compiled:
    """A statement as one dialect runs it: its text, and the processors its values and rows need."""

    text: str
    bind_processors: tuple[tuple[str, Callable[[Any], Any]], ...]
    # (column position, processor) for the columns whose values the driver does not give as stored.
    result_processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    keys: tuple[str, ...]
    # The values the statement carries itself (a constant in `.values(state=...)`), by name.
    defaults: dict[str, Any]
    # For a driver that takes its values by position (sqlite3's qmark), their names in that order.
    positions: tuple[str, ...] | None


class DirectStatement:
    """One statement, compiled by SQLAlchemy for each dialect it meets, run on the driver's cursor."""

    def __init__(self, clause: ClauseElement) -> None:
        self.clause = clause
        self._by_dialect: weakref.WeakKeyDictionary[Dialect, _Compiled] = weakref.WeakKeyDictionary()

    def keys(self, dialect: Dialect) -> tuple[str, ...]:
        """The names of the statement's columns, in the order of each row's values."""
        return self._compiled(dialect).keys

    def rows(self, connection: Connection, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement with `parameters` (every one it names) and return all its rows."""
        compiled = self._compiled(connection.dialect)
        statement: str = compiled.text
        values: Any = {**compiled.defaults, **parameters}
        cursor = connection.connection.dbapi_connection.cursor()
        dispatch = connection.dispatch
        try:
            for name, process in compiled.bind_processors:
                values[name] = process(values[name])
            if compiled.positions is not None:
                values = tuple(values[name] for name in compiled.positions)
            for listener in dispatch.before_cursor_execute:
                statement, values = listener(connection, cursor, statement, values, None, False)
            cursor.execute(statement, values)
            for listener in dispatch.after_cursor_execute:
                listener(connection, cursor, statement, values, None, False)
            fetched = cursor.fetchall() if cursor.description is not None else []
        except Exception as error:  # noqa: BLE001 - SQLAlchemy's handler wraps or re-raises it
            # It closes the cursor, or invalidates the connection it belongs to, and always raises.
            connection._handle_dbapi_exception(error, statement, values, cursor, None)
        cursor.close()
        if not compiled.result_processors:
            return fetched
        rows = []
        for row in fetched:
            processed = list(row)
            for position, process in compiled.result_processors:
                processed[position] = process(processed[position])
            rows.append(tuple(processed))
        return rows

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect)
        if found is None:
            found = self._by_dialect[dialect] = self._compile(dialect)
        return found

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.clause.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params or compiled.escaped_bind_names:
            raise ValueError("a DirectStatement cannot have expanding, literal or escaped parameters")
        names = list(compiled.params)  # the parameters as the text names them, each with its own value if any
        bind_processors = []
        for name in names:
            process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                bind_processors.append((name, process))
        defaults = {name: value for name, value in compiled.params.items() if not compiled.binds[name].required}
        columns = list(getattr(self.clause, "exported_columns", ()))  # a select's, or what a write returns
        result_processors = []
        for position, column in enumerate(columns):
            process = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if process is not None:
                result_processors.append((position, process))
        return _Compiled(
            compiled.string,
            tuple(bind_processors),
            tuple(result_processors),
            tuple(column.key for column in columns),
            defaults,
            tuple(compiled.positiontup) if compiled.positional else None,
        )
