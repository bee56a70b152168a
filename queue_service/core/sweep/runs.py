"""The record of recovery sweeps in queue_recovery_runs: start, finish, totals and pages of recent runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from queue_service.clock import Clock
from queue_service.core import audit, paging
from queue_service.core.leadership import RECOVERY_LEADER, current_holder
from queue_service.domain import LeaseRecord, RecoveryRunRecord, RecoveryRunTotals, RunStatus
from queue_service.store.database import Database

ABANDONED_ERROR = "abandoned: the node running it stopped before the run finished"
# Page tokens of the run list carry no filters.
_NO_FILTERS: dict = {}


@dataclass(frozen=True)
class RecoveryRunStats:
    """What GetRecoveryStatus reports about past runs, read in one transaction."""

    totals: RecoveryRunTotals
    # The most recent run, finished or not, and the most recent finished one.
    latest: RecoveryRunRecord | None
    last_finished: RecoveryRunRecord | None
    recent: paging.Page[RecoveryRunRecord]
    # The replica leading the scheduled sweeps now, with its next sweep; None while nobody leads.
    leader: LeaseRecord | None = None


def recovery_run_target(run_id: int) -> str:
    return f"recovery_run/{run_id}"


class RecoveryRuns:
    def __init__(
        self, database: Database, clock: Clock, node_id: str, page_tokens: paging.PageTokens | None = None
    ) -> None:
        self.database = database
        self.clock = clock
        self.node_id = node_id
        self.page_tokens = page_tokens or paging.PageTokens.ephemeral()

    def start(self, trigger: str, *, actor: str | None = None) -> RecoveryRunRecord:
        """Record a RUNNING run, and the admin action that asked for it when `actor` is given.

        Call only while holding the sweep lock: any other RUNNING run is then one whose node
        stopped mid-sweep, and is closed as failed."""
        now = self.clock.now()
        with self.database.transaction() as repo:
            run = repo.insert_recovery_run(started_at=now, trigger=trigger, node_id=self.node_id)
            repo.fail_running_recovery_runs(except_id=run.id, finished_at=now, error=ABANDONED_ERROR)
            if actor is not None:
                audit.record(
                    repo,
                    actor=actor,
                    action="TriggerRecovery",
                    target=recovery_run_target(run.id),
                    parameters={"node_id": self.node_id},
                    now=now,
                )
        return run

    def finish(self, run: RecoveryRunRecord, *, counts: dict[str, int], error: str | None) -> RecoveryRunRecord:
        status = RunStatus.FAILED if error else RunStatus.SUCCEEDED
        with self.database.transaction() as repo:
            finished = repo.finish_recovery_run(
                run.id, finished_at=self.clock.now(), status=status, counts=counts, error=error
            )
            # None: another node took the sweep lock over and closed this run as abandoned; that stays.
            return finished or repo.get_recovery_run(run.id)

    def totals(self) -> RecoveryRunTotals:
        with self.database.snapshot() as repo:
            return repo.recovery_run_totals()

    def last_succeeded_at(self) -> datetime | None:
        """When the last successful sweep of any replica finished; None before the first."""
        with self.database.snapshot() as repo:
            return repo.last_succeeded_recovery_run_finished_at()

    def last_finished(self) -> RecoveryRunRecord | None:
        with self.database.snapshot() as repo:
            return repo.last_finished_recovery_run()

    def page(self, page_size: int = 0, page_token: str = "") -> paging.Page[RecoveryRunRecord]:
        """Newest first. The token holds the last id seen, so new runs never shift a page."""
        return self.stats(page_size, page_token).recent

    def stats(self, page_size: int = 0, page_token: str = "") -> RecoveryRunStats:
        limit = paging.page_size(page_size)
        key = self.page_tokens.decode(page_token, _NO_FILTERS, shape=(int,))
        with self.database.snapshot() as repo:
            runs = repo.list_recovery_runs(before_id=key[0] if key else None, limit=limit + 1)
            newest = repo.list_recovery_runs(before_id=None, limit=1)
            return RecoveryRunStats(
                totals=repo.recovery_run_totals(),
                latest=newest[0] if newest else None,
                last_finished=repo.last_finished_recovery_run(),
                recent=paging.Page(
                    runs[:limit], self.page_tokens.next(runs, limit, lambda run: (run.id,), _NO_FILTERS)
                ),
                leader=current_holder(repo.get_lease(RECOVERY_LEADER), self.clock.now()),
            )
