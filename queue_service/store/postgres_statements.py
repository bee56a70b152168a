"""The raw PostgreSQL statements, each named with a one-line description of what it writes.

They exist where one set-wise statement over unnest() arrays replaces a statement per row, so that
PostgreSQL's statement-level counter triggers run once per batch. The SQLite path of the same
method writes the same rows one statement each.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import TextClause, TextualSelect, bindparam, text

from queue_service.store.schema import UTCDateTime, queue_jobs


@dataclass(frozen=True)
class Statement:
    description: str
    clause: TextClause | TextualSelect


def _text(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("now", type_=UTCDateTime()))


SCHEDULE_RETRIES = Statement(
    "Each (id, attempt) still in an expected state becomes FAILED, due at its run_at, with its error, history and rule.",
    _text(
        "UPDATE queue_jobs AS q SET state = :failed, run_at = v.run_at, lease_expires_at = NULL, "
        "last_error = v.last_error, error_history = v.error_history, retry_rule = v.retry_rule, "
        "first_failed_at = v.first_failed_at, updated_at = :now "
        "FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]), CAST(:run_ats AS timestamptz[]), "
        "CAST(:last_errors AS jsonb[]), CAST(:histories AS jsonb[]), CAST(:retry_rules AS text[]), "
        "CAST(:first_failed_ats AS timestamptz[])) "
        "AS v(id, attempt_number, run_at, last_error, error_history, retry_rule, first_failed_at) "
        "WHERE q.id = v.id AND q.attempt_number = v.attempt_number AND q.state = ANY(CAST(:expected AS text[])) "
        "RETURNING q.*"
    ).columns(*queue_jobs.c),
)

COMPLETE_JOBS = Statement(
    "Each (job_id, attempt) still in an expected state, and not asked to cancel, becomes COMPLETED with its result "
    "and duration.",
    _text(
        "UPDATE queue_jobs AS q SET state = :completed, result = v.result, "
        "processing_duration_ms = v.duration_ms, lease_expires_at = NULL, completed_at = :now, updated_at = :now "
        "FROM unnest(CAST(:job_ids AS text[]), CAST(:attempts AS integer[]), CAST(:results AS jsonb[]), "
        "CAST(:durations AS bigint[])) AS v(job_id, attempt_number, result, duration_ms) "
        "WHERE q.job_id = v.job_id AND q.attempt_number = v.attempt_number AND q.state = ANY(CAST(:expected AS text[])) "
        "AND q.cancel_requested_at IS NULL "
        "RETURNING q.job_id, q.queue_name"
    ),
)
