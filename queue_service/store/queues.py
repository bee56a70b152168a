"""Statements over queues: each queue's row, retry policy and pause flag."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from queue_service.domain import QueueRecord
from queue_service.store.schema import queues
from queue_service.store.statements import TableStatements


def queue_from_row(row) -> QueueRecord:
    m = row._mapping
    return QueueRecord(
        name=m["name"],
        paused=bool(m["paused"]),
        retry_policy=m["retry_policy"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


class QueuesTable(TableStatements):
    """The queue statements of one transaction."""

    def ensure_queues(self, names: Iterable[str], now: datetime) -> None:
        rows = [{"name": name, "paused": False, "created_at": now, "updated_at": now} for name in sorted(set(names))]
        if rows:
            self.connection.execute(self._insert(queues).on_conflict_do_nothing(index_elements=["name"]), rows)

    def count_queues(self) -> int:
        return self.connection.execute(select(func.count()).select_from(queues)).scalar_one()

    def get_queue(self, name: str) -> QueueRecord | None:
        row = self.connection.execute(select(queues).where(queues.c.name == name)).first()
        return queue_from_row(row) if row else None

    def get_queues(self, names: Iterable[str]) -> dict[str, QueueRecord]:
        rows = self.connection.execute(select(queues).where(queues.c.name.in_(list(set(names))))).all()
        return {row.name: queue_from_row(row) for row in rows}

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
