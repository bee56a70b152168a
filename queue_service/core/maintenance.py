"""The job tasks of a recovery sweep, each a `run_once`-style function that returns its counts.

Every task works in batches of at most `batch_size` rows, one short transaction per batch, and
skips rows another transaction has locked (PostgreSQL FOR UPDATE SKIP LOCKED), so that leasing
and reporting keep flowing during a sweep. `checkpoint` runs after every batch: the sweep uses it
to keep its lock and to stop if it lost it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from queue_service.clock import Clock
from queue_service.core import states
from queue_service.core.jobs import LEASE_EXPIRED_TYPE, JobManager
from queue_service.core.states import Transition
from queue_service.domain import ACTIVITY_BUCKET_SECONDS, READY_STATES, ErrorInfo
from queue_service.store.database import Database
from queue_service.store.repository import Repository

Checkpoint = Callable[[], None]

LEASE_EXPIRED_MESSAGE = "lease expired"


def _no_checkpoint() -> None:
    return None


def make_retries_due(jobs: JobManager, *, batch_size: int, checkpoint: Checkpoint = _no_checkpoint) -> int:
    """FAILED jobs whose retry time has passed become WAITING. Returns how many."""
    total = 0
    while True:
        with jobs.database.transaction() as repo:
            moved = repo.make_jobs_due(
                now=jobs.clock.now(),
                limit=batch_size,
                from_states=states.sources(Transition.MAKE_DUE),
                to_state=states.target(Transition.MAKE_DUE),
            )
        total += moved
        checkpoint()
        if moved < batch_size:
            break
    if total:
        jobs.notifier.notify()
    return total


@dataclass(frozen=True)
class StalledCounts:
    retried: int = 0
    dead_lettered: int = 0


def rescue_stalled_jobs(jobs: JobManager, *, batch_size: int, checkpoint: Checkpoint = _no_checkpoint) -> StalledCounts:
    """ACTIVE jobs whose lease passed (leased jobs) or that stayed silent past the stall timeout
    (TrackStart sets the lease to it) count as a failed run with reason "lease expired", then
    retry or go to the DLQ by their policy, exactly as a reported failure does."""
    retried = dead_lettered = 0
    while True:
        with jobs.database.transaction() as repo:
            now = jobs.clock.now()
            expired = repo.lock_expired_leases(now=now, limit=batch_size)
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
            ]
            # Set-wise: one statement per batch for the retried jobs and one for the dead ones.
            for outcome in jobs.apply_failures(repo, failures, lease_expired=True, now=now):
                if outcome.decision.should_retry:
                    retried += 1
                else:
                    dead_lettered += 1
        checkpoint()
        if len(expired) < batch_size:
            break
    if retried:
        jobs.notifier.notify()
    return StalledCounts(retried, dead_lettered)


def dead_letter_exhausted_jobs(jobs: JobManager, *, batch_size: int, checkpoint: Checkpoint = _no_checkpoint) -> int:
    """Jobs waiting for a retry their current policy no longer allows go to the DLQ. Returns how many.

    Walks the retry-pending jobs once in id order. Each page is read without locks; only the
    exhausted jobs in it are locked (skipping any a worker is leasing right now) and moved."""
    with jobs.database.transaction() as repo:
        fewest_retries = jobs.fewest_retries_allowed(repo)
    waiting = frozenset(READY_STATES) & states.sources(Transition.MOVE_TO_DEAD_LETTER)
    total = 0
    after_id = 0
    while True:
        with jobs.database.transaction() as repo:
            page = repo.retry_pending_jobs(after_id=after_id, limit=batch_size, min_runs_in_budget=fewest_retries)
            exhausted = jobs.exhausted_jobs(repo, page)
            now = jobs.clock.now()
            locked = repo.lock_jobs([job.id for job in exhausted], states=waiting)
            total += len(jobs.dead_letter_exhausted(repo, locked, now=now))
        checkpoint()
        if len(page) < batch_size:
            break
        after_id = page[-1].id
    return total


def _delete_in_batches(
    database: Database, delete_batch: Callable[[Repository], int], *, batch_size: int, checkpoint: Checkpoint
) -> int:
    """Run `delete_batch` (at most batch_size rows) one transaction at a time until a batch falls short."""
    total = 0
    while True:
        with database.transaction() as repo:
            deleted = delete_batch(repo)
        total += deleted
        checkpoint()
        if deleted < batch_size:
            return total


def delete_old_completed_jobs(
    database: Database, clock: Clock, *, older_than: timedelta, batch_size: int, checkpoint: Checkpoint = _no_checkpoint
) -> int:
    """Delete COMPLETED jobs that completed more than `older_than` ago. Other states are never touched."""
    cutoff = clock.now() - older_than
    return _delete_in_batches(
        database,
        lambda repo: repo.delete_completed_jobs(completed_before=cutoff, limit=batch_size),
        batch_size=batch_size,
        checkpoint=checkpoint,
    )


def delete_old_activity(
    database: Database, clock: Clock, *, older_than: timedelta, batch_size: int, checkpoint: Checkpoint = _no_checkpoint
) -> int:
    """Delete activity-count rows whose whole bucket ended more than `older_than` ago."""
    # A bucket that started within the widest bucket width of the cutoff may still cover it.
    cutoff = clock.now() - older_than - timedelta(seconds=max(ACTIVITY_BUCKET_SECONDS))
    return _delete_in_batches(
        database,
        lambda repo: repo.delete_activity(bucket_before=cutoff, limit=batch_size),
        batch_size=batch_size,
        checkpoint=checkpoint,
    )


def delete_old_retry_log(
    database: Database, clock: Clock, *, older_than: timedelta, batch_size: int, checkpoint: Checkpoint = _no_checkpoint
) -> int:
    """Delete retry-log rows written more than `older_than` ago. DLQ entries keep their own error history."""
    cutoff = clock.now() - older_than
    return _delete_in_batches(
        database,
        lambda repo: repo.delete_retry_log(created_before=cutoff, limit=batch_size),
        batch_size=batch_size,
        checkpoint=checkpoint,
    )
