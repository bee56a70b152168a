"""Statements over alert_outbox: alerts waiting for, or done with, email delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from queue_service.store.schema import alert_outbox

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


@dataclass(frozen=True)
class NewOutboxEmail:
    kind: str
    queue_name: str
    subject: str
    body: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class OutboxEmail:
    id: int
    kind: str
    queue_name: str
    subject: str
    body: str
    recipients: tuple[str, ...]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str
    created_at: datetime
    sent_at: datetime | None


def _from_row(row) -> OutboxEmail:
    m = row._mapping
    return OutboxEmail(
        id=m["id"],
        kind=m["kind"],
        queue_name=m["queue_name"],
        subject=m["subject"],
        body=m["body"],
        recipients=tuple(m["recipients"] or ()),
        status=m["status"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        last_error=m["last_error"],
        created_at=m["created_at"],
        sent_at=m["sent_at"],
    )


class AlertOutboxStore:
    """Over the connection of one transaction; the caller owns commit."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def add(self, email: NewOutboxEmail, *, now: datetime) -> int:
        return self.connection.execute(
            insert(alert_outbox)
            .values(
                kind=email.kind,
                queue_name=email.queue_name,
                subject=email.subject,
                body=email.body,
                recipients=list(email.recipients),
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(alert_outbox.c.id)
        ).scalar_one()

    def due(self, *, now: datetime, limit: int) -> list[OutboxEmail]:
        """Pending emails whose next attempt is due, oldest first."""
        rows = self.connection.execute(
            select(alert_outbox)
            .where(alert_outbox.c.status == PENDING, alert_outbox.c.next_attempt_at <= now)
            .order_by(alert_outbox.c.next_attempt_at, alert_outbox.c.id)
            .limit(limit)
        )
        return [_from_row(row) for row in rows]

    def mark_sent(self, email: OutboxEmail, *, now: datetime) -> bool:
        """Record a delivery; False if the row changed since `email` was read."""
        return self._update_unchanged(
            email,
            status=SENT,
            attempts=email.attempts + 1,
            last_error="",
            next_attempt_at=email.next_attempt_at,
            sent_at=now,
            now=now,
        )

    def mark_failed_attempt(
        self, email: OutboxEmail, *, counted: bool, error: str, retry_at: datetime | None, now: datetime
    ) -> bool:
        """Record a failed attempt: retried at `retry_at`, or given up (status failed) when it is None.
        An attempt that is not `counted` (the server was unreachable) leaves the attempt count as is."""
        return self._update_unchanged(
            email,
            status=PENDING if retry_at is not None else FAILED,
            attempts=email.attempts + 1 if counted else email.attempts,
            last_error=error,
            next_attempt_at=retry_at or email.next_attempt_at,
            sent_at=None,
            now=now,
        )

    def _update_unchanged(
        self,
        email: OutboxEmail,
        *,
        status: str,
        attempts: int,
        last_error: str,
        next_attempt_at: datetime,
        sent_at: datetime | None,
        now: datetime,
    ) -> bool:
        result = self.connection.execute(
            update(alert_outbox)
            .where(
                alert_outbox.c.id == email.id,
                alert_outbox.c.status == PENDING,
                alert_outbox.c.attempts == email.attempts,
                alert_outbox.c.next_attempt_at == email.next_attempt_at,
            )
            .values(
                status=status,
                attempts=attempts,
                last_error=last_error,
                next_attempt_at=next_attempt_at,
                sent_at=sent_at,
                updated_at=now,
            )
        )
        return result.rowcount == 1

    def list_recent(self, *, limit: int) -> list[OutboxEmail]:
        rows = self.connection.execute(select(alert_outbox).order_by(alert_outbox.c.id.desc()).limit(limit))
        return [_from_row(row) for row in rows]


def outbox_of(repo) -> AlertOutboxStore:
    """The outbox statements inside the transaction of `repo` (a store.repository.Repository)."""
    return AlertOutboxStore(repo.connection)
