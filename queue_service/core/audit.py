"""The audit trail of admin actions: written in the transaction of the action, listed newest first."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from queue_service.clock import Clock
from queue_service.core import paging
from queue_service.core.errors import InvalidArgument
from queue_service.core.validation import check_text
from queue_service.store.admin_repository import AdminRepository
from queue_service.store.database import Database
from queue_service.store.records import AuditEventRecord

MAX_ACTOR_LENGTH = 255


def dead_letter_target(entry_id: str) -> str:
    return f"dead_letter/{entry_id}"


def queue_target(name: str) -> str:
    return f"queue/{name}"


def record(
    admin: AdminRepository, *, actor: str, action: str, target: str, parameters: dict[str, Any], now: datetime
) -> int:
    """Add one event inside the caller's transaction, so it exists exactly when the action does."""
    return admin.insert_audit_event(
        actor=(actor or "anonymous")[:MAX_ACTOR_LENGTH], action=action, target=target, parameters=parameters, now=now
    )


@dataclass(frozen=True)
class AuditQuery:
    actor: str = ""
    action: str = ""
    target: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None


class AuditLog:
    def __init__(self, database: Database, clock: Clock, page_tokens: paging.PageTokens | None = None) -> None:
        self.database = database
        self.clock = clock
        self.page_tokens = page_tokens or paging.PageTokens.ephemeral()

    def list(self, query: AuditQuery, *, page_size: int = 0, page_token: str = "") -> paging.Page[AuditEventRecord]:
        check_text(query.actor, "actor", MAX_ACTOR_LENGTH)
        check_text(query.action, "action", 64)
        check_text(query.target, "target", 400)
        if query.created_after and query.created_before and query.created_after >= query.created_before:
            raise InvalidArgument("created_after must be before created_before", field="created_after")
        limit = paging.page_size(page_size)
        filters = asdict(query)
        key = self.page_tokens.decode(page_token, filters, shape=(int,))
        with self.database.transaction() as repo:
            events = AdminRepository.of(repo).list_audit_events(
                actor=query.actor or None,
                action=query.action or None,
                target=query.target or None,
                created_after=query.created_after,
                created_before=query.created_before,
                before_id=key[0] if key else None,
                limit=limit + 1,
            )
        token = self.page_tokens.next(events, limit, lambda event: (event.id,), filters)
        return paging.Page(events[:limit], token)
