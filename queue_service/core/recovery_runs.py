"""The record of recovery sweeps in queue_recovery_runs: start, finish, totals and pages of recent runs."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from queue_service.clock import Clock
from queue_service.core.errors import InvalidArgument
from queue_service.store.database import Database
from queue_service.store.records import RecoveryRunRecord, RecoveryRunTotals, RunStatus

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
ABANDONED_ERROR = "abandoned: the node running it stopped before the run finished"
_TOKEN_PREFIX = "before:"


@dataclass(frozen=True)
class RecoveryRunPage:
    runs: list[RecoveryRunRecord]
    next_page_token: str


def _encode_token(before_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_TOKEN_PREFIX}{before_id}".encode()).decode()


def _decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith(_TOKEN_PREFIX):
            raise ValueError(text)
        return int(text[len(_TOKEN_PREFIX) :])
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidArgument("page_token is not a token this service returned", field="page_token") from None


class RecoveryRuns:
    def __init__(self, database: Database, clock: Clock, node_id: str) -> None:
        self.database = database
        self.clock = clock
        self.node_id = node_id

    def start(self, trigger: str) -> RecoveryRunRecord:
        """Record a RUNNING run. Call only while holding the sweep lock: any other RUNNING run is then
        one whose node stopped mid-sweep, and is closed as failed."""
        now = self.clock.now()
        with self.database.transaction() as repo:
            run = repo.insert_recovery_run(started_at=now, trigger=trigger, node_id=self.node_id)
            repo.fail_running_recovery_runs(except_id=run.id, finished_at=now, error=ABANDONED_ERROR)
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
        with self.database.transaction() as repo:
            return repo.recovery_run_totals()

    def last_finished(self) -> RecoveryRunRecord | None:
        with self.database.transaction() as repo:
            return repo.last_finished_recovery_run()

    def page(self, page_size: int = 0, page_token: str = "") -> RecoveryRunPage:
        """Newest first. The token holds the last id seen, so new runs never shift a page."""
        if page_size < 0:
            raise InvalidArgument("page_size must not be negative", field="page_size")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before_id = _decode_token(page_token) if page_token else None
        with self.database.transaction() as repo:
            runs = repo.list_recovery_runs(before_id=before_id, limit=size + 1)
        next_token = _encode_token(runs[size - 1].id) if len(runs) > size else ""
        return RecoveryRunPage(runs[:size], next_token)
