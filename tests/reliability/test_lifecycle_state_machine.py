"""A hypothesis state machine drives random sequences of every job and dead-letter operation
against the core managers (FakeClock, SQLite and PostgreSQL) and a small model of its own.

Operations: enqueue, lease, heartbeat, complete, fail (repeated or late too), move to the DLQ,
cancel, DLQ retry, mark permanently failed, pause, resume, clean, the recovery sweep, and time passing.
After every step the invariants hold:
- every job has the state and attempt count the model predicts, and no deleted job is back;
- a job has a DLQ entry exactly when it is DEAD_LETTER or was recovered from the DLQ;
- the retry log holds one row per retry decision, no more, no fewer;
- the statistics (trigger-kept counters) match a recount of the rows.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import func, select

from queue_service.clock import FakeClock
from queue_service.core.cancellations import CancellationManager
from queue_service.core.dead_letters import DeadLetterManager
from queue_service.core.errors import FailedPrecondition, NotFound
from queue_service.core.jobs import JobManager, JobSpec, LifecycleSettings, ReportedError
from queue_service.core.queues import QueueManager
from queue_service.core.retry import RetryPolicy
from queue_service.core.sweep.runner import Recovery, Trigger
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.domain import JobState, RecoveryStatus
from queue_service.store.database import Database
from queue_service.store.schema import dead_letter_queue, queue_counters, queue_jobs, queue_retry_log
from tests.conftest import _truncate_postgres

W, A, C, F, D = JobState.WAITING, JobState.ACTIVE, JobState.COMPLETED, JobState.FAILED, JobState.DEAD_LETTER
X = JobState.CANCELLED
PENDING, RECOVERED, GIVEN_UP = RecoveryStatus.PENDING, RecoveryStatus.RECOVERED, RecoveryStatus.PERMANENTLY_FAILED
QUEUES = ("alpha", "beta")
POLICY = RetryPolicy(max_retries=2, retry_delays=(timedelta(seconds=1), timedelta(seconds=3)), jitter=0.0)
HEARTBEAT_LEASE = timedelta(seconds=4)
ACTOR = "state-machine"


@dataclass
class ModelJob:
    job_id: str
    queue: str
    sequence: int
    run_at: datetime
    state: JobState = W
    attempt: int = 0
    budget_start: int = 0
    lease_expires_at: datetime | None = None
    # Retry-log rows this job must have.
    decisions: int = 0
    entry_id: str | None = None
    entry: RecoveryStatus | None = None
    # Runs whose failure the worker reported; a repeated report of one of them is replayed.
    reports: set[int] = field(default_factory=set)
    deleted: bool = False
    # A cancellation asked the run to stop (cancel_requested_at is set).
    cancel_requested: bool = False

    def ended_by_cancellation(self, attempt: int) -> bool:
        return self.state == X and self.cancel_requested and attempt == self.attempt


class LifecycleMachine(RuleBasedStateMachine):
    database_url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.database = Database(self.database_url)
        lifecycle = LifecycleSettings(
            default_policy=POLICY, default_lease=timedelta(seconds=10), lease_poll_interval=0.01
        )
        self.jobs = JobManager(self.database, self.clock, lifecycle)
        self.queues = QueueManager(self.jobs)
        self.dead_letters = DeadLetterManager(self.jobs, sleep=self.clock.advance)
        self.cancellations = CancellationManager(self.jobs, sleep=self.clock.advance)
        # Retention and alerts off: clean is its own rule, and the retry log must keep every row.
        self.recovery = Recovery(
            self.jobs,
            RecoverySettings(completed_retention=timedelta(0), retry_log_retention=timedelta(0), dlq_alert_threshold=0),
        )
        self.model: dict[str, ModelJob] = {}
        self.known_queues: set[str] = set()
        self.paused: set[str] = set()

    def teardown(self) -> None:
        self.database.dispose()

    # Helpers

    def now(self) -> datetime:
        return self.clock.now()

    def live(self) -> list[ModelJob]:
        return [job for job in self.model.values() if not job.deleted]

    def pick(self, index: int, jobs: list[ModelJob] | None = None) -> ModelJob:
        jobs = list(self.model.values()) if jobs is None else jobs
        return jobs[index % len(jobs)]

    def leasable(self, queue: str) -> list[ModelJob]:
        if queue in self.paused:
            return []
        now = self.now()
        ready = [job for job in self.live() if job.queue == queue and job.state in (W, F) and job.run_at <= now]
        return sorted(ready, key=lambda job: (job.run_at, job.sequence))

    def fail_run(self, job: ModelJob, *, non_retryable: bool) -> bool:
        """Apply the retry rule to the job's current run failing; True if it retries."""
        runs = job.attempt - job.budget_start
        job.decisions += 1
        job.lease_expires_at = None
        if non_retryable or runs > POLICY.max_retries:
            job.state = D
            job.entry = PENDING
            return False
        job.state = F
        job.run_at = self.now() + POLICY.delay_for_retry(runs)
        return True

    def remember_entry(self, job: ModelJob) -> None:
        job.entry_id = self.jobs.get_job(job.job_id).job.record.dead_letter_id

    # Producers and workers

    @rule(queue=st.sampled_from(QUEUES), delay=st.sampled_from([0, 0, 1, 3]))
    def enqueue(self, queue, delay):
        (result,) = self.jobs.enqueue([JobSpec(queue, "work", {"n": len(self.model)}, delay=timedelta(seconds=delay))])
        record = result.job.record
        assert result.created and record.state == W and record.attempt_number == 0
        self.model[record.job_id] = ModelJob(
            record.job_id, queue, len(self.model), self.now() + timedelta(seconds=delay)
        )
        self.known_queues.add(queue)

    @rule(queue=st.sampled_from(QUEUES), lease_seconds=st.sampled_from([1, 2, 5]))
    def lease(self, queue, lease_seconds):
        expected = self.leasable(queue)
        leased = self.jobs.lease([queue], worker_id="w", max_jobs=1, lease_duration=timedelta(seconds=lease_seconds))
        if not expected:
            assert leased == []
            return
        (view,) = leased
        job = expected[0]
        assert view.record.job_id == job.job_id, "the earliest ready job of the queue, oldest first"
        job.state, job.attempt = A, job.attempt + 1
        job.lease_expires_at = self.now() + timedelta(seconds=lease_seconds)
        assert view.record.attempt_number == job.attempt

    @precondition(lambda self: self.model)
    @rule(index=st.integers(0, 1000), stale=st.booleans())
    def heartbeat(self, index, stale):
        job = self.pick(index)
        attempt = job.attempt - 1 if stale else job.attempt
        try:
            record = self.jobs.heartbeat(job.job_id, attempt, HEARTBEAT_LEASE)
        except NotFound:
            assert job.deleted
            return
        except FailedPrecondition:
            assert not (job.state == A and attempt == job.attempt)
            return
        assert job.state == A and attempt == job.attempt
        assert (record.cancel_requested_at is not None) == job.cancel_requested, "the heartbeat says it"
        job.lease_expires_at = self.now() + HEARTBEAT_LEASE

    @precondition(lambda self: self.model)
    @rule(index=st.integers(0, 1000), stale=st.booleans())
    def complete(self, index, stale):
        job = self.pick(index)
        attempt = job.attempt - 1 if stale else job.attempt
        try:
            self.jobs.complete(job.job_id, attempt, result={"ok": True})
        except NotFound:
            assert job.deleted
            return
        except FailedPrecondition:
            assert not (job.state in (A, C) and attempt == job.attempt)
            assert not job.ended_by_cancellation(attempt)
            return
        if job.ended_by_cancellation(attempt):
            return  # a repeated report of the run a cancellation ended
        assert job.state in (A, C) and attempt == job.attempt, "a repeated completion of the same run is fine"
        if job.state == A and job.cancel_requested:
            job.state, job.lease_expires_at = X, None  # the run finished, but the cancellation stands
            return
        job.state, job.lease_expires_at = C, None

    @precondition(lambda self: self.model)
    @rule(index=st.integers(0, 1000), stale=st.booleans(), non_retryable=st.booleans())
    def fail(self, index, stale, non_retryable):
        job = self.pick(index)
        attempt = job.attempt - 1 if stale else job.attempt
        try:
            outcome = self.jobs.fail(
                job.job_id, attempt, ReportedError(f"boom in run {attempt}", "Error"), non_retryable=non_retryable
            )
        except NotFound:
            assert job.deleted
            return
        except FailedPrecondition:
            assert not (job.state == A and attempt == job.attempt), "the current run's report is taken"
            assert attempt not in job.reports, "a repeated report is answered, not refused"
            assert not job.ended_by_cancellation(attempt)
            return
        if (job.state == A and attempt == job.attempt and job.cancel_requested) or job.ended_by_cancellation(attempt):
            job.state, job.lease_expires_at = X, None
            assert outcome.job.record.state == X and not outcome.decision.should_retry and outcome.dead_letter is None
            return
        if job.state == A and attempt == job.attempt:
            retries = self.fail_run(job, non_retryable=non_retryable)
            job.reports.add(attempt)
            assert outcome.decision.should_retry == retries
            if not retries:
                self.remember_entry(job)
        else:
            # Reports are idempotent per run; a run the sweep or an operator ended takes none.
            assert attempt in job.reports, "only a run the worker itself reported failed is replayed"

    @precondition(lambda self: self.model)
    @rule(index=st.integers(0, 1000))
    def move_to_dead_letter(self, index):
        job = self.pick(index)
        try:
            self.jobs.move_to_dead_letter(job.job_id, "moved by hand")
        except NotFound:
            assert job.deleted
            return
        except FailedPrecondition:
            assert job.state in (C, D, X)
            return
        assert job.state in (W, A, F)
        job.state, job.entry, job.lease_expires_at = D, PENDING, None
        job.decisions += 1
        self.remember_entry(job)

    @precondition(lambda self: self.model)
    @rule(index=st.integers(0, 1000))
    def cancel(self, index):
        job = self.pick(index)
        try:
            outcome = self.cancellations.cancel(job.job_id, actor=ACTOR)
        except NotFound:
            assert job.deleted
            return
        except FailedPrecondition:
            assert job.state in (C, D)
            return
        if job.state in (W, F):
            job.state, job.lease_expires_at = X, None
        elif job.state == A:
            job.cancel_requested = True  # it stays ACTIVE until its run ends
        else:
            assert job.state == X, "cancelling again changes nothing"
        assert outcome.job.record.state == job.state

    # Dead-letter triage

    @precondition(lambda self: any(job.entry_id for job in self.model.values()))
    @rule(index=st.integers(0, 1000))
    def retry_dead_letter(self, index):
        job = self.pick(index, [job for job in self.model.values() if job.entry_id])
        try:
            outcome = self.dead_letters.retry(job.entry_id, actor=ACTOR)
        except NotFound:
            assert job.entry is None, "only a cleaned entry is gone"
            return
        except FailedPrecondition:
            assert job.entry != PENDING or job.deleted
            return
        assert job.entry == PENDING and job.state == D
        job.state, job.entry, job.run_at, job.budget_start = W, RECOVERED, self.now(), job.attempt
        job.cancel_requested = False  # a redriven job runs afresh
        assert outcome.job.record.state == W

    @precondition(lambda self: any(job.entry_id for job in self.model.values()))
    @rule(index=st.integers(0, 1000))
    def mark_permanently_failed(self, index):
        job = self.pick(index, [job for job in self.model.values() if job.entry_id])
        try:
            self.dead_letters.mark_permanently_failed(job.entry_id, "gave up", actor=ACTOR)
        except NotFound:
            assert job.entry is None
            return
        except FailedPrecondition:
            assert job.entry != PENDING
            return
        assert job.entry == PENDING
        job.entry = GIVEN_UP

    # Queues

    @rule(queue=st.sampled_from(QUEUES))
    def pause(self, queue):
        assert self.queues.set_paused(queue, True, allow_missing=True, actor=ACTOR).record.paused
        self.paused.add(queue)
        self.known_queues.add(queue)

    @rule(queue=st.sampled_from(QUEUES))
    def resume(self, queue):
        try:
            self.queues.set_paused(queue, False, actor=ACTOR)
        except NotFound:
            assert queue not in self.known_queues
            return
        self.paused.discard(queue)

    @rule(queue=st.sampled_from(QUEUES), state=st.sampled_from([W, C, F, D, X]))
    def clean(self, queue, state):
        try:
            deleted = self.queues.clean(queue, state, actor=ACTOR)
        except NotFound:
            assert queue not in self.known_queues
            return
        gone = [job for job in self.live() if job.queue == queue and job.state == state]
        if state == D:
            gone = [job for job in gone if job.entry == GIVEN_UP]
        assert deleted == len(gone)
        for job in gone:
            job.deleted = True
            if state == D:
                job.entry = None  # the entry goes with its job

    # Time and the recovery sweep

    @rule(seconds=st.sampled_from([0.5, 1, 2, 4, 11]))
    def advance_clock(self, seconds):
        self.clock.advance(seconds)

    @rule()
    def sweep(self):
        now = self.now()
        stalled = [job for job in self.live() if job.state == A and job.lease_expires_at <= now]
        retried = dead_lettered = cancelled = 0
        for job in sorted(stalled, key=lambda job: (job.lease_expires_at, job.sequence)):
            if job.cancel_requested:
                job.state, job.lease_expires_at = X, None
                cancelled += 1
            elif self.fail_run(job, non_retryable=False):
                retried += 1
            else:
                dead_lettered += 1
                self.remember_entry(job)
        due = [job for job in self.live() if job.state == F and job.run_at <= now]
        for job in due:
            job.state = W
        run = self.recovery.run_once(Trigger.MANUAL)
        assert run.error is None
        assert run.counts["stalled_jobs"] == retried + dead_lettered
        assert run.counts["stalled_jobs_dead_lettered"] == dead_lettered
        assert run.counts["stalled_jobs_cancelled"] == cancelled
        assert run.counts["due_retries"] == len(due)
        assert run.counts["exhausted_jobs"] == 0

    # Invariants

    @invariant()
    def jobs_match_the_model(self):
        with self.database.transaction() as repo:
            stored = repo.get_jobs(list(self.model))
        for job in self.model.values():
            if job.deleted:
                assert job.job_id not in stored
                continue
            record = stored[job.job_id]
            assert (record.state, record.attempt_number) == (job.state, job.attempt), job
            assert record.budget_start == job.budget_start
            assert (record.cancel_requested_at is not None) == job.cancel_requested, job

    @invariant()
    def a_dlq_entry_exactly_when_dead_lettered_or_recovered(self):
        with self.database.engine.connect() as connection:
            rows = connection.execute(select(dead_letter_queue.c.job_id, dead_letter_queue.c.recovery_status)).all()
        entries: dict[str, list[str]] = {}
        for row in rows:
            entries.setdefault(row.job_id, []).append(row.recovery_status)
        for job in self.model.values():
            statuses = entries.get(job.job_id, [])
            assert len(statuses) <= 1, f"one entry per job: {job.job_id} has {statuses}"
            status = RecoveryStatus(statuses[0]) if statuses else None
            assert status == job.entry, job
            if not job.deleted:
                assert (status is not None) == (job.state == D or status == RECOVERED), job
                if job.state == D:
                    assert status in (PENDING, GIVEN_UP)

    @invariant()
    def one_retry_log_row_per_decision(self):
        with self.database.engine.connect() as connection:
            rows = connection.execute(
                select(queue_retry_log.c.job_id, func.count()).group_by(queue_retry_log.c.job_id)
            ).all()
        counted = {row[0]: row[1] for row in rows}
        for job in self.model.values():
            assert counted.get(job.job_id, 0) == job.decisions, job

    @invariant()
    def statistics_match_a_recount(self):
        if not self.known_queues:
            return
        now = self.now()
        stats = {item.queue_name: item for item in self.queues.statistics().queues}
        with self.database.engine.connect() as connection:
            jobs = connection.execute(select(queue_jobs.c.queue_name, queue_jobs.c.state, queue_jobs.c.run_at)).all()
            entries = connection.execute(
                select(dead_letter_queue.c.queue_name, dead_letter_queue.c.recovery_status)
            ).all()
        for queue in self.known_queues:
            mine = [
                (state, run_at if run_at.tzinfo else run_at.replace(tzinfo=now.tzinfo))
                for name, state, run_at in jobs
                if name == queue
            ]
            statuses = [status for name, status in entries if name == queue]
            recount = {
                "waiting": sum(state == "waiting" and run_at <= now for state, run_at in mine),
                "delayed": sum(state == "waiting" and run_at > now for state, run_at in mine),
                "active": sum(state == "active" for state, _ in mine),
                "completed": sum(state == "completed" for state, _ in mine),
                "failed": sum(state == "failed" for state, _ in mine),
                "retryable": sum(state == "failed" and run_at <= now for state, run_at in mine),
                "dead_letter": sum(state == "dead_letter" for state, _ in mine),
                "cancelled": sum(state == "cancelled" for state, _ in mine),
                "dead_letters_pending": statuses.count("pending"),
                "dead_letters_recovered": statuses.count("recovered"),
                "dead_letters_permanently_failed": statuses.count("permanently_failed"),
            }
            reported = {name: getattr(stats[queue], name) for name in recount}
            assert reported == recount, queue
            assert stats[queue].paused == (queue in self.paused)


def machine_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        database=None,
        # No "explain" phase: it traces every line and makes a failing run take minutes to report.
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def run_machine(database_url: str, reset, examples: int) -> None:
    class Machine(LifecycleMachine):
        def __init__(self) -> None:
            reset()
            type(self).database_url = database_url
            super().__init__()

    run_state_machine_as_test(Machine, settings=machine_settings(examples))


def test_lifecycle_state_machine_on_sqlite(sqlite_template, tmp_path):
    path = tmp_path / "machine.sqlite3"

    def reset() -> None:
        shutil.copy(sqlite_template, path)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    run_machine(f"sqlite:///{path}", reset, examples=30)


@pytest.mark.postgres
def test_lifecycle_state_machine_on_postgresql(postgres_session_url):
    run_machine(postgres_session_url, lambda: _truncate_postgres(postgres_session_url), examples=15)


def test_the_invariants_can_fail(sqlite_template, tmp_path):
    """Counters and rows changed behind the service's back are caught."""
    path = tmp_path / "broken.sqlite3"
    shutil.copy(sqlite_template, path)
    LifecycleMachine.database_url = f"sqlite:///{path}"
    machine = LifecycleMachine()
    try:
        machine.enqueue("alpha", 0)
        machine.statistics_match_a_recount()
        machine.jobs_match_the_model()
        with machine.database.engine.begin() as connection:
            connection.execute(queue_counters.delete())
        with pytest.raises(AssertionError):
            machine.statistics_match_a_recount()
        with machine.database.engine.begin() as connection:
            connection.execute(queue_jobs.update().values(attempt_number=1))
        with pytest.raises(AssertionError):
            machine.jobs_match_the_model()
        with machine.database.engine.begin() as connection:
            connection.execute(
                queue_retry_log.insert().values(
                    job_id=next(iter(machine.model)),
                    queue_name="alpha",
                    attempt_number=1,
                    decision="retry",
                    retry_delay_ms=0,
                    remaining_retries=0,
                    created_at=machine.now(),
                )
            )
        with pytest.raises(AssertionError):
            machine.one_retry_log_row_per_decision()
    finally:
        machine.teardown()
