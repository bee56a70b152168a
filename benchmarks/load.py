"""Bulk set-up by SQL: jobs in chosen states and dead-letter entries, without the service.

Jobs are numbered g = 1..total and named job-<g>; consecutive ranges of g get each state, in the
order of the `Layout` fields. The counter triggers run as for any insert, so statistics stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks.environment import BenchDatabase

QUEUES = 4


def queue_names() -> list[str]:
    return [f"bench-{index}" for index in range(QUEUES)]


@dataclass(frozen=True)
class Layout:
    total: int
    dead_letter: int = 0  # DEAD_LETTER, attempt 4, each with a dead-letter entry (90 % of them PENDING)
    waiting: int = 0  # ready to lease now
    expired: int = 0  # ACTIVE with a lease that ran out an hour ago (the sweep's work)
    active_first_run: int = 0  # ACTIVE in run 1 of 4: a failure is retried
    active_last_run: int = 0  # ACTIVE in run 4 of 4: a failure goes to the DLQ
    # the rest: COMPLETED

    def ranges(self) -> dict[str, tuple[int, int]]:
        """State name -> (first g, last g), inclusive."""
        bounds = {}
        start = 1
        for name in ("dead_letter", "waiting", "expired", "active_first_run", "active_last_run"):
            count = getattr(self, name)
            bounds[name] = (start, start + count - 1)
            start += count
        if start - 1 > self.total:
            raise ValueError(f"layout needs {start - 1} jobs but total is {self.total}")
        bounds["completed"] = (start, self.total)
        return bounds

    def job_ids(self, name: str) -> list[str]:
        first, last = self.ranges()[name]
        return [f"job-{g}" for g in range(first, last + 1)]


POSTGRES_JOBS = """
INSERT INTO queue_jobs (job_id, queue_name, job_name, job_data, state, priority, attempt_number, budget_start,
    run_at, lease_expires_at, worker_id, result, created_at, updated_at, started_at, completed_at, dead_letter_id)
SELECT 'job-' || g, 'bench-' || (g %% {queues}), 'send',
    jsonb_build_object('to', 'user-' || g || '@example.com', 'n', g),
    CASE WHEN g <= %(d)s THEN 'dead_letter' WHEN g <= %(w)s THEN 'waiting' WHEN g <= %(l)s THEN 'active' ELSE 'completed' END,
    0,
    CASE WHEN g <= %(d)s THEN 4 WHEN g <= %(w)s THEN 0 WHEN g <= %(a)s THEN 1 WHEN g <= %(l)s THEN 4 ELSE 1 END,
    0, %(past)s,
    CASE WHEN g <= %(w)s THEN NULL WHEN g <= %(e)s THEN %(expired)s WHEN g <= %(l)s THEN %(future)s END,
    CASE WHEN g > %(w)s AND g <= %(l)s THEN 'bench-worker' END,
    CASE WHEN g > %(l)s THEN CAST('{{"ok": true}}' AS jsonb) END,
    %(past)s, %(past)s,
    CASE WHEN g > %(w)s THEN %(past)s END,
    CASE WHEN g > %(l)s THEN %(past)s END,
    CASE WHEN g <= %(d)s THEN CAST(CAST(md5('dlq-' || g) AS uuid) AS text) END
FROM generate_series(1, %(total)s) AS g
"""

POSTGRES_DEAD_LETTERS = """
INSERT INTO dead_letter_queue (id, job_id, queue_name, job_name, job_data, failure_reason, error_type, total_attempts,
    error_history, death_reason, recovery_status, priority, fingerprint, created_at, dead_lettered_at, updated_at)
SELECT CAST(CAST(md5('dlq-' || g) AS uuid) AS text), 'job-' || g, 'bench-' || (g %% {queues}), 'send',
    jsonb_build_object('n', g), 'Connection timeout after ' || (g %% 7) || ' s', 'TimeoutError', 4, CAST('[]' AS jsonb),
    'retries_exhausted',
    CASE WHEN g %% 10 = 0 THEN 'recovered' WHEN g %% 10 = 1 THEN 'permanently_failed' ELSE 'pending' END,
    g %% 3, md5('fingerprint-' || (g %% 7)), %(past)s, %(past)s - make_interval(secs => g), %(past)s
FROM generate_series(1, %(d)s) AS g
"""

SQLITE_SERIES = "WITH RECURSIVE series(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM series WHERE g < :n) "

SQLITE_JOBS = (
    SQLITE_SERIES
    + """
INSERT INTO queue_jobs (job_id, queue_name, job_name, job_data, state, priority, attempt_number, budget_start,
    run_at, lease_expires_at, worker_id, result, created_at, updated_at, started_at, completed_at, dead_letter_id)
SELECT 'job-' || g, 'bench-' || (g % {queues}), 'send',
    json_object('to', 'user-' || g || '@example.com', 'n', g),
    CASE WHEN g <= :d THEN 'dead_letter' WHEN g <= :w THEN 'waiting' WHEN g <= :l THEN 'active' ELSE 'completed' END,
    0,
    CASE WHEN g <= :d THEN 4 WHEN g <= :w THEN 0 WHEN g <= :a THEN 1 WHEN g <= :l THEN 4 ELSE 1 END,
    0, :past,
    CASE WHEN g <= :w THEN NULL WHEN g <= :e THEN :expired WHEN g <= :l THEN :future END,
    CASE WHEN g > :w AND g <= :l THEN 'bench-worker' END,
    CASE WHEN g > :l THEN '{{"ok": true}}' END,
    :past, :past,
    CASE WHEN g > :w THEN :past END,
    CASE WHEN g > :l THEN :past END,
    CASE WHEN g <= :d THEN printf('%08x-0000-4000-8000-%012x', g, g) END
FROM series
"""
)

SQLITE_DEAD_LETTERS = (
    SQLITE_SERIES
    + """
INSERT INTO dead_letter_queue (id, job_id, queue_name, job_name, job_data, failure_reason, error_type, total_attempts,
    error_history, death_reason, recovery_status, priority, fingerprint, created_at, dead_lettered_at, updated_at)
SELECT printf('%08x-0000-4000-8000-%012x', g, g), 'job-' || g, 'bench-' || (g % {queues}), 'send',
    json_object('n', g), 'Connection timeout after ' || (g % 7) || ' s', 'TimeoutError', 4, '[]',
    'retries_exhausted',
    CASE WHEN g % 10 = 0 THEN 'recovered' WHEN g % 10 = 1 THEN 'permanently_failed' ELSE 'pending' END,
    g % 3, printf('fingerprint-%d', g % 7), :past,
    strftime('%Y-%m-%d %H:%M:%S', :past_seconds, '-' || g || ' seconds') || '.000000', :past
FROM series
"""
)


def load(database: BenchDatabase, layout: Layout, now: datetime | None = None) -> None:
    """Insert the layout's jobs and dead-letter entries and refresh the planner's statistics."""
    now = now or datetime.now(UTC)
    ranges = layout.ranges()
    bounds = {
        "d": ranges["dead_letter"][1],
        "w": ranges["waiting"][1],
        "e": ranges["expired"][1],
        "a": ranges["active_first_run"][1],
        "l": ranges["active_last_run"][1],
        "total": layout.total,
        "n": layout.total,
    }
    past, expired, future = now - timedelta(hours=2), now - timedelta(hours=1), now + timedelta(hours=6)
    connection = database.connect()
    try:
        cursor = connection.cursor()
        if database.backend == "postgresql":
            times = {"past": past, "expired": expired, "future": future}
            for name in queue_names():
                cursor.execute(
                    "INSERT INTO queues (name, paused, created_at, updated_at) VALUES (%s, false, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (name, past, past),
                )
            cursor.execute(POSTGRES_JOBS.format(queues=QUEUES), bounds | times)
            if layout.dead_letter:
                cursor.execute(POSTGRES_DEAD_LETTERS.format(queues=QUEUES), bounds | times)
            connection.commit()
            connection.autocommit = True
            cursor.execute("VACUUM ANALYZE")
        else:
            text = {
                key: value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
                for key, value in {"past": past, "expired": expired, "future": future}.items()
            }
            cursor.execute("BEGIN IMMEDIATE")
            for name in queue_names():
                cursor.execute(
                    "INSERT INTO queues (name, paused, created_at, updated_at) VALUES (?, 0, ?, ?) ON CONFLICT DO NOTHING",
                    (name, text["past"], text["past"]),
                )
            cursor.execute(SQLITE_JOBS.format(queues=QUEUES), bounds | text)
            if layout.dead_letter:
                cursor.execute(
                    SQLITE_DEAD_LETTERS.format(queues=QUEUES),
                    {"n": layout.dead_letter, "past": text["past"], "past_seconds": text["past"][:19]},
                )
            cursor.execute("COMMIT")
            cursor.execute("ANALYZE")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
