"""Retention: completed jobs, retry-log rows and activity counts older than their keep time are deleted.

Other job states are never touched; DLQ entries keep their own error history."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Self

from queue_service.clock import Clock
from queue_service.core.queues import MAX_ACTIVITY_PERIOD
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.core.sweep.task import (
    Checkpoint,
    RecoveryCounts,
    SweepContext,
    SweepTask,
    no_checkpoint,
    repeat_in_batches,
)
from queue_service.domain import ACTIVITY_BUCKET_SECONDS
from queue_service.store.database import Database
from queue_service.store.repository import Repository


@dataclass(frozen=True)
class RetentionConfig:
    # Zero or less keeps rows forever.
    older_than: timedelta
    batch_size: int = 1000


class DeleteOldRows(SweepTask[int]):
    """Deletes rows older than `config.older_than`, a batch a transaction; returns how many."""

    def __init__(self, database: Database, clock: Clock, config: RetentionConfig) -> None:
        self.database = database
        self.clock = clock
        self.config = config

    @classmethod
    def for_sweep(cls, context: SweepContext) -> Self:
        database = context.jobs.database
        config = RetentionConfig(cls.keep_for(context.settings), database.sweep_batch_size(context.settings.batch_size))
        return cls(database, context.jobs.clock, config)

    @staticmethod
    @abstractmethod
    def keep_for(settings: RecoverySettings) -> timedelta: ...

    @abstractmethod
    def delete_batch(self, repo: Repository, *, cutoff: datetime, limit: int) -> int: ...

    def cutoff(self) -> datetime:
        return self.clock.now() - self.config.older_than

    def run_once(self, checkpoint: Checkpoint = no_checkpoint) -> int:
        if self.config.older_than <= timedelta(0):
            return 0
        cutoff, limit = self.cutoff(), self.config.batch_size
        return repeat_in_batches(
            self.database,
            lambda repo: self.delete_batch(repo, cutoff=cutoff, limit=limit),
            batch_size=limit,
            checkpoint=checkpoint,
        )


class CleanCompletedJobs(DeleteOldRows):
    """COMPLETED jobs that completed more than `older_than` ago."""

    name = "completed_retention"

    @staticmethod
    def keep_for(settings: RecoverySettings) -> timedelta:
        return settings.completed_retention

    def delete_batch(self, repo: Repository, *, cutoff: datetime, limit: int) -> int:
        return repo.delete_completed_jobs(completed_before=cutoff, limit=limit)

    def add_counts(self, result: int, counts: RecoveryCounts) -> None:
        counts.deleted_completed_jobs += result


class CleanRetryLog(DeleteOldRows):
    """Retry-log rows written more than `older_than` ago."""

    name = "retry_log_retention"

    @staticmethod
    def keep_for(settings: RecoverySettings) -> timedelta:
        return settings.retry_log_retention

    def delete_batch(self, repo: Repository, *, cutoff: datetime, limit: int) -> int:
        return repo.delete_retry_log(created_before=cutoff, limit=limit)

    def add_counts(self, result: int, counts: RecoveryCounts) -> None:
        counts.deleted_retry_log_rows += result


class CleanActivity(DeleteOldRows):
    """Activity-count rows whose whole bucket ended more than `older_than` ago."""

    name = "activity_retention"

    @staticmethod
    def keep_for(settings: RecoverySettings) -> timedelta:
        # GetQueueActivity never reads further back than its longest period.
        return MAX_ACTIVITY_PERIOD

    def cutoff(self) -> datetime:
        # A bucket that started within the widest bucket width of the cutoff may still cover it.
        return super().cutoff() - timedelta(seconds=max(ACTIVITY_BUCKET_SECONDS))

    def delete_batch(self, repo: Repository, *, cutoff: datetime, limit: int) -> int:
        return repo.delete_activity(bucket_before=cutoff, limit=limit)

    def add_counts(self, result: int, counts: RecoveryCounts) -> None:
        counts.deleted_activity_rows += result
