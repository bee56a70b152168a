"""The shape every sweep task has: a config, `run_once` in batches returning its counts, and how
those counts add up in the sweep's run record."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Generic, Self, TypeVar

from queue_service.alerts.webhook import PostJson
from queue_service.store.database import Database
from queue_service.store.repository import Repository

if TYPE_CHECKING:
    from queue_service.core.jobs import JobManager
    from queue_service.core.sweep.settings import RecoverySettings

# Runs after every batch: the sweep uses it to keep its lock and to stop if it lost it.
Checkpoint = Callable[[], None]
# POST a JSON body to a URL within a time-out; raises on failure.

Counts = TypeVar("Counts")


def no_checkpoint() -> None:
    return None


@dataclass
class RecoveryCounts:
    """What one sweep did; stored as the run's `counts`, named as in the RecoveryTaskCounts message."""

    due_retries: int = 0
    # Stalled jobs counted as failed runs; of those, the ones that went to the DLQ.
    stalled_jobs: int = 0
    stalled_jobs_dead_lettered: int = 0
    # Stalled jobs whose run a cancellation had asked to stop: CANCELLED, not counted as failed runs.
    stalled_jobs_cancelled: int = 0
    exhausted_jobs: int = 0
    deleted_completed_jobs: int = 0
    deleted_retry_log_rows: int = 0
    deleted_activity_rows: int = 0
    dead_letter_alerts: int = 0
    dead_letter_alerts_cleared: int = 0
    alert_webhook_failures: int = 0
    alert_emails_sent: int = 0
    alert_email_failures: int = 0
    alert_emails_given_up: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class SweepContext:
    """What the registry builds each task from."""

    jobs: JobManager
    settings: RecoverySettings
    node_id: str
    post: PostJson


@dataclass(frozen=True)
class BatchConfig:
    batch_size: int = 1000


class SweepTask(ABC, Generic[Counts]):
    """One job of the sweep. `name` keys the task in a run's error; `run_once` works in batches of one
    short transaction each, calls `checkpoint` after every batch, and returns what it did."""

    name: str

    @abstractmethod
    def run_once(self, checkpoint: Checkpoint = no_checkpoint) -> Counts: ...

    def add_counts(self, result: Counts, counts: RecoveryCounts) -> None:
        """Adds what `run_once` returned to the sweep's counts; a task that counts nothing adds nothing."""


class JobBatchTask(SweepTask[Counts]):
    """A task over jobs, in batches of `config.batch_size` rows."""

    def __init__(self, jobs: JobManager, config: BatchConfig = BatchConfig()) -> None:
        self.jobs = jobs
        self.config = config

    @classmethod
    def for_sweep(cls, context: SweepContext) -> Self:
        return cls(context.jobs, BatchConfig(context.jobs.database.sweep_batch_size(context.settings.batch_size)))


def repeat_in_batches(
    database: Database, run_batch: Callable[[Repository], int], *, batch_size: int, checkpoint: Checkpoint
) -> int:
    """Run `run_batch` (at most batch_size rows) one transaction at a time until a batch falls short."""
    total = 0
    while True:
        with database.transaction() as repo:
            done = run_batch(repo)
        total += done
        checkpoint()
        if done < batch_size:
            return total
