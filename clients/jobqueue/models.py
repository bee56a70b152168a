"""Plain Python values for what the service returns: dataclasses, enums, datetime and timedelta."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from jobqueue.errors import JobQueueError

JsonObject = dict[str, Any]
T = TypeVar("T")


class JobState(enum.StrEnum):
    WAITING = "waiting"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD_LETTER = "dead_letter"
    CANCELLED = "cancelled"


class RecoveryStatus(enum.StrEnum):
    PENDING = "pending"
    RECOVERED = "recovered"
    PERMANENTLY_FAILED = "permanently_failed"


class DeathReason(enum.StrEnum):
    RETRIES_EXHAUSTED = "retries_exhausted"
    NON_RETRYABLE = "non_retryable"
    LEASE_EXPIRED = "lease_expired"
    MOVED_EXPLICITLY = "moved_explicitly"
    RETRY_DEADLINE_EXCEEDED = "retry_deadline_exceeded"


class RetryDecision(enum.StrEnum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class RetryRule:
    """How failures whose error type is `error_type` retry; None (or ()) takes the policy's setting.
    `retryable=False` sends such a failure straight to the dead-letter queue."""

    error_type: str
    max_retries: int | None = None
    retry_delays: tuple[timedelta, ...] = ()
    max_delay: timedelta | None = None
    jitter: float | None = None
    retryable: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    """A retry policy or override; None (or an empty tuple) leaves a setting to the queue or server.

    `rules` decide failures by their error type; `max_retry_duration` is how long a job may keep
    failing, from its first failure, before its next failure dead-letters it."""

    max_retries: int | None = None
    retry_delays: tuple[timedelta, ...] = ()
    max_delay: timedelta | None = None
    jitter: float | None = None
    rules: tuple[RetryRule, ...] = ()
    max_retry_duration: timedelta | None = None


@dataclass(frozen=True)
class JobError:
    message: str
    type: str = ""
    details: str = ""
    attempt_number: int = 0
    occurred_at: datetime | None = None
    # Set only on the "ErrorsOmitted" entry of a long history: how many errors it stands for.
    omitted_count: int = 0
    # The retry rule that decided about this error, as "queue:TimeoutError"; "" for the default policy.
    retry_rule: str = ""


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
    # W3C traceparent of the producer's call that created the job; "" if it sent none.
    trace_parent: str = ""
    # The producer's unique key when the job was enqueued as unique; "" otherwise.
    unique_key: str = ""
    # The retry rule that decided the last failure, as "queue:TimeoutError"; "" for the default policy.
    retry_rule: str = ""
    # When the job first failed since its retry budget was set; max_retry_duration counts from here.
    first_failed_at: datetime | None = None
    # When a cancellation asked the job's run to stop; None if none did.
    cancel_requested_at: datetime | None = None


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
class UniqueOptions:
    """Makes an enqueued job unique in its queue: while a job with `unique_key` counts, enqueueing
    another returns that job (created False) instead of adding one.

    `window` counts duplicates only among jobs enqueued in the same window of that length (from
    the Unix epoch); None means any time. `states` are those an existing job counts in; empty
    means the states a job is not finished in (waiting, active, failed), and any list must hold
    those, adding completed or dead_letter to make finished jobs count too.
    """

    unique_key: str
    window: timedelta | None = None
    states: tuple[JobState | str, ...] = ()


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
    # A str is the unique key with the default window and states.
    unique: UniqueOptions | str | None = None


@dataclass(frozen=True)
class EnqueueResult:
    job: Job
    # False when a job with this job_id already existed, or a duplicate of this unique job counted,
    # and that job was returned unchanged.
    created: bool


@dataclass(frozen=True)
class Completion:
    """One successful run to report; see JobClient.track_completion for the meaning of each field."""

    job_id: str
    attempt_number: int
    result: JsonObject | None = None
    processing_duration: timedelta | None = None


@dataclass(frozen=True)
class CompletionResult:
    """What the service made of one completion of a batch."""

    job_id: str
    # None when the job is now COMPLETED by this run; otherwise what track_completion would have raised.
    error: JobQueueError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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
class HeartbeatResult:
    """An extended lease, and whether a cancellation asked the run to stop."""

    lease_expires_at: datetime | None
    cancel_requested: bool = False


@dataclass(frozen=True)
class JobDetails:
    job: Job
    error_history: tuple[JobError, ...] = field(default_factory=tuple)
    retry_log: tuple[RetryLogEntry, ...] = field(default_factory=tuple)
    # Filled in by AdminClient.get_job_details only.
    dead_letter_entry: DeadLetterEntry | None = None
    # Retry decisions left out between the first and last ones in retry_log.
    retry_log_omitted_count: int = 0


# Admin


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list call; pass next_page_token to get the next one (empty on the last page)."""

    items: tuple[T, ...]
    next_page_token: str = ""
    # Matching rows over all pages, where the call reports it.
    total_size: int | None = None


@dataclass(frozen=True)
class DeadLetterSummary:
    total_count: int = 0
    pending_count: int = 0
    recovered_count: int = 0
    permanently_failed_count: int = 0


@dataclass(frozen=True)
class QueueStatistics:
    queue_name: str
    paused: bool
    waiting_count: int
    delayed_count: int
    active_count: int
    completed_count: int
    failed_count: int
    retryable_count: int
    dead_letter_count: int
    dead_letter_summary: DeadLetterSummary
    cancelled_count: int = 0


@dataclass(frozen=True)
class Statistics:
    queues: tuple[QueueStatistics, ...]
    totals: QueueStatistics
    computed_at: datetime | None
    # Queues counted in totals but not listed in `queues` (the busiest are listed).
    omitted_queue_count: int = 0


@dataclass(frozen=True)
class ActivityBucket:
    """What happened to a queue's jobs from `start` to `start` plus the bucket width."""

    start: datetime
    completed_count: int
    failed_count: int
    retried_count: int
    dead_lettered_count: int
    cancelled_count: int = 0


@dataclass(frozen=True)
class QueueActivity:
    queue_name: str
    buckets: tuple[ActivityBucket, ...]


@dataclass(frozen=True)
class Activity:
    """Activity per queue and in total over [start, end), in buckets of bucket_width, oldest first."""

    queues: tuple[QueueActivity, ...]
    totals: QueueActivity
    start: datetime | None
    end: datetime | None
    bucket_width: timedelta | None
    # Queues counted in totals but not listed in `queues` (the busiest are listed).
    omitted_queue_count: int = 0


@dataclass(frozen=True)
class DeadLetterDetails:
    entry: DeadLetterEntry
    # The job as it is now; None if it was deleted.
    job: Job | None
    retry_log: tuple[RetryLogEntry, ...]
    # Retry decisions left out between the first and last ones in retry_log.
    retry_log_omitted_count: int = 0


@dataclass(frozen=True)
class DeadLetterRetry:
    """A dead-letter entry sent back: the entry (RECOVERED) and its job (WAITING)."""

    entry: DeadLetterEntry
    job: Job


@dataclass(frozen=True)
class FailurePattern:
    fingerprint: str
    error_type: str
    normalised_message: str
    count: int
    queue_names: tuple[str, ...]
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    sample: DeadLetterEntry | None
    last_hour_count: int
    last_day_count: int
    # All the queues of the group; queue_names lists the first 20 by name.
    queue_count: int = 0


@dataclass(frozen=True)
class RedriveSkip:
    id: str
    reason: str


@dataclass(frozen=True)
class RedriveProgress:
    """One message of a bulk redrive; the last one has done = True."""

    matched_count: int
    retried_count: int
    skipped_count: int
    done: bool
    sample: tuple[DeadLetterEntry, ...]
    retried_ids: tuple[str, ...]
    skipped: tuple[RedriveSkip, ...]


class CircuitBreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class CircuitBreakerPolicy:
    """A queue's circuit breaker against retry storms; None leaves a setting to the server's default
    (ratio 0.5 of at least 20 runs in 60 s, a 30 s cool-down, a 60 s ramp)."""

    enabled: bool = False
    failure_ratio: float | None = None
    min_runs: int | None = None
    window: timedelta | None = None
    cooldown: timedelta | None = None
    ramp: timedelta | None = None


@dataclass(frozen=True)
class CircuitBreakerStatus:
    state: CircuitBreakerState
    change_time: datetime | None = None
    open_time: datetime | None = None
    # The probe job while half-open.
    probe_job_id: str = ""
    # The current window's runs and failed runs (get_queue only, while closed).
    window_runs: int = 0
    window_failures: int = 0


@dataclass(frozen=True)
class CancelSkip:
    job_id: str
    reason: str


@dataclass(frozen=True)
class CancelProgress:
    """One message of a bulk cancel; the last one has done = True."""

    matched_count: int
    cancelled_count: int
    cancel_requested_count: int
    skipped_count: int
    done: bool
    sample: tuple[Job, ...]
    cancelled_ids: tuple[str, ...]
    cancel_requested_ids: tuple[str, ...]
    skipped: tuple[CancelSkip, ...]


@dataclass(frozen=True)
class Queue:
    name: str
    paused: bool
    retry_policy: RetryPolicy | None
    effective_retry_policy: RetryPolicy | None
    delay_schedule: tuple[timedelta, ...]
    created_at: datetime | None
    updated_at: datetime | None
    # Most ACTIVE jobs at once over every worker and replica; None: no limit.
    max_active: int | None = None
    # Most starts per second (a token bucket of max(1, rate) starts); None: no limit.
    max_starts_per_second: float | None = None
    # None for a queue that never had a circuit breaker (off).
    circuit_breaker: CircuitBreakerPolicy | None = None
    circuit_breaker_status: CircuitBreakerStatus | None = None


@dataclass(frozen=True)
class QueueAlertPolicy:
    """Where and when a queue's alerts go, over the server's own settings."""

    queue_name: str
    # None: the server's threshold; 0: no DLQ alerts for this queue.
    dlq_alert_threshold: int | None = None
    # Receive the queue's alerts by email, besides the server's recipients.
    email_recipients: tuple[str, ...] = ()
    # None for a queue whose policy was never set.
    update_time: datetime | None = None


class RecoveryRunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RecoveryTrigger(enum.StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"


@dataclass(frozen=True)
class RecoveryTaskCounts:
    due_retries: int = 0
    stalled_jobs: int = 0
    exhausted_jobs: int = 0
    deleted_completed_jobs: int = 0
    deleted_retry_log_rows: int = 0
    dead_letter_alerts: int = 0
    stalled_jobs_dead_lettered: int = 0
    dead_letter_alerts_cleared: int = 0
    alert_webhook_failures: int = 0
    deleted_activity_rows: int = 0
    alert_emails_sent: int = 0
    alert_email_failures: int = 0
    alert_emails_given_up: int = 0
    stalled_jobs_cancelled: int = 0


@dataclass(frozen=True)
class RecoveryRun:
    id: int
    started_at: datetime | None
    finished_at: datetime | None
    status: RecoveryRunStatus | None
    trigger: RecoveryTrigger | None
    node_id: str
    counts: RecoveryTaskCounts
    error: str


@dataclass(frozen=True)
class RecoveryReport:
    """The recovery scheduler's totals, leadership, next run and recent runs."""

    total_runs: int
    successful_runs: int
    failed_runs: int
    last_run_at: datetime | None
    last_run_duration: timedelta | None
    next_run_at: datetime | None
    is_leader: bool
    recent_runs: tuple[RecoveryRun, ...]
    next_page_token: str
    # The process leading the scheduled sweeps; "" while none leads.
    leader_node_id: str = ""


@dataclass(frozen=True)
class AuditEvent:
    id: int
    actor: str
    action: str
    target: str
    parameters: JsonObject
    created_at: datetime | None


class MisfirePolicy(enum.StrEnum):
    """What a schedule does with slots that passed while no leader ran."""

    # Missed slots make no job; a slot at most a minute late still runs.
    SKIP = "skip"
    # One job for the latest missed slot, however late.
    RUN_ONCE = "run_once"


@dataclass(frozen=True)
class Schedule:
    """A cron schedule: a job enqueued at each time `cron` matches in `time_zone`."""

    name: str
    cron: str
    time_zone: str
    queue_name: str
    job_name: str
    job_data: dict[str, Any] | None = None
    retry_policy: RetryPolicy | None = None
    misfire_policy: MisfirePolicy | None = None
    # Set by the server:
    paused: bool = False
    next_run_times: tuple[datetime, ...] = ()
    last_run_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
