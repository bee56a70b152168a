"""Statements over queue_lease_limits: each limited queue's caps on leasing and its start-rate bucket."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from queue_service.domain import JobState, LeaseLimitRecord, LeaseLimits
from queue_service.store.schema import queue_counters, queue_lease_limits

ACTIVE_COUNTER = f"jobs.{JobState.ACTIVE.value}"


def _from_row(row) -> LeaseLimitRecord:
    m = row._mapping
    return LeaseLimitRecord(
        queue_name=m["queue_name"],
        limits=LeaseLimits(max_active=m["max_active"], max_starts_per_second=m["max_starts_per_second"]),
        tokens=float(m["tokens"]),
        refilled_at=m["refilled_at"],
        updated_at=m["updated_at"],
    )


class LeaseLimitStore:
    """Over the connection of one transaction; the caller owns commit."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def get(self, queue_names: Sequence[str]) -> dict[str, LeaseLimitRecord]:
        table = queue_lease_limits
        rows = self.connection.execute(select(table).where(table.c.queue_name.in_(list(queue_names))))
        return {row.queue_name: _from_row(row) for row in rows}

    def lock(self, queue_names: Sequence[str]) -> dict[str, LeaseLimitRecord]:
        """The limited ones of `queue_names`, their rows locked until commit (PostgreSQL; SQLite's
        write lock already serialises every transaction). Locked in name order, so that two leases
        of overlapping queues cannot deadlock."""
        table = queue_lease_limits
        statement = (
            select(table)
            .where(table.c.queue_name.in_(sorted(set(queue_names))))
            .order_by(table.c.queue_name)
            .with_for_update()
        )
        return {row.queue_name: _from_row(row) for row in self.connection.execute(statement)}

    def active_counts(self, queue_names: Sequence[str]) -> dict[str, int]:
        """ACTIVE jobs per queue from the trigger-kept counters, exact within this transaction."""
        c = queue_counters.c
        statement = (
            select(c.queue_name, func.sum(c.amount).label("amount"))
            .where(c.queue_name.in_(list(queue_names)), c.counter == ACTIVE_COUNTER)
            .group_by(c.queue_name)
        )
        return {row.queue_name: int(row.amount) for row in self.connection.execute(statement)}

    def put(self, record: LeaseLimitRecord) -> None:
        insert = postgresql.insert if self.connection.dialect.name == "postgresql" else sqlite.insert
        values = {
            "max_active": record.limits.max_active,
            "max_starts_per_second": record.limits.max_starts_per_second,
            "tokens": record.tokens,
            "refilled_at": record.refilled_at,
            "updated_at": record.updated_at,
        }
        self.connection.execute(
            insert(queue_lease_limits)
            .values(queue_name=record.queue_name, **values)
            .on_conflict_do_update(index_elements=["queue_name"], set_=values)
        )

    def remove(self, queue_name: str) -> None:
        self.connection.execute(delete(queue_lease_limits).where(queue_lease_limits.c.queue_name == queue_name))

    def save_bucket(self, queue_name: str, *, tokens: float, refilled_at: datetime) -> None:
        table = queue_lease_limits
        self.connection.execute(
            update(table).where(table.c.queue_name == queue_name).values(tokens=tokens, refilled_at=refilled_at)
        )


def lease_limits_of(repo) -> LeaseLimitStore:
    """The lease-limit statements inside the transaction of `repo` (a store.repository.Repository)."""
    return LeaseLimitStore(repo.connection)
