"""Conversion between protobuf messages and core values."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.json_format import MessageToDict
from jobqueue.v1 import job_pb2

from queue_service.core.errors import InvalidArgument
from queue_service.core.jobs import JobView, ReportedError
from queue_service.core.retry import PolicyOverride
from queue_service.store.records import (
    DeadLetterRecord,
    DeathReason,
    Decision,
    ErrorInfo,
    JobState,
    RecoveryStatus,
    RetryLogRecord,
)

JOB_STATES = {
    JobState.WAITING: job_pb2.Job.STATE_WAITING,
    JobState.ACTIVE: job_pb2.Job.STATE_ACTIVE,
    JobState.COMPLETED: job_pb2.Job.STATE_COMPLETED,
    JobState.FAILED: job_pb2.Job.STATE_FAILED,
    JobState.DEAD_LETTER: job_pb2.Job.STATE_DEAD_LETTER,
}
JOB_STATES_FROM_PROTO = {value: key for key, value in JOB_STATES.items()}
RECOVERY_STATUSES = {
    RecoveryStatus.PENDING: job_pb2.DeadLetterEntry.RECOVERY_STATUS_PENDING,
    RecoveryStatus.RECOVERED: job_pb2.DeadLetterEntry.RECOVERY_STATUS_RECOVERED,
    RecoveryStatus.PERMANENTLY_FAILED: job_pb2.DeadLetterEntry.RECOVERY_STATUS_PERMANENTLY_FAILED,
}
RECOVERY_STATUSES_FROM_PROTO = {value: key for key, value in RECOVERY_STATUSES.items()}
DEATH_REASONS = {
    DeathReason.RETRIES_EXHAUSTED: job_pb2.DEATH_REASON_RETRIES_EXHAUSTED,
    DeathReason.NON_RETRYABLE: job_pb2.DEATH_REASON_NON_RETRYABLE,
    DeathReason.LEASE_EXPIRED: job_pb2.DEATH_REASON_LEASE_EXPIRED,
    DeathReason.MOVED_EXPLICITLY: job_pb2.DEATH_REASON_MOVED_EXPLICITLY,
}
DEATH_REASONS_FROM_PROTO = {value: key for key, value in DEATH_REASONS.items()}
DECISIONS = {Decision.RETRY: job_pb2.RETRY_DECISION_RETRY, Decision.DEAD_LETTER: job_pb2.RETRY_DECISION_DEAD_LETTER}

MAX_DURATION_SECONDS = 315_576_000_000  # the protobuf Duration range


# Scalars


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def duration(value: timedelta | None) -> duration_pb2.Duration | None:
    if value is None:
        return None
    message = duration_pb2.Duration()
    message.FromTimedelta(value)
    return message


def duration_ms(milliseconds: int | None) -> duration_pb2.Duration | None:
    return None if milliseconds is None else duration(timedelta(milliseconds=milliseconds))


def to_timedelta(message: duration_pb2.Duration, field: str) -> timedelta:
    if abs(message.seconds) > MAX_DURATION_SECONDS or abs(message.nanos) >= 1_000_000_000:
        raise InvalidArgument(f"{field} is not a valid duration", field=field)
    if (message.seconds > 0 and message.nanos < 0) or (message.seconds < 0 and message.nanos > 0):
        raise InvalidArgument(f"{field} is not a valid duration", field=field)
    try:
        return message.ToTimedelta()
    except (OverflowError, ValueError):
        raise InvalidArgument(f"{field} is out of range", field=field) from None


def optional_timedelta(owner, name: str, field: str | None = None) -> timedelta | None:
    return to_timedelta(getattr(owner, name), field or name) if owner.HasField(name) else None


def to_datetime(message: timestamp_pb2.Timestamp, field: str) -> datetime:
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (OverflowError, ValueError):
        raise InvalidArgument(f"{field} is not a valid timestamp", field=field) from None


def struct(document: dict[str, Any] | None) -> struct_pb2.Struct | None:
    if document is None:
        return None
    message = struct_pb2.Struct()
    message.update(document)
    return message


def document(message: struct_pb2.Struct, field: str) -> dict[str, Any]:
    try:
        return MessageToDict(message)
    except (ValueError, RecursionError, TypeError):
        raise InvalidArgument(f"{field} is not a valid JSON object", field=field) from None


def finite(value: float, field: str) -> float:
    if math.isnan(value) or math.isinf(value):
        raise InvalidArgument(f"{field} must be a finite number", field=field)
    return value


# Requests


def policy_override(message: job_pb2.RetryPolicy, field: str = "retry_policy") -> PolicyOverride:
    return PolicyOverride(
        max_retries=message.max_retries if message.HasField("max_retries") else None,
        retry_delays=tuple(
            to_timedelta(delay, f"{field}.retry_delays[{index}]") for index, delay in enumerate(message.retry_delays)
        ),
        max_delay=to_timedelta(message.max_delay, f"{field}.max_delay") if message.HasField("max_delay") else None,
        jitter=finite(message.jitter, f"{field}.jitter") if message.HasField("jitter") else None,
    )


def reported_error(message: job_pb2.JobError) -> ReportedError:
    return ReportedError(message=message.message, type=message.type, details=message.details)


# Responses


def job_error(error: ErrorInfo | None) -> job_pb2.JobError | None:
    if error is None:
        return None
    return job_pb2.JobError(
        message=error.message,
        type=error.type,
        details=error.details,
        attempt_number=error.attempt_number,
        occurred_at=timestamp(error.occurred_at),
    )


def retry_policy_message(stored: dict[str, Any] | None) -> job_pb2.RetryPolicy | None:
    if not stored:
        return None
    message = job_pb2.RetryPolicy()
    if stored.get("max_retries") is not None:
        message.max_retries = stored["max_retries"]
    for ms in stored.get("retry_delays_ms") or ():
        message.retry_delays.append(duration_ms(ms))
    if stored.get("max_delay_ms") is not None:
        message.max_delay.CopyFrom(duration_ms(stored["max_delay_ms"]))
    if stored.get("jitter") is not None:
        message.jitter = stored["jitter"]
    return message


def job_message(view: JobView) -> job_pb2.Job:
    job = view.record
    return job_pb2.Job(
        job_id=job.job_id,
        queue_name=job.queue_name,
        job_name=job.job_name,
        job_data=struct(job.job_data),
        state=JOB_STATES[job.state],
        priority=job.priority,
        attempt_number=job.attempt_number,
        remaining_retries=view.remaining_retries,
        retry_policy=retry_policy_message(job.retry_policy),
        run_at=timestamp(job.run_at),
        next_retry_at=timestamp(job.run_at) if job.state == JobState.FAILED else None,
        lease_expires_at=timestamp(job.lease_expires_at) if job.state == JobState.ACTIVE else None,
        worker_id=job.worker_id or "",
        last_error=job_error(job.last_error),
        result=struct(job.result),
        processing_duration=duration_ms(job.processing_duration_ms),
        created_at=timestamp(job.created_at),
        updated_at=timestamp(job.updated_at),
        started_at=timestamp(job.started_at),
        completed_at=timestamp(job.completed_at),
        dead_letter_id=job.dead_letter_id or "",
    )


def retry_log_message(entry: RetryLogRecord) -> job_pb2.RetryLogEntry:
    return job_pb2.RetryLogEntry(
        id=entry.id,
        job_id=entry.job_id,
        queue_name=entry.queue_name,
        attempt_number=entry.attempt_number,
        error=job_error(entry.error),
        decision=DECISIONS[entry.decision],
        retry_delay=duration_ms(entry.retry_delay_ms),
        next_retry_at=timestamp(entry.next_retry_at),
        death_reason=DEATH_REASONS[entry.death_reason] if entry.death_reason else 0,
        created_at=timestamp(entry.created_at),
    )


def dead_letter_message(entry: DeadLetterRecord) -> job_pb2.DeadLetterEntry:
    return job_pb2.DeadLetterEntry(
        id=entry.id,
        job_id=entry.job_id,
        queue_name=entry.queue_name,
        job_name=entry.job_name,
        job_data=struct(entry.job_data),
        failure_reason=entry.failure_reason,
        error_type=entry.error_type,
        total_attempts=entry.total_attempts,
        error_history=[job_error(error) for error in entry.error_history],
        death_reason=DEATH_REASONS[entry.death_reason],
        recovery_status=RECOVERY_STATUSES[entry.recovery_status],
        recovery_attempts=entry.recovery_attempts,
        admin_notes=entry.admin_notes,
        assigned_to=entry.assigned_to,
        priority=entry.priority,
        fingerprint=entry.fingerprint,
        created_at=timestamp(entry.created_at),
        dead_lettered_at=timestamp(entry.dead_lettered_at),
        updated_at=timestamp(entry.updated_at),
    )
