"""Statements over queue_jobs: inserting and leasing jobs, their state transitions, sweeps and admin listings."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from itertools import chain
from typing import Any, NamedTuple

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)

from queue_service.domain import (
    JSON_TEXT,
    READY_STATES,
    DeadLetterRecord,
    Decision,
    ErrorInfo,
    JobFilter,
    JobRecord,
    JobState,
    NewJob,
    QueueRecord,
    RecoveryStatus,
    ScheduledDeath,
    ScheduledRetry,
    UniqueClaim,
)
from queue_service.store.dead_letters import (
    DEAD_LETTER_REOPENED,
    dead_letter_from_mapping,
    dead_letter_from_row,
    dead_letter_values,
)
from queue_service.store.direct import DirectStatement
from queue_service.store.postgres_statements import (
    COMPLETE_JOBS,
    DEAD_LETTER_JOBS,
    INSERT_JOBS,
    LEASE_FROM_ONE_PLAIN_QUEUE,
    LEASE_FROM_PLAIN_QUEUES,
    NEW_JOB_COLUMNS,
    SCHEDULE_RETRIES,
)
from queue_service.store.queues import QueuesTable
from queue_service.store.retry_log import log_decisions, retry_log_row
from queue_service.store.schema import (
    UNIQUE_SLOT_HELD,
    dead_letter_queue,
    postgres_utc_text,
    queue_breakers,
    queue_jobs,
    queues,
    sqlite_utc_text,
)
from queue_service.store.sqlite_statements import COMPLETE_JOBS as SQLITE_COMPLETE_JOBS
from queue_service.store.sqlite_statements import LEASE_FROM_ONE_PLAIN_QUEUE as SQLITE_LEASE_FROM_ONE_PLAIN_QUEUE
from queue_service.store.sqlite_statements import LEASE_FROM_PLAIN_QUEUES as SQLITE_LEASE_FROM_PLAIN_QUEUES
from queue_service.store.statements import TableStatements, error_history_from_json


# Queries served by a partial index name its states as literals, not parameters: SQLite uses
# ix_queue_jobs_ready only when the query repeats its predicate `state IN ('waiting', 'failed')`,
# and PostgreSQL's generic plan of a prepared statement cannot prove a parameter matches one.
# They are written into the text when it is compiled: a literal or expanding parameter would have
# SQLAlchemy write the text anew on every call.
def state_literal(state: JobState) -> Any:
    """`state` written into the statement's text, for a query a partial index on that state serves."""
    return literal_column(f"'{state.value}'")


READY_STATES_LITERAL = [state_literal(state) for state in READY_STATES]


def encode_unique_states(states: frozenset[JobState]) -> str:
    """ ",waiting,active,failed,": each state between commas, as the unique index's predicate searches it."""
    return "," + ",".join(state.value for state in JobState if state in states) + ","


def decode_unique_states(raw: str | None) -> frozenset[JobState] | None:
    return None if raw is None else frozenset(JobState(value) for value in raw.strip(",").split(",") if value)


def _unique_columns(claim: UniqueClaim | None) -> dict[str, str | None]:
    if claim is None:
        return {"unique_key": None, "unique_slot": None, "unique_states": None}
    return {"unique_key": claim.key, "unique_slot": claim.slot, "unique_states": encode_unique_states(claim.states)}


def job_from_row(row) -> JobRecord:
    return job_from_mapping(row._mapping)


def job_from_mapping(row: Mapping[str, Any]) -> JobRecord:
    return job_from_columns([row[name] for name in JOB_COLUMN_NAMES])


# The order `job_from_columns` reads a job's values in: queue_jobs' columns in the model's order,
# which the statements that return a whole row (select(queue_jobs), RETURNING *queue_jobs.c) use.
JOB_COLUMN_NAMES = (
    "id",
    "job_id",
    "queue_name",
    "job_name",
    "job_data",
    "state",
    "priority",
    "attempt_number",
    "budget_start",
    "retry_policy",
    "run_at",
    "lease_expires_at",
    "worker_id",
    "last_error",
    "error_history",
    "result",
    "processing_duration_ms",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "dead_letter_id",
    "trace_parent",
    "unique_key",
    "unique_slot",
    "unique_states",
    "retry_rule",
    "first_failed_at",
    "cancel_requested_at",
)
if JOB_COLUMN_NAMES != tuple(column.name for column in queue_jobs.c):
    raise RuntimeError("queue_jobs' columns changed: JOB_COLUMN_NAMES and job_from_columns must follow them")


def job_from_columns(values: Sequence[Any], row_version: str | None = None) -> JobRecord:
    """The job from its queue_jobs values in the model's order (JOB_COLUMN_NAMES). A lease reads
    each row by position: a name lookup per column of each leased row cost a third of the read."""
    (
        row_id,
        job_id,
        queue_name,
        job_name,
        job_data,
        state,
        priority,
        attempt_number,
        budget_start,
        retry_policy,
        run_at,
        lease_expires_at,
        worker_id,
        last_error,
        error_history,
        result,
        processing_duration_ms,
        created_at,
        updated_at,
        started_at,
        completed_at,
        dead_letter_id,
        trace_parent,
        unique_key,
        _unique_slot,
        unique_states,
        retry_rule,
        first_failed_at,
        cancel_requested_at,
    ) = values
    return JobRecord.of_fields(
        id=row_id,
        job_id=job_id,
        queue_name=queue_name,
        job_name=job_name,
        job_data=job_data,
        state=JobState(state),
        priority=priority,
        attempt_number=attempt_number,
        budget_start=budget_start,
        retry_policy=retry_policy,
        run_at=run_at,
        lease_expires_at=lease_expires_at,
        worker_id=worker_id,
        last_error=ErrorInfo.from_json(last_error) if last_error else None,
        error_history=error_history_from_json(error_history) if error_history else [],
        result=result,
        processing_duration_ms=processing_duration_ms,
        created_at=created_at,
        updated_at=updated_at,
        started_at=started_at,
        completed_at=completed_at,
        dead_letter_id=dead_letter_id,
        trace_parent=trace_parent,
        unique_key=unique_key,
        unique_states=decode_unique_states(unique_states),
        retry_rule=retry_rule,
        first_failed_at=first_failed_at,
        cancel_requested_at=cancel_requested_at,
        row_version=row_version,
    )


def _inserted_job(row_id: int, job: NewJob, now: datetime) -> JobRecord:
    """The job just inserted from `job` at `now`, as it is stored: the columns an insert does not
    name (NEW_JOB_COLUMNS) hold their defaults."""
    claim = job.unique
    return JobRecord.of_fields(
        id=row_id,
        job_id=job.job_id,
        queue_name=job.queue_name,
        job_name=job.job_name,
        job_data=job.job_data,
        state=job.state,
        priority=job.priority,
        attempt_number=job.attempt_number,
        budget_start=0,
        retry_policy=job.retry_policy,
        run_at=job.run_at,
        lease_expires_at=job.lease_expires_at,
        worker_id=job.worker_id,
        last_error=None,
        error_history=[],
        result=None,
        processing_duration_ms=None,
        created_at=now,
        updated_at=now,
        started_at=job.started_at,
        completed_at=None,
        dead_letter_id=None,
        trace_parent=job.trace_parent,
        unique_key=claim.key if claim else None,
        unique_states=claim.states if claim else None,
        retry_rule="",
        first_failed_at=None,
        cancel_requested_at=None,
        row_version=None,
    )


def _new_job_values(
    job: NewJob, stored_time: Callable[[datetime | None], Any], stored_document: Callable[[Any], Any], job_data: Any
) -> tuple:
    """`job`'s values in the order of NEW_JOB_COLUMNS, `job_data` as its payload, its other documents
    and its times as `stored_document` and `stored_time` give them."""
    claim = job.unique
    return (
        job.job_id,
        job.queue_name,
        job.job_name,
        job_data,
        job.state.value,
        job.priority,
        job.attempt_number,
        stored_document(job.retry_policy),
        stored_time(job.run_at),
        stored_time(job.lease_expires_at),
        job.worker_id,
        stored_time(job.started_at),
        job.trace_parent,
        claim.key if claim else None,
        claim.slot if claim else None,
        encode_unique_states(claim.states) if claim else None,
    )


def _as_is(document: Any) -> Any:
    return document


def _json_document(text: str | None) -> Any:
    """A JSON column read as text: SQL NULL and JSON null are both None."""
    return None if text is None else json.loads(text)


def _json_text(document: Any) -> str:
    # None is JSON null, as SQLAlchemy's JSON type binds it; most jobs have no retry policy.
    return "null" if document is None else JSON_TEXT.encode(document)


def _once_per_instant(stored_time: Callable[[datetime], Any]) -> Callable[[datetime | None], Any]:
    """`stored_time` remembering its answers: the jobs of a batch mostly share one run_at."""
    answers: dict[datetime, Any] = {}

    def remembered(value: datetime | None) -> Any:
        if value is None:
            return None
        answer = answers.get(value)
        if answer is None:
            answer = answers[value] = stored_time(value)
        return answer

    return remembered


# jsonb holds at most 256 MiB: rows that encode larger than this (a server allowing very large
# messages) go as several statements, in order, each after the rows of those before it.
MAX_ROWS_JSON_CHARS = 64 * 1024 * 1024


def _rows_json(rows: list[tuple]) -> list[str]:
    """`rows` as one JSON array, or as several in order when one would exceed MAX_ROWS_JSON_CHARS."""
    encoded = json.dumps(rows)
    if len(encoded) <= MAX_ROWS_JSON_CHARS or len(rows) == 1:
        return [encoded]
    half = len(rows) // 2
    return _rows_json(rows[:half]) + _rows_json(rows[half:])


# SQLite's inserts: the same columns as INSERT_JOBS, the values of _sqlite_rows.
_SQLITE_INSERT_COLUMNS = ", ".join([*(name for name, _ in NEW_JOB_COLUMNS), "created_at", "updated_at", "budget_start"])
_SQLITE_ROW_WIDTH = len(NEW_JOB_COLUMNS) + 2

_INSERT_JOB_SQLITE_RETURNING_ID = (
    f"INSERT INTO queue_jobs ({_SQLITE_INSERT_COLUMNS}) VALUES ({', '.join('?' * _SQLITE_ROW_WIDTH)}, 0) "
    "ON CONFLICT DO NOTHING RETURNING id"
)

# A batch goes in as one statement of many rows, in order: one step, so the driver lets go of the
# interpreter lock once while SQLite works, where run over the batch (executemany) it took the lock
# back after each row, each time waiting for whichever request thread held it. Rows are written
# as parameters, not as one JSON array that SQLite parses again for every column of every row.
# At most this many rows a statement: SQLite takes up to 32,766 parameters.
SQLITE_INSERT_ROWS = 500


@functools.cache
def _insert_jobs_sqlite(rows: int) -> str:
    """The insert of `rows` jobs; a batch size seen before reuses the driver's prepared statement."""
    row = f"({', '.join('?' * _SQLITE_ROW_WIDTH)}, 0)"
    return f"INSERT INTO queue_jobs ({_SQLITE_INSERT_COLUMNS}) VALUES {', '.join([row] * rows)} ON CONFLICT DO NOTHING"


def _sqlite_rows(jobs: Iterable[NewJob], now: datetime) -> list[tuple]:
    """`jobs` as the values of SQLite's job inserts, in order, inserted at `now`."""
    stored_time = _once_per_instant(sqlite_utc_text)
    now_text = stored_time(now)
    return [
        (
            *_new_job_values(
                job,
                stored_time,
                _json_text,
                job.job_data_json if job.job_data_json is not None else _json_text(job.job_data),
            ),
            now_text,
            now_text,
        )
        for job in jobs
    ]


def job_conditions(*, queue_name: str | None, state: JobState | None, job_name: str | None) -> list:
    c = queue_jobs.c
    conditions = []
    if queue_name:
        conditions.append(c.queue_name == queue_name)
    if state:
        conditions.append(c.state == state.value)
    if job_name:
        conditions.append(c.job_name == job_name)
    return conditions


def job_filter_conditions(query: JobFilter) -> list:
    c = queue_jobs.c
    conditions = [
        c.state.in_([state.value for state in query.states]),
        or_(c.state != JobState.ACTIVE.value, c.cancel_requested_at.is_(None)),
        *job_conditions(queue_name=query.queue_name, state=None, job_name=query.job_name),
    ]
    if query.created_after:
        conditions.append(c.created_at >= query.created_after)
    if query.created_before:
        conditions.append(c.created_at < query.created_before)
    return conditions


class FailingJob(NamedTuple):
    """A job whose run failed, its queue's retry policy, and whether its queue has a breaker on."""

    job: JobRecord
    queue_policy: dict[str, Any] | None
    breaker_on: bool


class CompletedJob(NamedTuple):
    """A job `complete_jobs` completed: its queue, and whether that queue has a breaker on."""

    queue_name: str
    breaker_on: bool


class CompletedRun(NamedTuple):
    """A job `complete_current_run` completed, and whether its queue has a breaker on."""

    job: JobRecord
    breaker_on: bool


def _parameter(name: str, column) -> Any:
    """A named parameter typed like `column`, so that it is bound as the column stores it."""
    return bindparam(name, type_=column.type)


_c = queue_jobs.c
# Where LEASE_FROM_PLAIN_QUEUES returns a job's columns: after any_controlled, in the model's order;
# then, on PostgreSQL, its queue's paused, retry_policy, created_at and updated_at.
_ANY_CONTROLLED = 0
_LEASED_JOB_COLUMNS = slice(1, 1 + len(queue_jobs.c))
_LEASED_QUEUE_COLUMNS = slice(1 + len(queue_jobs.c), 5 + len(queue_jobs.c))

# The hot statements, built once: a call binds its values and pays no construction; SQLAlchemy
# caches each one's compiled form by the statement's identity.
# The job's queue is named with its table: SQLite's RETURNING leaves columns unqualified, and a bare
# queue_name inside the subquery would be the breaker's own, true for any queue with a breaker on.
_HAS_BREAKER = exists().where(
    queue_breakers.c.queue_name == literal_column("queue_jobs.queue_name"), queue_breakers.c.enabled
)
_BREAKER_ON = _HAS_BREAKER.label("breaker_on")

_JOB_FOR_FAILURE = (
    select(queue_jobs, queues.c.retry_policy.label("queue_retry_policy"), _BREAKER_ON)
    .select_from(queue_jobs.outerjoin(queues, queues.c.name == _c.queue_name))
    .where(_c.job_id == bindparam("failing_job_id"))
)
JOB_FOR_FAILURE = _JOB_FOR_FAILURE.with_for_update(of=queue_jobs)
# PostgreSQL: the row's xmin is its version, changed by every write of it (see `row_version`).
JOB_FOR_FAILURE_UNLOCKED = _JOB_FOR_FAILURE.add_columns(literal_column("queue_jobs.xmin::text").label("row_version"))
# The usual failure report's read, run on the driver's cursor: one of the two statements of its call.
_JOB_FOR_FAILURE_UNLOCKED_DIRECT = DirectStatement(JOB_FOR_FAILURE_UNLOCKED)

# The sweep's read of a batch of expired leases: whole rows, read by position.
_EXPIRED_LEASES = DirectStatement(
    select(queue_jobs)
    .where(_c.state == state_literal(JobState.ACTIVE), _c.lease_expires_at <= bindparam("now"))
    .order_by(_c.lease_expires_at, _c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)

# SQLite's batched insert reads which job_ids are stored, then the new rows' ids, each as one row
# of JSON: the driver takes the interpreter lock back after each row it steps to (see
# SQLITE_INSERT_ROWS), one row for the batch instead of one a job. The job_ids go as one JSON
# array, so that the text is the same for every batch: a list of values, one parameter each, has
# SQLAlchemy write the statement anew on every call.
_GIVEN_JOB_IDS = "job_id IN (SELECT value FROM json_each(?))"
STORED_JOB_IDS_SQLITE = f"SELECT json_group_array(job_id) FROM queue_jobs WHERE {_GIVEN_JOB_IDS}"
ROW_IDS_OF_JOBS_SQLITE = f"SELECT json_group_object(job_id, id) FROM queue_jobs WHERE {_GIVEN_JOB_IDS}"

READY_FOR_LEASE = (
    select(queue_jobs)
    .where(
        _c.queue_name.in_(bindparam("names", expanding=True)),
        _c.state.in_(READY_STATES_LITERAL),
        _c.run_at <= _parameter("now", _c.run_at),
    )
    .order_by(_c.priority.desc(), _c.run_at, _c.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)

CLAIM_LEASES = (
    update(queue_jobs)
    .where(_c.id.in_(bindparam("ids", expanding=True)), _c.state.in_(READY_STATES_LITERAL))
    .values(
        state=JobState.ACTIVE.value,
        attempt_number=_c.attempt_number + 1,
        worker_id=_parameter("lease_worker_id", _c.worker_id),
        lease_expires_at=_parameter("lease_until", _c.lease_expires_at),
        started_at=_parameter("now", _c.started_at),
        updated_at=_parameter("now", _c.updated_at),
    )
    .returning(_c.id)
)


def _states_in_text(states: Iterable[JobState]) -> list:
    """`states` written into a statement's text, for `state IN (...)`, in one order whatever the
    order given, so that each set of states is one statement text."""
    return [state_literal(state) for state in sorted(states, key=lambda state: state.value)]


@functools.cache
def _completion_statements(expected: frozenset[JobState]) -> tuple[DirectStatement, DirectStatement]:
    """The one-statement completion of a run in one of the `expected` states, which says whether
    its queue has a breaker on, and its twin for a queue without one, where the statement is the
    whole completion. Built once per set of states: callers pass the COMPLETE transition's sources."""
    complete_run = (
        update(queue_jobs)
        .where(
            _c.job_id == bindparam("run_job_id"),
            _c.state.in_(_states_in_text(expected)),
            _c.attempt_number == bindparam("run_attempt"),
            # A run asked to stop ends CANCELLED whatever it reports (JobManager.complete).
            _c.cancel_requested_at.is_(None),
        )
        .values(
            state=JobState.COMPLETED.value,
            result=_parameter("run_result", _c.result),
            processing_duration_ms=_parameter("run_duration_ms", _c.processing_duration_ms),
            lease_expires_at=None,
            completed_at=_parameter("now", _c.completed_at),
            updated_at=_parameter("now", _c.updated_at),
        )
    )
    # On the driver's cursor: the usual TrackCompletion is this one statement.
    return (
        DirectStatement(complete_run.returning(*queue_jobs.c, _BREAKER_ON)),
        DirectStatement(complete_run.where(~_HAS_BREAKER).returning(*queue_jobs.c)),
    )


def _completion_parameters(
    job_id: str,
    attempt_number: int,
    result: dict[str, Any] | None,
    processing_duration_ms: int | None,
    now: datetime,
) -> dict[str, Any]:
    """The parameters of the one-statement completions (`_completion_statements`)."""
    return {
        "run_job_id": job_id,
        "run_attempt": attempt_number,
        "run_result": result,
        "run_duration_ms": processing_duration_ms,
        "now": now,
    }


class JobsTable(TableStatements):
    """The job statements of one transaction."""

    # Inserting and reading jobs

    def insert_jobs(self, jobs: Sequence[NewJob], now: datetime) -> set[str]:
        """Insert jobs whose job_id is new and whose unique slot is free; return the job_ids inserted."""
        return set(self.insert_jobs_returning(jobs, now))

    def insert_jobs_returning(self, jobs: Sequence[NewJob], now: datetime) -> dict[str, JobRecord]:
        """Insert jobs whose job_id is new (the first of a repeated one) and whose unique slot is free;
        return those inserted, as stored, by job_id."""
        if not jobs:
            return {}
        if self.dialect == "sqlite":
            return self._insert_jobs_sqlite(jobs, now)
        # No conflict target: a row is skipped when its job_id exists or when the unique index
        # (ix_queue_jobs_unique_slot) holds its slot. PostgreSQL waits for a concurrent insert of
        # the same slot to commit, then skips. The batch goes as one JSON parameter, which the
        # driver quotes at once where it would adapt an array per value; only the row ids come
        # back: each stored job is the job as sent, with its id.
        ids: dict[str, int] = {}
        stored_time = _once_per_instant(postgres_utc_text)
        for rows in _rows_json([_new_job_values(job, stored_time, _as_is, job.job_data) for job in jobs]):
            ids.update(INSERT_JOBS.rows(self.connection, {"rows": rows, "now": now}))
        first: dict[str, NewJob] = {}
        for job in jobs:
            first.setdefault(job.job_id, job)
        return {job_id: _inserted_job(row_id, first[job_id], now) for job_id, row_id in ids.items()}

    def _insert_jobs_sqlite(self, jobs: Sequence[NewJob], now: datetime) -> dict[str, JobRecord]:
        """SQLite holds its write lock from BEGIN IMMEDIATE, so the job_ids already stored, read
        first, stay so: the new rows go in as one JSON array through one insert (no RETURNING),
        and only their row ids are read back. A row whose unique slot is held, by a stored job or
        by an earlier row of the batch, is skipped by the unique index (ON CONFLICT DO NOTHING)
        and has no row id to read."""
        wanted = list(dict.fromkeys(job.job_id for job in jobs))
        if len(wanted) == 1:
            return self._insert_job_sqlite(jobs[0], now)
        stored = set(
            json.loads(self.connection.exec_driver_sql(STORED_JOB_IDS_SQLITE, (json.dumps(wanted),)).scalar_one())
        )
        fresh: dict[str, NewJob] = {}
        for job in jobs:
            if job.job_id not in stored:
                fresh.setdefault(job.job_id, job)
        if not fresh:
            return {}
        rows = _sqlite_rows(fresh.values(), now)
        for start in range(0, len(rows), SQLITE_INSERT_ROWS):
            chunk = rows[start : start + SQLITE_INSERT_ROWS]
            self.connection.exec_driver_sql(_insert_jobs_sqlite(len(chunk)), tuple(chain.from_iterable(chunk)))
        ids = json.loads(
            self.connection.exec_driver_sql(ROW_IDS_OF_JOBS_SQLITE, (json.dumps(list(fresh)),)).scalar_one()
        )
        return {job_id: _inserted_job(ids[job_id], job, now) for job_id, job in fresh.items() if job_id in ids}

    def _insert_job_sqlite(self, job: NewJob, now: datetime) -> dict[str, JobRecord]:
        """One job: the insert returns its row id itself (one statement where a batch needs three);
        a job_id already stored or a unique slot held returns no row."""
        [values] = _sqlite_rows([job], now)
        row = self.connection.exec_driver_sql(_INSERT_JOB_SQLITE_RETURNING_ID, values).first()
        return {job.job_id: _inserted_job(row[0], job, now)} if row else {}

    def unique_slot_holders(self, slots: Iterable[str]) -> dict[str, JobRecord]:
        """The job holding each of `slots` in its counted states, by slot (the unique index allows one)."""
        wanted = sorted(set(slots))
        if not wanted:
            return {}
        rows = self.connection.execute(
            select(queue_jobs).where(queue_jobs.c.unique_slot.in_(wanted), text(UNIQUE_SLOT_HELD[self.dialect]))
        )
        return {row.unique_slot: job_from_row(row) for row in rows}

    def get_job(self, job_id: str, *, for_update: bool = False) -> JobRecord | None:
        statement = select(queue_jobs).where(queue_jobs.c.job_id == job_id)
        if for_update:
            statement = statement.with_for_update()
        row = self.connection.execute(statement).first()
        return job_from_row(row) if row else None

    def get_job_for_failure(self, job_id: str, *, locked: bool = True) -> FailingJob | None:
        """The job, row-locked, with its queue's retry policy and whether its queue has a breaker on,
        in one statement. `locked=False` (PostgreSQL only) takes no lock and reads the job with its
        `row_version`, so that its failure can be written by a compare-and-set on it."""
        if locked:
            row = self.connection.execute(JOB_FOR_FAILURE, {"failing_job_id": job_id}).first()
            if row is None:
                return None
            return FailingJob(job_from_columns(row[: len(JOB_COLUMN_NAMES)]), row[-2], bool(row[-1]))
        if self.dialect != "postgresql":
            raise ValueError("an unlocked read for a failure is for PostgreSQL")
        rows = _JOB_FOR_FAILURE_UNLOCKED_DIRECT.rows(self.connection, {"failing_job_id": job_id})
        if not rows:
            return None
        row = rows[0]
        return FailingJob(job_from_columns(row[: len(JOB_COLUMN_NAMES)], row[-1]), row[-3], bool(row[-2]))

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, JobRecord]:
        rows = self.connection.execute(select(queue_jobs).where(queue_jobs.c.job_id.in_(list(job_ids)))).all()
        return {row.job_id: job_from_row(row) for row in rows}

    # Leasing

    def ready_jobs_for_lease(self, queue_names: Sequence[str], *, limit: int, now: datetime) -> list[JobRecord]:
        """Lock up to `limit` ready jobs, highest priority then oldest ready time first, skipping
        rows another transaction holds. `claim_leases` then leases those the caller picks."""
        rows = self.connection.execute(READY_FOR_LEASE, {"names": list(queue_names), "limit": limit, "now": now})
        return [job_from_columns(row) for row in rows]  # select(queue_jobs): the job's columns in order

    def lease_from_plain_queues(
        self,
        queue_names: Sequence[str],
        *,
        limit: int,
        now: datetime,
        worker_id: str | None,
        lease_expires_at: datetime,
    ) -> list[tuple[JobRecord, QueueRecord | None]] | None:
        """Lease up to `limit` ready jobs in one statement, each as leased with its queue, in lease
        order; None, with nothing leased, when one of the queues is paused, has lease limits or a
        breaker on (then `ready_jobs_for_lease` and `claim_leases` do it with those rules). On
        SQLite, None also when no job was ready: its statement cannot tell the two apart."""
        sqlite = self.dialect == "sqlite"
        parameters = {"limit": limit, "now": now, "worker_id": worker_id, "lease_until": lease_expires_at}
        if len(queue_names) == 1:
            statement = SQLITE_LEASE_FROM_ONE_PLAIN_QUEUE if sqlite else LEASE_FROM_ONE_PLAIN_QUEUE
            parameters["name"] = queue_names[0]
            rows: Sequence[Sequence[Any]] = statement.rows(self.connection, parameters)
        else:  # a list of queues is an expanding parameter, which SQLAlchemy alone binds
            statement = SQLITE_LEASE_FROM_PLAIN_QUEUES if sqlite else LEASE_FROM_PLAIN_QUEUES
            parameters["names"] = list(queue_names)
            rows = self.connection.execute(statement.clause, parameters).all()
        if sqlite:
            if not rows:
                return None
            jobs = [job_from_columns(row[_LEASED_JOB_COLUMNS]) for row in rows]
            found = QueuesTable(self.connection).get_queues({job.queue_name for job in jobs})
            leased = [(job, found.get(job.queue_name)) for job in jobs]
        else:
            if rows[0][_ANY_CONTROLLED]:
                return None
            leased = self._leased_with_queues(rows)
        leased.sort(key=lambda pair: (-pair[0].priority, pair[0].run_at, pair[0].id))
        return leased

    @staticmethod
    def _leased_with_queues(rows: Sequence[Sequence[Any]]) -> list[tuple[JobRecord, QueueRecord | None]]:
        """PostgreSQL's lease rows as (job, its queue); every row of a queue carries the same queue
        columns, so each queue is read from its first row."""
        leased = []
        queues_by_name: dict[str, QueueRecord | None] = {}
        for row in rows:
            job_columns = row[_LEASED_JOB_COLUMNS]
            if job_columns[0] is None:
                continue  # the row that only says no queue is controlled (no job, no id)
            job = job_from_columns(job_columns)
            if job.queue_name not in queues_by_name:
                paused, retry_policy, created_at, updated_at = row[_LEASED_QUEUE_COLUMNS]
                queues_by_name[job.queue_name] = (
                    QueueRecord(
                        name=job.queue_name,
                        paused=bool(paused),
                        retry_policy=_json_document(retry_policy),
                        created_at=created_at,
                        updated_at=updated_at,
                    )
                    if created_at is not None
                    else None
                )
            leased.append((job, queues_by_name[job.queue_name]))
        return leased

    def claim_leases(
        self, ids: Sequence[int], *, now: datetime, worker_id: str | None, lease_expires_at: datetime
    ) -> int:
        """Make the jobs `ids` (locked by `ready_jobs_for_lease`) ACTIVE with their next attempt;
        returns how many were still ready."""
        if not ids:
            return 0
        parameters = {"ids": list(ids), "lease_worker_id": worker_id, "lease_until": lease_expires_at, "now": now}
        return len(self.connection.execute(CLAIM_LEASES, parameters).all())

    # Job transitions: each is a compare-and-set on the job's state and attempt that returns the
    # updated job, or None when another writer got there first.

    def _compare_and_set(self, job: JobRecord, expected_states: Iterable[JobState], **values: Any) -> JobRecord | None:
        statement = (
            update(queue_jobs)
            .where(
                queue_jobs.c.id == job.id,
                queue_jobs.c.state.in_([state.value for state in expected_states]),
                queue_jobs.c.attempt_number == job.attempt_number,
            )
            .values(**values)
            .returning(*queue_jobs.c)
        )
        row = self.connection.execute(statement).first()
        return job_from_row(row) if row else None

    def extend_lease(
        self, job: JobRecord, *, expected_states: Iterable[JobState], lease_expires_at: datetime, now: datetime
    ) -> JobRecord | None:
        return self._compare_and_set(job, expected_states, lease_expires_at=lease_expires_at, updated_at=now)

    def start_run(
        self,
        job: JobRecord,
        *,
        expected_states: Iterable[JobState],
        worker_id: str | None,
        lease_expires_at: datetime | None,
        now: datetime,
    ) -> JobRecord | None:
        """The job's next run starts: ACTIVE, with the next attempt number."""
        return self._compare_and_set(
            job,
            expected_states,
            state=JobState.ACTIVE.value,
            attempt_number=job.attempt_number + 1,
            worker_id=worker_id,
            lease_expires_at=lease_expires_at,
            started_at=now,
            updated_at=now,
        )

    def redrive_job(
        self,
        job: JobRecord,
        *,
        expected_states: Iterable[JobState],
        retry_policy: dict[str, Any] | None,
        replace_policy: bool,
        job_data: dict[str, Any] | None = None,
        now: datetime,
    ) -> JobRecord | None:
        """The job waits again, due now, with a fresh retry budget (and `retry_policy` if `replace_policy`,
        `job_data` as its payload if given).

        A unique job that had left its counted states gave up its slot, which a duplicate may hold
        now: it comes back without one rather than collide with it."""
        changes: dict[str, Any] = {"retry_policy": retry_policy} if replace_policy else {}
        if not job.holds_unique_slot:
            changes["unique_slot"] = None
        if job_data is not None:
            changes["job_data"] = job_data
        return self._compare_and_set(
            job,
            expected_states,
            state=JobState.WAITING.value,
            # A fresh budget: the policy counts runs, and max_retry_duration time, from here on.
            budget_start=job.attempt_number,
            first_failed_at=None,
            run_at=now,
            lease_expires_at=None,
            worker_id=None,
            cancel_requested_at=None,
            updated_at=now,
            **changes,
        )

    def cancel_job(self, job: JobRecord, *, expected_states: Iterable[JobState], now: datetime) -> JobRecord | None:
        """The job ends CANCELLED; no run holds it any more."""
        return self._compare_and_set(
            job, expected_states, state=JobState.CANCELLED.value, lease_expires_at=None, updated_at=now
        )

    def request_cancel(self, job: JobRecord, *, expected_states: Iterable[JobState], now: datetime) -> JobRecord | None:
        """Mark the job's current run as asked to stop; its state stays as it is until the run ends."""
        return self._compare_and_set(job, expected_states, cancel_requested_at=now, updated_at=now)

    # Run outcomes: completion, retries and deaths, each a compare-and-set over a batch.

    def complete_jobs(
        self,
        completions: Sequence[tuple[str, int, str, int | None]],
        *,
        expected_states: Iterable[JobState],
        now: datetime,
    ) -> dict[str, CompletedJob]:
        """Compare-and-set each (job_id, attempt_number, result as JSON text, processing_duration_ms) to
        COMPLETED, leaving out runs asked to stop (cancel_requested_at set).

        Returns the jobs completed by job_id, each with its queue and whether that queue has a
        breaker on; the others did not match their expected state and attempt. One statement for
        the batch on both backends (PostgreSQL's counter trigger then runs once for it).
        """
        expected = [state.value for state in expected_states]
        ordered = sorted(completions)  # a stable lock order between concurrent batches
        if self.dialect == "postgresql":
            rows = COMPLETE_JOBS.rows(
                self.connection,
                {
                    "completed": JobState.COMPLETED.value,
                    "now": now,
                    "job_ids": [job_id for job_id, _, _, _ in ordered],
                    "attempts": [attempt for _, attempt, _, _ in ordered],
                    "results": [result for _, _, result, _ in ordered],
                    "durations": [duration for _, _, _, duration in ordered],
                    "expected": expected,
                },
            )
        else:
            batch = [[job_id, attempt, result, duration] for job_id, attempt, result, duration in ordered]
            rows = SQLITE_COMPLETE_JOBS.rows(
                self.connection,
                {
                    "completed": JobState.COMPLETED.value,
                    "now": now,
                    "completions": json.dumps(batch),
                    "expected": json.dumps(expected),
                },
            )
        return {job_id: CompletedJob(queue_name, bool(breaker_on)) for job_id, queue_name, breaker_on in rows}

    def complete_current_run(
        self,
        job_id: str,
        attempt_number: int,
        *,
        expected_states: Iterable[JobState],
        result: dict[str, Any] | None,
        processing_duration_ms: int | None,
        now: datetime,
    ) -> CompletedRun | None:
        """Compare-and-set by job_id on state and attempt, without reading the job first; None if it
        did not match. Says in the same statement whether the job's queue has a breaker on."""
        with_breaker, _ = _completion_statements(frozenset(expected_states))
        rows = with_breaker.rows(
            self.connection, _completion_parameters(job_id, attempt_number, result, processing_duration_ms, now)
        )
        return CompletedRun(job_from_columns(rows[0][:-1]), bool(rows[0][-1])) if rows else None

    def complete_run_without_breaker(
        self,
        job_id: str,
        attempt_number: int,
        *,
        expected_states: Iterable[JobState],
        result: dict[str, Any] | None,
        processing_duration_ms: int | None,
        now: datetime,
    ) -> JobRecord | None:
        """`complete_current_run` for a job whose queue has no breaker on; None if it did not match
        or the queue has one."""
        _, without_breaker = _completion_statements(frozenset(expected_states))
        rows = without_breaker.rows(
            self.connection, _completion_parameters(job_id, attempt_number, result, processing_duration_ms, now)
        )
        return job_from_columns(rows[0]) if rows else None

    def schedule_retries(
        self, retries: Sequence[ScheduledRetry], *, expected_states: Iterable[JobState], now: datetime
    ) -> int:
        """Compare-and-set each decided retry: the job becomes FAILED, due at its run_at, and the
        decision is logged. Returns how many jobs changed; fewer than `retries` means some changed
        concurrently, and the caller must roll back.

        One statement per batch whatever its size: on PostgreSQL an update feeding the retry-log
        insert, so that the counter triggers run once per batch; on SQLite one prepared update and
        one prepared insert run over the batch (executemany).
        """
        if not retries:
            return 0
        ordered = sorted(retries, key=lambda retry: retry.job.id)  # a stable lock order between batches
        expected = [state.value for state in expected_states]
        if self.dialect == "postgresql":
            rows = SCHEDULE_RETRIES.rows(
                self.connection,
                {
                    "failed": JobState.FAILED.value,
                    "decision": Decision.RETRY.value,
                    "now": now,
                    "ids": [retry.job.id for retry in ordered],
                    "attempts": [retry.job.attempt_number for retry in ordered],
                    "run_ats": [retry.run_at for retry in ordered],
                    "last_errors": [json.dumps(retry.error.to_json()) for retry in ordered],
                    "histories": [json.dumps([item.to_json() for item in retry.error_history]) for retry in ordered],
                    "retry_rules": [retry.error.retry_rule for retry in ordered],
                    "first_failed_ats": [retry.first_failed_at for retry in ordered],
                    "delays_ms": [retry.retry_delay_ms for retry in ordered],
                    "remaining": [retry.remaining_retries for retry in ordered],
                    "row_versions": [retry.job.row_version for retry in ordered],
                    "expected": expected,
                },
            )
            return len(rows)
        changed = self._compare_and_set_many(
            [
                {
                    "b_id": retry.job.id,
                    "b_attempt": retry.job.attempt_number,
                    "b_run_at": retry.run_at,
                    "b_last_error": retry.error.to_json(),
                    "b_history": [item.to_json() for item in retry.error_history],
                    "b_retry_rule": retry.error.retry_rule,
                    "b_first_failed_at": retry.first_failed_at,
                }
                for retry in ordered
            ],
            expected,
            state=JobState.FAILED.value,
            run_at=bindparam("b_run_at", type_=queue_jobs.c.run_at.type),
            lease_expires_at=None,
            last_error=bindparam("b_last_error", type_=queue_jobs.c.last_error.type),
            error_history=bindparam("b_history", type_=queue_jobs.c.error_history.type),
            retry_rule=bindparam("b_retry_rule", type_=queue_jobs.c.retry_rule.type),
            first_failed_at=bindparam("b_first_failed_at", type_=queue_jobs.c.first_failed_at.type),
            updated_at=now,
        )
        if changed == len(ordered):
            log_decisions(
                self.connection,
                [
                    retry_log_row(retry.job, retry.error, Decision.RETRY, now=now)
                    | {
                        "retry_delay_ms": retry.retry_delay_ms,
                        "remaining_retries": retry.remaining_retries,
                        "next_retry_at": retry.run_at,
                    }
                    for retry in ordered
                ],
            )
        return changed

    def dead_letter_jobs(
        self, deaths: Sequence[ScheduledDeath], *, expected_states: Iterable[JobState], now: datetime
    ) -> list[DeadLetterRecord]:
        """Compare-and-set each decided death: the job becomes DEAD_LETTER, its entry is created (or
        its existing one reopened as PENDING, keeping notes, assignee and recovery attempts) and the
        decision logged. Returns the entries of the jobs changed, in job id order; fewer than
        `deaths` means some changed concurrently, and the caller must roll back.

        PostgreSQL: one statement (update, retry-log insert and DLQ upsert chained). SQLite: one
        prepared statement each for the upsert, the update and the log, run over the batch.
        """
        if not deaths:
            return []
        ordered = sorted(deaths, key=lambda death: death.job.id)
        expected = [state.value for state in expected_states]
        if self.dialect == "postgresql":
            rows = DEAD_LETTER_JOBS.rows(
                self.connection,
                {
                    "dead_letter": JobState.DEAD_LETTER.value,
                    "decision": Decision.DEAD_LETTER.value,
                    "pending": RecoveryStatus.PENDING.value,
                    "now": now,
                    "ids": [death.job.id for death in ordered],
                    "attempts": [death.job.attempt_number for death in ordered],
                    "last_errors": [json.dumps(death.error.to_json()) for death in ordered],
                    "histories": [json.dumps([item.to_json() for item in death.error_history]) for death in ordered],
                    "entry_ids": [death.entry_id for death in ordered],
                    "death_reasons": [death.death_reason.value for death in ordered],
                    "fingerprints": [death.fingerprint for death in ordered],
                    "failure_reasons": [death.error.message for death in ordered],
                    "error_types": [death.error.type for death in ordered],
                    "retry_rules": [death.error.retry_rule for death in ordered],
                    "first_failed_ats": [death.first_failed_at for death in ordered],
                    "row_versions": [death.job.row_version for death in ordered],
                    "expected": expected,
                },
            )
            keys = DEAD_LETTER_JOBS.direct.keys(self.connection.dialect)
            entries = (dead_letter_from_mapping(dict(zip(keys, row))) for row in rows)
            return sorted(entries, key=lambda entry: entry.job_id)
        # SQLite: the write lock is held from BEGIN IMMEDIATE, so the jobs cannot change under the
        # upsert; its entries are read back for their ids (an existing entry keeps its own).
        entry_values = [dead_letter_values(death, now) for death in ordered]
        statement = self._insert(dead_letter_queue)
        self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=["job_id"],
                set_={name: getattr(statement.excluded, name) for name in DEAD_LETTER_REOPENED},
            ),
            entry_values,
        )
        entries = {
            row.job_id: dead_letter_from_row(row)
            for row in self.connection.execute(
                select(dead_letter_queue).where(dead_letter_queue.c.job_id.in_([death.job.job_id for death in ordered]))
            )
        }
        changed = self._compare_and_set_many(
            [
                {
                    "b_id": death.job.id,
                    "b_attempt": death.job.attempt_number,
                    "b_last_error": death.error.to_json(),
                    "b_history": [item.to_json() for item in death.error_history],
                    "b_entry_id": entries[death.job.job_id].id,
                    "b_retry_rule": death.error.retry_rule,
                    "b_first_failed_at": death.first_failed_at,
                }
                for death in ordered
            ],
            expected,
            state=JobState.DEAD_LETTER.value,
            lease_expires_at=None,
            last_error=bindparam("b_last_error", type_=queue_jobs.c.last_error.type),
            error_history=bindparam("b_history", type_=queue_jobs.c.error_history.type),
            dead_letter_id=bindparam("b_entry_id", type_=String()),
            retry_rule=bindparam("b_retry_rule", type_=queue_jobs.c.retry_rule.type),
            first_failed_at=bindparam("b_first_failed_at", type_=queue_jobs.c.first_failed_at.type),
            updated_at=now,
        )
        if changed != len(ordered):
            return []
        log_decisions(
            self.connection,
            [
                retry_log_row(death.job, death.error, Decision.DEAD_LETTER, now=now)
                | {"death_reason": death.death_reason.value}
                for death in ordered
            ],
        )
        return [entries[death.job.job_id] for death in ordered]

    def _compare_and_set_many(self, rows: list[dict[str, Any]], expected: list[str], **values: Any) -> int:
        """SQLite: one prepared compare-and-set on (b_id, b_attempt) and the expected states, run
        for every row of `rows` (executemany); returns how many jobs changed."""
        statement = (
            update(queue_jobs)
            .where(
                queue_jobs.c.id == bindparam("b_id", type_=Integer()),
                queue_jobs.c.attempt_number == bindparam("b_attempt", type_=Integer()),
                # Literals: executemany takes no expanding parameters. The states are the enum's values.
                queue_jobs.c.state.in_(_states_in_text(JobState(state) for state in expected)),
            )
            .values(**values)
        )
        return self.connection.execute(statement, rows).rowcount

    # Maintenance sweeps: each call handles one bounded batch in the caller's transaction. Rows
    # another transaction holds (a lease in progress, a report) are skipped, never waited for.
    # The batch is picked in a CTE, which PostgreSQL runs once: as an IN subquery it may be re-run
    # per row and exceed the limit. Counting RETURNING rows works where sqlite3 gives no rowcount.

    def make_jobs_due(self, *, now: datetime, limit: int, from_states: Iterable[JobState], to_state: JobState) -> int:
        """Move up to `limit` jobs whose retry time has passed from `from_states` to `to_state`."""
        states = [state.value for state in from_states]
        due = (
            select(queue_jobs.c.id)
            .where(queue_jobs.c.state.in_(states), queue_jobs.c.run_at <= now)
            .order_by(queue_jobs.c.run_at, queue_jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        result = self.connection.execute(
            update(queue_jobs)
            # Joined on id alone: the CTE's row locks already hold the state. Planned as id IN (SELECT ...)
            # AND state IN (...), statistics that lag behind a burst made PostgreSQL loop over every row.
            .where(queue_jobs.c.id == due.c.id)
            .values(state=to_state.value, updated_at=now)
            .returning(queue_jobs.c.id)
        )
        return len(result.all())

    def lock_expired_leases(self, *, now: datetime, limit: int) -> list[JobRecord]:
        """Lock up to `limit` ACTIVE jobs whose lease (or stall timeout) has passed, oldest first.

        The order is kept although the sweep takes every batch anyway: without it, a sweep of 10,000
        expired leases among 1M jobs ran 2.0-2.2 times its floor on PostgreSQL, against 1.2-1.4 with
        it (the sweep benchmark, A/B)."""
        rows = _EXPIRED_LEASES.rows(self.connection, {"now": now, "limit": limit})
        return [job_from_columns(row) for row in rows]

    def retry_pending_jobs(self, *, after_id: int, limit: int, min_runs_in_budget: int) -> list[JobRecord]:
        """Jobs waiting for a retry (id order, after `after_id`) that some policy could call exhausted:
        more runs in budget than `min_runs_in_budget`, or a policy of their own. Not locked."""
        runs_in_budget = queue_jobs.c.attempt_number - queue_jobs.c.budget_start
        # "No policy of its own" is stored as JSON null; SQL NULL is accepted too.
        has_own_policy = and_(
            queue_jobs.c.retry_policy.is_not(None), queue_jobs.c.retry_policy != literal_column("'null'")
        )
        rows = self.connection.execute(
            select(queue_jobs)
            .where(
                queue_jobs.c.state.in_(READY_STATES_LITERAL),
                queue_jobs.c.attempt_number > queue_jobs.c.budget_start,
                queue_jobs.c.id > after_id,
                or_(runs_in_budget > min_runs_in_budget, has_own_policy),
            )
            .order_by(queue_jobs.c.id)
            .limit(limit)
        )
        return [job_from_row(row) for row in rows]

    def lock_jobs(self, ids: Sequence[int], *, states: Iterable[JobState]) -> list[JobRecord]:
        """Lock and re-read the jobs among `ids` still in `states`, skipping rows locked elsewhere."""
        if not ids:
            return []
        rows = self.connection.execute(
            select(queue_jobs)
            .where(queue_jobs.c.id.in_(list(ids)), queue_jobs.c.state.in_([state.value for state in states]))
            .order_by(queue_jobs.c.id)
            .with_for_update(skip_locked=True)
        )
        return [job_from_row(row) for row in rows]

    def delete_completed_jobs(self, *, completed_before: datetime, limit: int) -> int:
        """Delete up to `limit` COMPLETED jobs that completed before `completed_before`, oldest first."""
        completed = state_literal(JobState.COMPLETED)
        old = (
            select(queue_jobs.c.id)
            .where(queue_jobs.c.state == completed, queue_jobs.c.completed_at < completed_before)
            .order_by(queue_jobs.c.completed_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("old")
        )
        return self._delete_picked(queue_jobs, old, queue_jobs.c.state == completed)

    # Admin listings and cleaning

    def list_jobs(
        self,
        *,
        queue_name: str | None,
        state: JobState | None,
        after: tuple[datetime, int] | None,
        limit: int,
        job_name: str | None = None,
    ) -> list[JobRecord]:
        """Jobs most recently changed first (ix_queue_jobs_queue_state when filtering by queue and state)."""
        c = queue_jobs.c
        conditions = job_conditions(queue_name=queue_name, state=state, job_name=job_name)
        if after is not None:
            updated_at, row_id = after
            conditions.append(or_(c.updated_at < updated_at, and_(c.updated_at == updated_at, c.id < row_id)))
        statement = select(queue_jobs).where(*conditions).order_by(c.updated_at.desc(), c.id.desc()).limit(limit)
        return [job_from_row(row) for row in self.connection.execute(statement)]

    def count_jobs(self, *, queue_name: str | None, state: JobState | None, job_name: str | None) -> int:
        """How many jobs match; for filters the per-queue counters cannot answer."""
        conditions = job_conditions(queue_name=queue_name, state=state, job_name=job_name)
        return self.connection.execute(select(func.count()).select_from(queue_jobs).where(*conditions)).scalar_one()

    def count_matching_jobs(self, query: JobFilter) -> int:
        return self.connection.execute(
            select(func.count()).select_from(queue_jobs).where(*job_filter_conditions(query))
        ).scalar_one()

    def matching_jobs(self, query: JobFilter, *, after_id: int | None, limit: int) -> list[JobRecord]:
        """Matching jobs in row id order, for walking a selection that changes under us."""
        conditions = job_filter_conditions(query)
        if after_id is not None:
            conditions.append(queue_jobs.c.id > after_id)
        statement = select(queue_jobs).where(*conditions).order_by(queue_jobs.c.id).limit(limit)
        return [job_from_row(row) for row in self.connection.execute(statement)]

    def cleanable_job_ids(
        self,
        *,
        queue_name: str,
        state: JobState,
        updated_before: datetime,
        recovery_status: RecoveryStatus | None,
        limit: int,
    ) -> list[tuple[int, str]]:
        """(row id, job_id) of jobs in `state` unchanged since `updated_before`; for DEAD_LETTER only
        those whose entry has `recovery_status`."""
        c = queue_jobs.c
        statement = select(c.id, c.job_id).where(
            c.queue_name == queue_name, c.state == state.value, c.updated_at <= updated_before
        )
        if recovery_status is not None:
            entries = select(dead_letter_queue.c.job_id).where(
                dead_letter_queue.c.recovery_status == recovery_status.value
            )
            statement = statement.where(c.job_id.in_(entries))
        statement = statement.order_by(c.updated_at, c.id).limit(limit)
        return [(row.id, row.job_id) for row in self.connection.execute(statement)]

    def delete_jobs(self, row_ids: Sequence[int], *, state: JobState) -> int:
        """Delete these jobs if still in `state`; return how many went."""
        result = self.connection.execute(
            delete(queue_jobs).where(queue_jobs.c.id.in_(list(row_ids)), queue_jobs.c.state == state.value)
        )
        return result.rowcount
