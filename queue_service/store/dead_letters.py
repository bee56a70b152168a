"""Statements over dead_letter_queue (triage, listings, failure patterns) and queue_dlq_alerts."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, or_, select, union_all, update

from queue_service.domain import (
    DeadLetterFilter,
    DeadLetterRecord,
    DeadLetterSummary,
    DeathReason,
    DlqAlertRecord,
    FailurePatternRow,
    RecoveryStatus,
    ScheduledDeath,
    TriageChanges,
)
from queue_service.store.direct import DirectStatement
from queue_service.store.schema import dead_letter_queue, queue_counters, queue_dlq_alerts
from queue_service.store.statements import TableStatements, error_history_from_json

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


def _entry_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A dead-letter row's columns by name as its domain fields: the two enums made enums."""
    fields["death_reason"] = DeathReason(fields["death_reason"])
    fields["recovery_status"] = RecoveryStatus(fields["recovery_status"])
    return fields


def dead_letter_from_row(row) -> DeadLetterRecord:
    return dead_letter_from_mapping(dict(row._mapping))


def dead_letter_from_mapping(values: dict[str, Any]) -> DeadLetterRecord:
    """The entry from its columns' values by name."""
    fields = _entry_fields(values)
    fields["error_history"] = error_history_from_json(fields["error_history"])
    return DeadLetterRecord(**fields)


# Every column but the two that can be large (a page never reads them).
SUMMARY_COLUMNS = tuple(column for column in dead_letter_queue.c if column.name not in ("job_data", "error_history"))
_SUMMARY_NAMES = tuple(column.name for column in SUMMARY_COLUMNS)


# Where each DeadLetterSummary field sits in a row of SUMMARY_COLUMNS, in the order of its fields.
_SUMMARY_FIELDS = tuple(field.name for field in dataclasses.fields(DeadLetterSummary))
_SUMMARY_POSITIONS = tuple(_SUMMARY_NAMES.index(name) for name in _SUMMARY_FIELDS)
_DEATH_REASON_AT, _RECOVERY_STATUS_AT = _SUMMARY_FIELDS.index("death_reason"), _SUMMARY_FIELDS.index("recovery_status")
_DEATH_REASONS = {reason.value: reason for reason in DeathReason}
_RECOVERY_STATUSES = {status.value: status for status in RecoveryStatus}


def dead_letter_summaries(rows: Sequence[Sequence[Any]]) -> list[DeadLetterSummary]:
    """Summaries from rows of SUMMARY_COLUMNS, read by position: a page converts every row, so
    no row becomes a dict first."""
    summaries = []
    for row in rows:
        values = [row[position] for position in _SUMMARY_POSITIONS]
        values[_DEATH_REASON_AT] = _DEATH_REASONS[values[_DEATH_REASON_AT]]
        values[_RECOVERY_STATUS_AT] = _RECOVERY_STATUSES[values[_RECOVERY_STATUS_AT]]
        summaries.append(DeadLetterSummary(*values))
    return summaries


def dead_letter_values(death: ScheduledDeath, now: datetime) -> dict[str, Any]:
    """The new entry of a job `death` sends to the dead-letter queue, as a row."""
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


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _dead_letter_filter_values(query: DeadLetterFilter) -> dict[str, Any]:
    """The value each set field of `query` compares with, by field name."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(DeadLetterFilter):
        value = getattr(query, field.name)
        if not value:
            continue
        if field.name == "failure_reason_contains":
            value = _like_pattern(value)
        elif isinstance(value, (RecoveryStatus, DeathReason)):
            value = value.value
        values[field.name] = value
    return values


def _dead_letter_condition(name: str, value: Any):
    c = dead_letter_queue.c
    if name == "failure_reason_contains":
        return func.lower(c.failure_reason).like(value, escape="\\")
    if name == "dead_lettered_after":
        return c.dead_lettered_at >= value
    if name == "dead_lettered_before":
        return c.dead_lettered_at < value
    return getattr(c, name) == value


def dead_letter_conditions(query: DeadLetterFilter) -> list:
    return [_dead_letter_condition(name, value) for name, value in _dead_letter_filter_values(query).items()]


@functools.lru_cache(maxsize=256)
def _dead_letter_page_statement(
    fields: tuple[str, ...], paged: bool, counted: tuple[bool, int] | None = None
) -> DirectStatement:
    """One triage page over the filter fields `fields`, with every value a bound parameter; with
    `counted` (by queue, number of counters) set, each row also carries the counters' total of
    matching entries (see `_counted_dead_letters_statement`), so that a page and its total are one
    round trip.

    Built once per shape: constructing the paged union (four subqueries of every column) cost
    more per call than PostgreSQL takes to run it; and run on the driver's cursor (direct.py), as
    SQLAlchemy's execution machinery cost as much again.
    """
    c = dead_letter_queue.c
    conditions = [_dead_letter_condition(name, bindparam(f"filter_{name}")) for name in fields]
    order = (c.priority.desc(), c.dead_lettered_at.desc(), c.id)
    limit = bindparam("page_limit")
    total = [] if counted is None else [_counted_dead_letters_statement(*counted).scalar_subquery()]
    if not paged:
        return DirectStatement(select(*SUMMARY_COLUMNS, *total).where(*conditions).order_by(*order).limit(limit))
    # The mixed sort directions rule out one row-value comparison, and the equivalent OR of
    # comparisons is not an index range: a deep page would scan every entry before it. Each
    # of these three disjoint ranges is one index range scan; the outer sort sees 3 x limit rows.
    priority, dead_lettered_at, entry_id = bindparam("after_priority"), bindparam("after_at"), bindparam("after_id")
    ranges = (
        [c.priority == priority, c.dead_lettered_at == dead_lettered_at, c.id > entry_id],
        [c.priority == priority, c.dead_lettered_at < dead_lettered_at],
        [c.priority < priority],
    )
    parts = [
        select(*SUMMARY_COLUMNS).where(*conditions, *bounds).order_by(*order).limit(limit).subquery()
        for bounds in ranges
    ]
    page = union_all(*(select(part) for part in parts)).subquery()
    return DirectStatement(
        select(page, *total).order_by(page.c.priority.desc(), page.c.dead_lettered_at.desc(), page.c.id).limit(limit)
    )


def _counter_parameters(query: DeadLetterFilter) -> tuple[tuple[bool, int], dict[str, Any]] | None:
    """The shape (by queue, number of counters) and parameters of `_counted_dead_letters_statement`
    that count `query`'s entries, or None when the counters cannot: they are kept per queue and
    status only."""
    if query != DeadLetterFilter(queue_name=query.queue_name, recovery_status=query.recovery_status):
        return None
    statuses = [query.recovery_status] if query.recovery_status else list(RecoveryStatus)
    params: dict[str, Any] = {
        f"counter_{index}": f"dead_letters.{status.value}" for index, status in enumerate(statuses)
    }
    if query.queue_name:
        params["queue_name"] = query.queue_name
    return (bool(query.queue_name), len(statuses)), params


@functools.lru_cache(maxsize=8)
def _counted_dead_letters_statement(by_queue: bool, counters: int):
    """The entries in the counters :counter_0 … of dead_letters.<status>, of one queue or all: built
    once, as every triage page runs it; a parameter per counter, not an expanding list, so that
    a page runs on the driver's cursor."""
    c = queue_counters.c
    names = [bindparam(f"counter_{index}") for index in range(counters)]
    statement = select(func.coalesce(func.sum(c.amount), 0)).where(c.counter.in_(names))
    return statement.where(c.queue_name == bindparam("queue_name")) if by_queue else statement


class DeadLettersTable(TableStatements):
    """The dead-letter statements of one transaction."""

    # Entries

    def get_dead_letter(self, entry_id: str, *, for_update: bool = False) -> DeadLetterRecord | None:
        statement = select(dead_letter_queue).where(dead_letter_queue.c.id == entry_id)
        if for_update:
            statement = statement.with_for_update()
        row = self.connection.execute(statement).first()
        return dead_letter_from_row(row) if row else None

    def get_dead_letter_for_job(self, job_id: str) -> DeadLetterRecord | None:
        row = self.connection.execute(select(dead_letter_queue).where(dead_letter_queue.c.job_id == job_id)).first()
        return dead_letter_from_row(row) if row else None

    def get_dead_letters(self, entry_ids: Sequence[str]) -> dict[str, DeadLetterRecord]:
        rows = self.connection.execute(select(dead_letter_queue).where(dead_letter_queue.c.id.in_(list(entry_ids))))
        return {row.id: dead_letter_from_row(row) for row in rows}

    def list_dead_letters(
        self, query: DeadLetterFilter, *, after: tuple[int, datetime, str] | None, limit: int
    ) -> list[DeadLetterSummary]:
        """Entries in triage order: priority descending, newest first, then id; summaries only."""
        return dead_letter_summaries(self._page_rows(query, after=after, limit=limit, counted=None))

    def dead_letter_page(
        self, query: DeadLetterFilter, *, after: tuple[int, datetime, str] | None, limit: int
    ) -> tuple[list[DeadLetterSummary], int]:
        """`list_dead_letters` and `count_dead_letters` of `query`. When the count comes from the
        counters, as the triage list's does, one statement reads both."""
        counted = _counter_parameters(query)
        if counted is None:
            return self.list_dead_letters(query, after=after, limit=limit), self.count_dead_letters(query)
        rows = self._page_rows(query, after=after, limit=limit, counted=counted)
        if not rows:  # no row to carry the total
            return [], self.count_dead_letters(query)
        return dead_letter_summaries([row[:-1] for row in rows]), int(rows[0][-1])

    def _page_rows(
        self,
        query: DeadLetterFilter,
        *,
        after: tuple[int, datetime, str] | None,
        limit: int,
        counted: tuple[tuple[bool, int], dict[str, Any]] | None,
    ) -> list[tuple[Any, ...]]:
        """The rows of one triage page; with `counted` (the counters' shape and parameters), each row
        ends with the total of matching entries."""
        values = _dead_letter_filter_values(query)
        shape, counters = (None, {}) if counted is None else counted
        statement = _dead_letter_page_statement(tuple(values), after is not None, shape)
        params = {f"filter_{name}": value for name, value in values.items()} | {"page_limit": limit} | counters
        if after is not None:
            params |= dict(zip(("after_priority", "after_at", "after_id"), after, strict=True))
        return statement.rows(self.connection, params)

    def count_dead_letters(self, query: DeadLetterFilter) -> int:
        """Entries matching `query`: from the counters when it filters on queue and status alone,
        which the triage list does on every page, else by counting the table."""
        counted = _counter_parameters(query)
        if counted is not None:
            shape, counters = counted
            return int(self.connection.execute(_counted_dead_letters_statement(*shape), counters).scalar_one())
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

    # Triage and cleaning

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

    def delete_dead_letters_for_jobs(self, job_ids: Sequence[str], *, recovery_status: RecoveryStatus) -> int:
        result = self.connection.execute(
            delete(dead_letter_queue).where(
                dead_letter_queue.c.job_id.in_(list(job_ids)),
                dead_letter_queue.c.recovery_status == recovery_status.value,
            )
        )
        return result.rowcount

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
    ) -> DeadLetterSummary | None:
        query = DeadLetterFilter(queue_name=queue_name, recovery_status=recovery_status, fingerprint=fingerprint)
        c = dead_letter_queue.c
        row = self.connection.execute(
            select(*SUMMARY_COLUMNS)
            .where(*dead_letter_conditions(query))
            .order_by(c.dead_lettered_at.desc(), c.id)
            .limit(1)
        ).first()
        return dead_letter_summaries([row])[0] if row else None

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
