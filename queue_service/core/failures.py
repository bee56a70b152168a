"""The failure rule, for one failed run or many: the run's job becomes FAILED and due for a retry,
or goes to the dead-letter queue, with the error added to its history and one retry-log row.

The decision is made here, in Python, once per job; the store only writes the decided outcomes
(for a batch of retries, one statement on PostgreSQL).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    Decision,
    ErrorInfo,
    JobRecord,
    JobView,
    NewRetryLogRow,
    QueueRecord,
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

    def emit_transition(self, repo: Repository, transition: Transition, queue_name: str) -> None: ...


@dataclass(frozen=True)
class FailureOutcome:
    decision: RetryDecision
    job: JobView
    dead_letter: DeadLetterRecord | None


@dataclass(frozen=True)
class RunFailure:
    """The current run of `job` failed with `error`."""

    job: JobRecord
    error: ErrorInfo
    non_retryable: bool = False
    retry_after: timedelta | None = None
    # The job's effective policy, when the caller already read it in this transaction.
    policy: RetryPolicy | None = None


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
    Queue policies a failure does not bring are read once; the retried jobs are updated and logged
    with one statement each. Returns the outcomes in the order of `failures`."""
    unknown = {failure.job.queue_name for failure in failures if failure.policy is None}
    queues = repo.get_queues(unknown) if unknown else {}
    retries: list[ScheduledRetry] = []
    decisions: dict[int, tuple[RetryDecision, ErrorInfo]] = {}
    outcomes: dict[int, FailureOutcome] = {}
    # Circuit breakers (core/breakers.py) count these runs and may trip; while a queue's breaker
    # holds, its failed runs are retried without using up an attempt.
    held_queues = jobs.breakers.on_failures(repo, [failure.job for failure in failures], now)
    refunded: list[JobRecord] = []
    for failure in failures:
        job, error = failure.job, failure.error
        policy = failure.policy or jobs.policy_for(job, queues.get(job.queue_name))
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
        # The error keeps the rule that decided about it: in the job's history and in the retry log.
        error = replace(error, retry_rule=decision.retry_rule)
        history = history_with(job, error)
        if not decision.should_retry:
            entry, updated = dead_letter(
                jobs, repo, job, error, history, decision.death_reason, Transition.DEAD_LETTER, now
            )
            outcomes[job.id] = FailureOutcome(decision, JobView(updated, 0), entry)
            continue
        decisions[job.id] = (decision, error)
        retries.append(ScheduledRetry(job, decision.next_retry_at, error, history, job.first_failed_at or now))
        if held:
            refunded.append(job)
    updated = repo.schedule_retries(retries, expected_states=states.sources(Transition.RETRY), now=now)
    if len(updated) != len(retries):
        if len(failures) == 1:
            raise Aborted(f"job {failures[0].job.job_id!r} changed concurrently; retry the call", field="job_id")
        raise Aborted("jobs changed concurrently during a batch of failures; retry the batch", field="job_id")
    jobs.breakers.refund(repo, refunded)
    by_id = {retry.job.id: retry.job for retry in retries}
    log = []
    for record in updated:
        decision, error = decisions[record.id]
        jobs.emit_transition(repo, Transition.RETRY, record.queue_name)
        outcomes[record.id] = FailureOutcome(decision, JobView(record, decision.remaining_retries), None)
        log.append(
            NewRetryLogRow(
                job=by_id[record.id],
                error=error,
                decision=Decision.RETRY,
                retry_delay_ms=round(decision.retry_delay.total_seconds() * 1000),
                remaining_retries=decision.remaining_retries,
                next_retry_at=decision.next_retry_at,
                death_reason=None,
            )
        )
    repo.insert_retry_logs(sorted(log, key=lambda row: (row.job.job_id, row.job.attempt_number)), now=now)
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


def dead_letter(
    jobs: JobTransitions,
    repo: Repository,
    job: JobRecord,
    error: ErrorInfo,
    history: list[ErrorInfo],
    death_reason: DeathReason | None,
    transition: Transition,
    now: datetime,
) -> tuple[DeadLetterRecord, JobRecord]:
    """Move `job` to the dead-letter queue with `error` as its failure and `history` as its errors,
    logging the decision; `transition` says from which states. A failed run (not a move) starts the
    job's failing time if it had not started."""
    death_reason = death_reason or DeathReason.RETRIES_EXHAUSTED
    entry = repo.save_dead_letter(
        entry_id=job.dead_letter_id or str(uuid.uuid4()),
        job=job,
        failure_reason=error.message,
        error_type=error.type,
        error_history=history,
        death_reason=death_reason,
        fingerprint=fingerprint(error.type, error.message),
        now=now,
    )
    updated = repo.dead_letter_job(
        job,
        expected_states=states.sources(transition),
        error=error,
        error_history=history,
        dead_letter_id=entry.id,
        first_failed_at=job.first_failed_at or (now if transition == Transition.DEAD_LETTER else None),
        now=now,
    )
    updated = jobs.record_transition(repo, job, transition, updated)
    repo.insert_retry_logs(
        [
            NewRetryLogRow(
                job=job,
                error=error,
                decision=Decision.DEAD_LETTER,
                retry_delay_ms=0,
                remaining_retries=0,
                next_retry_at=None,
                death_reason=death_reason,
            )
        ],
        now=now,
    )
    return entry, updated
