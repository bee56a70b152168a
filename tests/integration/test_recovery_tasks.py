"""Each recovery task, called directly with a fake clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from queue_service.core.errors import FailedPrecondition
from queue_service.core.jobs import JobManager, JobSpec, LifecycleSettings, ReportedError
from queue_service.core.queues import QueueManager
from queue_service.core.retry import PolicyOverride, RetryPolicy
from queue_service.core.sweep.task import BatchConfig
from queue_service.core.sweep.tasks.clean_finished import (
    CleanActivity,
    CleanCompletedJobs,
    CleanRetryLog,
    RetentionConfig,
)
from queue_service.core.sweep.tasks.dead_letter_exhausted import DeadLetterExhausted
from queue_service.core.sweep.tasks.promote_due_retries import PromoteDueRetries
from queue_service.core.sweep.tasks.rescue_expired_leases import RescueExpiredLeases, StalledCounts
from queue_service.domain import DeathReason, Decision, JobState, RecoveryStatus
from queue_service.store.database import Database
from queue_service.store.schema import dead_letter_queue, queue_activity, queue_jobs, queue_retry_log
from tests.conftest import _truncate_postgres

QUEUE = "emails"


def enqueue(jobs: JobManager, *job_ids: str, **options) -> None:
    jobs.enqueue([JobSpec(QUEUE, "send", job_id=job_id, **options) for job_id in job_ids])


def lease(jobs: JobManager, count: int = 1, lease_duration: timedelta | None = None):
    return jobs.lease([QUEUE], worker_id="worker-1", max_jobs=count, lease_duration=lease_duration)


def state_of(jobs: JobManager, job_id: str) -> JobState:
    return jobs.get_job(job_id).job.record.state


def fail_current_run(jobs: JobManager, job_id: str):
    job = jobs.get_job(job_id).job.record
    return jobs.fail(job_id, job.attempt_number, ReportedError("Connection timeout", "TimeoutError"))


def run_and_fail(jobs: JobManager, job_id: str):
    """Run one specific job (TrackStart picks it, whatever the lease order) and report a failure."""
    jobs.track_start(job_id)
    return fail_current_run(jobs, job_id)


class CountingCheckpoint:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


# Due retries


def test_due_retries_become_waiting_only_once_their_time_has_passed(job_manager, clock):
    enqueue(job_manager, "early", "late")
    run_and_fail(job_manager, "early")  # retry in 5 s
    clock.advance(3)
    run_and_fail(job_manager, "late")  # retry 5 s from now
    clock.advance(2)

    assert PromoteDueRetries(job_manager, BatchConfig(1000)).run_once() == 1
    assert state_of(job_manager, "early") == JobState.WAITING
    assert state_of(job_manager, "late") == JobState.FAILED

    clock.advance(3)
    assert PromoteDueRetries(job_manager, BatchConfig(1000)).run_once() == 1
    assert state_of(job_manager, "late") == JobState.WAITING
    assert PromoteDueRetries(job_manager, BatchConfig(1000)).run_once() == 0
    # A due job keeps its attempt count: its next run is its second.
    job = job_manager.get_job("early").job
    assert job.record.attempt_number == 1
    assert job.remaining_retries == 3
    (leased,) = lease(job_manager)
    assert leased.record.job_id == "early"
    assert leased.record.attempt_number == 2


def test_due_retries_work_in_batches(job_manager, clock):
    ids = [f"job-{index}" for index in range(5)]
    enqueue(job_manager, *ids)
    for job_id in ids:
        run_and_fail(job_manager, job_id)
    clock.advance(5)
    checkpoint = CountingCheckpoint()

    assert PromoteDueRetries(job_manager, BatchConfig(2)).run_once(checkpoint) == 5
    assert checkpoint.calls == 3  # 2 + 2 + 1
    assert all(state_of(job_manager, job_id) == JobState.WAITING for job_id in ids)


# Stalled jobs


def test_expired_lease_is_a_failed_run_that_retries(job_manager, clock):
    enqueue(job_manager, "job-1")
    lease(job_manager, lease_duration=timedelta(seconds=30))
    clock.advance(29)
    assert RescueExpiredLeases(job_manager, BatchConfig(1000)).run_once() == StalledCounts(0, 0)
    assert state_of(job_manager, "job-1") == JobState.ACTIVE

    clock.advance(1)
    counts = RescueExpiredLeases(job_manager, BatchConfig(1000)).run_once()

    assert counts == StalledCounts(retried=1, dead_lettered=0)
    details = job_manager.get_job("job-1")
    job = details.job.record
    assert job.state == JobState.FAILED
    assert job.run_at == clock.now() + timedelta(seconds=5)
    assert job.lease_expires_at is None
    assert job.last_error.message == "lease expired"
    assert job.last_error.type == "LeaseExpired"
    assert "worker-1" in job.last_error.details
    assert [(entry.attempt_number, entry.decision) for entry in details.retry_log] == [(1, Decision.RETRY)]
    assert details.job.remaining_retries == 3


def test_expired_leases_use_up_the_budget_and_the_last_one_dead_letters(job_manager, clock):
    enqueue(job_manager, "job-1")
    for run, delay in ((1, 5), (2, 15), (3, 45)):
        (job,) = lease(job_manager)
        assert job.record.attempt_number == run
        clock.advance(60)  # the default lease
        assert RescueExpiredLeases(job_manager, BatchConfig(1000)).run_once().retried == 1
        assert job_manager.get_job("job-1").job.record.run_at == clock.now() + timedelta(seconds=delay)
        clock.advance(delay)
    (job,) = lease(job_manager)
    assert job.record.attempt_number == 4
    clock.advance(60)

    counts = RescueExpiredLeases(job_manager, BatchConfig(1000)).run_once()

    assert counts == StalledCounts(retried=0, dead_lettered=1)
    details = job_manager.get_job("job-1")
    assert details.job.record.state == JobState.DEAD_LETTER
    assert details.retry_log[-1].decision == Decision.DEAD_LETTER
    assert details.retry_log[-1].death_reason == DeathReason.LEASE_EXPIRED
    with job_manager.database.transaction() as repo:
        entry = repo.get_dead_letter_for_job("job-1")
    assert entry.death_reason == DeathReason.LEASE_EXPIRED
    assert entry.failure_reason == "lease expired"
    assert entry.total_attempts == 4
    assert [error.message for error in entry.error_history] == ["lease expired"] * 4


def test_a_late_report_after_the_rescue_is_rejected(job_manager, clock):
    enqueue(job_manager, "job-1")
    (job,) = lease(job_manager)
    clock.advance(61)
    RescueExpiredLeases(job_manager, BatchConfig(1000)).run_once()

    # The sweep already counted attempt 1 as failed; the worker's late completion must not win.
    with pytest.raises(FailedPrecondition):
        job_manager.complete("job-1", job.record.attempt_number)
    assert state_of(job_manager, "job-1") == JobState.FAILED


def test_heartbeats_keep_a_job_from_being_rescued(job_manager, clock):
    enqueue(job_manager, "job-1")
    (job,) = lease(job_manager, lease_duration=timedelta(seconds=30))
    for _ in range(4):
        clock.advance(20)
        job_manager.heartbeat("job-1", job.record.attempt_number, timedelta(seconds=30))
        assert RescueExpiredLeases(job_manager, BatchConfig(1000)).run_once().retried == 0
    assert state_of(job_manager, "job-1") == JobState.ACTIVE


def test_track_start_jobs_stall_after_the_stall_timeout(database, clock):
    jobs = JobManager(database, clock, LifecycleSettings(stall_timeout=timedelta(minutes=10)))
    jobs.track_start("ext-1", queue_name=QUEUE, job_name="send", worker_id="bull-1")
    clock.advance(timedelta(minutes=10) - timedelta(seconds=1))
    assert RescueExpiredLeases(jobs, BatchConfig(1000)).run_once().retried == 0

    clock.advance(timedelta(seconds=1))
    assert RescueExpiredLeases(jobs, BatchConfig(1000)).run_once().retried == 1
    job = jobs.get_job("ext-1").job.record
    assert job.state == JobState.FAILED
    assert job.last_error.message == "lease expired"


def test_stalled_jobs_are_rescued_in_batches(job_manager, clock):
    ids = [f"job-{index}" for index in range(7)]
    enqueue(job_manager, *ids)
    lease(job_manager, 7)
    clock.advance(61)
    checkpoint = CountingCheckpoint()

    counts = RescueExpiredLeases(job_manager, BatchConfig(3)).run_once(checkpoint)

    assert counts.retried == 7
    assert checkpoint.calls == 3
    assert all(state_of(job_manager, job_id) == JobState.FAILED for job_id in ids)


# Exhausted jobs


def test_jobs_out_of_retries_after_a_policy_change_move_to_the_dlq(database, clock):
    generous = JobManager(database, clock, LifecycleSettings(default_policy=RetryPolicy(max_retries=5)))
    enqueue(generous, "failed-twice", "failed-once", "made-due", "fresh")
    for job_id in ("failed-twice", "failed-twice", "failed-once", "made-due", "made-due"):
        run_and_fail(generous, job_id)
    clock.advance(60)
    assert PromoteDueRetries(generous, BatchConfig(1000)).run_once() == 3
    assert state_of(generous, "made-due") == JobState.WAITING

    # The server restarts with a stricter default: one retry at most, so two failed runs are too many.
    strict = JobManager(database, clock, LifecycleSettings(default_policy=RetryPolicy(max_retries=1)))
    moved = DeadLetterExhausted(strict, BatchConfig(1000)).run_once()

    assert moved == 2
    assert state_of(strict, "failed-twice") == JobState.DEAD_LETTER
    assert state_of(strict, "made-due") == JobState.DEAD_LETTER
    assert state_of(strict, "failed-once") == JobState.WAITING
    assert state_of(strict, "fresh") == JobState.WAITING
    with database.transaction() as repo:
        entry = repo.get_dead_letter_for_job("failed-twice")
    assert entry.death_reason == DeathReason.RETRIES_EXHAUSTED
    assert entry.failure_reason == "Connection timeout"  # the last real error, not a sweep message
    assert entry.recovery_status == RecoveryStatus.PENDING
    assert entry.total_attempts == 2
    # Nothing left to move.
    assert DeadLetterExhausted(strict, BatchConfig(1000)).run_once() == 0


def test_queue_and_job_policies_decide_exhaustion(database, clock, job_manager):
    enqueue(job_manager, "queue-policy")
    enqueue(job_manager, "own-policy", retry_policy=PolicyOverride(max_retries=2))
    enqueue(job_manager, "never-ran")
    job_manager.enqueue([JobSpec("other", "send", job_id="other-queue")])
    for job_id in ("queue-policy", "own-policy", "other-queue"):
        run_and_fail(job_manager, job_id)
    assert DeadLetterExhausted(job_manager, BatchConfig(1000)).run_once() == 0

    # An operator lowers the queue's policy to no retries; the one job's own policy is lowered too.
    QueueManager(job_manager).update_policy(QUEUE, PolicyOverride(max_retries=0), actor="ops")
    with database.transaction() as repo:
        repo.connection.execute(
            update(queue_jobs).where(queue_jobs.c.job_id == "own-policy").values(retry_policy={"max_retries": 0})
        )

    assert DeadLetterExhausted(job_manager, BatchConfig(1000)).run_once() == 2
    assert state_of(job_manager, "queue-policy") == JobState.DEAD_LETTER
    assert state_of(job_manager, "own-policy") == JobState.DEAD_LETTER
    assert state_of(job_manager, "other-queue") == JobState.FAILED  # its queue still allows retries
    assert state_of(job_manager, "never-ran") == JobState.WAITING


def test_a_job_policy_above_the_queue_policy_keeps_its_retries(database, clock, job_manager):
    enqueue(job_manager, "patient", retry_policy=PolicyOverride(max_retries=5))
    run_and_fail(job_manager, "patient")
    QueueManager(job_manager).update_policy(QUEUE, PolicyOverride(max_retries=0), actor="ops")

    assert DeadLetterExhausted(job_manager, BatchConfig(1000)).run_once() == 0
    assert state_of(job_manager, "patient") == JobState.FAILED


def test_exhausted_jobs_are_found_across_batches(database, clock):
    generous = JobManager(database, clock, LifecycleSettings(default_policy=RetryPolicy(max_retries=3)))
    ids = [f"job-{index}" for index in range(5)]
    enqueue(generous, *ids, "untouched")
    for job_id in ids:
        run_and_fail(generous, job_id)
    strict = JobManager(database, clock, LifecycleSettings(default_policy=RetryPolicy(max_retries=0)))
    checkpoint = CountingCheckpoint()

    assert DeadLetterExhausted(strict, BatchConfig(2)).run_once(checkpoint) == 5
    assert checkpoint.calls == 3
    assert all(state_of(strict, job_id) == JobState.DEAD_LETTER for job_id in ids)
    assert state_of(strict, "untouched") == JobState.WAITING


# Retention


def test_retention_deletes_only_old_completed_jobs(job_manager, clock, database):
    enqueue(job_manager, "old-done", "old-waiting", "old-failed", "old-active", "old-dead", "new-done")
    for job_id in ("old-done", "old-failed", "old-active", "old-dead"):
        job_manager.track_start(job_id)
    job_manager.complete("old-done", 1)
    fail_current_run(job_manager, "old-failed")
    job_manager.move_to_dead_letter("old-dead", "bad payload")
    clock.advance(timedelta(days=7, seconds=1))
    job_manager.track_start("new-done")
    job_manager.complete("new-done", 1)
    everything = ["old-done", "old-waiting", "old-failed", "old-active", "old-dead", "new-done"]

    deleted = CleanCompletedJobs(database, clock, RetentionConfig(timedelta(days=7), 1000)).run_once()

    assert deleted == 1
    with database.transaction() as repo:
        left = set(repo.get_jobs(everything))
        entries = repo.connection.execute(select(dead_letter_queue.c.job_id)).scalars().all()
    assert left == set(everything) - {"old-done"}
    assert entries == ["old-dead"]  # DLQ entries are never deleted


def test_retention_deletes_completed_jobs_in_batches_and_keeps_recent_ones(job_manager, clock, database):
    ids = [f"job-{index}" for index in range(5)]
    enqueue(job_manager, *ids)
    for job_id in ids:
        job_manager.track_start(job_id)
        job_manager.complete(job_id, 1)
    clock.advance(timedelta(days=3))
    enqueue(job_manager, "recent")
    job_manager.track_start("recent")
    job_manager.complete("recent", 1)
    clock.advance(timedelta(days=5))
    checkpoint = CountingCheckpoint()

    deleted = CleanCompletedJobs(database, clock, RetentionConfig(timedelta(days=7), 2)).run_once(checkpoint)

    assert deleted == 5
    assert checkpoint.calls == 3
    with database.transaction() as repo:
        assert set(repo.get_jobs(ids + ["recent"])) == {"recent"}


def test_retry_log_retention_deletes_only_old_rows(job_manager, clock, database):
    enqueue(job_manager, "job-1", "job-2")
    run_and_fail(job_manager, "job-1")
    clock.advance(timedelta(days=20))
    run_and_fail(job_manager, "job-2")
    clock.advance(timedelta(days=11))

    deleted = CleanRetryLog(database, clock, RetentionConfig(timedelta(days=30), 1000)).run_once()

    assert deleted == 1
    with database.transaction() as repo:
        rows = repo.connection.execute(select(queue_retry_log.c.job_id)).scalars().all()
    assert rows == ["job-2"]


def activity_rows(database) -> dict[str, int]:
    """Activity amounts per kind, over both bucket widths."""
    with database.transaction() as repo:
        rows = repo.connection.execute(select(queue_activity.c.activity, queue_activity.c.amount)).all()
    totals: dict[str, int] = {}
    for activity, amount in rows:
        totals[activity] = totals.get(activity, 0) + amount
    return totals


def test_activity_retention_deletes_only_buckets_no_period_can_read(job_manager, clock, database):
    enqueue(job_manager, "old")
    run_and_fail(job_manager, "old")  # counted as failed and retried, at both widths
    clock.advance(timedelta(days=30))
    enqueue(job_manager, "recent")
    job_manager.track_start("recent")
    job_manager.complete("recent", 1)
    assert activity_rows(database) == {"failed": 2, "retried": 2, "completed": 2}

    clock.advance(timedelta(days=5))  # "old" is 35 days back: its hourly bucket may still be read
    assert CleanActivity(database, clock, RetentionConfig(timedelta(days=35), 1)).run_once() == 0

    clock.advance(timedelta(hours=1, minutes=5))
    deleted = CleanActivity(database, clock, RetentionConfig(timedelta(days=35), 1)).run_once()

    assert deleted == 4  # one row per kind and width, deleted one batch at a time
    assert activity_rows(database) == {"completed": 2}


# Concurrency with leasing (PostgreSQL: SQLite runs one writer at a time by design)


def run_in_thread(function):
    result: list = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    return thread, result


@pytest.fixture
def postgres_url(postgres_session_url) -> str:
    _truncate_postgres(postgres_session_url)
    return postgres_session_url


@pytest.mark.postgres
def test_sweep_batches_and_leases_skip_each_others_rows(postgres_url, clock):
    sweeper_db, worker_db = Database(postgres_url), Database(postgres_url)
    try:
        sweeper = JobManager(sweeper_db, clock)
        worker = JobManager(worker_db, clock)
        enqueue(worker, "stalled-1", "stalled-2")
        lease(worker, 2)
        clock.advance(61)
        enqueue(worker, "fresh-1", "fresh-2")

        # A sweep batch holds its rows: a worker leasing meanwhile neither waits nor gets them.
        with sweeper_db.transaction() as repo:
            locked = repo.lock_expired_leases(now=clock.now(), limit=1)
            assert [job.job_id for job in locked] == ["stalled-1"]
            thread, leased = run_in_thread(lambda: lease(worker, 5))
            thread.join(10)
            assert not thread.is_alive(), "leasing waited for the sweep's transaction"
            assert sorted(job.record.job_id for job in leased[0]) == ["fresh-1", "fresh-2"]
            # Another sweep batch meanwhile takes the rest, skipping the locked row.
            thread, rescued = run_in_thread(lambda: RescueExpiredLeases(worker, BatchConfig(10)).run_once())
            thread.join(10)
            assert not thread.is_alive(), "the sweep waited for a locked row"
            assert rescued == [StalledCounts(retried=1, dead_lettered=0)]
        assert state_of(worker, "stalled-1") == JobState.ACTIVE  # the first batch never applied anything
        assert state_of(worker, "stalled-2") == JobState.FAILED

        # A job a worker is reporting on right now is skipped by due retries, not waited for.
        for job_id in ("fresh-1", "fresh-2"):
            fail_current_run(worker, job_id)
        clock.advance(5)
        with worker_db.transaction() as repo:
            repo.get_job("fresh-1", for_update=True)
            thread, moved = run_in_thread(lambda: PromoteDueRetries(sweeper, BatchConfig(10)).run_once())
            thread.join(10)
            assert not thread.is_alive(), "due retries waited for a locked row"
        assert moved == [2]  # stalled-2 (due again) and fresh-2
        assert state_of(worker, "fresh-1") == JobState.FAILED
    finally:
        sweeper_db.dispose()
        worker_db.dispose()
