"""DLQ alerts: a warning (and an optional webhook POST and email) when a queue's pending DLQ count crosses a threshold.

One alert per crossing: the "alerting" state lives in the database, so it survives restarts and
every replica sees it. When the count drops below the threshold the alert clears, and the next
crossing alerts again. The state is written before the webhook is called: a crash in between
loses that one notification rather than repeating it on every run. The email is written to the
outbox in the same transaction as the state, so it is never lost (queue_service/core/sweep/tasks/alert_emails.py).
"""

from __future__ import annotations

import http.client
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from queue_service.alerts.message import Alert
from queue_service.alerts.outbox import EmailOutbox
from queue_service.alerts.webhook import post_json
from queue_service.clock import Clock
from queue_service.core.sweep.task import Checkpoint, PostJson, RecoveryCounts, SweepContext, SweepTask, no_checkpoint
from queue_service.store.alert_policies import alert_policies_of
from queue_service.store.database import Database

logger = logging.getLogger(__name__)

EVENT = "dlq_threshold_crossed"


@dataclass(frozen=True)
class DlqAlert:
    queue_name: str
    pending_count: int
    threshold: int
    raised_at: datetime

    def describe(self) -> str:
        return (
            f"dead-letter queue of {self.queue_name!r} has {self.pending_count} pending entries "
            f"(alert threshold {self.threshold})"
        )

    def alert(self) -> Alert:
        return Alert(
            kind=EVENT,
            queue_name=self.queue_name,
            subject=f"[queue-service] {self.queue_name}: {self.pending_count} dead letters pending",
            body=(
                f"The {self.describe()}.\n\n"
                f"Raised at {self.raised_at.isoformat()}. No further alert is sent for this queue until "
                "its pending count falls below the threshold and crosses it again.\n"
            ),
        )

    def webhook_body(self, node_id: str) -> dict[str, Any]:
        return {
            "event": EVENT,
            "queue_name": self.queue_name,
            "pending_count": self.pending_count,
            "threshold": self.threshold,
            "raised_at": self.raised_at.isoformat(),
            "node_id": node_id,
            # Chat webhooks (Slack, Mattermost) show `text` as is.
            "text": f"queue-service: {self.describe()}",
        }


@dataclass(frozen=True)
class AlertCounts:
    raised: int = 0
    cleared: int = 0
    webhook_failures: int = 0


@dataclass(frozen=True)
class DlqAlertsConfig:
    # The server's threshold of pending entries; a queue's alert policy may set its own. Zero is off.
    threshold: int = 100
    webhook_url: str = ""
    webhook_timeout: timedelta = timedelta(seconds=5)
    node_id: str = ""


class DlqAlerter(SweepTask[AlertCounts]):
    name = "dlq_alerts"

    def __init__(
        self,
        database: Database,
        clock: Clock,
        config: DlqAlertsConfig = DlqAlertsConfig(),
        *,
        post: PostJson = post_json,
        email_outbox: EmailOutbox | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.config = config
        self.post = post
        self.email_outbox = email_outbox

    @classmethod
    def for_sweep(cls, context: SweepContext) -> DlqAlerter:
        settings = context.settings
        config = DlqAlertsConfig(
            threshold=settings.dlq_alert_threshold,
            webhook_url=settings.dlq_alert_webhook_url,
            webhook_timeout=settings.webhook_timeout,
            node_id=context.node_id,
        )
        return cls(
            context.jobs.database,
            context.jobs.clock,
            config,
            post=context.post,
            email_outbox=EmailOutbox(settings.alert_email),
        )

    def run_once(self, checkpoint: Checkpoint = no_checkpoint) -> AlertCounts:
        """Raise alerts for queues that reached the threshold, clear those that fell below it.

        `checkpoint` runs after each webhook call, which may take up to its time-out."""
        raised: list[DlqAlert] = []
        cleared = 0
        with self.database.transaction() as repo:
            policies = alert_policies_of(repo).all()
            if self.config.threshold <= 0 and not any(policy.dlq_alert_threshold for policy in policies.values()):
                return AlertCounts()

            def threshold_of(queue_name: str) -> int:
                """The queue's own threshold, else the server's; 0 is off."""
                policy = policies.get(queue_name)
                if policy is not None and policy.dlq_alert_threshold is not None:
                    return policy.dlq_alert_threshold
                return self.config.threshold

            alerts = repo.lock_dlq_alerts()
            pending = repo.pending_dead_letter_counts()
            now = self.clock.now()
            for queue_name, count in sorted(pending.items()):
                current = alerts.get(queue_name)
                threshold = threshold_of(queue_name)
                if 0 < threshold <= count and not (current and current.alerting):
                    repo.raise_dlq_alert(queue_name, pending_count=count, threshold=threshold, now=now)
                    alert = DlqAlert(queue_name, count, threshold, now)
                    if self.email_outbox is not None:
                        policy = policies.get(queue_name)
                        recipients = policy.email_recipients if policy else ()
                        self.email_outbox.add(repo, alert.alert(), now=now, queue_recipients=recipients)
                    raised.append(alert)
            for queue_name, alert in alerts.items():
                count = pending.get(queue_name, 0)
                threshold = threshold_of(queue_name)
                # A threshold turned off (0) clears a raised alert too.
                if alert.alerting and (threshold <= 0 or count < threshold):
                    repo.clear_dlq_alert(queue_name, pending_count=count, now=now)
                    cleared += 1
                    logger.info("DLQ alert cleared: %r is down to %d pending entries", queue_name, count)
        failures = 0
        for alert in raised:
            if not self._notify(alert):
                failures += 1
            checkpoint()
        return AlertCounts(len(raised), cleared, failures)

    def _notify(self, alert: DlqAlert) -> bool:
        """Log the alert and POST it to the webhook; False if the webhook failed (never raises)."""
        logger.warning("DLQ alert: %s", alert.describe())
        if not self.config.webhook_url:
            return True
        try:
            self.post(
                self.config.webhook_url,
                alert.webhook_body(self.config.node_id),
                self.config.webhook_timeout.total_seconds(),
            )
        except (OSError, ValueError, http.client.HTTPException) as error:
            # URLError, HTTPError and time-outs are OSErrors; a broken webhook must not fail the sweep.
            logger.error("DLQ alert webhook for %r failed: %s", alert.queue_name, error)
            return False
        return True

    def add_counts(self, result: AlertCounts, counts: RecoveryCounts) -> None:
        counts.dead_letter_alerts += result.raised
        counts.dead_letter_alerts_cleared += result.cleared
        counts.alert_webhook_failures += result.webhook_failures
