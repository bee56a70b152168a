"""The embedded SQLite store answers the hot queries from their indexes too (EXPLAIN QUERY PLAN)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Engine

from queue_service.domain import DeadLetterFilter, JobState, RecoveryStatus
from queue_service.store import jobs as jobs_store
from queue_service.store import migrate
from queue_service.store.repository import Repository
from tests.databases import empty_database, statements_issued

JOBS = 40_000
NOW = datetime.now(UTC)

# The same mix as the PostgreSQL test: mostly completed, some ready, some dead-lettered.
LOAD = f"""
WITH RECURSIVE numbers(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM numbers WHERE i < {JOBS})
INSERT INTO queue_jobs (job_id, queue_name, job_name, job_data, state, priority, attempt_number, budget_start,
                        run_at, lease_expires_at, created_at, updated_at, completed_at)
SELECT 'job-' || i, 'queue-' || (i % 20), 'send', '{{}}',
       CASE WHEN i % 100 < 85 THEN 'completed' WHEN i % 100 < 90 THEN 'waiting' WHEN i % 100 < 93 THEN 'failed'
            WHEN i % 100 < 95 THEN 'active' ELSE 'dead_letter' END,
       i % 5, 1, 0, '2026-01-01 00:00:00.000000',
       CASE WHEN i % 100 BETWEEN 93 AND 94 THEN '2026-01-01 00:05:00.000000' END,
       '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000', NULL
FROM numbers;
INSERT INTO dead_letter_queue (id, job_id, queue_name, job_name, job_data, failure_reason, total_attempts,
                               error_history, death_reason, recovery_status, priority, created_at,
                               dead_lettered_at, updated_at)
SELECT 'entry-' || id, job_id, queue_name, 'send', '{{}}', 'boom', 4, '[]', 'retries_exhausted',
       CASE WHEN id % 10 < 6 THEN 'pending' ELSE 'recovered' END, id % 10,
       '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000'
FROM queue_jobs WHERE state = 'dead_letter';
ANALYZE;
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Iterator[Engine]:
    with empty_database("sqlite", tmp_path_factory.mktemp("sqlite-plans")) as engine:
        migrate.upgrade(engine)
        with engine.begin() as connection:
            for statement in LOAD.split(";"):
                if statement.strip():
                    connection.exec_driver_sql(statement)
        yield engine


def query_plan(engine: Engine, run: Callable[[Connection], object]) -> list[str]:
    with statements_issued(engine, run) as (connection, captured):
        statement, parameters = captured[-1]
        return [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()]


def uses_index(step: str, index: str) -> bool:
    return re.search(rf"USING (COVERING )?INDEX {index}\b", step) is not None


def test_lease_walks_the_ready_index_without_sorting(loaded):
    plan = query_plan(
        loaded,
        lambda connection: Repository(connection).ready_jobs_for_lease(["queue-7"], limit=10, now=NOW),
    )
    assert any(uses_index(step, "ix_queue_jobs_ready") for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_the_one_statement_lease_walks_the_ready_index_without_sorting(loaded):
    def lease(connection):
        Repository(connection).lease_from_plain_queues(
            ["queue-7"], limit=10, now=NOW, worker_id="w", lease_expires_at=NOW
        )

    with statements_issued(loaded, lease) as (connection, captured):
        # The lease's own statement; the leased jobs' queues are read after it.
        [(statement, parameters)] = [item for item in captured if item[0].startswith("UPDATE queue_jobs")]
        plan = [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()]
    assert any(uses_index(step, "ix_queue_jobs_ready") for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan


def test_the_one_statement_lease_of_several_queues_searches_an_index_by_queue(loaded):
    def lease(connection):
        Repository(connection).lease_from_plain_queues(
            ["queue-7", "queue-8"], limit=10, now=NOW, worker_id="w", lease_expires_at=NOW
        )

    with statements_issued(loaded, lease) as (connection, captured):
        [(statement, parameters)] = [item for item in captured if item[0].startswith("UPDATE queue_jobs")]
        plan = [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()]
    # The queues' jobs come from an index by queue; sorting those few into lease order is allowed.
    assert any(re.match(r"SEARCH queue_jobs USING INDEX \w+ \(queue_name=\?", step) for step in plan), plan
    assert not any(step.startswith("SCAN") for step in plan), plan


@pytest.mark.parametrize("statement", [jobs_store.STORED_JOB_IDS_SQLITE, jobs_store.ROW_IDS_OF_JOBS_SQLITE])
def test_a_batched_inserts_reads_of_its_job_ids_search_the_job_id_index(loaded, statement):
    with loaded.connect() as connection:
        plan = [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", ('["job-7"]',))]
        found = connection.exec_driver_sql(statement, ('["job-7", "job-8", "no-such-job"]',)).scalar_one()
    assert any(re.match(r"SEARCH queue_jobs USING (COVERING )?INDEX \w+ \(job_id=\?\)", step) for step in plan), plan
    assert not any(step.startswith("SCAN queue_jobs") for step in plan), plan
    assert "job-7" in found and "job-8" in found and "no-such-job" not in found


def test_due_retries_use_an_index(loaded):
    plan = query_plan(
        loaded,
        lambda connection: Repository(connection).make_jobs_due(
            now=NOW, limit=500, from_states=[JobState.FAILED], to_state=JobState.WAITING
        ),
    )
    assert any(uses_index(step, "ix_queue_jobs_state_run_at_queue_name") for step in plan), plan
    assert not any(step.startswith("SCAN queue_jobs") for step in plan), plan


def test_dead_letter_triage_page_uses_the_triage_index(loaded):
    plan = query_plan(
        loaded,
        lambda connection: Repository(connection).list_dead_letters(
            DeadLetterFilter(recovery_status=RecoveryStatus.PENDING), after=None, limit=50
        ),
    )
    assert any(uses_index(step, "ix_dead_letter_queue_triage") for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_statistics_read_the_counters_and_count_only_scheduled_jobs_from_an_index(loaded):
    counters = query_plan(loaded, lambda connection: Repository(connection).counter_totals(["queue-7"]))
    assert any("queue_counters" in step for step in counters), counters
    assert not any("queue_jobs" in step for step in counters), counters

    # The only count over jobs: those whose run time is still ahead, a covering index range.
    scheduled = query_plan(loaded, lambda connection: Repository(connection).scheduled_counts(NOW, ["queue-7"]))
    assert any(uses_index(step, "ix_queue_jobs_state_run_at_queue_name") for step in scheduled), scheduled
    assert not any(step.startswith("SCAN queue_jobs") for step in scheduled), scheduled


def test_the_sweep_finds_expired_leases_by_their_index(loaded):
    plan = query_plan(loaded, lambda connection: Repository(connection).lock_expired_leases(now=NOW, limit=20))
    assert any(uses_index(step, "ix_queue_jobs_lease_expiry") for step in plan), plan
    assert not any(step.startswith("SCAN queue_jobs") for step in plan), plan
    # No sort of every expired lease: SQLite's index ends with the rowid (id), so it holds the order.
    assert not any("TEMP B-TREE" in step for step in plan), plan
