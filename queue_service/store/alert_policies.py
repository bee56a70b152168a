"""Statements over queue_alert_policies: each queue's DLQ alert threshold and email recipients."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from queue_service.store.schema import queue_alert_policies


@dataclass(frozen=True)
class StoredAlertPolicy:
    queue_name: str
    # None: the server's threshold.
    dlq_alert_threshold: int | None
    email_recipients: tuple[str, ...]
    updated_at: datetime


def _from_row(row) -> StoredAlertPolicy:
    m = row._mapping
    return StoredAlertPolicy(
        queue_name=m["queue_name"],
        dlq_alert_threshold=m["dlq_alert_threshold"],
        email_recipients=tuple(m["email_recipients"] or ()),
        updated_at=m["updated_at"],
    )


class AlertPolicyStore:
    """Over the connection of one transaction; the caller owns commit."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def get(self, queue_name: str) -> StoredAlertPolicy | None:
        row = self.connection.execute(
            select(queue_alert_policies).where(queue_alert_policies.c.queue_name == queue_name)
        ).first()
        return _from_row(row) if row is not None else None

    def all(self) -> dict[str, StoredAlertPolicy]:
        return {row.queue_name: _from_row(row) for row in self.connection.execute(select(queue_alert_policies))}

    def put(self, policy: StoredAlertPolicy) -> None:
        insert = postgresql.insert if self.connection.dialect.name == "postgresql" else sqlite.insert
        values = {
            "dlq_alert_threshold": policy.dlq_alert_threshold,
            "email_recipients": list(policy.email_recipients),
            "updated_at": policy.updated_at,
        }
        self.connection.execute(
            insert(queue_alert_policies)
            .values(queue_name=policy.queue_name, **values)
            .on_conflict_do_update(index_elements=["queue_name"], set_=values)
        )


def alert_policies_of(repo) -> AlertPolicyStore:
    """The alert-policy statements inside the transaction of `repo` (a store.repository.Repository)."""
    return AlertPolicyStore(repo.connection)
