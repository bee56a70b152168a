"""Jobs waiting for a retry their current policy no longer allows go to the DLQ."""

from __future__ import annotations

from queue_service.core import states
from queue_service.core.states import Transition
from queue_service.core.sweep.task import (
    Checkpoint,
    JobBatchTask,
    RecoveryCounts,
    no_checkpoint,
)
from queue_service.domain import READY_STATES


class DeadLetterExhausted(JobBatchTask[int]):
    name = "exhausted_jobs"

    def run_once(self, checkpoint: Checkpoint = no_checkpoint) -> int:
        """Returns how many jobs went to the DLQ.

        Walks the retry-pending jobs once in id order. Each page is read without locks; only the
        exhausted jobs in it are locked (skipping any a worker is leasing right now) and moved."""
        jobs, batch_size = self.jobs, self.config.batch_size
        with jobs.database.transaction() as repo:
            fewest_retries = jobs.fewest_retries_allowed(repo)
        waiting = frozenset(READY_STATES) & states.sources(Transition.MOVE_TO_DEAD_LETTER)
        total = 0
        after_id = 0
        while True:
            with jobs.database.transaction() as repo:
                page = repo.retry_pending_jobs(after_id=after_id, limit=batch_size, min_runs_in_budget=fewest_retries)
                exhausted = jobs.exhausted_jobs(repo, page)
                now = jobs.clock.now()
                locked = repo.lock_jobs([job.id for job in exhausted], states=waiting)
                total += len(jobs.dead_letter_exhausted(repo, locked, now=now))
            checkpoint()
            if len(page) < batch_size:
                break
            after_id = page[-1].id
        return total

    def add_counts(self, result: int, counts: RecoveryCounts) -> None:
        counts.exhausted_jobs += result
