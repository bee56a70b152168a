"""The raw SQLite statements, each named with a one-line description of what it writes.

They exist where one statement replaces several: a statement over a JSON array of the batch
(json_each) in place of one run per row, a lease that picks, claims and returns its jobs at once.
On SQLite's one writer each statement costs the lane a round through SQLAlchemy and the driver.
"""

from __future__ import annotations

from sqlalchemy import Boolean, bindparam, column, text

from queue_service.store.schema import UTCDateTime, queue_jobs
from queue_service.store.statements import Statement, lease_statements

COMPLETE_JOBS = Statement(
    "Each [job_id, attempt, result as JSON text, duration_ms] of :completions still in an expected state, and not "
    "asked to cancel, becomes COMPLETED with its result and duration. Returns each job changed with its queue and "
    "whether that queue has a breaker on.",
    text(
        "UPDATE queue_jobs SET state = :completed, result = json_extract(completion.value, '$[2]'), "
        "processing_duration_ms = json_extract(completion.value, '$[3]'), lease_expires_at = NULL, "
        "completed_at = :now, updated_at = :now "
        "FROM json_each(:completions) AS completion "
        "WHERE queue_jobs.job_id = json_extract(completion.value, '$[0]') "
        "AND queue_jobs.attempt_number = json_extract(completion.value, '$[1]') "
        "AND queue_jobs.state IN (SELECT value FROM json_each(:expected)) "
        "AND queue_jobs.cancel_requested_at IS NULL "
        # Qualified: SQLite resolves a bare queue_name inside the subquery to queue_breakers' own.
        "RETURNING job_id, queue_name, EXISTS (SELECT 1 FROM queue_breakers "
        "WHERE queue_breakers.queue_name = queue_jobs.queue_name AND queue_breakers.enabled) AS breaker_on"
    ).bindparams(bindparam("now", type_=UTCDateTime())),
)


def _lease_from_plain_queues_sql(queues: str) -> str:
    """The lease of the queues that `queues` names (`IN :names`, or `= :name` for one queue: an
    expanding parameter makes SQLAlchemy rewrite the text on every call). The job columns are the
    table's own, fixed in code."""
    return (
        "UPDATE queue_jobs SET state = 'active', attempt_number = attempt_number + 1, worker_id = :worker_id, "
        "lease_expires_at = :lease_until, started_at = :now, updated_at = :now "
        f"WHERE id IN (SELECT id FROM queue_jobs WHERE queue_name {queues} AND state IN ('waiting', 'failed') "
        "AND run_at <= :now ORDER BY priority DESC, run_at, id LIMIT :limit) "
        f"AND NOT (EXISTS (SELECT 1 FROM queues WHERE name {queues} AND paused) "
        f"OR EXISTS (SELECT 1 FROM queue_lease_limits WHERE queue_name {queues}) "
        f"OR EXISTS (SELECT 1 FROM queue_breakers WHERE queue_name {queues} AND enabled)) "
        # Not the queue's columns: a subquery of RETURNING reads the queues table by a scan for each
        # row (SQLite uses no index there), so the caller reads the leased jobs' queues on their own.
        f"RETURNING 0 AS any_controlled, {', '.join(column.name for column in queue_jobs.c)}"
    )


LEASE_FROM_PLAIN_QUEUES, LEASE_FROM_ONE_PLAIN_QUEUE = lease_statements(
    "Up to :limit ready jobs of the queues :names become ACTIVE with their next attempt, each returned after "
    "any_controlled (always false), as PostgreSQL's statement returns them but without their queue's columns; "
    "none when one of those queues is paused, has lease limits or a breaker on. The rows come in no order: the "
    "lease order is the caller's sort.",
    _lease_from_plain_queues_sql,
    (column("any_controlled", Boolean()), *queue_jobs.c),
)
