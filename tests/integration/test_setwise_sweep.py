"""Sweeps write set-wise: the trigger-kept counters and activity stay exact, and a batch stays bounded."""

from __future__ import annotations

from sqlalchemy import text

from queue_service.core.jobs import LEASE_EXPIRED_TYPE, JobManager, JobSpec
from queue_service.core.queues import QueueManager
from queue_service.core.retry import PolicyOverride, RetryRule
from queue_service.core.sweep.runner import Recovery
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.domain import ErrorInfo, JobState
from queue_service.store.database import SQLITE_SWEEP_BATCH, Database

LENIENT = "lenient"  # the default policy: an expired lease is retried
STRICT = "strict"  # no retries: an expired lease dead-letters


def enqueue(jobs: JobManager, queue: str, count: int, prefix: str, **options) -> None:
    jobs.enqueue([JobSpec(queue, "send", job_id=f"{prefix}-{index}", **options) for index in range(count)])


def lease_all(jobs: JobManager, queue: str) -> int:
    return len(jobs.lease([queue], worker_id="worker-1", max_jobs=100))


def sweep(jobs: JobManager, batch_size: int) -> dict[str, int]:
    run = Recovery(jobs, RecoverySettings(node_id="node-1", batch_size=batch_size)).run_once()
    assert run.error is None
    return run.counts


def recounted(database: Database) -> dict[tuple[str, str], int]:
    """Every counter key as counting the tables says it should be."""
    with database.engine.connect() as connection:
        jobs = connection.execute(text("SELECT queue_name, state, count(*) FROM queue_jobs GROUP BY 1, 2")).all()
        entries = connection.execute(
            text("SELECT queue_name, recovery_status, count(*) FROM dead_letter_queue GROUP BY 1, 2")
        ).all()
    counts = {(queue, f"jobs.{state}"): amount for queue, state, amount in jobs}
    counts.update({(queue, f"dead_letters.{status}"): amount for queue, status, amount in entries})
    return counts


def counted(database: Database) -> dict[tuple[str, str], int]:
    """Every counter key as the triggers kept it (keys summing to zero left out)."""
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT queue_name, counter, sum(amount) FROM queue_counters GROUP BY 1, 2 HAVING sum(amount) <> 0")
        ).all()
    return {(queue, counter): int(amount) for queue, counter, amount in rows}


def activity(database: Database) -> dict[tuple[str, str], int]:
    """Activity per (queue, kind) over all five-minute buckets, as the triggers kept it."""
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT queue_name, activity, sum(amount) FROM queue_activity WHERE bucket_seconds = 300 "
                "GROUP BY 1, 2 HAVING sum(amount) <> 0"
            )
        ).all()
    return {(queue, kind): int(amount) for queue, kind, amount in rows}


def logged(database: Database) -> dict[tuple[str, str], int]:
    """Activity per (queue, kind) as the retry log tells it: each expired lease failed a run; a
    retry decision retried it; every death, of an expired lease or an exhausted job, dead-lettered."""
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT queue_name, decision, coalesce(death_reason, ''), count(*) FROM queue_retry_log GROUP BY 1, 2, 3"
            )
        ).all()
    expected: dict[tuple[str, str], int] = {}

    def add(queue: str, kind: str, amount: int) -> None:
        expected[(queue, kind)] = expected.get((queue, kind), 0) + amount

    for queue, decision, reason, amount in rows:
        if decision == "retry":
            add(queue, "failed", amount)
            add(queue, "retried", amount)
        else:
            add(queue, "dead_lettered", amount)
            if reason == "lease_expired":
                add(queue, "failed", amount)
    return expected


def test_counters_and_activity_stay_exact_through_set_wise_sweeps(job_manager, database, clock):
    queues = QueueManager(job_manager)
    queues.update_policy(STRICT, PolicyOverride(max_retries=0), allow_missing=True, actor="test")
    enqueue(job_manager, LENIENT, 23, "lenient")
    enqueue(job_manager, LENIENT, 5, "own", retry_policy=PolicyOverride(max_retries=0))
    enqueue(job_manager, STRICT, 17, "strict")
    assert lease_all(job_manager, LENIENT) == 28
    assert lease_all(job_manager, STRICT) == 17
    clock.advance(61)

    # Batches of 4: several of each kind, and batches holding retries and deaths together.
    first = sweep(job_manager, batch_size=4)

    assert first["stalled_jobs"] == 45
    assert first["stalled_jobs_dead_lettered"] == 5 + 17
    assert counted(database) == recounted(database)
    assert activity(database) == logged(database)

    # The lenient queue's policy drops to no retries: the jobs waiting for theirs are exhausted.
    queues.update_policy(LENIENT, PolicyOverride(max_retries=0), actor="test")
    second = sweep(job_manager, batch_size=4)

    assert second["exhausted_jobs"] == 23
    assert counted(database) == recounted(database)
    assert activity(database) == logged(database)
    (lenient, strict) = sorted(queues.statistics([LENIENT, STRICT]).queues, key=lambda stats: stats.queue_name)
    assert (lenient.dead_letter, lenient.dead_letters_pending, lenient.failed) == (28, 28, 0)
    assert (strict.dead_letter, strict.dead_letters_pending, strict.active) == (17, 17, 0)


def test_a_dead_letter_batch_reopens_existing_entries_in_place(job_manager, database, clock):
    queues = QueueManager(job_manager)
    queues.update_policy(STRICT, PolicyOverride(max_retries=0), allow_missing=True, actor="test")
    enqueue(job_manager, STRICT, 6, "strict")
    lease_all(job_manager, STRICT)
    clock.advance(61)
    sweep(job_manager, batch_size=4)
    with database.engine.connect() as connection:
        first_ids = dict(connection.execute(text("SELECT job_id, id FROM dead_letter_queue")).all())
        # Send every job back as a redrive would, keeping its entry, then let it die again.
        connection.execute(
            text("UPDATE queue_jobs SET state = 'waiting', budget_start = attempt_number, run_at = created_at")
        )
        connection.execute(text("UPDATE dead_letter_queue SET recovery_status = 'recovered', admin_notes = 'seen'"))
        connection.commit()
    lease_all(job_manager, STRICT)
    clock.advance(61)

    assert sweep(job_manager, batch_size=4)["stalled_jobs_dead_lettered"] == 6

    with database.engine.connect() as connection:
        entries = connection.execute(
            text("SELECT job_id, id, recovery_status, admin_notes, total_attempts FROM dead_letter_queue")
        ).all()
        job_entries = dict(connection.execute(text("SELECT job_id, dead_letter_id FROM queue_jobs")).all())
    assert {row.job_id: row.id for row in entries} == first_ids == job_entries
    assert {(row.recovery_status, row.admin_notes, row.total_attempts) for row in entries} == {("pending", "seen", 2)}
    assert counted(database) == recounted(database)


def rule_and_first_failure(jobs: JobManager, job_id: str) -> tuple[str, str, object, set[str]]:
    """The job's state, deciding rule and first failure time, and the rules its retry log names."""
    details = jobs.get_job(job_id)
    job = details.job.record
    logged_rules = {entry.error.retry_rule for entry in details.retry_log if entry.error}
    return job.state.value, job.retry_rule, job.first_failed_at, logged_rules


def test_set_wise_writes_keep_the_deciding_rule_and_the_first_failure_time(job_manager, clock):
    queues = QueueManager(job_manager)
    rule = f"queue:{LEASE_EXPIRED_TYPE}"
    never = PolicyOverride(rules=(RetryRule(LEASE_EXPIRED_TYPE, retryable=False),))
    queues.update_policy(STRICT, never, allow_missing=True, actor="test")
    queues.update_policy(
        LENIENT, PolicyOverride(rules=(RetryRule(LEASE_EXPIRED_TYPE, max_retries=5),)), allow_missing=True, actor="test"
    )
    enqueue(job_manager, LENIENT, 6, "lenient")
    enqueue(job_manager, STRICT, 6, "strict")
    lease_all(job_manager, LENIENT)
    lease_all(job_manager, STRICT)
    failed_at = clock.advance(61)

    # Batches of 4 that hold retries and deaths together.
    assert sweep(job_manager, batch_size=4)["stalled_jobs_dead_lettered"] == 6

    for index in range(6):
        assert rule_and_first_failure(job_manager, f"lenient-{index}") == ("failed", rule, failed_at, {rule})
        assert rule_and_first_failure(job_manager, f"strict-{index}") == ("dead_letter", rule, failed_at, {rule})

    # A second failure keeps the first one's time.
    clock.advance(3600)
    sweep(job_manager, batch_size=4)
    assert lease_all(job_manager, LENIENT) == 6
    clock.advance(61)
    sweep(job_manager, batch_size=4)
    assert rule_and_first_failure(job_manager, "lenient-0") == ("failed", rule, failed_at, {rule})

    # The rule's budget lowered below the runs made: the exhausted jobs move set-wise, keeping both.
    queues.update_policy(LENIENT, PolicyOverride(rules=(RetryRule(LEASE_EXPIRED_TYPE, max_retries=1),)), actor="test")
    assert sweep(job_manager, batch_size=4)["exhausted_jobs"] == 6
    for index in range(6):
        assert rule_and_first_failure(job_manager, f"lenient-{index}") == ("dead_letter", rule, failed_at, {rule})


class BatchRecorder(Recovery):
    """A sweep that notes, at every checkpoint (after each batch), how many leases are still ACTIVE."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.active_after_batch: list[int] = []

    def _checkpoint(self) -> None:
        with self.database.engine.connect() as connection:
            active = connection.execute(
                text("SELECT count(*) FROM queue_jobs WHERE state = :active"), {"active": JobState.ACTIVE.value}
            ).scalar_one()
        self.active_after_batch.append(active)
        super()._checkpoint()


def test_a_sweep_batch_is_bounded(job_manager, database, clock, backend):
    expired = 47
    enqueue(job_manager, LENIENT, expired, "job")
    assert lease_all(job_manager, LENIENT) == expired
    clock.advance(61)
    requested = 1000 if backend == "sqlite" else 10
    bound = SQLITE_SWEEP_BATCH if backend == "sqlite" else requested
    assert database.sweep_batch_size(requested) == bound

    recovery = BatchRecorder(job_manager, RecoverySettings(node_id="node-1", batch_size=requested))
    run = recovery.run_once()

    assert run.counts["stalled_jobs"] == expired
    active = [expired, *recovery.active_after_batch]
    handled = [before - after for before, after in zip(active, active[1:], strict=False) if before != after]
    # Every batch but the last is full, and none is larger than the bound.
    assert handled[:-1] == [bound] * (len(handled) - 1)
    assert 0 < handled[-1] <= bound
    assert sum(handled) == expired


def test_each_outcome_of_a_batch_shows_its_job_as_stored(job_manager, clock):
    queues = QueueManager(job_manager)
    never = PolicyOverride(rules=(RetryRule(LEASE_EXPIRED_TYPE, retryable=False),))
    queues.update_policy(STRICT, never, allow_missing=True, actor="test")
    enqueue(job_manager, LENIENT, 3, "lenient")
    enqueue(job_manager, STRICT, 3, "strict")
    lease_all(job_manager, LENIENT)
    lease_all(job_manager, STRICT)
    now = clock.advance(61)

    with job_manager.database.transaction() as repo:
        expired = repo.lock_expired_leases(now=now, limit=100)
        failed = [(job, ErrorInfo("lease expired", LEASE_EXPIRED_TYPE, "", job.attempt_number, now)) for job in expired]
        outcomes = job_manager.apply_failures(repo, failed, lease_expired=True, now=now)

    assert len(outcomes) == 6
    with job_manager.database.transaction() as repo:
        stored = {job.job_id: job for job in repo.get_jobs([job.job_id for job, _ in failed]).values()}
    for outcome in outcomes:
        job = outcome.job.record
        assert job == stored[job.job_id]
        assert (job.state, outcome.dead_letter is not None) in {
            (JobState.FAILED, False),
            (JobState.DEAD_LETTER, True),
        }
        assert job.queue_name == (LENIENT if job.state == JobState.FAILED else STRICT)
