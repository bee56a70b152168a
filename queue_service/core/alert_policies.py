"""Each queue's alert policy: its own DLQ alert threshold and the email recipients of its alerts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from queue_service.clock import Clock
from queue_service.core import audit
from queue_service.core.errors import InvalidArgument, NotFound
from queue_service.core.validation import require_name
from queue_service.store.alert_policies import StoredAlertPolicy, alert_policies_of
from queue_service.store.database import Database

MAX_DLQ_ALERT_THRESHOLD = 1_000_000
MAX_EMAIL_RECIPIENTS = 20
# RFC 5321's limit on a forward path.
MAX_EMAIL_ADDRESS_LENGTH = 254
# One mailbox, no display name: what SMTP's RCPT TO takes.
_ADDRESS = re.compile(r"^[^@\s,;<>()\[\]\"]+@[^@\s,;<>()\[\]\"]+\.[^@\s,;<>()\[\]\".]+$")


@dataclass(frozen=True)
class QueueAlertPolicy:
    queue_name: str
    # None: the server's threshold; 0: no DLQ alerts for this queue.
    dlq_alert_threshold: int | None = None
    email_recipients: tuple[str, ...] = ()
    # None until the queue's policy is first set.
    updated_at: datetime | None = None


def _from_stored(stored: StoredAlertPolicy) -> QueueAlertPolicy:
    return QueueAlertPolicy(stored.queue_name, stored.dlq_alert_threshold, stored.email_recipients, stored.updated_at)


def valid_recipients(addresses: Sequence[str], field: str) -> tuple[str, ...]:
    if len(addresses) > MAX_EMAIL_RECIPIENTS:
        raise InvalidArgument(f"{field} has more than {MAX_EMAIL_RECIPIENTS} addresses", field=field)
    cleaned: list[str] = []
    for index, address in enumerate(addresses):
        address = address.strip()
        if len(address) > MAX_EMAIL_ADDRESS_LENGTH or not _ADDRESS.match(address):
            raise InvalidArgument(
                f"{field}[{index}] is not an email address such as ops@example.com", field=f"{field}[{index}]"
            )
        cleaned.append(address)
    return tuple(dict.fromkeys(cleaned))


class AlertPolicies:
    def __init__(self, database: Database, clock: Clock, *, max_name_length: int) -> None:
        self.database = database
        self.clock = clock
        self.max_name_length = max_name_length

    def get(self, queue_name: str) -> QueueAlertPolicy:
        name = require_name(queue_name, "queue_name", self.max_name_length)
        with self.database.snapshot() as repo:
            if repo.get_queue(name) is None:
                raise NotFound(f"queue {name!r} not found", field="queue_name")
            stored = alert_policies_of(repo).get(name)
        return _from_stored(stored) if stored else QueueAlertPolicy(name)

    def update(self, policy: QueueAlertPolicy, *, actor: str) -> QueueAlertPolicy:
        name = require_name(policy.queue_name, "alert_policy.queue_name", self.max_name_length)
        threshold = policy.dlq_alert_threshold
        if threshold is not None and not 0 <= threshold <= MAX_DLQ_ALERT_THRESHOLD:
            raise InvalidArgument(
                f"alert_policy.dlq_alert_threshold must be between 0 and {MAX_DLQ_ALERT_THRESHOLD}, got {threshold}",
                field="alert_policy.dlq_alert_threshold",
            )
        recipients = valid_recipients(policy.email_recipients, "alert_policy.email_recipients")
        with self.database.transaction() as repo:
            now = self.clock.now()
            if repo.get_queue(name) is None:
                raise NotFound(f"queue {name!r} not found", field="alert_policy.queue_name")
            stored = StoredAlertPolicy(name, threshold, recipients, now)
            alert_policies_of(repo).put(stored)
            audit.record(
                repo,
                actor=actor,
                action="UpdateQueueAlertPolicy",
                target=audit.queue_target(name),
                parameters={"dlq_alert_threshold": threshold, "email_recipients": list(recipients)},
                now=now,
            )
        return _from_stored(stored)
