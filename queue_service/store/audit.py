"""Statements over audit_events: who did what to which target, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert

from queue_service.domain import AuditEventRecord
from queue_service.store.schema import audit_events
from queue_service.store.statements import TableStatements, newest_first_page


def audit_from_row(row) -> AuditEventRecord:
    m = row._mapping
    return AuditEventRecord(
        id=m["id"],
        actor=m["actor"],
        action=m["action"],
        target=m["target"],
        parameters=m["parameters"] or {},
        created_at=m["created_at"],
    )


class AuditTable(TableStatements):
    """The audit statements of one transaction."""

    def insert_audit_event(
        self, *, actor: str, action: str, target: str, parameters: dict[str, Any], now: datetime
    ) -> int:
        return self.connection.execute(
            insert(audit_events)
            .values(actor=actor, action=action, target=target, parameters=parameters, created_at=now)
            .returning(audit_events.c.id)
        ).scalar_one()

    def list_audit_events(
        self,
        *,
        actor: str | None,
        action: str | None,
        target: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        before_id: int | None,
        limit: int,
    ) -> list[AuditEventRecord]:
        c = audit_events.c
        conditions = []
        if actor:
            conditions.append(c.actor == actor)
        if action:
            conditions.append(c.action == action)
        if target:
            conditions.append(c.target == target)
        statement = newest_first_page(
            audit_events,
            conditions,
            created_after=created_after,
            created_before=created_before,
            before_id=before_id,
            limit=limit,
        )
        return [audit_from_row(row) for row in self.connection.execute(statement)]
