"""The audit trail of admin actions and refused credentials: written in the transaction of the
action, listed newest first."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from queue_service.clock import Clock
from queue_service.core import paging
from queue_service.core.errors import InvalidArgument
from queue_service.core.validation import check_text
from queue_service.domain import AuditEventRecord
from queue_service.store.database import Database
from queue_service.store.repository import Repository

logger = logging.getLogger(__name__)

MAX_ACTOR_LENGTH = 255
# A call refused for its token: an unknown one, or one whose role may not call the method.
AUTHENTICATION_FAILED = "AuthenticationFailed"
# Refusals audited per minute and process: a flood of guesses must not become a flood of writes.
# The ones left out are counted in the next record.
MAX_REFUSALS_AUDITED_PER_MINUTE = 60


def dead_letter_target(entry_id: str) -> str:
    return f"dead_letter/{entry_id}"


def queue_target(name: str) -> str:
    return f"queue/{name}"


def job_target(job_id: str) -> str:
    return f"job/{job_id}"


def record(repo: Repository, *, actor: str, action: str, target: str, parameters: dict[str, Any], now: datetime) -> int:
    """Add one event inside the caller's transaction, so it exists exactly when the action does."""
    return repo.insert_audit_event(
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
        self._refusals_lock = threading.Lock()
        self._refusals_window: datetime | None = None
        self._refusals_in_window = 0
        self._refusals_left_out = 0

    def record_refused_call(self, *, actor: str, method: str, reason: str, details: dict[str, str]) -> bool:
        """Audit a call refused for its credentials, unless this minute's share is used up; True if written.

        Never raises: the caller is answering the refused call and has nothing to do with a failure here.
        """
        now = self.clock.now()
        with self._refusals_lock:
            if self._refusals_window is None or now - self._refusals_window >= timedelta(minutes=1):
                self._refusals_window, self._refusals_in_window = now, 0
            if self._refusals_in_window >= MAX_REFUSALS_AUDITED_PER_MINUTE:
                self._refusals_left_out += 1
                return False
            self._refusals_in_window += 1
            left_out, self._refusals_left_out = self._refusals_left_out, 0
        parameters: dict[str, Any] = {"method": method, "reason": reason, **details}
        if left_out:
            parameters["refusals_not_audited_before"] = left_out
        try:
            with self.database.transaction() as repo:
                record(
                    repo,
                    actor=actor,
                    action=AUTHENTICATION_FAILED,
                    target=f"rpc{method}",
                    parameters=parameters,
                    now=now,
                )
        except Exception:  # noqa: BLE001 - the refusal stands whether or not its record is written
            logger.exception("could not audit a refused call to %s", method)
            return False
        return True

    def list(self, query: AuditQuery, *, page_size: int = 0, page_token: str = "") -> paging.Page[AuditEventRecord]:
        check_text(query.actor, "actor", MAX_ACTOR_LENGTH)
        check_text(query.action, "action", 64)
        check_text(query.target, "target", 400)
        if query.created_after and query.created_before and query.created_after >= query.created_before:
            raise InvalidArgument("created_after must be before created_before", field="created_after")
        limit = paging.page_size(page_size)
        filters = asdict(query)
        key = self.page_tokens.decode(page_token, filters, shape=(int,))
        with self.database.snapshot() as repo:
            events = repo.list_audit_events(
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
