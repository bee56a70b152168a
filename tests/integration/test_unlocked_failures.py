"""PostgreSQL: the usual failure report is decided on a read without a row lock and written by one
statement that commits alone, a compare-and-set on the row's version. A write of the job between
that read and that statement makes it change nothing, and the locked transaction decides instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, event, select, text

from queue_service.clock import FakeClock
from queue_service.core.cancellations import CancellationManager
from queue_service.core.jobs import JobManager, JobSpec, ReportedError
from queue_service.domain import DeathReason, JobState
from queue_service.store.database import Database
from queue_service.store.jobs import JobsTable
from queue_service.store.schema import queue_jobs, queue_retry_log
from tests.conftest import _truncate_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture
def database(postgres_session_url) -> Iterator[Database]:
    _truncate_postgres(postgres_session_url)
    db = Database(postgres_session_url, pool_size=1, max_overflow=0)
    yield db
    db.dispose()


@pytest.fixture
def jobs(database) -> JobManager:
    return JobManager(database, FakeClock())


class Statements:
    """Every statement text the engine sends, in order."""

    def __init__(self, engine) -> None:
        self.texts: list[str] = []
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, _connection, _cursor, statement, *_args) -> None:
        self.texts.append(statement)

    def reads_for_failure(self) -> list[str]:
        """'unlocked' or 'locked', for each read of a failing job."""
        return [
            "locked" if "FOR UPDATE" in statement else "unlocked"
            for statement in self.texts
            if "queue_retry_policy" in statement
        ]


def leased_job(jobs: JobManager, job_id: str, *, attempts: int = 1) -> int:
    """`job_id`, leased for run `attempts` (each run before failed): its attempt number."""
    jobs.enqueue([JobSpec("mail", "send", job_id=job_id)])
    for attempt in range(1, attempts + 1):
        [view] = jobs.lease(["mail"], worker_id="w", may_wait=False)
        assert view.record.attempt_number == attempt
        if attempt < attempts:
            jobs.fail(job_id, attempt, ReportedError("earlier"))
            jobs.clock.advance(jobs.settings.default_policy.max_delay * 2)
    return attempts


def stored(database: Database, job_id: str) -> tuple[str, int, int]:
    """The job's state, its error-history length and its retry-log rows."""
    with database.engine.connect() as connection:
        state, history = connection.execute(
            select(queue_jobs.c.state, queue_jobs.c.error_history).where(queue_jobs.c.job_id == job_id)
        ).one()
        logged = connection.execute(select(queue_retry_log.c.id).where(queue_retry_log.c.job_id == job_id)).all()
    return state, len(history), len(logged)


def write_between_read_and_decision(monkeypatch, write) -> list[str]:
    """Runs `write` (committed, on a connection of its own) right after each unlocked read of a
    failing job. Returns the job ids it ran for."""
    original = JobsTable.get_job_for_failure
    written: list[str] = []

    def read_then_write(self, job_id: str, *, locked: bool = True):
        found = original(self, job_id, locked=locked)
        if not locked:
            write(job_id)
            written.append(job_id)
        return found

    monkeypatch.setattr(JobsTable, "get_job_for_failure", read_then_write)
    return written


def test_a_usual_failure_takes_no_row_lock_and_is_written_once(database, jobs):
    leased_job(jobs, "plain")
    sent = Statements(database.engine)
    outcome = jobs.fail("plain", 1, ReportedError("boom", "TimeoutError"))
    assert outcome.decision.should_retry
    assert outcome.job.record.state == JobState.FAILED
    assert sent.reads_for_failure() == ["unlocked"]
    assert stored(database, "plain") == ("failed", 1, 1)


def test_the_unlocked_read_carries_the_rows_version_which_any_write_changes(database, jobs):
    leased_job(jobs, "versioned")
    with database.statements_alone() as repo:
        before = repo.get_job_for_failure("versioned", locked=False).job.row_version
        again = repo.get_job_for_failure("versioned", locked=False).job.row_version
        locked_read = repo.get_job_for_failure("versioned").job.row_version
    assert before is not None and before == again
    assert locked_read is None
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE queue_jobs SET priority = priority WHERE job_id = 'versioned'"))
    with database.statements_alone() as repo:
        assert repo.get_job_for_failure("versioned", locked=False).job.row_version != before


def test_a_write_between_the_read_and_the_retry_makes_the_locked_transaction_decide(
    database, jobs, postgres_session_url, monkeypatch
):
    leased_job(jobs, "touched")
    other = create_engine(postgres_session_url)

    def touch(job_id: str) -> None:  # a write that changes nothing the decision reads
        with other.begin() as connection:
            connection.execute(text("UPDATE queue_jobs SET priority = priority WHERE job_id = :id"), {"id": job_id})

    written = write_between_read_and_decision(monkeypatch, touch)
    sent = Statements(database.engine)
    try:
        outcome = jobs.fail("touched", 1, ReportedError("boom"))
    finally:
        other.dispose()
    assert written == ["touched"]
    assert sent.reads_for_failure() == ["unlocked", "locked"]
    assert outcome.decision.should_retry
    # Decided and written once: one error in the history, one retry-log row.
    assert stored(database, "touched") == ("failed", 1, 1)


def test_a_cancellation_between_the_read_and_the_move_to_the_dlq_wins(
    database, jobs, postgres_session_url, monkeypatch
):
    attempts = leased_job(jobs, "cancelled-meanwhile", attempts=jobs.settings.default_policy.max_retries + 1)
    cancellations = CancellationManager(JobManager(Database(postgres_session_url), jobs.clock))

    def cancel(job_id: str) -> None:
        assert cancellations.cancel(job_id, actor="test").job.record.cancel_requested_at is not None

    write_between_read_and_decision(monkeypatch, cancel)
    try:
        outcome = jobs.fail("cancelled-meanwhile", attempts, ReportedError("last"))
    finally:
        cancellations.jobs.database.dispose()
    # Without the version compare, the unlocked decision (the DLQ: its last run failed) would have
    # been written over the cancellation's request.
    assert outcome.dead_letter is None
    assert outcome.job.record.state == JobState.CANCELLED
    state, _history, logged = stored(database, "cancelled-meanwhile")
    assert (state, logged) == ("cancelled", attempts - 1)


def test_a_repeated_report_racing_the_first_gets_its_decision(database, jobs, postgres_session_url, monkeypatch):
    attempts = leased_job(jobs, "twice", attempts=jobs.settings.default_policy.max_retries + 1)
    other = JobManager(Database(postgres_session_url), jobs.clock)
    original = JobsTable.get_job_for_failure
    first: list = []

    def report_first(job_id: str) -> None:
        # The first copy of the report lands while the second is between its read and its write.
        monkeypatch.setattr(JobsTable, "get_job_for_failure", original)
        first.append(other.fail(job_id, attempts, ReportedError("last")))

    write_between_read_and_decision(monkeypatch, report_first)
    try:
        second = jobs.fail("twice", attempts, ReportedError("last"))
    finally:
        other.database.dispose()
    [first_outcome] = first
    assert first_outcome.dead_letter is not None
    assert first_outcome.decision.death_reason is DeathReason.RETRIES_EXHAUSTED
    assert second.dead_letter is not None and second.dead_letter.id == first_outcome.dead_letter.id
    assert stored(database, "twice") == ("dead_letter", attempts, attempts)


def test_a_connection_back_from_statements_alone_runs_transactions_again(database, jobs):
    leased_job(jobs, "rolled-back")
    with database.statements_alone() as repo:
        repo.get_job_for_failure("rolled-back", locked=False)
    # The pool holds one connection: the transaction below runs on the one just used alone.
    with pytest.raises(RuntimeError), database.transaction() as repo:
        repo.connection.execute(text("UPDATE queue_jobs SET priority = 7 WHERE job_id = 'rolled-back'"))
        raise RuntimeError("undo")
    with database.engine.connect() as connection:
        priority = connection.execute(text("SELECT priority FROM queue_jobs WHERE job_id = 'rolled-back'")).scalar()
    assert priority == 0
