"""Writing alerts to the email outbox, inside the transaction that raises them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from queue_service.alerts.email import EmailSettings
from queue_service.alerts.message import Alert
from queue_service.store.alert_outbox import NewOutboxEmail, outbox_of


def recipients_for(settings: EmailSettings, queue_recipients: Iterable[str] = ()) -> tuple[str, ...]:
    """The server-wide recipients, then the queue's own, each once."""
    return tuple(dict.fromkeys([*settings.recipients, *queue_recipients]))


class EmailOutbox:
    """Queues alerts for email; a no-op when email is off or nobody is to receive the alert."""

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings

    def add(self, repo, alert: Alert, *, now: datetime, queue_recipients: Iterable[str] = ()) -> bool:
        if not self.settings.enabled:
            return False
        recipients = recipients_for(self.settings, queue_recipients)
        if not recipients:
            return False
        outbox_of(repo).add(
            NewOutboxEmail(alert.kind, alert.queue_name, alert.subject, alert.body, recipients), now=now
        )
        return True
