"""The raw PostgreSQL statements, each named with a one-line description of what it writes.

They exist where one set-wise statement over unnest() arrays, or over the rows of one JSON array,
replaces a statement per row, so that PostgreSQL's statement-level counter triggers run once per
batch. The SQLite path of the same
method writes the same rows with one prepared statement run over the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Connection, Text, TextClause, bindparam, column, text

from queue_service.store.direct import DirectStatement
from queue_service.store.schema import UTCDateTime, dead_letter_queue, queue_jobs
from queue_service.store.statements import Statement, lease_statements


def _text(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("now", type_=UTCDateTime()))


RETRY_LOG_COLUMNS = (
    "job_id, queue_name, attempt_number, error, decision, retry_delay_ms, remaining_retries, next_retry_at, "
    "death_reason, created_at"
)

# A job read without its lock (JobRecord.row_version) is written only if no one wrote it since: a
# row's xmin changes with every write of it. A job read under its lock has no version to compare.
_UNCHANGED_SINCE_READ = "AND (v.row_version IS NULL OR q.xmin = v.row_version)"
# The rows are found by their keys (RowSource.key), then checked for their state. A prepared
# statement's generic plan cannot tell how many rows an unnest() holds, and without fresh statistics
# it takes a state for a rare one: it would rather read every job in that state (every running job,
# for a report) than look each one up. So the keys are given as a test of the table's own column
# too, which an index probe takes, and the state test is one no index answers (IS TRUE), so that it
# stays a check of the rows found.
_IN_EXPECTED_STATE = "(q.state = ANY(CAST(:expected AS text[]))) IS TRUE"


@dataclass(frozen=True)
class RowSource:
    """The rows of a set-wise statement, given column by column: each (parameter, name in `v`, SQL type).

    A batch reads them as unnest() of one array per column; a batch of one as one VALUES row of scalars,
    which PostgreSQL plans and runs faster (a prepared retry: 0.78-0.81 ms a call with a one-element
    unnest(), 0.56-0.58 ms with VALUES), the time a lone report waits for.
    """

    columns: tuple[tuple[str, str, str], ...]

    def rows(self, *, one: bool) -> str:
        names = ", ".join(name for _, name, _ in self.columns)
        if one:
            values = ", ".join(f"CAST(:{parameter} AS {sql_type})" for parameter, _, sql_type in self.columns)
            return f"SELECT * FROM (VALUES ({values})) AS v({names})"
        arrays = ", ".join(f"CAST(:{parameter} AS {sql_type}[])" for parameter, _, sql_type in self.columns)
        return f"SELECT * FROM unnest({arrays}) AS v({names})"

    def key(self, parameter: str, *, one: bool) -> str:
        """The test a key column's own index answers: `= ANY` of the array, or `=` the one value."""
        sql_type = next(sql_type for name, _, sql_type in self.columns if name == parameter)
        return f"= CAST(:{parameter} AS {sql_type})" if one else f"= ANY(CAST(:{parameter} AS {sql_type}[]))"


@dataclass(frozen=True)
class SetStatement:
    """A set-wise statement over a `RowSource` and its twin for a batch of one, written by one function
    of (the rows' source, the key test's function); `rows` runs the twin for one row."""

    description: str
    source: RowSource
    batch: Statement
    one: Statement

    @classmethod
    def of(
        cls,
        description: str,
        source: RowSource,
        sql: Callable[[str, Callable[[str], str]], str],
        result_columns: Sequence[Any] = (),
    ) -> SetStatement:
        def statement(one: bool) -> Statement:
            clause = _text(sql(source.rows(one=one), lambda parameter: source.key(parameter, one=one)))
            return Statement(description, clause.columns(*result_columns) if result_columns else clause)

        return cls(description, source, statement(False), statement(True))

    @property
    def direct(self) -> DirectStatement:
        """The batch's statement on the driver's cursor; the twin returns the same columns."""
        return self.batch.direct

    def rows(self, connection: Connection, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """All rows of the statement: each column's parameter is a list of the rows' values, in row order
        (all of one length, the number of rows)."""
        names = [parameter for parameter, _, _ in self.source.columns]
        if len(parameters[names[0]]) != 1:
            return self.batch.rows(connection, parameters)
        return self.one.rows(connection, {**parameters, **{name: parameters[name][0] for name in names}})


SCHEDULE_RETRIES = SetStatement.of(
    "Each (id, attempt) still in an expected state, and unchanged since its read if read without its lock, "
    "becomes FAILED, due at its run_at, with its error, history, rule and first failure time; each one changed "
    "gets its 'retry' row in the retry log. Returns one row per job changed.",
    RowSource(
        (
            ("ids", "id", "bigint"),
            ("attempts", "attempt_number", "integer"),
            ("run_ats", "run_at", "timestamptz"),
            ("last_errors", "last_error", "jsonb"),
            ("histories", "error_history", "jsonb"),
            ("retry_rules", "retry_rule", "text"),
            ("first_failed_ats", "first_failed_at", "timestamptz"),
            ("delays_ms", "retry_delay_ms", "bigint"),
            ("remaining", "remaining_retries", "integer"),
            ("row_versions", "row_version", "xid"),
        )
    ),
    lambda rows, key: (
        f"WITH v AS ({rows}), "
        "moved AS (UPDATE queue_jobs AS q SET state = :failed, run_at = v.run_at, lease_expires_at = NULL, "
        "last_error = v.last_error, error_history = v.error_history, retry_rule = v.retry_rule, "
        "first_failed_at = v.first_failed_at, updated_at = :now FROM v "
        f"WHERE q.id = v.id AND q.id {key('ids')} AND q.attempt_number = v.attempt_number "
        f"AND {_IN_EXPECTED_STATE} {_UNCHANGED_SINCE_READ} "
        "RETURNING q.job_id, q.queue_name, q.attempt_number, v.last_error, v.retry_delay_ms, v.remaining_retries, "
        "v.run_at) "
        f"INSERT INTO queue_retry_log ({RETRY_LOG_COLUMNS}) "
        "SELECT job_id, queue_name, attempt_number, last_error, :decision, retry_delay_ms, remaining_retries, run_at, "
        "NULL, :now FROM moved ORDER BY job_id, attempt_number RETURNING job_id"
    ),
)

DEAD_LETTER_JOBS = SetStatement.of(
    "Each (id, attempt) still in an expected state, and unchanged since its read if read without its lock, "
    "becomes DEAD_LETTER with its error, history, rule and first failure time; each one "
    "changed gets its decision row in the retry log and its DLQ entry, created or reopened as PENDING (notes, "
    "assignee and recovery attempts kept). Returns the entries.",
    RowSource(
        (
            ("ids", "id", "bigint"),
            ("attempts", "attempt_number", "integer"),
            ("last_errors", "last_error", "jsonb"),
            ("histories", "error_history", "jsonb"),
            ("entry_ids", "entry_id", "text"),
            ("death_reasons", "death_reason", "text"),
            ("fingerprints", "fingerprint", "text"),
            ("failure_reasons", "failure_reason", "text"),
            ("error_types", "error_type", "text"),
            ("retry_rules", "retry_rule", "text"),
            ("first_failed_ats", "first_failed_at", "timestamptz"),
            ("row_versions", "row_version", "xid"),
        )
    ),
    lambda rows, key: (
        f"WITH v AS ({rows}), "
        # A job whose entry exists keeps it: the entry's id, whatever the job remembered.
        "moved AS (UPDATE queue_jobs AS q SET state = :dead_letter, lease_expires_at = NULL, "
        "last_error = v.last_error, error_history = v.error_history, retry_rule = v.retry_rule, "
        "first_failed_at = v.first_failed_at, updated_at = :now, "
        "dead_letter_id = COALESCE((SELECT d.id FROM dead_letter_queue AS d WHERE d.job_id = q.job_id), v.entry_id) "
        f"FROM v WHERE q.id = v.id AND q.id {key('ids')} AND q.attempt_number = v.attempt_number "
        f"AND {_IN_EXPECTED_STATE} {_UNCHANGED_SINCE_READ} "
        "RETURNING q.job_id, q.queue_name, q.job_name, q.job_data, q.attempt_number, q.dead_letter_id, v.last_error, "
        "v.error_history, v.death_reason, v.fingerprint, v.failure_reason, v.error_type), "
        f"logged AS (INSERT INTO queue_retry_log ({RETRY_LOG_COLUMNS}) "
        "SELECT job_id, queue_name, attempt_number, last_error, :decision, 0, 0, NULL, death_reason, :now "
        "FROM moved ORDER BY job_id, attempt_number) "
        "INSERT INTO dead_letter_queue AS d (id, job_id, queue_name, job_name, job_data, failure_reason, error_type, "
        "total_attempts, error_history, death_reason, recovery_status, fingerprint, created_at, dead_lettered_at, "
        "updated_at, resolution_reason, resolved_by, resolved_at) "
        "SELECT dead_letter_id, job_id, queue_name, job_name, job_data, failure_reason, error_type, attempt_number, "
        "error_history, death_reason, :pending, fingerprint, :now, :now, :now, '', '', NULL FROM moved ORDER BY job_id "
        "ON CONFLICT (job_id) DO UPDATE SET queue_name = EXCLUDED.queue_name, job_name = EXCLUDED.job_name, "
        "job_data = EXCLUDED.job_data, failure_reason = EXCLUDED.failure_reason, error_type = EXCLUDED.error_type, "
        "total_attempts = EXCLUDED.total_attempts, error_history = EXCLUDED.error_history, "
        "death_reason = EXCLUDED.death_reason, recovery_status = EXCLUDED.recovery_status, "
        "fingerprint = EXCLUDED.fingerprint, dead_lettered_at = EXCLUDED.dead_lettered_at, "
        "updated_at = EXCLUDED.updated_at, resolution_reason = '', resolved_by = '', resolved_at = NULL "
        "RETURNING d.*"
    ),
    dead_letter_queue.c,
)

COMPLETE_JOBS = SetStatement.of(
    "Each (job_id, attempt) still in an expected state, and not asked to cancel, becomes COMPLETED with its result "
    "and duration. Returns each job changed with its queue and whether that queue has a breaker on.",
    RowSource(
        (
            ("job_ids", "job_id", "text"),
            ("attempts", "attempt_number", "integer"),
            ("results", "result", "jsonb"),
            ("durations", "duration_ms", "bigint"),
        )
    ),
    lambda rows, key: (
        "UPDATE queue_jobs AS q SET state = :completed, result = v.result, "
        "processing_duration_ms = v.duration_ms, lease_expires_at = NULL, completed_at = :now, updated_at = :now "
        f"FROM ({rows}) AS v "
        f"WHERE q.job_id = v.job_id AND q.job_id {key('job_ids')} AND q.attempt_number = v.attempt_number "
        f"AND {_IN_EXPECTED_STATE} AND q.cancel_requested_at IS NULL "
        "RETURNING q.job_id, q.queue_name, "
        "EXISTS (SELECT 1 FROM queue_breakers AS b WHERE b.queue_name = q.queue_name AND b.enabled) AS breaker_on"
    ),
)


# Every queue_jobs column, named in the model's order: the textual statements below match their
# result columns to the model's positionally.
_JOB_COLUMNS = ", ".join(f"{{table}}.{column.name}" for column in queue_jobs.c)


def _lease_from_plain_queues_sql(queues: str) -> str:
    """The lease of the queues that `queues` names (`IN :names`, or `= :name` for one queue: an
    expanding parameter makes SQLAlchemy rewrite the text on every call). Written out once at
    import from the model's column names; no value of a call is ever part of it."""
    return (
        "WITH controlled AS (SELECT "
        f"EXISTS (SELECT 1 FROM queues WHERE name {queues} AND paused) "
        f"OR EXISTS (SELECT 1 FROM queue_lease_limits WHERE queue_name {queues}) "
        f"OR EXISTS (SELECT 1 FROM queue_breakers WHERE queue_name {queues} AND enabled) "
        "AS any_controlled), "
        f"picked AS (SELECT id FROM queue_jobs WHERE queue_name {queues} "
        "AND state IN ('waiting', 'failed') AND run_at <= :now AND NOT (SELECT any_controlled FROM controlled) "
        "ORDER BY priority DESC, run_at, id LIMIT :limit FOR UPDATE SKIP LOCKED), "
        "claimed AS (UPDATE queue_jobs AS q SET state = 'active', attempt_number = q.attempt_number + 1, "
        "worker_id = :worker_id, lease_expires_at = :lease_until, started_at = :now, updated_at = :now "
        f"FROM picked WHERE q.id = picked.id RETURNING {_JOB_COLUMNS.format(table='q')}) "
        f"SELECT c.any_controlled, {_JOB_COLUMNS.format(table='claimed')}, queues.paused AS queue_paused, "
        "CAST(queues.retry_policy AS text) AS queue_retry_policy, "
        "queues.created_at AS queue_created_at, queues.updated_at AS queue_updated_at "
        "FROM controlled AS c LEFT JOIN claimed ON true LEFT JOIN queues ON queues.name = claimed.queue_name"
    )


_LEASED_COLUMNS = (
    column("any_controlled", Boolean()),
    *queue_jobs.c,
    column("queue_paused", Boolean()),
    # As text, which the lease decodes once per queue rather than once per leased row.
    column("queue_retry_policy", Text()),
    column("queue_created_at", UTCDateTime()),
    column("queue_updated_at", UTCDateTime()),
)

LEASE_FROM_PLAIN_QUEUES, LEASE_FROM_ONE_PLAIN_QUEUE = lease_statements(
    "Up to :limit ready jobs of the queues :names, in lease order, become ACTIVE with their next attempt, each "
    "returned after any_controlled (false) with its queue's row (queue_paused, queue_retry_policy, queue_created_at, "
    "queue_updated_at: the last four columns); unless one of those queues is paused, has lease limits or a breaker "
    "on, which the one row returned then says (any_controlled) with nothing leased.",
    _lease_from_plain_queues_sql,
    _LEASED_COLUMNS,
)

# The columns a new job's row names, in the order of its values; the rest take their defaults,
# except budget_start (0) and created_at and updated_at (:now), which the insert names.
NEW_JOB_COLUMNS = (
    ("job_id", "text"),
    ("queue_name", "text"),
    ("job_name", "text"),
    ("job_data", "jsonb"),
    ("state", "text"),
    ("priority", "integer"),
    ("attempt_number", "integer"),
    ("retry_policy", "jsonb"),
    ("run_at", "timestamptz"),
    ("lease_expires_at", "timestamptz"),
    ("worker_id", "text"),
    ("started_at", "timestamptz"),
    ("trace_parent", "text"),
    ("unique_key", "text"),
    ("unique_slot", "text"),
    ("unique_states", "text"),
)
_NEW_JOB_NAMES = ", ".join(name for name, _ in NEW_JOB_COLUMNS)
# A JSON document stays JSON (a null one is JSON null, as SQLAlchemy's JSON type binds None);
# the other values are read as text and cast.
_NEW_JOB_VALUES = ", ".join(
    f"v.job -> {position}" if sql_type == "jsonb" else f"CAST(v.job ->> {position} AS {sql_type})"
    for position, (_, sql_type) in enumerate(NEW_JOB_COLUMNS)
)

INSERT_JOBS = Statement(
    "Each new job of :rows (a JSON array of rows, each an array of NEW_JOB_COLUMNS' values), in their order, is "
    "inserted unless its job_id is stored, by an earlier row too, or its unique slot is held (the unique index skips "
    "it). Returns the job_id and id of each row inserted.",
    _text(
        f"INSERT INTO queue_jobs ({_NEW_JOB_NAMES}, budget_start, created_at, updated_at) "
        f"SELECT {_NEW_JOB_VALUES}, 0, :now, :now "
        "FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS v(job, ordinal) ORDER BY v.ordinal "
        "ON CONFLICT DO NOTHING RETURNING job_id, id"
    ),
)
