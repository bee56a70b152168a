"""All SQL for jobs, dead-letter entries, queues, the retry log, leases and recovery runs, bound to one transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from queue_service.domain import (
    ACTIVITY_BUCKET_SECONDS,
    READY_STATES,
    DeadLetterRecord,
    DeathReason,
    Decision,
    DlqAlertRecord,
    ErrorInfo,
    JobRecord,
    JobState,
    LeaseRecord,
    NewJob,
    QueueRecord,
    RecoveryRunRecord,
    RecoveryRunTotals,
    RecoveryStatus,
    RetryLogRecord,
    RunStatus,
    ScheduledDeath,
    ScheduledRetry,
    UniqueClaim,
    bounded_history,
)
from queue_service.store.postgres_statements import COMPLETE_JOBS, DEAD_LETTER_JOBS, SCHEDULE_RETRIES
from queue_service.store.schema import (
    UNIQUE_SLOT_HELD,
    dead_letter_queue,
    queue_activity,
    queue_dlq_alerts,
    queue_jobs,
    queue_leases,
    queue_recovery_runs,
    queue_retry_log,
    queues,
)

# The lease names the ready states as literals, not parameters: SQLite uses the partial index
# ix_queue_jobs_ready only when the query repeats its predicate `state IN ('waiting', 'failed')`.
READY_STATES_LITERAL = bindparam(
    "ready_states", [state.value for state in READY_STATES], expanding=True, literal_execute=True
)


def encode_unique_states(states: frozenset[JobState]) -> str:
    """ ",waiting,active,failed,": each state between commas, as the unique index's predicate searches it."""
    return "," + ",".join(state.value for state in JobState if state in states) + ","


def decode_unique_states(raw: str | None) -> frozenset[JobState] | None:
    return None if raw is None else frozenset(JobState(value) for value in raw.strip(",").split(",") if value)


def _unique_columns(claim: UniqueClaim | None) -> dict[str, str | None]:
    if claim is None:
        return {"unique_key": None, "unique_slot": None, "unique_states": None}
    return {"unique_key": claim.key, "unique_slot": claim.slot, "unique_states": encode_unique_states(claim.states)}


# What reopening a job's existing DLQ entry overwrites; id, job_id, created_at, notes, assignee,
# priority and recovery attempts stay.
DEAD_LETTER_REOPENED = (
    "queue_name",
    "job_name",
    "job_data",
    "failure_reason",
    "error_type",
    "total_attempts",
    "error_history",
    "death_reason",
    "recovery_status",
    "fingerprint",
    "dead_lettered_at",
    "updated_at",
    "resolution_reason",
    "resolved_by",
    "resolved_at",
)


def _errors(raw: list[dict[str, Any]] | None) -> list[ErrorInfo]:
    # Bounded on read too: rows written before histories were bounded become readable as they are.
    return bounded_history([ErrorInfo.from_json(item) for item in raw or []])


def job_from_row(row) -> JobRecord:
    m = row._mapping
    return JobRecord(
        id=m["id"],
        job_id=m["job_id"],
        queue_name=m["queue_name"],
        job_name=m["job_name"],
        job_data=m["job_data"],
        state=JobState(m["state"]),
        priority=m["priority"],
        attempt_number=m["attempt_number"],
        budget_start=m["budget_start"],
        retry_policy=m["retry_policy"],
        run_at=m["run_at"],
        lease_expires_at=m["lease_expires_at"],
        worker_id=m["worker_id"],
        last_error=ErrorInfo.from_json(m["last_error"]) if m["last_error"] else None,
        error_history=_errors(m["error_history"]),
        result=m["result"],
        processing_duration_ms=m["processing_duration_ms"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
        dead_letter_id=m["dead_letter_id"],
        trace_parent=m["trace_parent"],
        unique_key=m["unique_key"],
        unique_states=decode_unique_states(m["unique_states"]),
        retry_rule=m["retry_rule"],
        first_failed_at=m["first_failed_at"],
        cancel_requested_at=m["cancel_requested_at"],
    )


def _inserted_job(row_id: int, row: dict[str, Any]) -> JobRecord:
    """The job just inserted from `row` (a `Repository._job_row`), as it is stored."""
    return JobRecord(
        id=row_id,
        job_id=row["job_id"],
        queue_name=row["queue_name"],
        job_name=row["job_name"],
        job_data=row["job_data"],
        state=JobState(row["state"]),
        priority=row["priority"],
        attempt_number=row["attempt_number"],
        budget_start=row["budget_start"],
        retry_policy=row["retry_policy"],
        run_at=row["run_at"],
        lease_expires_at=row["lease_expires_at"],
        worker_id=row["worker_id"],
        last_error=None,
        error_history=[],
        result=None,
        processing_duration_ms=None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        completed_at=None,
        dead_letter_id=None,
        trace_parent=row["trace_parent"],
        unique_key=row["unique_key"],
        unique_states=decode_unique_states(row["unique_states"]),
    )


def dead_letter_from_row(row) -> DeadLetterRecord:
    m = row._mapping
    return DeadLetterRecord(
        id=m["id"],
        job_id=m["job_id"],
        queue_name=m["queue_name"],
        job_name=m["job_name"],
        job_data=m["job_data"],
        failure_reason=m["failure_reason"],
        error_type=m["error_type"],
        total_attempts=m["total_attempts"],
        error_history=_errors(m["error_history"]),
        death_reason=DeathReason(m["death_reason"]),
        recovery_status=RecoveryStatus(m["recovery_status"]),
        recovery_attempts=m["recovery_attempts"],
        admin_notes=m["admin_notes"],
        assigned_to=m["assigned_to"],
        priority=m["priority"],
        fingerprint=m["fingerprint"],
        created_at=m["created_at"],
        dead_lettered_at=m["dead_lettered_at"],
        updated_at=m["updated_at"],
        resolution_reason=m["resolution_reason"],
        resolved_by=m["resolved_by"],
        resolved_at=m["resolved_at"],
    )


def retry_log_from_row(row) -> RetryLogRecord:
    m = row._mapping
    return RetryLogRecord(
        id=m["id"],
        job_id=m["job_id"],
        queue_name=m["queue_name"],
        attempt_number=m["attempt_number"],
        error=ErrorInfo.from_json(m["error"]) if m["error"] else None,
        decision=Decision(m["decision"]),
        retry_delay_ms=m["retry_delay_ms"],
        remaining_retries=m["remaining_retries"],
        next_retry_at=m["next_retry_at"],
        death_reason=DeathReason(m["death_reason"]) if m["death_reason"] else None,
        created_at=m["created_at"],
    )


def queue_from_row(row) -> QueueRecord:
    m = row._mapping
    return QueueRecord(
        name=m["name"],
        paused=bool(m["paused"]),
        retry_policy=m["retry_policy"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def lease_from_row(row) -> LeaseRecord:
    m = row._mapping
    return LeaseRecord(
        name=m["name"],
        holder=m["holder"],
        term=m["term"],
        elected_at=m["elected_at"],
        renewed_at=m["renewed_at"],
        expires_at=m["expires_at"],
        next_run_at=m["next_run_at"],
    )


def dlq_alert_from_row(row) -> DlqAlertRecord:
    m = row._mapping
    return DlqAlertRecord(
        queue_name=m["queue_name"],
        alerting=bool(m["alerting"]),
        pending_count=m["pending_count"],
        threshold=m["threshold"],
        raised_at=m["raised_at"],
        cleared_at=m["cleared_at"],
        updated_at=m["updated_at"],
    )


def recovery_run_from_row(row) -> RecoveryRunRecord:
    m = row._mapping
    return RecoveryRunRecord(
        id=m["id"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        status=RunStatus(m["status"]),
        trigger=m["trigger"],
        node_id=m["node_id"],
        counts=dict(m["counts"] or {}),
        error=m["error"],
    )


class Repository:
    """Statements over one connection inside one transaction; the caller owns commit."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed; never if it rolls back."""
        self._after_commit.append(callback)

    def run_after_commit(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def _insert(self, table):
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # Queues

    def ensure_queues(self, names: Iterable[str], now: datetime) -> None:
        rows = [{"name": name, "paused": False, "created_at": now, "updated_at": now} for name in sorted(set(names))]
        if rows:
            self.connection.execute(self._insert(queues).on_conflict_do_nothing(index_elements=["name"]), rows)

    def count_queues(self) -> int:
        return self.connection.execute(select(func.count()).select_from(queues)).scalar_one()

    def get_queue(self, name: str) -> QueueRecord | None:
        row = self.connection.execute(select(queues).where(queues.c.name == name)).first()
        return queue_from_row(row) if row else None

    def get_queues(self, names: Iterable[str]) -> dict[str, QueueRecord]:
        rows = self.connection.execute(select(queues).where(queues.c.name.in_(list(set(names))))).all()
        return {row.name: queue_from_row(row) for row in rows}

    def queue_retry_policies(self) -> list[dict[str, Any]]:
        """Every queue's own retry policy (queues without one left out)."""
        rows = self.connection.execute(select(queues.c.retry_policy))
        return [row.retry_policy for row in rows if row.retry_policy]

    # Jobs

    def insert_jobs(self, jobs: Sequence[NewJob], now: datetime) -> set[str]:
        """Insert jobs whose job_id is new and whose unique slot is free; return the job_ids inserted."""
        return set(self.insert_jobs_returning(jobs, now))

    def insert_jobs_returning(self, jobs: Sequence[NewJob], now: datetime) -> dict[str, JobRecord]:
        """Insert jobs whose job_id is new (the first of a repeated one) and whose unique slot is free;
        return those inserted, as stored, by job_id."""
        rows = [self._job_row(job, now) for job in jobs]
        if not rows:
            return {}
        if self.dialect == "sqlite":
            return self._insert_jobs_sqlite(rows)
        # No conflict target: a row is skipped when its job_id exists or when the unique index
        # (ix_queue_jobs_unique_slot) holds its slot. PostgreSQL waits for a concurrent insert of
        # the same slot to commit, then skips.
        statement = self._insert(queue_jobs).on_conflict_do_nothing().returning(*queue_jobs.c)
        # With several rows SQLAlchemy batches this as "insertmanyvalues", keeping RETURNING.
        return {row.job_id: job_from_row(row) for row in self.connection.execute(statement, rows)}

    def _insert_jobs_sqlite(self, rows: list[dict[str, Any]]) -> dict[str, JobRecord]:
        """SQLite holds its write lock from BEGIN IMMEDIATE, so the job_ids already stored, read
        first, stay so: the new rows go in through one prepared insert run over the batch
        (executemany, no RETURNING), and only their row ids are read back. A row whose unique slot
        is held, by a stored job or by an earlier row of the batch, is skipped by the unique index
        (ON CONFLICT DO NOTHING) and has no row id to read."""
        c = queue_jobs.c
        wanted = list(dict.fromkeys(row["job_id"] for row in rows))
        stored = set(self.connection.execute(select(c.job_id).where(c.job_id.in_(wanted))).scalars())
        fresh: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["job_id"] not in stored:
                fresh.setdefault(row["job_id"], row)
        if not fresh:
            return {}
        self.connection.execute(self._insert(queue_jobs).on_conflict_do_nothing(), list(fresh.values()))
        ids = dict(self.connection.execute(select(c.job_id, c.id).where(c.job_id.in_(list(fresh)))).all())
        return {job_id: _inserted_job(ids[job_id], row) for job_id, row in fresh.items() if job_id in ids}

    @staticmethod
    def _job_row(job: NewJob, now: datetime) -> dict[str, Any]:
        return {
            "job_id": job.job_id,
            "queue_name": job.queue_name,
            "job_name": job.job_name,
            "job_data": job.job_data,
            "state": job.state.value,
            "priority": job.priority,
            "attempt_number": job.attempt_number,
            "budget_start": 0,
            "retry_policy": job.retry_policy,
            "run_at": job.run_at,
            "lease_expires_at": job.lease_expires_at,
            "worker_id": job.worker_id,
            "started_at": job.started_at,
            "trace_parent": job.trace_parent,
            **_unique_columns(job.unique),
            "created_at": now,
            "updated_at": now,
        }

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

    def get_job_and_queue_policy(
        self, job_id: str, *, for_update: bool = False
    ) -> tuple[JobRecord, dict[str, Any] | None] | None:
        """The job and its queue's retry policy in one statement; only the job row is locked."""
        statement = (
            select(queue_jobs, queues.c.retry_policy.label("queue_retry_policy"))
            .select_from(queue_jobs.outerjoin(queues, queues.c.name == queue_jobs.c.queue_name))
            .where(queue_jobs.c.job_id == job_id)
        )
        if for_update:
            statement = statement.with_for_update(of=queue_jobs)
        row = self.connection.execute(statement).first()
        return (job_from_row(row), row._mapping["queue_retry_policy"]) if row else None

    def get_jobs(self, job_ids: Sequence[str]) -> dict[str, JobRecord]:
        rows = self.connection.execute(select(queue_jobs).where(queue_jobs.c.job_id.in_(list(job_ids)))).all()
        return {row.job_id: job_from_row(row) for row in rows}

    def ready_jobs_for_lease(self, queue_names: Sequence[str], *, limit: int, now: datetime) -> list[JobRecord]:
        """Lock up to `limit` ready jobs, highest priority then oldest ready time first, skipping
        rows another transaction holds. `claim_leases` then leases those the caller picks."""
        statement = (
            select(queue_jobs)
            .where(
                queue_jobs.c.queue_name.in_(list(queue_names)),
                queue_jobs.c.state.in_(READY_STATES_LITERAL),
                queue_jobs.c.run_at <= now,
            )
            .order_by(queue_jobs.c.priority.desc(), queue_jobs.c.run_at, queue_jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [job_from_row(row) for row in self.connection.execute(statement)]

    def claim_leases(
        self, ids: Sequence[int], *, now: datetime, worker_id: str | None, lease_expires_at: datetime
    ) -> int:
        """Make the jobs `ids` (locked by `ready_jobs_for_lease`) ACTIVE with their next attempt;
        returns how many were still ready."""
        if not ids:
            return 0
        statement = (
            update(queue_jobs)
            .where(queue_jobs.c.id.in_(list(ids)), queue_jobs.c.state.in_(READY_STATES_LITERAL))
            .values(
                state=JobState.ACTIVE.value,
                attempt_number=queue_jobs.c.attempt_number + 1,
                worker_id=worker_id,
                lease_expires_at=lease_expires_at,
                started_at=now,
                updated_at=now,
            )
            .returning(queue_jobs.c.id)
        )
        return len(self.connection.execute(statement).all())

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
        """Lock up to `limit` ACTIVE jobs whose lease (or stall timeout) has passed, oldest first."""
        rows = self.connection.execute(
            select(queue_jobs)
            .where(queue_jobs.c.state == JobState.ACTIVE.value, queue_jobs.c.lease_expires_at <= now)
            .order_by(queue_jobs.c.lease_expires_at, queue_jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [job_from_row(row) for row in rows]

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
                queue_jobs.c.state.in_([state.value for state in READY_STATES]),
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
        completed = JobState.COMPLETED.value
        old = (
            select(queue_jobs.c.id)
            .where(queue_jobs.c.state == completed, queue_jobs.c.completed_at < completed_before)
            .order_by(queue_jobs.c.completed_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("old")
        )
        return self._delete_picked(queue_jobs, old, queue_jobs.c.state == completed)

    def complete_jobs(
        self,
        completions: Sequence[tuple[str, int, dict[str, Any], int | None]],
        *,
        expected_states: Iterable[JobState],
        now: datetime,
    ) -> dict[str, str]:
        """Compare-and-set each (job_id, attempt_number, result, processing_duration_ms) to COMPLETED,
        leaving out runs asked to stop (cancel_requested_at set).

        Returns queue_name by job_id for the jobs completed; the others did not match their
        expected state and attempt. PostgreSQL does it in one statement (its counter trigger then
        runs once for the batch); SQLite, in process and with row triggers, one statement per job.
        """
        expected = [state.value for state in expected_states]
        ordered = sorted(completions)  # a stable lock order between concurrent batches
        if self.dialect == "postgresql":
            rows = self.connection.execute(
                COMPLETE_JOBS.clause,
                {
                    "completed": JobState.COMPLETED.value,
                    "now": now,
                    "job_ids": [job_id for job_id, _, _, _ in ordered],
                    "attempts": [attempt for _, attempt, _, _ in ordered],
                    "results": [json.dumps(result) for _, _, result, _ in ordered],
                    "durations": [duration for _, _, _, duration in ordered],
                    "expected": expected,
                },
            )
            return {row.job_id: row.queue_name for row in rows}
        statement = (
            update(queue_jobs)
            .where(
                queue_jobs.c.job_id == bindparam("b_job_id", type_=String()),
                queue_jobs.c.attempt_number == bindparam("b_attempt", type_=Integer()),
                queue_jobs.c.state.in_(expected),
                queue_jobs.c.cancel_requested_at.is_(None),
            )
            .values(
                state=JobState.COMPLETED.value,
                result=bindparam("b_result", type_=queue_jobs.c.result.type),
                processing_duration_ms=bindparam("b_duration", type_=BigInteger()),
                lease_expires_at=None,
                completed_at=now,
                updated_at=now,
            )
            .returning(queue_jobs.c.job_id, queue_jobs.c.queue_name)
        )
        completed: dict[str, str] = {}
        for job_id, attempt, result, duration in ordered:
            row = self.connection.execute(
                statement, {"b_job_id": job_id, "b_attempt": attempt, "b_result": result, "b_duration": duration}
            ).first()
            if row is not None:
                completed[row.job_id] = row.queue_name
        return completed

    def complete_current_run(
        self,
        job_id: str,
        attempt_number: int,
        *,
        expected_states: Iterable[JobState],
        result: dict[str, Any] | None,
        processing_duration_ms: int | None,
        now: datetime,
    ) -> JobRecord | None:
        """Compare-and-set by job_id on state and attempt, without reading the job first; None if it did not match."""
        statement = (
            update(queue_jobs)
            .where(
                queue_jobs.c.job_id == job_id,
                queue_jobs.c.state.in_([state.value for state in expected_states]),
                queue_jobs.c.attempt_number == attempt_number,
                # A run asked to stop ends CANCELLED whatever it reports (JobManager.complete).
                queue_jobs.c.cancel_requested_at.is_(None),
            )
            .values(
                state=JobState.COMPLETED.value,
                result=result,
                processing_duration_ms=processing_duration_ms,
                lease_expires_at=None,
                completed_at=now,
                updated_at=now,
            )
            .returning(*queue_jobs.c)
        )
        row = self.connection.execute(statement).first()
        return job_from_row(row) if row else None

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
            rows = self.connection.execute(
                SCHEDULE_RETRIES.clause,
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
                    "expected": expected,
                },
            )
            return len(rows.all())
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
            self._log_decisions(
                [
                    self._retry_log_row(retry.job, retry.error, Decision.RETRY, now=now)
                    | {
                        "retry_delay_ms": retry.retry_delay_ms,
                        "remaining_retries": retry.remaining_retries,
                        "next_retry_at": retry.run_at,
                    }
                    for retry in ordered
                ]
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
            rows = self.connection.execute(
                DEAD_LETTER_JOBS.clause,
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
                    "expected": expected,
                },
            )
            return sorted((dead_letter_from_row(row) for row in rows), key=lambda entry: entry.job_id)
        # SQLite: the write lock is held from BEGIN IMMEDIATE, so the jobs cannot change under the
        # upsert; its entries are read back for their ids (an existing entry keeps its own).
        entry_values = [self._dead_letter_values(death, now) for death in ordered]
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
        self._log_decisions(
            [
                self._retry_log_row(death.job, death.error, Decision.DEAD_LETTER, now=now)
                | {"death_reason": death.death_reason.value}
                for death in ordered
            ]
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
                queue_jobs.c.state.in_([literal_column(f"'{JobState(state).value}'") for state in expected]),
            )
            .values(**values)
        )
        return self.connection.execute(statement, rows).rowcount

    @staticmethod
    def _dead_letter_values(death: ScheduledDeath, now: datetime) -> dict[str, Any]:
        job = death.job
        return {
            "id": death.entry_id,
            "job_id": job.job_id,
            "queue_name": job.queue_name,
            "job_name": job.job_name,
            "job_data": job.job_data,
            "failure_reason": death.error.message,
            "error_type": death.error.type,
            "total_attempts": job.attempt_number,
            "error_history": [error.to_json() for error in death.error_history],
            "death_reason": death.death_reason.value,
            "recovery_status": RecoveryStatus.PENDING.value,
            "fingerprint": death.fingerprint,
            "created_at": now,
            "dead_lettered_at": now,
            "updated_at": now,
            "resolution_reason": "",
            "resolved_by": "",
            "resolved_at": None,
        }

    @staticmethod
    def _retry_log_row(job: JobRecord, error: ErrorInfo, decision: Decision, *, now: datetime) -> dict[str, Any]:
        return {
            "job_id": job.job_id,
            "queue_name": job.queue_name,
            "attempt_number": job.attempt_number,
            "error": error.to_json(),
            "decision": decision.value,
            "retry_delay_ms": 0,
            "remaining_retries": 0,
            "next_retry_at": None,
            "death_reason": None,
            "created_at": now,
        }

    def _log_decisions(self, rows: list[dict[str, Any]]) -> None:
        """Insert retry-log rows, oldest decision of each job first, with one prepared statement."""
        rows.sort(key=lambda row: (row["job_id"], row["attempt_number"]))
        self.connection.execute(insert(queue_retry_log), rows)

    # Retry log

    def find_decision(self, job_id: str, attempt_number: int) -> RetryLogRecord | None:
        row = self.connection.execute(
            select(queue_retry_log)
            .where(queue_retry_log.c.job_id == job_id, queue_retry_log.c.attempt_number == attempt_number)
            .order_by(queue_retry_log.c.id)
            .limit(1)
        ).first()
        return retry_log_from_row(row) if row else None

    def retry_log_excerpt(self, job_id: str, *, head: int, tail: int) -> tuple[list[RetryLogRecord], int]:
        """The job's first `head` and last `tail` retry decisions, oldest first, and how many lie between."""
        c = queue_retry_log.c
        of_job = select(queue_retry_log).where(c.job_id == job_id)
        first = self.connection.execute(of_job.order_by(c.id).limit(head)).all()
        if len(first) < head:
            return [retry_log_from_row(row) for row in first], 0
        last = self.connection.execute(of_job.where(c.id > first[-1].id).order_by(c.id.desc()).limit(tail)).all()
        later = self.connection.execute(
            select(func.count()).select_from(queue_retry_log).where(c.job_id == job_id, c.id > first[-1].id)
        ).scalar_one()
        between = later - len(last)
        return [retry_log_from_row(row) for row in [*first, *reversed(last)]], between

    def delete_retry_log(self, *, created_before: datetime, limit: int) -> int:
        old = (
            select(queue_retry_log.c.id)
            .where(queue_retry_log.c.created_at < created_before)
            .order_by(queue_retry_log.c.created_at)
            .limit(limit)
            .cte("old")
        )
        return self._delete_picked(queue_retry_log, old)

    def delete_activity(self, *, bucket_before: datetime, limit: int) -> int:
        """Delete up to `limit` activity-count rows whose bucket starts before `bucket_before`."""
        c = queue_activity.c
        old = (
            select(c.id)
            .where(c.bucket_seconds.in_(ACTIVITY_BUCKET_SECONDS), c.bucket_start < bucket_before)
            .limit(limit)
            .cte("old")
        )
        return self._delete_picked(queue_activity, old)

    def _delete_picked(self, table, picked, *conditions) -> int:
        """Delete the rows of `table` whose ids the CTE `picked` holds; returns how many. PostgreSQL
        joins the CTE (DELETE ... USING), which it runs once; as `id IN (SELECT ...)` the planner
        may re-run it per row and exceed its limit. SQLite has no DELETE ... USING and runs the
        subquery once."""
        if self.dialect == "postgresql":
            match = table.c.id == picked.c.id
        else:
            match = table.c.id.in_(select(picked.c.id))
        result = self.connection.execute(delete(table).where(match, *conditions).returning(table.c.id))
        return len(result.all())

    # Leases (leader election, sweep lock)

    def get_lease(self, name: str) -> LeaseRecord | None:
        row = self.connection.execute(select(queue_leases).where(queue_leases.c.name == name)).first()
        return lease_from_row(row) if row else None

    def elect_lease(
        self, name: str, holder: str, *, now: datetime, expires_at: datetime, next_run_at: datetime | None = None
    ) -> LeaseRecord | None:
        """Take the lease if nobody holds it or its holder let it lapse; the term goes up by one."""
        statement = self._insert(queue_leases).values(
            name=name,
            holder=holder,
            term=1,
            elected_at=now,
            renewed_at=now,
            expires_at=expires_at,
            next_run_at=next_run_at,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "holder": holder,
                "term": queue_leases.c.term + 1,
                "elected_at": now,
                "renewed_at": now,
                "expires_at": expires_at,
                "next_run_at": next_run_at,
            },
            where=queue_leases.c.expires_at <= now,
        ).returning(*queue_leases.c)
        row = self.connection.execute(statement).first()
        return lease_from_row(row) if row else None

    def reelect_lease(
        self,
        name: str,
        holder: str,
        term: int,
        *,
        now: datetime,
        expires_at: datetime,
        next_run_at: datetime | None = None,
    ) -> LeaseRecord | None:
        """Extend the lease if `holder` still holds `term`. A lapsed lease nobody took is still ours:
        the unchanged term proves no one else held it meanwhile."""
        row = self.connection.execute(
            update(queue_leases)
            .where(queue_leases.c.name == name, queue_leases.c.holder == holder, queue_leases.c.term == term)
            .values(renewed_at=now, expires_at=expires_at, next_run_at=next_run_at)
            .returning(*queue_leases.c)
        ).first()
        return lease_from_row(row) if row else None

    def resign_lease(self, name: str, holder: str, term: int, *, now: datetime) -> bool:
        """Let the lease lapse now so that the next election takes it at once."""
        result = self.connection.execute(
            update(queue_leases)
            .where(
                queue_leases.c.name == name,
                queue_leases.c.holder == holder,
                queue_leases.c.term == term,
                queue_leases.c.expires_at > now,
            )
            .values(expires_at=now, next_run_at=None)
        )
        return result.rowcount == 1

    # DLQ alerts

    def pending_dead_letter_counts(self) -> dict[str, int]:
        rows = self.connection.execute(
            select(dead_letter_queue.c.queue_name, func.count())
            .where(dead_letter_queue.c.recovery_status == RecoveryStatus.PENDING.value)
            .group_by(dead_letter_queue.c.queue_name)
        )
        return {name: count for name, count in rows}

    def lock_dlq_alerts(self) -> dict[str, DlqAlertRecord]:
        rows = self.connection.execute(select(queue_dlq_alerts).with_for_update())
        return {row.queue_name: dlq_alert_from_row(row) for row in rows}

    def raise_dlq_alert(self, queue_name: str, *, pending_count: int, threshold: int, now: datetime) -> None:
        values = {
            "alerting": True,
            "pending_count": pending_count,
            "threshold": threshold,
            "raised_at": now,
            "cleared_at": None,
            "updated_at": now,
        }
        self.connection.execute(
            self._insert(queue_dlq_alerts)
            .values(queue_name=queue_name, **values)
            .on_conflict_do_update(index_elements=["queue_name"], set_=values)
        )

    def clear_dlq_alert(self, queue_name: str, *, pending_count: int, now: datetime) -> None:
        self.connection.execute(
            update(queue_dlq_alerts)
            .where(queue_dlq_alerts.c.queue_name == queue_name)
            .values(alerting=False, pending_count=pending_count, cleared_at=now, updated_at=now)
        )

    # Recovery runs

    def insert_recovery_run(self, *, started_at: datetime, trigger: str, node_id: str) -> RecoveryRunRecord:
        row = self.connection.execute(
            insert(queue_recovery_runs)
            .values(started_at=started_at, status=RunStatus.RUNNING.value, trigger=trigger, node_id=node_id, counts={})
            .returning(*queue_recovery_runs.c)
        ).first()
        return recovery_run_from_row(row)

    def finish_recovery_run(
        self, run_id: int, *, finished_at: datetime, status: RunStatus, counts: dict[str, int], error: str | None
    ) -> RecoveryRunRecord | None:
        row = self.connection.execute(
            update(queue_recovery_runs)
            .where(queue_recovery_runs.c.id == run_id, queue_recovery_runs.c.status == RunStatus.RUNNING.value)
            .values(finished_at=finished_at, status=status.value, counts=counts, error=error)
            .returning(*queue_recovery_runs.c)
        ).first()
        return recovery_run_from_row(row) if row else None

    def get_recovery_run(self, run_id: int) -> RecoveryRunRecord | None:
        row = self.connection.execute(select(queue_recovery_runs).where(queue_recovery_runs.c.id == run_id)).first()
        return recovery_run_from_row(row) if row else None

    def fail_running_recovery_runs(self, *, except_id: int, finished_at: datetime, error: str) -> int:
        """Close runs left RUNNING by a node that stopped mid-sweep."""
        return self.connection.execute(
            update(queue_recovery_runs)
            .where(queue_recovery_runs.c.status == RunStatus.RUNNING.value, queue_recovery_runs.c.id != except_id)
            .values(finished_at=finished_at, status=RunStatus.FAILED.value, error=error)
        ).rowcount

    def recovery_run_totals(self) -> RecoveryRunTotals:
        rows = self.connection.execute(
            select(queue_recovery_runs.c.status, func.count()).group_by(queue_recovery_runs.c.status)
        )
        by_status = {status: count for status, count in rows}
        return RecoveryRunTotals(
            total=sum(by_status.values()),
            succeeded=by_status.get(RunStatus.SUCCEEDED.value, 0),
            failed=by_status.get(RunStatus.FAILED.value, 0),
        )

    def last_finished_recovery_run(self) -> RecoveryRunRecord | None:
        row = self.connection.execute(
            select(queue_recovery_runs)
            .where(queue_recovery_runs.c.status != RunStatus.RUNNING.value)
            .order_by(queue_recovery_runs.c.started_at.desc(), queue_recovery_runs.c.id.desc())
            .limit(1)
        ).first()
        return recovery_run_from_row(row) if row else None

    def last_succeeded_recovery_run_finished_at(self) -> datetime | None:
        # Newest first by the started_at index: the walk stops at the first successful run.
        return self.connection.execute(
            select(queue_recovery_runs.c.finished_at)
            .where(queue_recovery_runs.c.status == RunStatus.SUCCEEDED.value)
            .order_by(queue_recovery_runs.c.started_at.desc())
            .limit(1)
        ).scalar()

    def list_recovery_runs(self, *, before_id: int | None, limit: int) -> list[RecoveryRunRecord]:
        """Newest first; `before_id` continues a page."""
        statement = select(queue_recovery_runs).order_by(queue_recovery_runs.c.id.desc()).limit(limit)
        if before_id is not None:
            statement = statement.where(queue_recovery_runs.c.id < before_id)
        return [recovery_run_from_row(row) for row in self.connection.execute(statement)]

    # Dead-letter queue

    def get_dead_letter(self, entry_id: str, *, for_update: bool = False) -> DeadLetterRecord | None:
        statement = select(dead_letter_queue).where(dead_letter_queue.c.id == entry_id)
        if for_update:
            statement = statement.with_for_update()
        row = self.connection.execute(statement).first()
        return dead_letter_from_row(row) if row else None

    def get_dead_letter_for_job(self, job_id: str) -> DeadLetterRecord | None:
        row = self.connection.execute(select(dead_letter_queue).where(dead_letter_queue.c.job_id == job_id)).first()
        return dead_letter_from_row(row) if row else None
