"""Statements over queue_retry_log: the decision taken on each failed run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from queue_service.domain import DeathReason, Decision, ErrorInfo, JobRecord, RetryLogRecord
from queue_service.store.schema import queue_retry_log
from queue_service.store.statements import TableStatements, newest_first_page


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


def retry_log_row(job: JobRecord, error: ErrorInfo, decision: Decision, *, now: datetime) -> dict[str, Any]:
    """The log row of the `decision` taken on the job's current run."""
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


def log_decisions(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert retry-log rows, oldest decision of each job first, with one prepared statement."""
    rows.sort(key=lambda row: (row["job_id"], row["attempt_number"]))
    connection.execute(insert(queue_retry_log), rows)


class RetryLogTable(TableStatements):
    """The retry-log statements of one transaction."""

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
        statement = newest_first_page(
            queue_retry_log,
            conditions,
            created_after=created_after,
            created_before=created_before,
            before_id=before_id,
            limit=limit,
        )
        return [retry_log_from_row(row) for row in self.connection.execute(statement)]

    def delete_retry_log(self, *, created_before: datetime, limit: int) -> int:
        old = (
            select(queue_retry_log.c.id)
            .where(queue_retry_log.c.created_at < created_before)
            .order_by(queue_retry_log.c.created_at)
            .limit(limit)
            .cte("old")
        )
        return self._delete_picked(queue_retry_log, old)
