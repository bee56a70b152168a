"""The sweep task that sends the email outbox.

Each due email is sent outside any transaction, then its row is updated compare-and-set on the
state it was read in. A message the server refuses is retried after a growing delay, up to
`max_attempts` in all; then the row is marked failed and stays as the record. An unreachable
server ends the run after one connection attempt (bounded by the SMTP time-out), so a down server
costs a sweep at most that; it is recorded on the email tried, but uses up none of its attempts:
however long the server is down, every alert stays pending until it is back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from queue_service.alerts.email import EmailSettings, MessageRefused, SmtpMailer, SmtpServerUnavailable
from queue_service.alerts.message import Alert
from queue_service.clock import Clock
from queue_service.core.sweep.task import Checkpoint, RecoveryCounts, SweepContext, SweepTask, no_checkpoint
from queue_service.store.alert_outbox import OutboxEmail, outbox_of
from queue_service.store.database import Database

logger = logging.getLogger(__name__)

FIRST_RETRY_DELAY = timedelta(minutes=1)
MAX_RETRY_DELAY = timedelta(hours=1)
# Room for what an SMTP server says in last_error, without storing a whole transcript.
MAX_ERROR_LENGTH = 1000


@dataclass(frozen=True)
class DeliveryCounts:
    sent: int = 0
    # Attempts that failed and will be tried again.
    failed_attempts: int = 0
    # Emails out of attempts, now recorded as failed.
    given_up: int = 0


def retry_delay(attempts: int) -> timedelta:
    """Delay after the `attempts`-th failed attempt: 1 min, 2 min, 4 min, ... at most 1 h."""
    return min(FIRST_RETRY_DELAY * (2 ** min(attempts - 1, 16)), MAX_RETRY_DELAY)


@dataclass(frozen=True)
class AlertEmailsConfig:
    email: EmailSettings = EmailSettings()
    batch_size: int = 100


class AlertEmailDelivery(SweepTask[DeliveryCounts]):
    """`run_once` sends what is due and returns its counts."""

    name = "alert_emails"

    def __init__(
        self, database: Database, clock: Clock, config: AlertEmailsConfig, *, mailer: SmtpMailer | None = None
    ) -> None:
        self.database = database
        self.clock = clock
        self.config = config
        self.mailer = mailer or SmtpMailer(config.email)

    @classmethod
    def for_sweep(cls, context: SweepContext) -> AlertEmailDelivery:
        config = AlertEmailsConfig(context.settings.alert_email, context.settings.batch_size)
        return cls(context.jobs.database, context.jobs.clock, config)

    def run_once(self, checkpoint: Checkpoint = no_checkpoint) -> DeliveryCounts:
        if not self.config.email.enabled:
            return DeliveryCounts()
        with self.database.transaction() as repo:
            due = outbox_of(repo).due(now=self.clock.now(), limit=self.config.batch_size)
        if not due:
            return DeliveryCounts()
        sent = failed = given_up = 0
        try:
            with self.mailer.session() as session:
                for email in due:
                    try:
                        session.send(Alert(email.kind, email.queue_name, email.subject, email.body), email.recipients)
                    except MessageRefused as error:
                        if self._record_failure(email, str(error), counted=True):
                            given_up += 1
                        else:
                            failed += 1
                    else:
                        self._record_sent(email)
                        sent += 1
                    checkpoint()
        except SmtpServerUnavailable as error:
            # The email being sent when the session broke is recorded; the rest wait untried.
            logger.error("alert email delivery stopped: %s", error)
            self._record_failure(due[sent + failed + given_up], str(error), counted=False)
            failed += 1
        return DeliveryCounts(sent=sent, failed_attempts=failed, given_up=given_up)

    def _record_sent(self, email: OutboxEmail) -> None:
        with self.database.transaction() as repo:
            outbox_of(repo).mark_sent(email, now=self.clock.now())

    def _record_failure(self, email: OutboxEmail, error: str, *, counted: bool) -> bool:
        """Record a failed attempt; True if that was its last one."""
        attempts = email.attempts + 1 if counted else email.attempts
        now = self.clock.now()
        last = counted and attempts >= self.config.email.max_attempts
        with self.database.transaction() as repo:
            outbox_of(repo).mark_failed_attempt(
                email,
                counted=counted,
                error=error[:MAX_ERROR_LENGTH],
                retry_at=None if last else now + retry_delay(max(attempts, 1)),
                now=now,
            )
        if last:
            logger.error(
                "alert email %d (%s, queue %r) refused %d times, giving up: %s",
                email.id,
                email.kind,
                email.queue_name,
                attempts,
                error,
            )
        return last

    def add_counts(self, result: DeliveryCounts, counts: RecoveryCounts) -> None:
        counts.alert_emails_sent += result.sent
        counts.alert_email_failures += result.failed_attempts
        counts.alert_emails_given_up += result.given_up
