"""The raw SQLite statements, each named with a one-line description of what it writes.

They exist where one statement over a JSON array of the batch (json_each) replaces a prepared
statement run once per row: each run costs a statement's round through SQLAlchemy and the driver.
"""

from __future__ import annotations

from sqlalchemy import bindparam, text

from queue_service.store.postgres_statements import Statement
from queue_service.store.schema import UTCDateTime

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
