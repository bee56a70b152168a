"""Statements over queues: each queue's row, retry policy and pause flag."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update

from queue_service.domain import LeaseControls, QueueRecord
from queue_service.store.breakers import breaker_from_mapping
from queue_service.store.direct import DirectStatement
from queue_service.store.schema import queue_breakers, queue_lease_limits, queues
from queue_service.store.statements import TableStatements

# Built once: the hot paths pay no statement construction, and the compiled form is cached by identity.
GET_QUEUES = select(queues).where(queues.c.name.in_(bindparam("names", expanding=True)))
# One queue, as most calls name (each enqueue, each lease on SQLite): on the driver's cursor, since an
# expanding parameter makes SQLAlchemy rewrite the text each call and its execution machinery costs
# as much as the read (direct.py).
GET_QUEUE = DirectStatement(select(queues).where(queues.c.name == bindparam("name")))

_BREAKER_PREFIX = "breaker_"
# Each queue with whether it has lease limits and its breaker if that is on: what a lease reads first.
LEASE_CONTROLS = (
    select(
        queues,
        queue_lease_limits.c.queue_name.label("limited_queue"),
        *[column.label(_BREAKER_PREFIX + column.name) for column in queue_breakers.c],
    )
    .select_from(
        queues.outerjoin(queue_lease_limits, queue_lease_limits.c.queue_name == queues.c.name).outerjoin(
            queue_breakers, and_(queue_breakers.c.queue_name == queues.c.name, queue_breakers.c.enabled)
        )
    )
    .where(queues.c.name.in_(bindparam("names", expanding=True)))
)


def queue_from_columns(values: Sequence[Any]) -> QueueRecord:
    """A queue from its table's columns, in table order (a DirectStatement's row)."""
    name, paused, retry_policy, created_at, updated_at = values
    return QueueRecord(
        name=name, paused=bool(paused), retry_policy=retry_policy, created_at=created_at, updated_at=updated_at
    )


def queue_from_row(row) -> QueueRecord:
    """A queue from a row that holds its table's columns by name, among others (a joined read's)."""
    m = row._mapping
    return queue_from_columns([m[column.name] for column in queues.c])


class QueuesTable(TableStatements):
    """The queue statements of one transaction."""

    def ensure_queues(self, names: Iterable[str], now: datetime) -> None:
        rows = [{"name": name, "paused": False, "created_at": now, "updated_at": now} for name in sorted(set(names))]
        if rows:
            self.connection.execute(self._insert(queues).on_conflict_do_nothing(index_elements=["name"]), rows)

    def count_queues(self) -> int:
        return self.connection.execute(select(func.count()).select_from(queues)).scalar_one()

    def get_queue(self, name: str) -> QueueRecord | None:
        rows = GET_QUEUE.rows(self.connection, {"name": name})
        return queue_from_columns(rows[0]) if rows else None

    def get_queues(self, names: Iterable[str]) -> dict[str, QueueRecord]:
        wanted = list(set(names))
        if len(wanted) == 1:
            queue = self.get_queue(wanted[0])
            return {queue.name: queue} if queue else {}
        return {row.name: queue_from_row(row) for row in self.connection.execute(GET_QUEUES, {"names": wanted})}

    def lease_controls(self, names: Sequence[str]) -> LeaseControls:
        """The queues `names` with their lease limits' presence and their breakers that are on, in
        one statement. Limits or a breaker of a name with no queue row (set before any job) are
        looked up on their own, so that nothing set is missed."""
        found: dict[str, QueueRecord] = {}
        limited: set[str] = set()
        breakers = {}
        for row in self.connection.execute(LEASE_CONTROLS, {"names": list(set(names))}):
            m = row._mapping
            found[m["name"]] = queue_from_row(row)
            if m["limited_queue"] is not None:
                limited.add(m["name"])
            if m[_BREAKER_PREFIX + "queue_name"] is not None:
                breakers[m["name"]] = breaker_from_mapping(
                    {
                        key.removeprefix(_BREAKER_PREFIX): value
                        for key, value in m.items()
                        if key.startswith(_BREAKER_PREFIX)
                    }
                )
        missing = [name for name in names if name not in found]
        if missing:
            limits = queue_lease_limits.c
            limited.update(
                self.connection.execute(select(limits.queue_name).where(limits.queue_name.in_(missing))).scalars()
            )
            rows = self.connection.execute(
                select(queue_breakers).where(queue_breakers.c.queue_name.in_(missing), queue_breakers.c.enabled)
            )
            breakers.update((row.queue_name, breaker_from_mapping(row._mapping)) for row in rows)
        return LeaseControls(found, frozenset(limited), breakers)

    def queue_retry_policies(self) -> list[dict[str, Any]]:
        """Every queue's own retry policy (queues without one left out)."""
        rows = self.connection.execute(select(queues.c.retry_policy))
        return [row.retry_policy for row in rows if row.retry_policy]

    def list_queues(self, *, after: str | None, limit: int, names: Sequence[str] | None = None) -> list[QueueRecord]:
        statement = select(queues).order_by(queues.c.name).limit(limit)
        if after is not None:
            statement = statement.where(queues.c.name > after)
        if names is not None:
            statement = statement.where(queues.c.name.in_(list(names)))
        return [queue_from_row(row) for row in self.connection.execute(statement)]

    def set_queue_policy(self, name: str, retry_policy: dict[str, Any] | None, *, now: datetime) -> QueueRecord | None:
        return self._update_queue(name, retry_policy=retry_policy, updated_at=now)

    def set_queue_paused(self, name: str, paused: bool, *, now: datetime) -> QueueRecord | None:
        return self._update_queue(name, paused=paused, updated_at=now)

    def _update_queue(self, name: str, **values: Any) -> QueueRecord | None:
        row = self.connection.execute(
            update(queues).where(queues.c.name == name).values(**values).returning(*queues.c)
        ).first()
        return queue_from_row(row) if row else None
