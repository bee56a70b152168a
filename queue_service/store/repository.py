"""The transaction-bound entry point to the store: every table's statements over one connection."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from queue_service.store.activity import ActivityTable
from queue_service.store.audit import AuditTable
from queue_service.store.dead_letters import DeadLettersTable
from queue_service.store.jobs import JobsTable
from queue_service.store.queues import QueuesTable
from queue_service.store.recovery import RecoveryTable
from queue_service.store.retry_log import RetryLogTable


class Repository(JobsTable, DeadLettersTable, RetryLogTable, QueuesTable, AuditTable, RecoveryTable, ActivityTable):
    """Every table's statements over the connection of one transaction, and what to run once it
    commits; the caller owns commit."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed; never if it rolls back."""
        self._after_commit.append(callback)

    def run_after_commit(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()
