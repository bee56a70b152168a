"""At a million jobs, the hot queries of PostgreSQL use their indexes (lease, due retries, DLQ triage pages, activity), and the dashboard's pages load quickly."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, text

from queue_service.domain import DeadLetterFilter, JobState, RecoveryStatus
from queue_service.store import migrate
from queue_service.store.prepared import prepared_form
from queue_service.store.repository import Repository
from tests.databases import empty_database, statements_issued

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

JOBS = 1_000_000
QUEUES = 20

# 85 % completed, 5 % waiting, 3 % failed (half due, half later), 2 % active, 5 % dead-lettered.
LOAD_JOBS = f"""
INSERT INTO queue_jobs (job_id, queue_name, job_name, job_data, state, priority, attempt_number, budget_start,
                        run_at, lease_expires_at, created_at, updated_at, completed_at)
SELECT 'job-' || i,
       'queue-' || (i % {QUEUES}),
       'send',
       '{{}}'::jsonb,
       CASE WHEN i % 100 < 85 THEN 'completed' WHEN i % 100 < 90 THEN 'waiting' WHEN i % 100 < 93 THEN 'failed'
            WHEN i % 100 < 95 THEN 'active' ELSE 'dead_letter' END,
       i % 5,
       CASE WHEN i % 100 BETWEEN 85 AND 89 THEN 0 ELSE 1 + i % 3 END,
       0,
       now() - make_interval(secs => i % 86400)
             + CASE WHEN i % 100 BETWEEN 90 AND 92 AND i % 2 = 0 THEN interval '2 hours' ELSE interval '0' END,
       CASE WHEN i % 100 BETWEEN 93 AND 94 THEN now() + make_interval(secs => i % 600) - interval '5 minutes' END,
       now() - interval '2 days',
       now() - make_interval(secs => i % 86400),
       CASE WHEN i % 100 < 85 THEN now() - make_interval(secs => i % 86400) END
FROM generate_series(1, {JOBS}) AS i
"""

# One entry per dead-lettered job: 60 % pending, 30 % recovered, 10 % permanently failed.
LOAD_DEAD_LETTERS = f"""
INSERT INTO dead_letter_queue (id, job_id, queue_name, job_name, job_data, failure_reason, error_type, total_attempts,
                               error_history, death_reason, recovery_status, priority, fingerprint, created_at,
                               dead_lettered_at, updated_at)
SELECT md5(i::text)::uuid::text, 'job-' || i, 'queue-' || (i % {QUEUES}), 'send', '{{}}'::jsonb, 'boom', 'IOError',
       4, '[]'::jsonb, 'retries_exhausted',
       CASE WHEN i % 10 < 6 THEN 'pending' WHEN i % 10 < 9 THEN 'recovered' ELSE 'permanently_failed' END,
       i % 10, md5((i % 50)::text), now() - make_interval(secs => i), now() - make_interval(secs => i), now()
FROM generate_series(1, {JOBS}) AS i
WHERE i % 100 >= 95
"""

LOADED_TABLES = ("queue_jobs", "dead_letter_queue")


def load(engine: Engine) -> None:
    """A million jobs and their dead-letter entries; secondary indexes are rebuilt once after the load, as defined."""
    with engine.begin() as connection:
        indexes = connection.execute(
            text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i"
                " WHERE i.schemaname = 'public' AND i.tablename = ANY(:tables)"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
            ),
            {"tables": list(LOADED_TABLES)},
        ).all()
        assert indexes, "no secondary indexes found"
        for name, _ in indexes:
            connection.execute(text(f'DROP INDEX "{name}"'))
        connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        connection.execute(text("SET LOCAL synchronous_commit = off"))
        connection.execute(text(LOAD_JOBS))
        connection.execute(text(LOAD_DEAD_LETTERS))
        for _, definition in indexes:
            connection.execute(text(definition))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in LOADED_TABLES:
            connection.execute(text(f"ANALYZE {table}"))


@pytest.fixture(scope="module")
def million_jobs(tmp_path_factory) -> Iterator[Engine]:
    with empty_database("postgresql", tmp_path_factory.mktemp("index-scans")) as engine:
        migrate.upgrade(engine)
        load(engine)
        yield engine


def plan_of(engine: Engine, run: Callable[[Connection], object], *, analyze: bool = False) -> str:
    """EXPLAIN (ANALYZE: with actual row counts) of the statement `run` issues through the store, rolled back."""
    with statements_issued(engine, run) as (connection, captured):
        assert len(captured) == 1, [statement for statement, _ in captured]
        statement, parameters = captured[0]
        with connection.begin() as explained:
            rows = connection.exec_driver_sql(f"EXPLAIN {'ANALYZE ' if analyze else ''}{statement}", parameters).all()
            explained.rollback()
    return "\n".join(row[0] for row in rows)


def prepared_plan_of(engine: Engine, run: Callable[[Connection], object], *, force_generic: bool) -> str:
    """The plan of the statement `run` issues once the service has prepared it and run it more than
    five times, after which PostgreSQL may keep one plan for every value (the generic plan); with
    `force_generic`, that plan whatever its cost. The runs are rolled back."""
    with statements_issued(engine, run) as (connection, captured):
        assert len(captured) == 1, [statement for statement, _ in captured]
        statement, parameters = captured[0]
        form = prepared_form(statement)
        with connection.begin() as explained:
            connection.exec_driver_sql(form.prepare("plan_check"))
            if force_generic:
                connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            types = connection.exec_driver_sql(
                "SELECT parameter_types::text[] FROM pg_prepared_statements WHERE name = 'plan_check'"
            ).scalar_one()
            execute = form.execute("plan_check", types)
            for _ in range(6):
                connection.exec_driver_sql(execute, parameters)
            rows = connection.exec_driver_sql(f"EXPLAIN {execute}", parameters).all()
            explained.rollback()
        connection.exec_driver_sql("DEALLOCATE plan_check")
    return "\n".join(row[0] for row in rows)


def assert_index_scan(plan: str, index: str) -> None:
    assert "Seq Scan" not in plan, plan
    assert re.search(rf"(Index Scan|Index Only Scan|Bitmap Index Scan)( Backward)? (using|on) {index}\b", plan), plan


NOW = datetime.now(UTC)


def test_the_data_set_is_loaded(million_jobs):
    with million_jobs.connect() as connection:
        counts = dict(connection.execute(text("SELECT state, count(*) FROM queue_jobs GROUP BY state")).all())
        dead = connection.execute(text("SELECT count(*) FROM dead_letter_queue")).scalar_one()
    assert sum(counts.values()) == JOBS
    assert counts["completed"] == 850_000 and counts["waiting"] == 50_000 and counts["failed"] == 30_000
    assert dead == counts["dead_letter"] == 50_000


def lease_plan(engine: Engine, queues: list[str]) -> str:
    return plan_of(
        engine,
        lambda connection: Repository(connection).ready_jobs_for_lease(queues, limit=10, now=NOW),
    )


def test_lease_from_one_queue_walks_the_ready_index_in_order(million_jobs):
    plan = lease_plan(million_jobs, ["queue-7"])
    assert_index_scan(plan, "ix_queue_jobs_ready")
    assert "Sort" not in plan, plan  # the index order is the lease order: no sort, stops after 10 rows


def test_the_one_statement_lease_from_one_queue_walks_the_ready_index_in_order(million_jobs):
    plan = plan_of(
        million_jobs,
        lambda connection: Repository(connection).lease_from_plain_queues(
            ["queue-7"], limit=10, now=NOW, worker_id="w", lease_expires_at=NOW + timedelta(minutes=5)
        ),
    )
    # The queues' own small table may be scanned whole to join each job's queue row; the jobs never are.
    assert_index_scan(plan.replace("Seq Scan on queues ", "Index Scan on queues "), "ix_queue_jobs_ready")
    assert "Sort" not in plan, plan


def test_lease_from_several_queues_uses_an_index(million_jobs):
    # One index scan cannot yield the lease order across several queues, so PostgreSQL reads the
    # ready jobs of those queues through an index and sorts them; never the whole table.
    plan = lease_plan(million_jobs, ["queue-1", "queue-2", "queue-3"])
    assert_index_scan(plan, "ix_queue_jobs_(ready|queue_state)")


def test_due_retries_use_the_state_run_at_index(million_jobs):
    plan = plan_of(
        million_jobs,
        lambda connection: Repository(connection).make_jobs_due(
            now=NOW, limit=500, from_states=[JobState.FAILED], to_state=JobState.WAITING
        ),
    )
    assert_index_scan(plan, "ix_queue_jobs_state_run_at_queue_name")


def test_expired_leases_use_the_lease_expiry_index(million_jobs):
    plan = plan_of(million_jobs, lambda connection: Repository(connection).lock_expired_leases(now=NOW, limit=500))
    assert_index_scan(plan, "ix_queue_jobs_lease_expiry")


@pytest.mark.parametrize(
    "query, after, index",
    [
        (DeadLetterFilter(recovery_status=RecoveryStatus.PENDING), None, "ix_dead_letter_queue_triage"),
        (
            DeadLetterFilter(recovery_status=RecoveryStatus.PENDING),
            (4, NOW - timedelta(hours=3), "0" * 36),
            "ix_dead_letter_queue_triage",
        ),
        (
            DeadLetterFilter(queue_name="queue-3", recovery_status=RecoveryStatus.PENDING),
            None,
            "ix_dead_letter_queue_queue_triage",
        ),
    ],
    ids=["first-page", "next-page", "one-queue"],
)
def test_dead_letter_triage_pages_use_the_triage_index(million_jobs, query, after, index):
    plan = plan_of(
        million_jobs, lambda connection: Repository(connection).list_dead_letters(query, after=after, limit=50)
    )
    assert_index_scan(plan, index)


LEASE_EXPIRY = NOW + timedelta(minutes=5)


def _case(case_id: str, run: Callable[[Connection], object], index: str):
    return pytest.param(run, index, id=case_id)


PREPARED_CASES = [
    _case(
        "lease",
        lambda c: Repository(c).ready_jobs_for_lease(["queue-7"], limit=10, now=NOW),
        "ix_queue_jobs_ready",
    ),
    _case(
        "one-statement-lease",
        lambda c: Repository(c).lease_from_plain_queues(
            ["queue-7"], limit=10, now=NOW, worker_id="w", lease_expires_at=LEASE_EXPIRY
        ),
        "ix_queue_jobs_ready",
    ),
    _case(
        "lease-several-queues",
        lambda c: Repository(c).ready_jobs_for_lease(["queue-1", "queue-2", "queue-3"], limit=10, now=NOW),
        "ix_queue_jobs_(ready|queue_state)",
    ),
    _case("job-for-failure", lambda c: Repository(c).get_job_for_failure("job-77"), "uq_queue_jobs_job_id"),
    _case(
        "job-for-failure-unlocked",
        lambda c: Repository(c).get_job_for_failure("job-77", locked=False),
        "uq_queue_jobs_job_id",
    ),
    _case(
        "due-retries",
        lambda c: Repository(c).make_jobs_due(
            now=NOW, limit=500, from_states=[JobState.FAILED], to_state=JobState.WAITING
        ),
        "ix_queue_jobs_state_run_at_queue_name",
    ),
    _case(
        "expired-leases",
        lambda c: Repository(c).lock_expired_leases(now=NOW, limit=500),
        "ix_queue_jobs_lease_expiry",
    ),
    _case(
        "retry-pending",
        lambda c: Repository(c).retry_pending_jobs(after_id=0, limit=500, min_runs_in_budget=2),
        "ix_queue_jobs_retry_pending",
    ),
    _case(
        "old-completed",
        lambda c: Repository(c).delete_completed_jobs(completed_before=NOW - timedelta(hours=20), limit=500),
        "ix_queue_jobs_completed_at",
    ),
    _case(
        "dlq-page",
        lambda c: Repository(c).list_dead_letters(
            DeadLetterFilter(recovery_status=RecoveryStatus.PENDING), after=None, limit=50
        ),
        "ix_dead_letter_queue_triage",
    ),
]
# Run on every call (and the sweep's expired leases, which meet every lease): their plan must not
# depend on what PostgreSQL makes of the parameters' values.
PER_CALL = ["lease", "one-statement-lease", "lease-several-queues", "job-for-failure", "expired-leases", "dlq-page"]


@pytest.mark.parametrize("run, index", PREPARED_CASES)
def test_prepared_statements_keep_their_index_in_the_plan_postgresql_settles_on(million_jobs, run, index):
    """The service prepares what it runs often. After five runs PostgreSQL may plan such a statement
    once for any value; the plan it uses from then on still reads the jobs by index."""
    plan = prepared_plan_of(million_jobs, run, force_generic=False)
    assert_index_scan(plan.replace("Seq Scan on queues ", "Index Scan on queues "), index)


@pytest.mark.parametrize("run, index", [case for case in PREPARED_CASES if case.id in PER_CALL], ids=PER_CALL)
def test_the_per_call_statements_generic_plans_read_by_index(million_jobs, run, index):
    """Whatever the values, the generic plan of a statement run on every call reads by index: their
    states are literals, which a partial index's predicate can match."""
    plan = prepared_plan_of(million_jobs, run, force_generic=True)
    assert_index_scan(plan.replace("Seq Scan on queues ", "Index Scan on queues "), index)


# A week of activity for every queue, at both stored widths, as the triggers would have kept it.
LOAD_ACTIVITY = f"""
INSERT INTO queue_activity (queue_name, bucket_seconds, bucket_start, activity, amount)
SELECT 'queue-' || q, w.seconds, to_timestamp(floor(extract(epoch FROM now()) / w.seconds) * w.seconds - b * w.seconds),
       a, 1 + (b * q) % 17
FROM generate_series(0, {QUEUES - 1}) AS q,
     (VALUES (300, 2016), (3600, 168)) AS w(seconds, buckets),
     generate_series(0, 2015) AS b,
     unnest(ARRAY['completed', 'failed', 'retried', 'dead_lettered']) AS a
WHERE b < w.buckets
"""
DASHBOARD_PAGES = (
    "/",
    "/?window=hour",
    "/?window=week",
    "/dlq",
    "/dlq?status=any",
    "/dlq?queue=queue-3&text=boom",
    "/dlq/{entry}",
    "/patterns",
    "/patterns/redrive?fingerprint={fingerprint}",
    "/queues",
    "/queue?name=queue-3",
    "/recovery",
    "/audit",
    "/jobs",
    "/jobs?queue=queue-3&state=waiting",
    "/jobs?queue=queue-3&state=completed&name=send",
    "/jobs?name=send",
    "/job?id=job-95",
)


def test_a_week_of_activity_reads_the_hourly_rows_by_index(million_jobs):
    with million_jobs.begin() as connection:
        if not connection.execute(text("SELECT count(*) FROM queue_activity")).scalar_one():
            connection.execute(text(LOAD_ACTIVITY))
    with million_jobs.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE queue_activity"))
    start = datetime.fromtimestamp(NOW.timestamp() // 3600 * 3600, UTC) - timedelta(days=7)
    plan = plan_of(
        million_jobs,
        lambda connection: Repository(connection).activity_totals(
            start=start, end=start + timedelta(days=7, hours=6), stored_seconds=3600, width_seconds=6 * 3600
        ),
    )
    assert_index_scan(plan, "ix_queue_activity_bucket_seconds")


def test_dashboard_pages_load_quickly_at_a_million_jobs(million_jobs):
    """Every page through a real server and the dashboard app; the median of five loads is printed
    (pytest -s) and bounded loosely, as this machine may be shared."""
    import re
    import statistics
    import time

    from starlette.testclient import TestClient

    from queue_service.api.server import QueueServer
    from queue_service.dashboard.app import DashboardSettings, create_app
    from tests.conftest import ADMIN_TOKEN, auth_tokens, make_config

    with million_jobs.begin() as connection:
        if not connection.execute(text("SELECT count(*) FROM queue_activity")).scalar_one():
            connection.execute(text(LOAD_ACTIVITY))
        connection.execute(
            text(
                "INSERT INTO queues (name, paused, created_at, updated_at)"
                " SELECT DISTINCT queue_name, false, now(), now() FROM queue_jobs ON CONFLICT DO NOTHING"
            )
        )
    url = million_jobs.url.render_as_string(hide_password=False)
    server = QueueServer(make_config(url, tokens=auth_tokens())).start()
    app = create_app(DashboardSettings(target=f"127.0.0.1:{server.port}"))
    try:
        with TestClient(app, base_url="https://testserver") as client:
            login = client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
            assert client.post("/login", data={"csrf_token": token, "token": ADMIN_TOKEN}).status_code == 200
            entry = re.search(r'data-entry="([^"]+)"', client.get("/dlq").text).group(1)
            fingerprint = re.search(r"fingerprint=([0-9a-f]+)", client.get("/patterns").text).group(1)
            medians = {}
            for template in DASHBOARD_PAGES:
                path = template.format(entry=entry, fingerprint=fingerprint)
                times = []
                for _ in range(5):
                    started = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, (path, response.text[:300])
                medians[path] = statistics.median(times)
                print(f"{path:60s} median {medians[path]:6.1f} ms, max {max(times):6.1f} ms")
        slow = {path: round(ms) for path, ms in medians.items() if ms > 1000}
        assert not slow, f"pages slower than a second at a million jobs: {slow}"
    finally:
        app.state.dashboard.close()
        server.stop(0)


def test_a_deep_dead_letter_page_reads_only_its_own_rows(million_jobs):
    """The page halfway down the pending entries starts its index scans at the page key."""
    query = DeadLetterFilter(recovery_status=RecoveryStatus.PENDING)
    with million_jobs.connect() as connection:
        pending = connection.execute(
            text("SELECT count(*) FROM dead_letter_queue WHERE recovery_status = 'pending'")
        ).scalar_one()
        after = tuple(
            connection.execute(
                text(
                    "SELECT priority, dead_lettered_at, id FROM dead_letter_queue WHERE recovery_status = 'pending'"
                    " ORDER BY priority DESC, dead_lettered_at DESC, id OFFSET :middle LIMIT 1"
                ),
                {"middle": pending // 2},
            ).one()
        )
    limit = 50
    plan = plan_of(
        million_jobs,
        lambda connection: Repository(connection).list_dead_letters(query, after=after, limit=limit),
        analyze=True,
    )
    assert_index_scan(plan, "ix_dead_letter_queue_triage")
    rows_read = sum(int(found) for found in re.findall(r"Index Scan.*?actual time=\S+ rows=(\d+)", plan))
    removed = sum(int(found) for found in re.findall(r"Rows Removed by Filter: (\d+)", plan))
    assert rows_read <= 3 * limit and removed == 0, plan
