"""The end of a run that a cancellation asked to stop: whatever the run reports, or when its lease
runs out, its job becomes CANCELLED, never retried nor dead-lettered."""

from __future__ import annotations

from datetime import datetime, timedelta

from queue_service.core import states
from queue_service.core.failures import FailureOutcome, JobTransitions
from queue_service.core.retry import RetryDecision
from queue_service.core.states import Transition
from queue_service.domain import JobRecord, JobView
from queue_service.store.repository import Repository

# What TrackFailure answers about a run that a cancellation ended: no retry, no dead letter.
NO_RETRY = RetryDecision(
    should_retry=False, retry_delay=timedelta(0), next_retry_at=None, remaining_retries=0, death_reason=None
)


def asked_to_stop(job: JobRecord, attempt_number: int) -> bool:
    """Whether run `attempt_number` is the job's current run and a cancellation asked it to stop."""
    return (
        job.state in states.sources(Transition.END_CANCELLED_RUN)
        and job.cancel_requested_at is not None
        and job.attempt_number == attempt_number
    )


def ended_by_cancellation(job: JobRecord, attempt_number: int) -> bool:
    """Whether run `attempt_number` was the job's last run and a cancellation ended it; a repeated
    report of that run is accepted as the first one was."""
    return (
        job.state == states.target(Transition.END_CANCELLED_RUN)
        and job.cancel_requested_at is not None
        and job.attempt_number == attempt_number
    )


def end_cancelled_run(jobs: JobTransitions, repo: Repository, job: JobRecord, *, now: datetime) -> JobRecord:
    """The job's run, asked to stop, has ended: the job becomes CANCELLED, in the caller's transaction
    (which holds the job's row lock)."""
    states.check(Transition.END_CANCELLED_RUN, job.state, job_id=job.job_id)
    updated = repo.cancel_job(job, expected_states=states.sources(Transition.END_CANCELLED_RUN), now=now)
    return jobs.record_transition(repo, job, Transition.END_CANCELLED_RUN, updated)


def cancelled_outcome(job: JobRecord) -> FailureOutcome:
    """A failure report of a run a cancellation ended: the job stays CANCELLED."""
    return FailureOutcome.of(NO_RETRY, JobView(job, 0), None)
