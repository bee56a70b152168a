"""PostgreSQL: the batch writes of a report (retries, moves to the DLQ, completions) find their jobs by
key in the plan a prepared statement keeps for every value, also over a table of a few thousand
jobs, where a plan that cannot count an unnest()'s rows would rather scan them all. So does the
twin each runs for a batch of one, which reads its row from VALUES."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Engine, text

from queue_service.store import migrate
from queue_service.store.postgres_statements import COMPLETE_JOBS, DEAD_LETTER_JOBS, SCHEDULE_RETRIES
from tests.databases import empty_database, statements_issued
from tests.integration.test_index_scans import prepared_plan_of

pytestmark = pytest.mark.postgres

JOBS = 5_000
NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
# ACTIVE jobs of the load (ids follow the series in a new table).
ROW_IDS, JOB_IDS = [2500, 2505], ["job-2500", "job-2505"]

# A fifth of them running (ACTIVE), the rest done: the state alone narrows little.
LOAD_JOBS = f"""
INSERT INTO queue_jobs (job_id, queue_name, job_name, job_data, state, priority, attempt_number, budget_start,
                        run_at, lease_expires_at, created_at, updated_at, completed_at)
SELECT 'job-' || i, 'mail', 'send', '{{}}'::jsonb, CASE WHEN i % 5 = 0 THEN 'active' ELSE 'completed' END,
       0, 1, 0, now(), CASE WHEN i % 5 = 0 THEN now() + interval '5 minutes' END, now(), now(),
       CASE WHEN i % 5 <> 0 THEN now() END
FROM generate_series(1, {JOBS}) AS i
"""


@pytest.fixture(scope="module")
def small_table(tmp_path_factory) -> Iterator[Engine]:
    with empty_database("postgresql", tmp_path_factory.mktemp("generic-plans")) as engine:
        migrate.upgrade(engine)
        with engine.begin() as connection:
            connection.execute(text(LOAD_JOBS))
        # Not analyzed since: a table that grew faster than autovacuum looks at it.
        with engine.connect() as connection:
            found = connection.execute(text("SELECT id FROM queue_jobs WHERE job_id = :job_id"), {"job_id": JOB_IDS[0]})
            assert found.scalar_one() == ROW_IDS[0]
        yield engine


def _schedule_retry(connection: Connection, rows: int) -> None:
    SCHEDULE_RETRIES.rows(
        connection,
        {
            "failed": "failed",
            "decision": "retry",
            "now": NOW,
            "ids": ROW_IDS[:rows],
            "attempts": [1] * rows,
            "run_ats": [NOW] * rows,
            "last_errors": [json.dumps({"message": "boom"})] * rows,
            "histories": ["[]"] * rows,
            "retry_rules": [""] * rows,
            "first_failed_ats": [NOW] * rows,
            "delays_ms": [1000] * rows,
            "remaining": [2] * rows,
            "row_versions": [None] * rows,
            "expected": ["active"],
        },
    )


def _dead_letter(connection: Connection, rows: int) -> None:
    DEAD_LETTER_JOBS.rows(
        connection,
        {
            "dead_letter": "dead_letter",
            "decision": "dead_letter",
            "pending": "pending",
            "now": NOW,
            "ids": ROW_IDS[:rows],
            "attempts": [1] * rows,
            "last_errors": [json.dumps({"message": "boom"})] * rows,
            "histories": ["[]"] * rows,
            "entry_ids": [f"00000000-0000-4000-8000-00000000000{n}" for n in range(rows)],
            "death_reasons": ["retries_exhausted"] * rows,
            "fingerprints": ["f"] * rows,
            "failure_reasons": ["boom"] * rows,
            "error_types": [""] * rows,
            "retry_rules": [""] * rows,
            "first_failed_ats": [NOW] * rows,
            "row_versions": [None] * rows,
            "expected": ["active"],
        },
    )


def _complete(connection: Connection, rows: int) -> None:
    COMPLETE_JOBS.rows(
        connection,
        {
            "completed": "completed",
            "now": NOW,
            "job_ids": JOB_IDS[:rows],
            "attempts": [1] * rows,
            "results": ["{}"] * rows,
            "durations": [None] * rows,
            "expected": ["active"],
        },
    )


@pytest.mark.parametrize("rows", [1, 2], ids=["one-row", "batch"])
@pytest.mark.parametrize(
    "write, index",
    [
        pytest.param(_schedule_retry, "pk_queue_jobs", id="schedule-retries"),
        pytest.param(_dead_letter, "pk_queue_jobs", id="dead-letter-jobs"),
        pytest.param(_complete, "uq_queue_jobs_job_id", id="complete-jobs"),
    ],
)
def test_the_batch_writes_generic_plans_find_their_jobs_by_key(small_table, write, index, rows):
    with statements_issued(small_table, lambda connection: write(connection, rows)) as (_, captured):
        (statement, _), *_ = captured
    # A batch of one reads its row from VALUES; a batch, from unnest().
    assert ("VALUES (CAST(" in statement, "unnest(" in statement) == (rows == 1, rows > 1), statement
    plan = prepared_plan_of(small_table, lambda connection: write(connection, rows), force_generic=True)
    assert "Seq Scan on queue_jobs" not in plan, plan
    assert re.search(rf"(Index Scan using|Bitmap Index Scan on) {index}\b", plan), plan
