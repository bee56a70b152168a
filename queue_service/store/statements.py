"""What every table's statements share: the transaction's connection, its dialect, row helpers, and the
raw statements' form (`Statement`, and the lease pair both dialects write)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, TextClause, TextualSelect, bindparam, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite

from queue_service.domain import ErrorInfo, bounded_history
from queue_service.store.direct import DirectStatement
from queue_service.store.schema import UTCDateTime


@dataclass(frozen=True)
class Statement:
    """One raw statement of a dialect's module, with a line on what it writes; run on the driver's cursor."""

    description: str
    clause: TextClause | TextualSelect
    direct: DirectStatement = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "direct", DirectStatement(self.clause))

    def rows(self, connection: Connection, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """All rows of the statement, run on the driver's cursor (see direct.py)."""
        return self.direct.rows(connection, parameters)


_LEASE_TIMES = (bindparam("now", type_=UTCDateTime()), bindparam("lease_until", type_=UTCDateTime()))


def lease_statements(
    description: str, sql_for: Callable[[str], str], columns: Sequence[Any]
) -> tuple[Statement, Statement]:
    """A lease of the queues :names (an expanding parameter) and its twin for the one queue :name,
    from `sql_for`, which writes the lease with the given test of queue names (`IN :names`, `= :name`)."""
    return (
        Statement(
            description,
            text(sql_for("IN :names")).bindparams(bindparam("names", expanding=True), *_LEASE_TIMES).columns(*columns),
        ),
        Statement(
            "The same lease of the one queue :name.",
            text(sql_for("= :name")).bindparams(*_LEASE_TIMES).columns(*columns),
        ),
    )


def error_history_from_json(raw: list[dict[str, Any]] | None) -> list[ErrorInfo]:
    # Bounded on read too: rows written before histories were bounded become readable as they are.
    return bounded_history([ErrorInfo.from_json(item) for item in raw or []])


def newest_first_page(
    table,
    conditions: list,
    *,
    created_after: datetime | None,
    created_before: datetime | None,
    before_id: int | None,
    limit: int,
) -> Select:
    """Rows of `table` matching `conditions` and created in [created_after, created_before), newest
    (highest id) first; `before_id` continues a page."""
    c = table.c
    if created_after:
        conditions.append(c.created_at >= created_after)
    if created_before:
        conditions.append(c.created_at < created_before)
    if before_id is not None:
        conditions.append(c.id < before_id)
    return select(table).where(*conditions).order_by(c.id.desc()).limit(limit)


class TableStatements:
    """Statements over one connection inside one transaction; the caller owns commit."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name

    def _insert(self, table):
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def _delete_picked(self, table, picked, *conditions) -> int:
        """Delete the rows of `table` whose ids the CTE `picked` holds; returns how many. PostgreSQL
        joins the CTE (DELETE ... USING), which it runs once; as `id IN (SELECT ...)` the planner
        may re-run it per row and exceed its limit. SQLite has no DELETE ... USING and runs the
        subquery once."""
        if self.dialect == "postgresql":
            match = table.c.id == picked.c.id
        else:
            match = table.c.id.in_(select(picked.c.id))
        result = self.connection.execute(delete(table).where(match, *conditions).returning(table.c.id))
        return len(result.all())
