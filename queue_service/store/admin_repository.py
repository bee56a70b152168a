"""SQL for the admin API: counters, listings with keyset pages, triage updates, cleaning, audit."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Connection, and_, case, cast, delete, func, insert, or_, select, union_all, update

from queue_service.domain import (
    READY_STATES,
    AuditEventRecord,
    DeadLetterFilter,
    DeadLetterRecord,
    Decision,
    FailurePatternRow,
    JobFilter,
    JobRecord,
    JobState,
    QueueRecord,
    RecoveryStatus,
    RetryLogRecord,
    TriageChanges,
)
from queue_service.store.repository import (
    Repository,
    dead_letter_from_row,
    job_from_row,
    queue_from_row,
    retry_log_from_row,
)
from queue_service.store.schema import (
    audit_events,
    dead_letter_queue,
    queue_activity,
    queue_counters,
    queue_jobs,
    queue_retry_log,
    queues,
)


def audit_from_row(row) -> AuditEventRecord:
    m = row._mapping
    return AuditEventRecord(
        id=m["id"],
        actor=m["actor"],
        action=m["action"],
        target=m["target"],
        parameters=m["parameters"] or {},
        created_at=m["created_at"],
    )


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def dead_letter_conditions(query: DeadLetterFilter) -> list:
    c = dead_letter_queue.c
    conditions = []
    if query.queue_name:
        conditions.append(c.queue_name == query.queue_name)
    if query.recovery_status:
        conditions.append(c.recovery_status == query.recovery_status.value)
    if query.death_reason:
        conditions.append(c.death_reason == query.death_reason.value)
    if query.failure_reason_contains:
        conditions.append(func.lower(c.failure_reason).like(_like_pattern(query.failure_reason_contains), escape="\\"))
    if query.error_type:
        conditions.append(c.error_type == query.error_type)
    if query.fingerprint:
        conditions.append(c.fingerprint == query.fingerprint)
    if query.assigned_to:
        conditions.append(c.assigned_to == query.assigned_to)
    if query.dead_lettered_after:
        conditions.append(c.dead_lettered_at >= query.dead_lettered_after)
    if query.dead_lettered_before:
        conditions.append(c.dead_lettered_at < query.dead_lettered_before)
    return conditions


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


class AdminRepository:
    """Admin statements over the connection of one transaction; the caller owns commit."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @classmethod
    def of(cls, repo: Repository) -> AdminRepository:
        return cls(repo.connection)

    # Counters

    def counter_totals(self, queue_names: Sequence[str] | None = None) -> dict[tuple[str, str], int]:
        """Exact counts per (queue, counter) from the trigger-maintained rows."""
        c = queue_counters.c
        statement = select(c.queue_name, c.counter, func.sum(c.amount).label("amount")).group_by(
            c.queue_name, c.counter
        )
        if queue_names is not None:
            statement = statement.where(c.queue_name.in_(list(queue_names)))
        return {(row.queue_name, row.counter): int(row.amount) for row in self.connection.execute(statement)}

    def scheduled_counts(self, now: datetime, queue_names: Sequence[str] | None = None) -> dict[tuple[str, str], int]:
        """WAITING and FAILED jobs whose run time is still ahead, per (queue, state).

        A range scan of ix_queue_jobs_state_run_at_queue_name over future run times only.
        """
        c = queue_jobs.c
        statement = (
            select(c.queue_name, c.state, func.count().label("amount"))
            .where(c.state.in_(READY_STATES), c.run_at > now)
            .group_by(c.queue_name, c.state)
        )
        if queue_names is not None:
            statement = statement.where(c.queue_name.in_(list(queue_names)))
        return {(row.queue_name, row.state): int(row.amount) for row in self.connection.execute(statement)}

    def oldest_ready_run_at(self, now: datetime) -> dict[str, datetime]:
        """Per queue with ready jobs (WAITING or FAILED, due by `now`): the earliest run time among them."""
        c = queue_jobs.c
        statement = (
            select(c.queue_name, func.min(c.run_at).label("oldest"))
            .where(c.state.in_(READY_STATES), c.run_at <= now)
            .group_by(c.queue_name)
        )
        # min() keeps the column's type, so the values come back as UTC-aware datetimes.
        return {row.queue_name: row.oldest for row in self.connection.execute(statement)}

    def activity_totals(
        self,
        *,
        start: datetime,
        end: datetime,
        stored_seconds: int,
        width_seconds: int,
        queue_names: Sequence[str] | None = None,
    ) -> list[tuple[str, int, str, int]]:
        """(queue, bucket number, activity, amount) over the trigger-kept rows of width `stored_seconds`
        in [start, end), summed in the database into buckets of `width_seconds` counted from `start`."""
        c = queue_activity.c
        first = int(start.timestamp())
        if self.connection.dialect.name == "postgresql":
            seconds = func.extract("epoch", c.bucket_start)
        else:
            seconds = cast(func.strftime("%s", c.bucket_start), BigInteger)
        bucket = cast(func.floor((seconds - first) / width_seconds), BigInteger).label("bucket")
        statement = (
            select(c.queue_name, bucket, c.activity, func.sum(c.amount).label("amount"))
            .where(c.bucket_seconds == stored_seconds, c.bucket_start >= start, c.bucket_start < end)
            .group_by(c.queue_name, bucket, c.activity)
        )
        if queue_names is not None:
            statement = statement.where(c.queue_name.in_(list(queue_names)))
        return [
            (row.queue_name, int(row.bucket), row.activity, int(row.amount))
            for row in self.connection.execute(statement)
        ]

    # Queues

    def list_queues(self, *, after: str | None, limit: int, names: Sequence[str] | None = None) -> list[QueueRecord]:
        statement = select(queues).order_by(queues.c.name).limit(limit)
        if after is not None:
            statement = statement.where(queues.c.name > after)
        if names is not None:
            statement = statement.where(queues.c.name.in_(list(names)))
        return [queue_from_row(row) for row in self.connection.execute(statement)]

    def set_queue_policy(self, name: str, retry_policy: dict[str, Any] | None, *, now: datetime) -> QueueRecord | None:
        return self._update_queue(name, retry_policy=retry_policy, updated_at=now)

    def set_queue_paused(self, name: str, paused: bool, *, now: datetime) -> QueueRecord | None:
        return self._update_queue(name, paused=paused, updated_at=now)

    def _update_queue(self, name: str, **values: Any) -> QueueRecord | None:
        row = self.connection.execute(
            update(queues).where(queues.c.name == name).values(**values).returning(*queues.c)
        ).first()
        return queue_from_row(row) if row else None

    # Dead-letter entries

    def list_dead_letters(
        self, query: DeadLetterFilter, *, after: tuple[int, datetime, str] | None, limit: int
    ) -> list[DeadLetterRecord]:
        """Entries in triage order: priority descending, newest first, then id."""
        c = dead_letter_queue.c
        conditions = dead_letter_conditions(query)
        order = (c.priority.desc(), c.dead_lettered_at.desc(), c.id)
        if after is None:
            statement = select(dead_letter_queue).where(*conditions).order_by(*order).limit(limit)
            return [dead_letter_from_row(row) for row in self.connection.execute(statement)]
        # The mixed sort directions rule out one row-value comparison, and the equivalent OR of
        # comparisons is not an index range: a deep page would scan every entry before it. Each
        # of these three disjoint ranges is one index range scan; the outer sort sees 3 x limit rows.
        priority, dead_lettered_at, entry_id = after
        ranges = (
            [c.priority == priority, c.dead_lettered_at == dead_lettered_at, c.id > entry_id],
            [c.priority == priority, c.dead_lettered_at < dead_lettered_at],
            [c.priority < priority],
        )
        parts = [
            select(dead_letter_queue).where(*conditions, *bounds).order_by(*order).limit(limit).subquery()
            for bounds in ranges
        ]
        page = union_all(*(select(part) for part in parts)).subquery()
        statement = (
            select(page).order_by(page.c.priority.desc(), page.c.dead_lettered_at.desc(), page.c.id).limit(limit)
        )
        return [dead_letter_from_row(row) for row in self.connection.execute(statement)]

    def count_dead_letters(self, query: DeadLetterFilter) -> int:
        """Entries matching `query`: from the counters when it filters on queue and status alone,
        which the triage list does on every page, else by counting the table."""
        if query == DeadLetterFilter(queue_name=query.queue_name, recovery_status=query.recovery_status):
            c = queue_counters.c
            statuses = [query.recovery_status] if query.recovery_status else list(RecoveryStatus)
            statement = select(func.coalesce(func.sum(c.amount), 0)).where(
                c.counter.in_([f"dead_letters.{status.value}" for status in statuses])
            )
            if query.queue_name:
                statement = statement.where(c.queue_name == query.queue_name)
            return int(self.connection.execute(statement).scalar_one())
        statement = select(func.count()).select_from(dead_letter_queue).where(*dead_letter_conditions(query))
        return int(self.connection.execute(statement).scalar_one())

    def dead_letter_ids(self, query: DeadLetterFilter, *, after_id: str | None, limit: int) -> list[str]:
        """Ids of matching entries in id order, for walking a selection that changes under us."""
        c = dead_letter_queue.c
        conditions = dead_letter_conditions(query)
        if after_id is not None:
            conditions.append(c.id > after_id)
        statement = select(c.id).where(*conditions).order_by(c.id).limit(limit)
        return [row.id for row in self.connection.execute(statement)]

    def get_dead_letters(self, entry_ids: Sequence[str]) -> dict[str, DeadLetterRecord]:
        rows = self.connection.execute(select(dead_letter_queue).where(dead_letter_queue.c.id.in_(list(entry_ids))))
        return {row.id: dead_letter_from_row(row) for row in rows}

    def resolve_dead_letter(
        self,
        entry: DeadLetterRecord,
        *,
        status: RecoveryStatus,
        reason: str,
        resolved_by: str,
        recovery_attempts: int,
        now: datetime,
    ) -> DeadLetterRecord | None:
        """A PENDING entry leaves triage with `status`; None when another writer changed it first."""
        return self._update_dead_letter(
            entry,
            expected_status=RecoveryStatus.PENDING,
            recovery_status=status.value,
            recovery_attempts=recovery_attempts,
            resolution_reason=reason,
            resolved_by=resolved_by,
            resolved_at=now,
            updated_at=now,
        )

    def update_dead_letter_triage(
        self, entry: DeadLetterRecord, changes: TriageChanges, *, now: datetime
    ) -> DeadLetterRecord | None:
        """Set the triage fields `changes` names, whatever the entry's status; None when it is gone."""
        values = {name: value for name, value in dataclasses.asdict(changes).items() if value is not None}
        return self._update_dead_letter(entry, expected_status=None, **values, updated_at=now)

    def _update_dead_letter(
        self, entry: DeadLetterRecord, *, expected_status: RecoveryStatus | None, **values: Any
    ) -> DeadLetterRecord | None:
        """Compare-and-set on the entry's recovery status; None when another writer changed it."""
        conditions = [dead_letter_queue.c.id == entry.id]
        if expected_status is not None:
            conditions.append(dead_letter_queue.c.recovery_status == expected_status.value)
        row = self.connection.execute(
            update(dead_letter_queue).where(*conditions).values(**values).returning(*dead_letter_queue.c)
        ).first()
        return dead_letter_from_row(row) if row else None

    # Failure patterns

    def failure_patterns(
        self,
        *,
        queue_name: str | None,
        recovery_status: RecoveryStatus,
        now: datetime,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[FailurePatternRow]:
        """Groups by fingerprint, largest first, then by fingerprint."""
        c = dead_letter_queue.c
        count = func.count().label("count")
        conditions = [c.recovery_status == recovery_status.value]
        if queue_name:
            conditions.append(c.queue_name == queue_name)
        hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
        statement = (
            select(
                c.fingerprint,
                func.max(c.error_type).label("error_type"),
                count,
                func.min(c.dead_lettered_at).label("first_seen_at"),
                func.max(c.dead_lettered_at).label("last_seen_at"),
                func.sum(case((c.dead_lettered_at >= hour_ago, 1), else_=0)).label("last_hour_count"),
                func.sum(case((c.dead_lettered_at >= day_ago, 1), else_=0)).label("last_day_count"),
            )
            .where(*conditions)
            .group_by(c.fingerprint)
        )
        if after is not None:
            after_count, after_fingerprint = after
            statement = statement.having(
                or_(func.count() < after_count, and_(func.count() == after_count, c.fingerprint > after_fingerprint))
            )
        statement = statement.order_by(func.count().desc(), c.fingerprint).limit(limit)
        return [
            FailurePatternRow(
                fingerprint=row.fingerprint,
                error_type=row.error_type or "",
                count=int(row.count),
                first_seen_at=row.first_seen_at,
                last_seen_at=row.last_seen_at,
                last_hour_count=int(row.last_hour_count or 0),
                last_day_count=int(row.last_day_count or 0),
            )
            for row in self.connection.execute(statement)
        ]

    def count_failure_patterns(self, *, queue_name: str | None, recovery_status: RecoveryStatus) -> int:
        c = dead_letter_queue.c
        conditions = [c.recovery_status == recovery_status.value]
        if queue_name:
            conditions.append(c.queue_name == queue_name)
        groups = select(c.fingerprint).where(*conditions).group_by(c.fingerprint).subquery()
        return int(self.connection.execute(select(func.count()).select_from(groups)).scalar_one())

    def pattern_queues(
        self, fingerprints: Sequence[str], *, queue_name: str | None, recovery_status: RecoveryStatus
    ) -> dict[str, list[str]]:
        c = dead_letter_queue.c
        conditions = [c.fingerprint.in_(list(fingerprints)), c.recovery_status == recovery_status.value]
        if queue_name:
            conditions.append(c.queue_name == queue_name)
        statement = (
            select(c.fingerprint, c.queue_name).where(*conditions).distinct().order_by(c.fingerprint, c.queue_name)
        )
        found: dict[str, list[str]] = {}
        for row in self.connection.execute(statement):
            found.setdefault(row.fingerprint, []).append(row.queue_name)
        return found

    def pattern_sample(
        self, fingerprint: str, *, queue_name: str | None, recovery_status: RecoveryStatus
    ) -> DeadLetterRecord | None:
        query = DeadLetterFilter(queue_name=queue_name, recovery_status=recovery_status, fingerprint=fingerprint)
        c = dead_letter_queue.c
        row = self.connection.execute(
            select(dead_letter_queue)
            .where(*dead_letter_conditions(query))
            .order_by(c.dead_lettered_at.desc(), c.id)
            .limit(1)
        ).first()
        return dead_letter_from_row(row) if row else None

    # Jobs

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

    def delete_dead_letters_for_jobs(self, job_ids: Sequence[str], *, recovery_status: RecoveryStatus) -> int:
        result = self.connection.execute(
            delete(dead_letter_queue).where(
                dead_letter_queue.c.job_id.in_(list(job_ids)),
                dead_letter_queue.c.recovery_status == recovery_status.value,
            )
        )
        return result.rowcount

    # Retry log

    def list_retry_log(
        self,
        *,
        job_id: str | None,
        queue_name: str | None,
        decision: Decision | None,
        created_after: datetime | None,
        created_before: datetime | None,
        before_id: int | None,
        limit: int,
    ) -> list[RetryLogRecord]:
        c = queue_retry_log.c
        conditions = []
        if job_id:
            conditions.append(c.job_id == job_id)
        if queue_name:
            conditions.append(c.queue_name == queue_name)
        if decision:
            conditions.append(c.decision == decision.value)
        if created_after:
            conditions.append(c.created_at >= created_after)
        if created_before:
            conditions.append(c.created_at < created_before)
        if before_id is not None:
            conditions.append(c.id < before_id)
        statement = select(queue_retry_log).where(*conditions).order_by(c.id.desc()).limit(limit)
        return [retry_log_from_row(row) for row in self.connection.execute(statement)]

    # Audit

    def insert_audit_event(
        self, *, actor: str, action: str, target: str, parameters: dict[str, Any], now: datetime
    ) -> int:
        return self.connection.execute(
            insert(audit_events)
            .values(actor=actor, action=action, target=target, parameters=parameters, created_at=now)
            .returning(audit_events.c.id)
        ).scalar_one()

    def list_audit_events(
        self,
        *,
        actor: str | None,
        action: str | None,
        target: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        before_id: int | None,
        limit: int,
    ) -> list[AuditEventRecord]:
        c = audit_events.c
        conditions = []
        if actor:
            conditions.append(c.actor == actor)
        if action:
            conditions.append(c.action == action)
        if target:
            conditions.append(c.target == target)
        if created_after:
            conditions.append(c.created_at >= created_after)
        if created_before:
            conditions.append(c.created_at < created_before)
        if before_id is not None:
            conditions.append(c.id < before_id)
        statement = select(audit_events).where(*conditions).order_by(c.id.desc()).limit(limit)
        return [audit_from_row(row) for row in self.connection.execute(statement)]
