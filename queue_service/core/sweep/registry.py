"""Every task of the sweep, in the order one sweep runs them. A new task is a module in tasks/ and
a line here."""

from __future__ import annotations

from collections.abc import Callable

from queue_service.core.sweep.task import SweepContext, SweepTask
from queue_service.core.sweep.tasks.alert_emails import AlertEmailDelivery
from queue_service.core.sweep.tasks.clean_finished import CleanActivity, CleanCompletedJobs, CleanRetryLog
from queue_service.core.sweep.tasks.dead_letter_exhausted import DeadLetterExhausted
from queue_service.core.sweep.tasks.dlq_alerts import DlqAlerter
from queue_service.core.sweep.tasks.promote_due_retries import PromoteDueRetries
from queue_service.core.sweep.tasks.rescue_expired_leases import RescueExpiredLeases

TASKS: tuple[Callable[[SweepContext], SweepTask], ...] = (
    # Stalled jobs first: their failures may exhaust or schedule retries the later tasks see.
    RescueExpiredLeases.for_sweep,
    DeadLetterExhausted.for_sweep,
    PromoteDueRetries.for_sweep,
    CleanCompletedJobs.for_sweep,
    CleanRetryLog.for_sweep,
    CleanActivity.for_sweep,
    DlqAlerter.for_sweep,
    # After the alerts: an alert raised by this sweep goes out in it.
    AlertEmailDelivery.for_sweep,
)


def build_tasks(context: SweepContext) -> list[SweepTask]:
    return [build(context) for build in TASKS]
