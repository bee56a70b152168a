"""Plain Python values for what the service returns: dataclasses, enums, datetime and timedelta."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

JsonObject = dict[str, Any]


class JobState(enum.StrEnum):
    WAITING = "waiting"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD_LETTER = "dead_letter"


class RecoveryStatus(enum.StrEnum):
    PENDING = "pending"
    RECOVERED = "recovered"
    PERMANENTLY_FAILED = "permanently_failed"


class DeathReason(enum.StrEnum):
    RETRIES_EXHAUSTED = "retries_exhausted"
    NON_RETRYABLE = "non_retryable"
    LEASE_EXPIRED = "lease_expired"
    MOVED_EXPLICITLY = "moved_explicitly"


class RetryDecision(enum.StrEnum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class RetryPolicy:
    """A retry policy or override; None (or an empty tuple) leaves a setting to the queue or server."""

    max_retries: int | None = None
    retry_delays: tuple[timedelta, ...] = ()
    max_delay: timedelta | None = None
    jitter: float | None = None


@dataclass(frozen=True)
class JobError:
    message: str
    type: str = ""
    details: str = ""
    attempt_number: int = 0
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Job:
    job_id: str
    queue_name: str
    job_name: str
    job_data: JsonObject
    state: JobState
    priority: int
    attempt_number: int
    remaining_retries: int
    retry_policy: RetryPolicy | None
    run_at: datetime | None
    next_retry_at: datetime | None
    lease_expires_at: datetime | None
    worker_id: str
    last_error: JobError | None
    result: JsonObject | None
    processing_duration: timedelta | None
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    dead_letter_id: str


@dataclass(frozen=True)
class RetryLogEntry:
    id: int
    job_id: str
    queue_name: str
    attempt_number: int
    error: JobError | None
    decision: RetryDecision | None
    retry_delay: timedelta | None
    next_retry_at: datetime | None
    death_reason: DeathReason | None
    created_at: datetime | None


@dataclass(frozen=True)
class DeadLetterEntry:
    id: str
    job_id: str
    queue_name: str
    job_name: str
    job_data: JsonObject
    failure_reason: str
    error_type: str
    total_attempts: int
    error_history: tuple[JobError, ...]
    death_reason: DeathReason | None
    recovery_status: RecoveryStatus | None
    recovery_attempts: int
    admin_notes: str
    assigned_to: str
    priority: int
    fingerprint: str
    created_at: datetime | None
    dead_lettered_at: datetime | None
    updated_at: datetime | None
    resolution_reason: str = ""
    resolved_by: str = ""
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class JobRequest:
    """One job to enqueue; see JobClient.enqueue for the meaning of each field."""

    queue_name: str
    job_name: str
    job_data: JsonObject | None = None
    job_id: str | None = None
    priority: int = 0
    run_at: datetime | None = None
    delay: timedelta | None = None
    retry_policy: RetryPolicy | None = None


@dataclass(frozen=True)
class EnqueueResult:
    job: Job
    # False when a job with this job_id already existed and was returned unchanged.
    created: bool


@dataclass(frozen=True)
class StartResult:
    job: Job
    # True when the job was unknown to the service and has been created.
    created: bool


@dataclass(frozen=True)
class FailureResult:
    """The service's retry decision about a failed run."""

    should_retry: bool
    retry_delay: timedelta | None
    next_retry_at: datetime | None
    remaining_retries: int
    moved_to_dead_letter: bool
    dead_letter_id: str
    job: Job | None


@dataclass(frozen=True)
class JobDetails:
    job: Job
    error_history: tuple[JobError, ...] = field(default_factory=tuple)
    retry_log: tuple[RetryLogEntry, ...] = field(default_factory=tuple)
