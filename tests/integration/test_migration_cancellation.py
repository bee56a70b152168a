"""Migration 0015_cancellation on SQLite and PostgreSQL, over a database holding jobs: the CANCELLED
state and its activity count come with it, a downgrade is refused while cancelled jobs exist, and
after cleaning them it restores the older checks and counting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from queue_service.clock import FakeClock
from queue_service.core.cancellations import CancellationManager
from queue_service.core.jobs import JobManager, JobSpec
from queue_service.core.queues import QueueManager
from queue_service.domain import JobState
from queue_service.store import migrate
from queue_service.store.database import Database
from tests.conftest import BACKENDS
from tests.databases import empty_database
from tests.integration.test_migrations import downgrade

pytestmark = pytest.mark.slow

BEFORE = "0014_retry_breaker"
AFTER = "0015_cancellation"


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path) -> Iterator[Engine]:
    with empty_database(request.param, tmp_path) as engine:
        yield engine


def insert_job(engine: Engine, job_id: str, state: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO queue_jobs (job_id, queue_name, job_name, job_data, state, priority, attempt_number,"
                " budget_start, run_at, created_at, updated_at, trace_parent)"
                " VALUES (:job_id, 'emails', 'send', '{}', :state, 0, 0, 0, :now, :now, :now, '')"
            ),
            {"job_id": job_id, "state": state, "now": "2026-12-05 10:00:00"},
        )


def counters(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT counter, sum(amount) FROM queue_counters WHERE queue_name = 'emails' GROUP BY counter")
        ).all()
    return {counter: int(amount) for counter, amount in rows if amount}


def test_upgrade_keeps_jobs_and_a_downgrade_waits_until_cancelled_jobs_are_cleaned(engine):
    migrate.upgrade(engine, BEFORE)
    insert_job(engine, "old-waiting", "waiting")
    with pytest.raises(IntegrityError):
        insert_job(engine, "too-early", "cancelled")

    migrate.upgrade(engine, AFTER)
    database = Database(engine.url.render_as_string(hide_password=False))
    clock = FakeClock()
    try:
        jobs = JobManager(database, clock)
        cancellations = CancellationManager(jobs)
        cancelled = cancellations.cancel("old-waiting", actor="test")
        assert cancelled.job.record.state == JobState.CANCELLED
        jobs.enqueue([JobSpec("emails", "send", job_id="still-waiting")])
        assert counters(engine) == {"jobs.cancelled": 1, "jobs.waiting": 1}
        clock.advance(timedelta(minutes=5))
        activity = QueueManager(jobs).activity(["emails"], period=timedelta(hours=1), bucket_width=timedelta(minutes=5))
        assert sum(bucket.cancelled for bucket in activity.totals.buckets) == 1

        with pytest.raises(RuntimeError, match="1 jobs are CANCELLED"):
            downgrade(engine, BEFORE)
        assert migrate.current_revision(engine) == AFTER

        assert QueueManager(jobs).clean("emails", JobState.CANCELLED, actor="test") == 1
    finally:
        database.dispose()
    downgrade(engine, BEFORE)
    assert migrate.current_revision(engine) == BEFORE
    with pytest.raises(IntegrityError):
        insert_job(engine, "after-downgrade", "cancelled")
    with engine.connect() as connection:
        kinds = connection.execute(text("SELECT DISTINCT activity FROM queue_activity")).scalars().all()
    assert "cancelled" not in kinds
    assert counters(engine) == {"jobs.waiting": 1}
    # The older activity counting still works.
    with engine.begin() as connection:
        connection.execute(text("UPDATE queue_jobs SET state = 'completed' WHERE job_id = 'still-waiting'"))
        kinds = connection.execute(text("SELECT DISTINCT activity FROM queue_activity")).scalars().all()
    assert kinds == ["completed"]
