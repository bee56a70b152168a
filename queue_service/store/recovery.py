"""Statements over queue_leases (leader election, sweep lock) and queue_recovery_runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select, update

from queue_service.domain import LeaseRecord, RecoveryRunRecord, RecoveryRunTotals, RunStatus
from queue_service.store.schema import queue_leases, queue_recovery_runs
from queue_service.store.statements import TableStatements


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


class RecoveryTable(TableStatements):
    """The lease and recovery-run statements of one transaction."""

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
