"""The failure rule, for one failed run or many: the run's job becomes FAILED and due for a retry,
or goes to the dead-letter queue, with the error added to its history and one retry-log row.

The decision is made here, in Python, once per job; the store only writes the decided outcomes,
set-wise: a batch of retries and a batch of deaths take one statement each on PostgreSQL, and
one prepared statement each run over the batch on SQLite.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from random import Random
from typing import Protocol

from queue_service.core import states
from queue_service.core.breakers import CircuitBreakers
from queue_service.core.errors import Aborted
from queue_service.core.events import ServiceEvents
from queue_service.core.fingerprint import fingerprint
from queue_service.core.retry import RetryDecision, RetryPolicy, get_retry_decision, remaining_retries
from queue_service.core.states import Transition
from queue_service.domain import (
    DeadLetterRecord,
    DeathReason,
    ErrorInfo,
    JobRecord,
    JobView,
    QueueRecord,
    ScheduledDeath,
    ScheduledRetry,
    bounded_history,
)
from queue_service.store.repository import Repository


class JobTransitions(Protocol):
    """What the rule needs of the job manager: policies, randomness for jitter, and reporting transitions."""

    rng: Random
    events: ServiceEvents
    breakers: CircuitBreakers

    def policy_for(self, job: JobRecord, queue: QueueRecord | None) -> RetryPolicy: ...

    def record_transition(
        self, repo: Repository, job: JobRecord, transition: Transition, updated: JobRecord | None
    ) -> JobRecord: ...

    def emit_transition(self, repo: Repository, transition: Transition, *queue_names: str) -> None: ...


@dataclass(frozen=True)
class FailureOutcome:
    decision: RetryDecision
    dead_letter: DeadLetterRecord | None
    # Builds the job as the decision left it, when first read: a sweep decides thousands and reads none.
    make_job: Callable[[], JobView] = field(repr=False, compare=False)

    @functools.cached_property
    def job(self) -> JobView:
        return self.make_job()

    @classmethod
    def of(cls, decision: RetryDecision, job: JobView, dead_letter: DeadLetterRecord | None) -> FailureOutcome:
        return cls(decision, dead_letter, lambda: job)


@dataclass(frozen=True)
class RunFailure:
    """The current run of `job` failed with `error`."""

    job: JobRecord
    error: ErrorInfo
    non_retryable: bool = False
    retry_after: timedelta | None = None
    # The job's effective policy, when the caller already read it in this transaction.
    policy: RetryPolicy | None = None
    # Whether the job's queue has a circuit breaker on, when the caller already read it; None: unknown.
    breaker_on: bool | None = None


def history_with(job: JobRecord, error: ErrorInfo) -> list[ErrorInfo]:
    """The job's error history with `error` appended, bounded as every stored history is."""
    return bounded_history([*job.error_history, error])


def apply_failures(
    jobs: JobTransitions,
    repo: Repository,
    failures: Sequence[RunFailure],
    *,
    lease_expired: bool = False,
    now: datetime,
) -> list[FailureOutcome]:
    """Decide and record each failure in the caller's transaction, which holds the jobs' row locks.
    Queue policies a failure does not bring are read once; the decisions are made here, job by job,
    and written set-wise: one statement for the retried jobs and one for the dead ones (each with
    its retry-log rows and DLQ entries). Returns the outcomes in the order of `failures`."""
    unknown = {failure.job.queue_name for failure in failures if failure.policy is None}
    queues = repo.get_queues(unknown) if unknown else {}
    retries: list[ScheduledRetry] = []
    deaths: list[ScheduledDeath] = []
    decisions: dict[int, RetryDecision] = {}
    # Circuit breakers (core/breakers.py) count these runs and may trip; while a queue's breaker
    # holds, its failed runs are retried without using up an attempt.
    counted = [failure.job for failure in failures if failure.breaker_on is not False]
    held_queues = jobs.breakers.on_failures(repo, counted, now)
    refunded: list[JobRecord] = []
    # A queue's effective policy, for its jobs without a policy of their own: merged once per batch.
    queue_policies: dict[str, RetryPolicy] = {}
    for failure in failures:
        job, error = failure.job, failure.error
        policy = failure.policy
        if policy is None:
            if job.retry_policy:
                policy = jobs.policy_for(job, queues.get(job.queue_name))
            else:
                policy = queue_policies.get(job.queue_name)
                if policy is None:
                    policy = queue_policies[job.queue_name] = jobs.policy_for(job, queues.get(job.queue_name))
        held = job.queue_name in held_queues and not failure.non_retryable
        decision = get_retry_decision(
            policy,
            runs_in_budget=job.runs_in_budget,
            now=now,
            error_type=error.type,
            first_failed_at=job.first_failed_at,
            non_retryable=failure.non_retryable,
            retry_after=failure.retry_after,
            lease_expired=lease_expired,
            rng=jobs.rng,
        )
        if held and decision.death_reason is not DeathReason.NON_RETRYABLE:
            decision = held_retry(policy, job, now, jobs.rng)
        else:
            held = False  # a rule that never retries this error type still decides
        decisions[job.id] = decision
        # The error keeps the rule that decided about it: in the job's history and in the retry log.
        if error.retry_rule != decision.retry_rule:
            error = replace(error, retry_rule=decision.retry_rule)
        history = history_with(job, error)
        if decision.should_retry:
            retries.append(
                ScheduledRetry(
                    job,
                    decision.next_retry_at,
                    error,
                    history,
                    first_failed_at=job.first_failed_at or now,
                    retry_delay_ms=round(decision.retry_delay.total_seconds() * 1000),
                    remaining_retries=decision.remaining_retries,
                )
            )
            if held:
                refunded.append(job)
        else:
            deaths.append(scheduled_death(job, error, history, decision.death_reason, failed_at=now))
    outcomes: dict[int, FailureOutcome] = {}
    if repo.schedule_retries(retries, expected_states=states.sources(Transition.RETRY), now=now) != len(retries):
        _changed_concurrently(failures)
    jobs.breakers.refund(repo, refunded)
    jobs.emit_transition(repo, Transition.RETRY, *(retry.job.queue_name for retry in retries))
    for retry in retries:
        decision = decisions[retry.job.id]
        outcomes[retry.job.id] = FailureOutcome(
            decision, None, functools.partial(_retried_view, retry, decision.remaining_retries, now)
        )
    for death, entry in dead_letter_all(jobs, repo, deaths, Transition.DEAD_LETTER, now):
        outcomes[death.job.id] = FailureOutcome(
            decisions[death.job.id], entry, functools.partial(_dead_view, death, entry, Transition.DEAD_LETTER, now)
        )
    if lease_expired:
        for failure in failures:
            outcome = outcomes[failure.job.id]
            entry_id = outcome.dead_letter.id if outcome.dead_letter else ""
            repo.after_commit(
                functools.partial(jobs.events.lease_expiry_decided, failure.job, outcome.decision, entry_id)
            )
    return [outcomes[failure.job.id] for failure in failures]


def held_retry(policy: RetryPolicy, job: JobRecord, now: datetime, rng: Random) -> RetryDecision:
    """A run that failed while its queue's circuit breaker holds is retried and uses up no attempt;
    its delay is the policy's for the runs used before it (the breaker's ramp moves it on close)."""
    runs_before = max(job.runs_in_budget - 1, 0)
    delay = policy.delay_for_retry(max(runs_before, 1), rng)
    return RetryDecision(True, delay, now + delay, remaining_retries(policy, runs_before), None)


def _changed_concurrently(failures: Sequence[RunFailure | ScheduledDeath]) -> None:
    if len(failures) == 1:
        raise Aborted(f"job {failures[0].job.job_id!r} changed concurrently; retry the call", field="job_id")
    raise Aborted("jobs changed concurrently during a batch of failures; retry the batch", field="job_id")


def _retried_view(retry: ScheduledRetry, remaining_retries: int, now: datetime) -> JobView:
    return JobView(retried(retry, now), remaining_retries)


def _dead_view(death: ScheduledDeath, entry: DeadLetterRecord, transition: Transition, now: datetime) -> JobView:
    return JobView(dead_lettered(death, entry, transition, now), 0)


def retried(retry: ScheduledRetry, now: datetime) -> JobRecord:
    """The job as its retry's compare-and-set left it."""
    return replace(
        retry.job,
        state=states.target(Transition.RETRY),
        run_at=retry.run_at,
        lease_expires_at=None,
        last_error=retry.error,
        error_history=list(retry.error_history),
        retry_rule=retry.error.retry_rule,
        first_failed_at=retry.first_failed_at,
        updated_at=now,
    )


def scheduled_death(
    job: JobRecord,
    error: ErrorInfo,
    history: list[ErrorInfo],
    death_reason: DeathReason | None,
    *,
    failed_at: datetime | None,
) -> ScheduledDeath:
    """`job` decided dead with `error` as its failure and `history` as its errors. `failed_at` is
    when its run failed, None for a job moved there: a failed run starts the job's failing time if
    it had not started."""
    return ScheduledDeath(
        job=job,
        error=error,
        error_history=history,
        death_reason=death_reason or DeathReason.RETRIES_EXHAUSTED,
        entry_id=job.dead_letter_id or str(uuid.uuid4()),
        fingerprint=fingerprint(error.type, error.message),
        first_failed_at=job.first_failed_at or failed_at,
    )


def dead_letter_all(
    jobs: JobTransitions,
    repo: Repository,
    deaths: Sequence[ScheduledDeath],
    transition: Transition,
    now: datetime,
) -> list[tuple[ScheduledDeath, DeadLetterRecord]]:
    """Move the jobs of `deaths` to the dead-letter queue set-wise, each decision logged;
    `transition` says from which states. Aborted if any of them changed concurrently. Returns each
    death with its entry."""
    entries = repo.dead_letter_jobs(deaths, expected_states=states.sources(transition), now=now)
    if len(entries) != len(deaths):
        _changed_concurrently(deaths)
    by_job = {entry.job_id: entry for entry in entries}
    jobs.emit_transition(repo, transition, *(death.job.queue_name for death in deaths))
    return [(death, by_job[death.job.job_id]) for death in deaths]


def dead_lettered(death: ScheduledDeath, entry: DeadLetterRecord, transition: Transition, now: datetime) -> JobRecord:
    """The job as its move to the dead-letter queue (`death`, now in `entry`) left it."""
    return replace(
        death.job,
        state=states.target(transition),
        lease_expires_at=None,
        last_error=death.error,
        error_history=list(death.error_history),
        dead_letter_id=entry.id,
        retry_rule=death.error.retry_rule,
        first_failed_at=death.first_failed_at,
        updated_at=now,
    )


def dead_letter(
    jobs: JobTransitions,
    repo: Repository,
    job: JobRecord,
    error: ErrorInfo,
    history: list[ErrorInfo],
    death_reason: DeathReason | None,
    transition: Transition,
    now: datetime,
) -> DeadLetterRecord:
    """Move `job` to the dead-letter queue with `error` as its failure and `history` as its errors,
    logging the decision; `transition` says from which states. A batch of one; a failed run (not
    a move) starts the job's failing time if it had not started. Returns its entry."""
    failed_at = now if transition == Transition.DEAD_LETTER else None
    [(_, entry)] = dead_letter_all(
        jobs, repo, [scheduled_death(job, error, history, death_reason, failed_at=failed_at)], transition, now
    )
    return entry
