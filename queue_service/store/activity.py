"""Statistics: the trigger-kept counters and activity buckets, and counts computed over queue_jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import BigInteger, cast, func, select

from queue_service.domain import ACTIVITY_BUCKET_SECONDS, READY_STATES
from queue_service.store.schema import queue_activity, queue_counters, queue_jobs
from queue_service.store.statements import TableStatements


class ActivityTable(TableStatements):
    """The counter and statistics statements of one transaction."""

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
