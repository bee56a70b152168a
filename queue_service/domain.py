"""Domain types of the job queue: job states and their transition table, death reasons, errors,
and the records the store reads and writes.

This is the bottom of the package: it imports nothing from queue_service, and core and store both
import it. Adding a job state means a member of JobState, its rows in TRANSITIONS, and an Alembic
migration for the state check constraint; every set of states below is derived from the table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

# Documents (payloads, results, errors) as JSON text: compact, non-ASCII escaped, no NaN or
# infinity (PostgreSQL's JSONB refuses them). A payload's size limit is counted on this text, and
# SQLite stores this text, so that a payload is encoded once.
JSON_TEXT = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


class JobState(StrEnum):
    WAITING = "waiting"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD_LETTER = "dead_letter"
    CANCELLED = "cancelled"


class RecoveryStatus(StrEnum):
    PENDING = "pending"
    RECOVERED = "recovered"
    PERMANENTLY_FAILED = "permanently_failed"


class DeathReason(StrEnum):
    RETRIES_EXHAUSTED = "retries_exhausted"
    NON_RETRYABLE = "non_retryable"
    LEASE_EXPIRED = "lease_expired"
    MOVED_EXPLICITLY = "moved_explicitly"
    # The job kept failing for longer than its policy's max_retry_duration, retries left or not.
    RETRY_DEADLINE_EXCEEDED = "retry_deadline_exceeded"


class Transition(StrEnum):
    LEASE = "lease"
    START = "start"
    HEARTBEAT = "heartbeat"
    COMPLETE = "complete"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    MOVE_TO_DEAD_LETTER = "move_to_dead_letter"
    MAKE_DUE = "make_due"
    REDRIVE = "redrive"
    CANCEL = "cancel"
    END_CANCELLED_RUN = "end_cancelled_run"


_W, _A, _C, _F, _D = JobState.WAITING, JobState.ACTIVE, JobState.COMPLETED, JobState.FAILED, JobState.DEAD_LETTER
_X = JobState.CANCELLED

# The job state machine: every state change the service makes is a row of this table.
# transition -> (states it may start from, state it ends in)
TRANSITIONS: dict[Transition, tuple[frozenset[JobState], JobState]] = {
    Transition.LEASE: (frozenset({_W, _F}), _A),
    # An external queue owns the timing: it may start a FAILED job early, or re-deliver an ACTIVE one.
    Transition.START: (frozenset({_W, _F, _A}), _A),
    Transition.HEARTBEAT: (frozenset({_A}), _A),
    Transition.COMPLETE: (frozenset({_A}), _C),
    Transition.RETRY: (frozenset({_A}), _F),
    Transition.DEAD_LETTER: (frozenset({_A}), _D),
    Transition.MOVE_TO_DEAD_LETTER: (frozenset({_W, _A, _F}), _D),
    Transition.MAKE_DUE: (frozenset({_F}), _W),
    Transition.REDRIVE: (frozenset({_D}), _W),
    # A job no run holds is cancelled at once; a running one is only marked (cancel_requested_at),
    # and its run ends CANCELLED when it reports or its lease expires.
    Transition.CANCEL: (frozenset({_W, _F}), _X),
    Transition.END_CANCELLED_RUN: (frozenset({_A}), _X),
}


def sources(transition: Transition) -> frozenset[JobState]:
    return TRANSITIONS[transition][0]


def target(transition: Transition) -> JobState:
    return TRANSITIONS[transition][1]


def _in_declared_order(states: frozenset[JobState]) -> tuple[JobState, ...]:
    # A fixed order keeps SQL built from a set stable (the SQLite lease matches its partial index
    # predicate `state IN ('waiting', 'failed')` textually).
    return tuple(state for state in JobState if state in states)


# States a worker may lease a job from: it waits for its first run or for its next retry.
READY_STATES = _in_declared_order(sources(Transition.LEASE))
# States whose jobs a run holds: heartbeats keep them.
RUNNING_STATES = _in_declared_order(sources(Transition.HEARTBEAT))
# States no run can start again: the job is done, successfully or in the dead-letter queue.
FINISHED_STATES = _in_declared_order(frozenset(JobState) - sources(Transition.START))
# States whose jobs no run holds, so an operator may delete them in bulk.
CLEANABLE_STATES = _in_declared_order(frozenset(JobState) - frozenset(RUNNING_STATES))
# States every unique job's duplicates count in: those it is not finished in. A job moves among
# them on its own (lease, retry, due again), so a rule leaving one out would let a job leave its
# counted states and come back to meet a duplicate made meanwhile. They are also the default.
UNIQUE_REQUIRED_STATES = _in_declared_order(frozenset(JobState) - frozenset(FINISHED_STATES))
# States a cancellation ends at once, and those where it asks the run to stop first.
CANCELLABLE_STATES = _in_declared_order(sources(Transition.CANCEL))
CANCEL_REQUESTABLE_STATES = _in_declared_order(sources(Transition.END_CANCELLED_RUN))


class Decision(StrEnum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


# A retry rule's name, "queue:" or "job:" and an error type of at most 255 characters.
RETRY_RULE_LENGTH = 6 + 255


@dataclass(frozen=True)
class ErrorInfo:
    message: str
    type: str = ""
    details: str = ""
    attempt_number: int = 0
    occurred_at: datetime | None = None
    # Set only on the entry that stands for errors left out of a long history: how many.
    omitted: int = 0
    # The retry rule that decided about this error, as "queue:TimeoutError"; "" for the default policy.
    retry_rule: str = ""

    def to_json(self) -> dict[str, Any]:
        data = {
            "message": self.message,
            "type": self.type,
            "details": self.details,
            "attempt_number": self.attempt_number,
            "occurred_at": self.occurred_at.isoformat() if self.occurred_at else None,
        }
        if self.omitted:
            data["omitted"] = self.omitted
        if self.retry_rule:
            data["retry_rule"] = self.retry_rule
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ErrorInfo:
        occurred = data.get("occurred_at")
        return cls(
            message=data.get("message", ""),
            type=data.get("type", ""),
            details=data.get("details", ""),
            attempt_number=int(data.get("attempt_number", 0)),
            occurred_at=datetime.fromisoformat(occurred) if occurred else None,
            omitted=int(data.get("omitted", 0)),
            retry_rule=data.get("retry_rule", ""),
        )


# What a job and its dead-letter entry keep of its errors, and what a read returns of its retry
# log: the first HISTORY_HEAD and the last HISTORY_TAIL in full. Between them, one entry of type
# ERRORS_OMITTED_TYPE counts the errors left out, so that a job failing many times stays readable.
HISTORY_HEAD = 3
HISTORY_TAIL = 7
ERRORS_OMITTED_TYPE = "ErrorsOmitted"


def bounded_history(errors: Sequence[ErrorInfo]) -> list[ErrorInfo]:
    """`errors` (oldest first, possibly holding summaries) with the errors between the first
    HISTORY_HEAD and the last HISTORY_TAIL merged into one summary entry."""
    entries = list(errors)
    head = 0
    while head < min(HISTORY_HEAD, len(entries)) and not entries[head].omitted:
        head += 1
    tail = 0
    while tail < min(HISTORY_TAIL, len(entries) - head) and not entries[len(entries) - 1 - tail].omitted:
        tail += 1
    middle = entries[head : len(entries) - tail]
    if not middle or (len(middle) == 1 and middle[0].omitted):
        return entries
    omitted = sum(entry.omitted or 1 for entry in middle)
    latest = max(middle, key=lambda entry: entry.attempt_number)
    summary = ErrorInfo(
        message=f"{omitted} errors omitted here, up to attempt {latest.attempt_number}; ListRetryLog lists each",
        type=ERRORS_OMITTED_TYPE,
        attempt_number=latest.attempt_number,
        occurred_at=latest.occurred_at,
        omitted=omitted,
    )
    return entries[:head] + [summary] + entries[len(entries) - tail :]


@dataclass(frozen=True)
class UniqueClaim:
    """What makes a job unique: its key, and the slot it holds while in `states`.

    The slot names the key, the queue and the window the job was enqueued in; the store keeps at
    most one job holding a slot in its counted states.
    """

    key: str
    slot: str
    states: frozenset[JobState]


@dataclass(frozen=True)
class JobRecord:
    id: int
    job_id: str
    queue_name: str
    job_name: str
    job_data: dict[str, Any]
    state: JobState
    priority: int
    attempt_number: int
    budget_start: int
    retry_policy: dict[str, Any] | None
    run_at: datetime
    lease_expires_at: datetime | None
    worker_id: str | None
    last_error: ErrorInfo | None
    error_history: list[ErrorInfo]
    result: dict[str, Any] | None
    processing_duration_ms: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    dead_letter_id: str | None
    # W3C traceparent of the call that created the job; "" if it sent none.
    trace_parent: str = ""
    # The producer's unique key, None unless the job was enqueued as unique.
    unique_key: str | None = None
    # The states the job counts as a duplicate in; None unless unique.
    unique_states: frozenset[JobState] | None = None

    @property
    def holds_unique_slot(self) -> bool:
        """Whether the job, in its current state, keeps others with its unique slot out."""
        return self.unique_states is not None and self.state in self.unique_states

    # The retry rule that decided the job's last failure ("" for the default policy), and when the
    # job first failed since its retry budget was last set: max_retry_duration counts from there.
    retry_rule: str = ""
    first_failed_at: datetime | None = None
    # When a cancellation asked the job's current run to stop; None if none did.
    cancel_requested_at: datetime | None = None
    # The store's version of the row, for a row read without its lock: a write given it changes the
    # row only if nothing wrote it since the read. None for a row read under its lock.
    row_version: str | None = field(default=None, compare=False, repr=False)

    @property
    def runs_in_budget(self) -> int:
        """Runs started since the job's retry budget was last (re)set."""
        return self.attempt_number - self.budget_start

    @classmethod
    def of_fields(cls, **values: Any) -> JobRecord:
        """The record with exactly these fields, as the constructor makes it: rows are read and
        inserted by the hundred, and the frozen constructor assigns each field through
        object.__setattr__."""
        if values.keys() != JOB_RECORD_FIELDS:
            missing, unknown = JOB_RECORD_FIELDS - values.keys(), values.keys() - JOB_RECORD_FIELDS
            raise TypeError(f"JobRecord fields missing: {sorted(missing)}, unknown: {sorted(unknown)}")
        record = object.__new__(cls)
        record.__dict__.update(values)
        return record


JOB_RECORD_FIELDS = frozenset(item.name for item in fields(JobRecord))


@dataclass(frozen=True)
class DeadLetterSummary:
    """A dead-letter entry without its job data and error history, which can be large: what a
    triage list shows, and all that a page of it reads."""

    id: str
    job_id: str
    queue_name: str
    job_name: str
    failure_reason: str
    error_type: str
    total_attempts: int
    death_reason: DeathReason
    recovery_status: RecoveryStatus
    recovery_attempts: int
    admin_notes: str
    assigned_to: str
    priority: int
    fingerprint: str
    created_at: datetime
    dead_lettered_at: datetime
    updated_at: datetime
    resolution_reason: str = ""
    resolved_by: str = ""
    resolved_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class DeadLetterRecord(DeadLetterSummary):
    """The whole dead-letter entry."""

    job_data: dict[str, Any]
    error_history: list[ErrorInfo]


@dataclass(frozen=True)
class RetryLogRecord:
    id: int
    job_id: str
    queue_name: str
    attempt_number: int
    error: ErrorInfo | None
    decision: Decision
    retry_delay_ms: int
    remaining_retries: int
    next_retry_at: datetime | None
    death_reason: DeathReason | None
    created_at: datetime


@dataclass(frozen=True)
class JobView:
    """A job with what its effective retry policy says about it."""

    record: JobRecord
    remaining_retries: int


@dataclass(frozen=True)
class ScheduledRetry:
    """A decided retry: the job's failed run makes it FAILED, due again at `run_at`."""

    job: JobRecord
    run_at: datetime
    error: ErrorInfo
    error_history: list[ErrorInfo]
    # When the job first failed in its current retry budget: this failure, if it is the first.
    first_failed_at: datetime
    # Logged with the decision.
    retry_delay_ms: int
    remaining_retries: int


@dataclass(frozen=True)
class ScheduledDeath:
    """A decided death: the job goes to the DLQ as entry `entry_id` (its existing entry reopens)."""

    job: JobRecord
    error: ErrorInfo
    error_history: list[ErrorInfo]
    death_reason: DeathReason
    entry_id: str
    fingerprint: str
    # When the job first failed in its current retry budget; None for a job moved there that never failed.
    first_failed_at: datetime | None


@dataclass(frozen=True)
class QueueRecord:
    name: str
    paused: bool
    retry_policy: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class LeaseLimits:
    """A queue's caps on LeaseJobs, over every worker and replica; None is no limit."""

    max_active: int | None = None
    max_starts_per_second: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.max_active is None and self.max_starts_per_second is None

    @property
    def burst(self) -> float:
        """Starts the token bucket holds at most: one second's worth, and never less than one start."""
        return max(1.0, self.max_starts_per_second or 0.0)


@dataclass(frozen=True)
class LeaseLimitRecord:
    """A queue's stored limits with its token bucket: `tokens` starts were left at `refilled_at`."""

    queue_name: str
    limits: LeaseLimits
    tokens: float
    refilled_at: datetime
    updated_at: datetime


@dataclass
class NewJob:
    """A job row about to be inserted."""

    job_id: str
    queue_name: str
    job_name: str
    job_data: dict[str, Any]
    priority: int
    run_at: datetime
    retry_policy: dict[str, Any] | None
    state: JobState = JobState.WAITING
    attempt_number: int = 0
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    started_at: datetime | None = None
    trace_parent: str = ""
    unique: UniqueClaim | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # job_data as JSON_TEXT, when it was encoded already (to measure it).
    job_data_json: str | None = None


# Widths of the queue_activity buckets: every change is counted at both. GetQueueActivity buckets
# are whole multiples of the smallest, and read the widest rows that divide them.
ACTIVITY_BUCKET_SECONDS = (300, 3600)


@dataclass(frozen=True)
class AuditEventRecord:
    id: int
    actor: str
    action: str
    target: str
    parameters: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class TriageChanges:
    """The triage fields of a dead-letter entry to set; None leaves a field as it is."""

    admin_notes: str | None = None
    assigned_to: str | None = None
    priority: int | None = None


@dataclass(frozen=True)
class DeadLetterFilter:
    """Selects dead-letter entries; every field that is set must match."""

    queue_name: str | None = None
    recovery_status: RecoveryStatus | None = None
    death_reason: DeathReason | None = None
    failure_reason_contains: str | None = None
    error_type: str | None = None
    fingerprint: str | None = None
    assigned_to: str | None = None
    dead_lettered_after: datetime | None = None
    dead_lettered_before: datetime | None = None


@dataclass(frozen=True)
class JobFilter:
    """Selects jobs; every field that is set must match. ACTIVE jobs whose run was already asked to
    stop never match: there is nothing more to ask of them."""

    states: tuple[JobState, ...] = ()
    queue_name: str | None = None
    job_name: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class FailurePatternRow:
    fingerprint: str
    error_type: str
    count: int
    first_seen_at: datetime
    last_seen_at: datetime
    last_hour_count: int
    last_day_count: int


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class RecoveryRunRecord:
    id: int
    started_at: datetime
    finished_at: datetime | None
    status: RunStatus
    trigger: str
    node_id: str
    counts: dict[str, int]
    error: str | None

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None


@dataclass(frozen=True)
class RecoveryRunTotals:
    total: int
    succeeded: int
    failed: int


@dataclass(frozen=True)
class LeaseRecord:
    name: str
    holder: str
    term: int
    elected_at: datetime
    renewed_at: datetime
    expires_at: datetime
    next_run_at: datetime | None = None


@dataclass(frozen=True)
class DlqAlertRecord:
    queue_name: str
    alerting: bool
    pending_count: int
    threshold: int
    raised_at: datetime
    cleared_at: datetime | None
    updated_at: datetime


# Cron schedules
class MisfirePolicy(StrEnum):
    """What a schedule does with slots that passed while no leader ran it (downtime, a restart)."""

    # Drop the missed slots; run again at the next slot after now.
    SKIP = "skip"
    # Enqueue one job for the latest missed slot, then go on with the next slot after now.
    RUN_ONCE = "run_once"


@dataclass(frozen=True)
class ScheduleDefinition:
    """What an operator sets on a schedule; everything but its name may be updated."""

    cron: str
    time_zone: str
    queue_name: str
    job_name: str
    job_data: dict[str, Any] | None = None
    # Stored as the retry policy JSON the jobs table holds (see core.retry.policy_to_json).
    retry_policy: dict[str, Any] | None = None
    misfire_policy: MisfirePolicy = MisfirePolicy.SKIP


@dataclass(frozen=True)
class ScheduleRecord:
    name: str
    definition: ScheduleDefinition
    paused: bool
    # The first slot not yet enqueued; None while paused.
    next_run_at: datetime | None
    # The latest slot a job was enqueued for, if any.
    last_run_at: datetime | None
    created_at: datetime
    updated_at: datetime


# The longest W3C traceparent kept with a job; longer values are ignored, never stored. A version-00
# traceparent is exactly 55 characters; later versions may append fields.
TRACE_PARENT_LENGTH = 128


# Circuit breakers against retry storms (queue_service/core/breaker.py holds their rules).


class BreakerState(StrEnum):
    CLOSED = "closed"
    # Leases hand out nothing of the queue until its cool-down is over.
    OPEN = "open"
    # One probe job is out; its outcome closes or re-opens the breaker.
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    """When a queue's breaker opens: `failure_ratio` of at least `min_runs` runs within `window` failed."""

    enabled: bool = False
    failure_ratio: float = 0.5
    min_runs: int = 20
    window: timedelta = timedelta(seconds=60)
    # How long the breaker stays open before one probe job is leased.
    cooldown: timedelta = timedelta(seconds=30)
    # The held jobs are released over this long once a probe succeeds.
    ramp: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class BreakerRecord:
    """A queue's breaker: its policy and state; `version` grows with every write (compare-and-set)."""

    queue_name: str
    policy: BreakerPolicy
    state: BreakerState
    version: int
    # When the state last changed; runs before the last close do not count in the window.
    changed_at: datetime
    closed_at: datetime | None
    opened_at: datetime | None
    probe_job_id: str
    probe_attempt: int
    updated_at: datetime


@dataclass(frozen=True)
class LeaseControls:
    """What a lease needs to know of its queues, read in one statement: each queue that exists,
    the names of those with lease limits, and the breakers that are on, by queue."""

    queues: dict[str, QueueRecord]
    limited: frozenset[str]
    breakers: dict[str, BreakerRecord]
