"""Statements over queue_breakers and queue_breaker_outcomes: each queue's circuit breaker and the
counted runs of its sliding window, and the two writes the breaker makes to the queue's jobs."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from queue_service.domain import READY_STATES, BreakerPolicy, BreakerRecord, BreakerState, JobRecord, JobState
from queue_service.store.schema import queue_breaker_outcomes, queue_breakers, queue_jobs

# Rows per queue and second that concurrent reports spread over.
OUTCOME_SHARDS = 4


def _ms(value: timedelta) -> int:
    return round(value.total_seconds() * 1000)


def _policy_columns(policy: BreakerPolicy) -> dict:
    return {
        "enabled": policy.enabled,
        "failure_ratio": float(policy.failure_ratio),
        "min_runs": policy.min_runs,
        "window_ms": _ms(policy.window),
        "cooldown_ms": _ms(policy.cooldown),
        "ramp_ms": _ms(policy.ramp),
    }


def breaker_from_row(row) -> BreakerRecord:
    return breaker_from_mapping(row._mapping)


def breaker_from_mapping(m) -> BreakerRecord:
    return BreakerRecord(
        queue_name=m["queue_name"],
        policy=BreakerPolicy(
            enabled=bool(m["enabled"]),
            failure_ratio=m["failure_ratio"],
            min_runs=m["min_runs"],
            window=timedelta(milliseconds=m["window_ms"]),
            cooldown=timedelta(milliseconds=m["cooldown_ms"]),
            ramp=timedelta(milliseconds=m["ramp_ms"]),
        ),
        state=BreakerState(m["state"]),
        version=m["version"],
        changed_at=m["changed_at"],
        closed_at=m["closed_at"],
        opened_at=m["opened_at"],
        probe_job_id=m["probe_job_id"],
        probe_attempt=m["probe_attempt"],
        updated_at=m["updated_at"],
    )


def _second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


class BreakerStore:
    """Over the connection of one transaction; the caller owns commit."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name

    def _insert(self, table):
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # The breaker row

    def get(self, queue_name: str) -> BreakerRecord | None:
        row = self.connection.execute(select(queue_breakers).where(queue_breakers.c.queue_name == queue_name)).first()
        return breaker_from_row(row) if row is not None else None

    def get_enabled(self, queue_names: Iterable[str]) -> dict[str, BreakerRecord]:
        """The breakers that are on among `queue_names`, by queue; one indexed read."""
        return self.get_many(queue_names, enabled_only=True)

    def get_many(self, queue_names: Iterable[str], *, enabled_only: bool = False) -> dict[str, BreakerRecord]:
        names = list(dict.fromkeys(queue_names))
        if not names:
            return {}
        statement = select(queue_breakers).where(queue_breakers.c.queue_name.in_(names))
        if enabled_only:
            statement = statement.where(queue_breakers.c.enabled)
        return {row.queue_name: breaker_from_row(row) for row in self.connection.execute(statement)}

    def all(self) -> dict[str, BreakerRecord]:
        return {row.queue_name: breaker_from_row(row) for row in self.connection.execute(select(queue_breakers))}

    def put_policy(self, queue_name: str, policy: BreakerPolicy, *, now: datetime) -> BreakerRecord:
        """Creates the row (closed) or changes its policy; a policy change leaves the state alone."""
        values = {**_policy_columns(policy), "updated_at": now}
        self.connection.execute(
            self._insert(queue_breakers)
            .values(queue_name=queue_name, state=BreakerState.CLOSED.value, version=1, changed_at=now, **values)
            .on_conflict_do_update(
                index_elements=["queue_name"], set_={**values, "version": queue_breakers.c.version + 1}
            )
        )
        return self.get(queue_name)

    def change_state(
        self,
        record: BreakerRecord,
        to_state: BreakerState,
        *,
        now: datetime,
        probe_job_id: str = "",
        probe_attempt: int = 0,
    ) -> BreakerRecord | None:
        """Compare-and-set on the state and version `record` was read with; None when another
        transaction changed the breaker first."""
        values = {
            "state": to_state.value,
            "version": record.version + 1,
            "changed_at": now,
            "updated_at": now,
            "probe_job_id": probe_job_id,
            "probe_attempt": probe_attempt,
        }
        if to_state == BreakerState.OPEN:
            values["opened_at"] = now
        if to_state == BreakerState.CLOSED:
            values["closed_at"] = now
        result = self.connection.execute(
            update(queue_breakers)
            .where(
                queue_breakers.c.queue_name == record.queue_name,
                queue_breakers.c.state == record.state.value,
                queue_breakers.c.version == record.version,
            )
            .values(**values)
        )
        if result.rowcount != 1:
            return None
        return replace(
            record,
            state=to_state,
            version=record.version + 1,
            changed_at=now,
            updated_at=now,
            probe_job_id=probe_job_id,
            probe_attempt=probe_attempt,
            opened_at=now if to_state == BreakerState.OPEN else record.opened_at,
            closed_at=now if to_state == BreakerState.CLOSED else record.closed_at,
        )

    # The window

    def add_outcomes(self, queue_name: str, *, runs: int, failures: int, now: datetime) -> None:
        if runs <= 0:
            return
        statement = self._insert(queue_breaker_outcomes).values(
            queue_name=queue_name,
            second_start=_second(now),
            shard=random.randrange(OUTCOME_SHARDS),  # noqa: S311 - spreads writers, not a secret
            runs=runs,
            failures=failures,
        )
        self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=["queue_name", "second_start", "shard"],
                set_={
                    "runs": queue_breaker_outcomes.c.runs + statement.excluded.runs,
                    "failures": queue_breaker_outcomes.c.failures + statement.excluded.failures,
                },
            )
        )

    def window_counts(self, queue_name: str, *, since: datetime, now: datetime) -> tuple[int, int]:
        """Runs and failures counted from the second holding `since` to the one holding `now`."""
        table = queue_breaker_outcomes
        row = self.connection.execute(
            select(func.coalesce(func.sum(table.c.runs), 0), func.coalesce(func.sum(table.c.failures), 0)).where(
                table.c.queue_name == queue_name,
                table.c.second_start >= _second(since),
                table.c.second_start <= _second(now),
            )
        ).one()
        return int(row[0]), int(row[1])

    def prune_outcomes(self, queue_name: str, *, before: datetime) -> int:
        table = queue_breaker_outcomes
        result = self.connection.execute(
            delete(table).where(table.c.queue_name == queue_name, table.c.second_start < _second(before))
        )
        return result.rowcount

    # The queue's jobs

    def refund_runs(self, jobs: Sequence[JobRecord]) -> int:
        """The failed runs of `jobs`, just scheduled for a retry, use up no attempt: each job's
        retry budget starts one run later. The caller holds the jobs' row locks."""
        if not jobs:
            return 0
        result = self.connection.execute(
            update(queue_jobs)
            .where(queue_jobs.c.id.in_([job.id for job in jobs]), queue_jobs.c.state == JobState.FAILED.value)
            .values(budget_start=queue_jobs.c.budget_start + 1)
        )
        return result.rowcount

    def held_jobs(self, queue_name: str, *, due_before: datetime) -> list[tuple[int, datetime]]:
        """(id, run_at) of the queue's ready jobs due before `due_before`, in lease order."""
        rows = self.connection.execute(
            select(queue_jobs.c.id, queue_jobs.c.run_at)
            .where(
                queue_jobs.c.queue_name == queue_name,
                queue_jobs.c.state.in_([state.value for state in READY_STATES]),
                queue_jobs.c.run_at < due_before,
            )
            .order_by(queue_jobs.c.priority.desc(), queue_jobs.c.run_at, queue_jobs.c.id)
        )
        return [(row.id, row.run_at) for row in rows]

    def reschedule(self, run_ats: Sequence[tuple[int, datetime]]) -> int:
        """Move each (id, run_at) job still ready to its new run time."""
        if not run_ats:
            return 0
        statement = (
            update(queue_jobs)
            .where(
                queue_jobs.c.id == bindparam("job_row_id"),
                # Not IN: an executemany takes no expanding list.
                or_(*(queue_jobs.c.state == state.value for state in READY_STATES)),
            )
            .values(run_at=bindparam("new_run_at", type_=queue_jobs.c.run_at.type))
        )
        result = self.connection.execute(
            statement, [{"job_row_id": row_id, "new_run_at": run_at} for row_id, run_at in run_ats]
        )
        return result.rowcount


def breakers_of(repo) -> BreakerStore:
    """The breaker statements inside the transaction of `repo` (a store.repository.Repository)."""
    return BreakerStore(repo.connection)
