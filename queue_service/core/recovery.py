"""One recovery sweep: its tasks in order, the single-sweeper lock, and the run record.

At most one sweep runs at a time across every replica sharing the database: a sweep first takes
the "recovery-sweep" lease (and, within a process, a lock), keeps it alive between batches, and
gives it up at the end. A second sweep asked for meanwhile gets Aborted, naming the running one.
Each task is isolated: one that raises is logged and recorded, and the sweep goes on with the
next, except when the database is unreachable, the sweep lost its lock or the node is stopping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from enum import StrEnum

from queue_service.alerts.delivery import AlertEmailDelivery
from queue_service.alerts.email import EmailSettings
from queue_service.alerts.outbox import EmailOutbox
from queue_service.core import maintenance
from queue_service.core.dlq_alerts import DlqAlerter, PostJson, post_json
from queue_service.core.errors import Aborted
from queue_service.core.jobs import JobManager
from queue_service.core.leadership import Lease, default_node_id
from queue_service.core.queues import MAX_ACTIVITY_PERIOD
from queue_service.core.recovery_runs import RecoveryRuns
from queue_service.domain import RecoveryRunRecord
from queue_service.store.errors import StoreUnavailable

logger = logging.getLogger(__name__)

SWEEP_LOCK = "recovery-sweep"


class Trigger(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    CLI = "cli"


@dataclass(frozen=True)
class RecoverySettings:
    # Seconds between scheduled sweeps; zero turns the scheduler (and this replica's candidacy) off.
    interval: timedelta = timedelta(minutes=5)
    batch_size: int = 1000
    # Zero keeps rows forever.
    completed_retention: timedelta = timedelta(days=7)
    retry_log_retention: timedelta = timedelta(days=30)
    # Pending DLQ entries per queue that raise an alert; zero turns alerts off.
    dlq_alert_threshold: int = 100
    dlq_alert_webhook_url: str = ""
    webhook_timeout: timedelta = timedelta(seconds=5)
    # SMTP for alert emails; off without a host.
    alert_email: EmailSettings = EmailSettings()
    # A dead leader is replaced within one term.
    leader_lease_term: timedelta = timedelta(seconds=30)
    # None: one leader lease term, so that a sweeper killed mid-sweep blocks the next sweep no longer
    # than a dead leader blocks the next election. A running sweep renews it after every batch.
    sweep_lock_ttl: timedelta | None = None
    node_id: str = ""


@dataclass
class RecoveryCounts:
    """What one sweep did; stored as the run's `counts`, named as in the RecoveryTaskCounts message."""

    due_retries: int = 0
    # Stalled jobs counted as failed runs; of those, the ones that went to the DLQ.
    stalled_jobs: int = 0
    stalled_jobs_dead_lettered: int = 0
    exhausted_jobs: int = 0
    deleted_completed_jobs: int = 0
    deleted_retry_log_rows: int = 0
    deleted_activity_rows: int = 0
    dead_letter_alerts: int = 0
    dead_letter_alerts_cleared: int = 0
    alert_webhook_failures: int = 0
    alert_emails_sent: int = 0
    alert_email_failures: int = 0
    alert_emails_given_up: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


Checkpoint = maintenance.Checkpoint
Task = Callable[[RecoveryCounts, Checkpoint], None]


class SweepInterrupted(Exception):
    """The sweep must stop at once: its lock was taken over, or the node is shutting down."""


class Recovery:
    """Runs sweeps for one node. Thread-safe; `run_once` is what schedulers, the RPC and the CLI call."""

    def __init__(
        self,
        jobs: JobManager,
        settings: RecoverySettings | None = None,
        *,
        tasks: Sequence[tuple[str, Task]] | None = None,
        post: PostJson = post_json,
    ) -> None:
        self.jobs = jobs
        self.settings = settings or RecoverySettings()
        self.node_id = self.settings.node_id or default_node_id()
        self.database = jobs.database
        self.clock = jobs.clock
        self.runs = RecoveryRuns(self.database, self.clock, self.node_id, jobs.page_tokens)
        self.sweep_lock = Lease(
            self.database,
            self.clock,
            SWEEP_LOCK,
            self.node_id,
            self.settings.sweep_lock_ttl or self.settings.leader_lease_term,
            log_level=logging.DEBUG,
        )
        self.alerter = DlqAlerter(
            self.database,
            self.clock,
            threshold=self.settings.dlq_alert_threshold,
            webhook_url=self.settings.dlq_alert_webhook_url,
            webhook_timeout=self.settings.webhook_timeout,
            node_id=self.node_id,
            post=post,
            email_outbox=EmailOutbox(self.settings.alert_email),
        )
        self.alert_emails = AlertEmailDelivery(
            self.database, self.clock, self.settings.alert_email, batch_size=self.settings.batch_size
        )
        self.tasks = list(tasks) if tasks is not None else self.default_tasks()
        self._sweeping = threading.Lock()
        self._current: RecoveryRunRecord | None = None
        self._stopping = threading.Event()

    def default_tasks(self) -> list[tuple[str, Task]]:
        jobs, settings = self.jobs, self.settings
        batch = self.database.sweep_batch_size(settings.batch_size)

        def stalled_jobs(counts: RecoveryCounts, checkpoint: Checkpoint) -> None:
            result = maintenance.rescue_stalled_jobs(jobs, batch_size=batch, checkpoint=checkpoint)
            counts.stalled_jobs += result.retried + result.dead_lettered
            counts.stalled_jobs_dead_lettered += result.dead_lettered

        def exhausted_jobs(counts: RecoveryCounts, checkpoint: Checkpoint) -> None:
            counts.exhausted_jobs += maintenance.dead_letter_exhausted_jobs(
                jobs, batch_size=batch, checkpoint=checkpoint
            )

        def due_retries(counts: RecoveryCounts, checkpoint: Checkpoint) -> None:
            counts.due_retries += maintenance.make_retries_due(jobs, batch_size=batch, checkpoint=checkpoint)

        def completed_retention(counts: RecoveryCounts, checkpoint: Checkpoint) -> None:
            if settings.completed_retention > timedelta(0):
                counts.deleted_completed_jobs += maintenance.delete_old_completed_jobs(
                    self.database,
                    self.clock,
                    older_than=settings.completed_retention,
                    batch_size=batch,
                    checkpoint=checkpoint,
                )

        def retry_log_retention(counts: RecoveryCounts, checkpoint: Checkpoint) -> None:
            if settings.retry_log_retention > timedelta(0):
                counts.deleted_retry_log_rows += maintenance.delete_old_retry_log(
                    self.database,
                    self.clock,
                    older_than=settings.retry_log_retention,
                    batch_size=batch,
                    checkpoint=checkpoint,
                )

        def activity_retention(counts: RecoveryCounts, checkpoint: Checkpoint) -> None:
            # GetQueueActivity never reads further back than its longest period.
            counts.deleted_activity_rows += maintenance.delete_old_activity(
                self.database, self.clock, older_than=MAX_ACTIVITY_PERIOD, batch_size=batch, checkpoint=checkpoint
            )

        def dlq_alerts(counts: RecoveryCounts, checkpoint: Checkpoint) -> None:
            result = self.alerter.run_once(checkpoint)
            counts.dead_letter_alerts += result.raised
            counts.dead_letter_alerts_cleared += result.cleared
            counts.alert_webhook_failures += result.webhook_failures

        def alert_emails(counts: RecoveryCounts, checkpoint: Checkpoint) -> None:
            result = self.alert_emails.run_once(checkpoint)
            counts.alert_emails_sent += result.sent
            counts.alert_email_failures += result.failed_attempts
            counts.alert_emails_given_up += result.given_up

        # Stalled jobs first: their failures may exhaust or schedule retries the later tasks see.
        return [
            ("stalled_jobs", stalled_jobs),
            ("exhausted_jobs", exhausted_jobs),
            ("due_retries", due_retries),
            ("completed_retention", completed_retention),
            ("retry_log_retention", retry_log_retention),
            ("activity_retention", activity_retention),
            ("dlq_alerts", dlq_alerts),
            # After the alerts: an alert raised by this sweep goes out in it.
            ("alert_emails", alert_emails),
        ]

    def run_once(self, trigger: Trigger | str = Trigger.MANUAL, *, actor: str | None = None) -> RecoveryRunRecord:
        """Sweep now and return the finished run (SUCCEEDED, or FAILED with its error).

        `actor` (an admin asking through the API) is recorded in the audit trail with the run.
        Raises Aborted if a sweep is already running here or on another node."""
        if not self._sweeping.acquire(blocking=False):
            current = self._current
            since = f" (run {current.id}, started {current.started_at.isoformat()})" if current else ""
            raise Aborted(f"a recovery sweep is already running on this node{since}", reason="RECOVERY_RUNNING")
        try:
            if not self.sweep_lock.elect():
                holder = self.sweep_lock.current()
                where = f"node {holder.holder!r} since {holder.elected_at.isoformat()}" if holder else "another node"
                raise Aborted(f"a recovery sweep is already running on {where}", reason="RECOVERY_RUNNING")
            try:
                return self._sweep(Trigger(trigger), actor)
            finally:
                self._release_sweep_lock()
        finally:
            self._current = None
            self._sweeping.release()

    def _release_sweep_lock(self) -> None:
        try:
            self.sweep_lock.resign()
        except StoreUnavailable as error:
            logger.warning("could not release the sweep lock (it lapses by itself): %s", error)

    def request_stop(self) -> None:
        """Make a running sweep (and any later one) stop after its current batch; for shutdown."""
        self._stopping.set()

    def _checkpoint(self) -> None:
        if self._stopping.is_set():
            raise SweepInterrupted("stopped: the node is shutting down")
        if not self.sweep_lock.renew_if_due():
            raise SweepInterrupted("stopped: another node took the sweep lock over")

    def _sweep(self, trigger: Trigger, actor: str | None) -> RecoveryRunRecord:
        run = self.runs.start(trigger.value, actor=actor)
        self._current = run
        started = time.monotonic()
        counts = RecoveryCounts()
        errors: list[str] = []
        for name, task in self.tasks:
            try:
                task(counts, self._checkpoint)
            except (SweepInterrupted, StoreUnavailable) as error:
                errors.append(f"{name}: {error}")
                logger.error("recovery run %d stopped in %s: %s", run.id, name, error)
                break
            except Exception as error:  # noqa: BLE001 - one broken task must not stop the others
                errors.append(f"{name}: {type(error).__name__}: {error}")
                logger.exception("recovery run %d: task %s failed", run.id, name)
        finished = self.runs.finish(run, counts=counts.to_json(), error="; ".join(errors) or None)
        elapsed = time.monotonic() - started
        self.jobs.events.sweep_finished(duration_seconds=elapsed, counts=counts.to_json(), succeeded=not errors)
        logger.log(
            logging.ERROR if errors else logging.INFO,
            "recovery run %d (%s) %s in %.3fs: %s",
            run.id,
            trigger.value,
            finished.status.value,
            elapsed,
            ", ".join(f"{key}={value}" for key, value in counts.to_json().items() if value) or "nothing to do",
        )
        return finished
