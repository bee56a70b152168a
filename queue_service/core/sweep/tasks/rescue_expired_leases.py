"""ACTIVE jobs whose lease passed count as a failed run ("lease expired"), then retry or die by their
policy; a run a cancellation asked to stop ends its job CANCELLED instead."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from queue_service.core.cancelled_runs import end_cancelled_run
from queue_service.core.jobs import LEASE_EXPIRED_TYPE
from queue_service.core.sweep.task import (
    Checkpoint,
    JobBatchTask,
    RecoveryCounts,
    no_checkpoint,
)
from queue_service.domain import ErrorInfo

LEASE_EXPIRED_MESSAGE = "lease expired"


@dataclass(frozen=True)
class StalledCounts:
    retried: int = 0
    dead_lettered: int = 0
    # Runs asked to stop by a cancellation that never reported: their jobs are CANCELLED, not retried.
    cancelled: int = 0


class RescueExpiredLeases(JobBatchTask[StalledCounts]):
    """Jobs whose lease passed (leased jobs) or that stayed silent past the stall timeout (TrackStart
    sets the lease to it) fail with reason "lease expired", exactly as a reported failure does."""

    name = "stalled_jobs"

    def run_once(self, checkpoint: Checkpoint = no_checkpoint) -> StalledCounts:
        jobs, batch_size = self.jobs, self.config.batch_size
        retried = dead_lettered = cancelled = 0
        # (queue, retry time) of each job retried: its waiting leases wake when it is due.
        retry_times: list[tuple[str, datetime]] = []
        while True:
            with jobs.database.transaction() as repo:
                now = jobs.clock.now()
                expired = repo.lock_expired_leases(now=now, limit=batch_size)
                for job in expired:
                    if job.cancel_requested_at is not None:
                        end_cancelled_run(jobs, repo, job, now=now)
                        cancelled += 1
                failures = [
                    (
                        job,
                        ErrorInfo(
                            LEASE_EXPIRED_MESSAGE,
                            LEASE_EXPIRED_TYPE,
                            f"attempt {job.attempt_number} (worker {job.worker_id or 'unknown'}) sent no report "
                            f"before its lease expired at {job.lease_expires_at.isoformat()}",
                            job.attempt_number,
                            now,
                        ),
                    )
                    for job in expired
                    if job.cancel_requested_at is None
                ]
                # Set-wise: one statement per batch for the retried jobs and one for the dead ones.
                outcomes = jobs.apply_failures(repo, failures, lease_expired=True, now=now)
                for (job, _), outcome in zip(failures, outcomes, strict=True):
                    if outcome.decision.should_retry:
                        retried += 1
                        retry_times.append((job.queue_name, outcome.decision.next_retry_at or now))
                    else:
                        dead_lettered += 1
            checkpoint()
            if len(expired) < batch_size:
                break
        jobs.notify_when_ready(retry_times, jobs.clock.now())
        return StalledCounts(retried, dead_lettered, cancelled)

    def add_counts(self, result: StalledCounts, counts: RecoveryCounts) -> None:
        counts.stalled_jobs += result.retried + result.dead_lettered
        counts.stalled_jobs_dead_lettered += result.dead_lettered
        counts.stalled_jobs_cancelled += result.cancelled
