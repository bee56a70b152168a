"""FAILED jobs whose retry time has passed become WAITING."""

from __future__ import annotations

from queue_service.core import states
from queue_service.core.states import Transition
from queue_service.core.sweep.task import (
    Checkpoint,
    JobBatchTask,
    RecoveryCounts,
    no_checkpoint,
    repeat_in_batches,
)


class PromoteDueRetries(JobBatchTask[int]):
    name = "due_retries"

    def run_once(self, checkpoint: Checkpoint = no_checkpoint) -> int:
        """Returns how many jobs became due."""
        jobs, batch_size = self.jobs, self.config.batch_size
        total = repeat_in_batches(
            jobs.database,
            lambda repo: repo.make_jobs_due(
                now=jobs.clock.now(),
                limit=batch_size,
                from_states=states.sources(Transition.MAKE_DUE),
                to_state=states.target(Transition.MAKE_DUE),
            ),
            batch_size=batch_size,
            checkpoint=checkpoint,
        )
        if total:
            jobs.notifier.notify()
        return total

    def add_counts(self, result: int, counts: RecoveryCounts) -> None:
        counts.due_retries += result
