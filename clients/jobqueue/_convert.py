"""Between protobuf messages and the plain values of jobqueue.models."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from jobqueue import models
from jobqueue.v1 import admin_service_pb2 as admin_pb2
from jobqueue.v1 import job_pb2, job_service_pb2

E = TypeVar("E", bound=enum.Enum)

# JSON numbers are doubles; integral ones come back as int, as they were most likely sent.
MAX_EXACT_INTEGER = 2**53


# Scalars


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"datetime {value.isoformat()} has no time zone; use an aware datetime")
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def to_duration(value: timedelta | float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(value if isinstance(value, timedelta) else timedelta(seconds=value))
    return message


def duration(value: timedelta | float | None) -> duration_pb2.Duration | None:
    return None if value is None else to_duration(value)


def optional_datetime(owner: Message, name: str) -> datetime | None:
    if not owner.HasField(name):
        return None
    value: timestamp_pb2.Timestamp = getattr(owner, name)
    return value.ToDatetime(tzinfo=UTC)


def optional_timedelta(owner: Message, name: str) -> timedelta | None:
    if not owner.HasField(name):
        return None
    value: duration_pb2.Duration = getattr(owner, name)
    return value.ToTimedelta()


def struct(document: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    if document is None:
        return None
    message = struct_pb2.Struct()
    message.update(document)
    return message


def python_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return document(value.struct_value)
    if kind == "list_value":
        return [python_value(item) for item in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() and abs(number) <= MAX_EXACT_INTEGER else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def document(message: struct_pb2.Struct) -> dict[str, Any]:
    return {key: python_value(value) for key, value in message.fields.items()}


def optional_document(owner: Message, name: str) -> dict[str, Any] | None:
    return document(getattr(owner, name)) if owner.HasField(name) else None


def enum_value(cls: type[E], wrapper: Any, prefix: str, number: int) -> E | None:
    """The Python enum member for a proto enum number; None when unset or unknown to this client."""
    if number == 0:
        return None
    try:
        return cls(wrapper.Name(number).removeprefix(prefix).lower())
    except ValueError:
        return None


def enum_number(cls: type[E], wrapper: Any, prefix: str, member: E | str | None, field: str) -> int:
    """The proto enum number for a Python enum member or its string value; 0 for None."""
    if member is None:
        return 0
    try:
        value = cls(member)
    except ValueError:
        allowed = ", ".join(str(item.value) for item in cls)
        raise ValueError(f"{field} must be one of {allowed}, got {member!r}") from None
    number: int = wrapper.Value(prefix + str(value.value).upper())
    return number


def job_state_number(state: models.JobState | str | None, field: str = "state") -> int:
    return enum_number(models.JobState, job_pb2.Job.State, "STATE_", state, field)


def recovery_status_number(status: models.RecoveryStatus | str | None, field: str = "recovery_status") -> int:
    return enum_number(models.RecoveryStatus, job_pb2.DeadLetterEntry.RecoveryStatus, "RECOVERY_STATUS_", status, field)


def death_reason_number(reason: models.DeathReason | str | None, field: str = "death_reason") -> int:
    return enum_number(models.DeathReason, job_pb2.DeathReason, "DEATH_REASON_", reason, field)


def retry_decision_number(decision: models.RetryDecision | str | None, field: str = "decision") -> int:
    return enum_number(models.RetryDecision, job_pb2.RetryDecision, "RETRY_DECISION_", decision, field)


# Requests


def _set_backoff(
    message: job_pb2.RetryPolicy | job_pb2.RetryRule, backoff: models.RetryPolicy | models.RetryRule
) -> None:
    if backoff.max_retries is not None:
        message.max_retries = backoff.max_retries
    for delay in backoff.retry_delays:
        message.retry_delays.append(to_duration(delay))
    if backoff.max_delay is not None:
        message.max_delay.CopyFrom(to_duration(backoff.max_delay))
    if backoff.jitter is not None:
        message.jitter = backoff.jitter


def retry_rule_message(rule: models.RetryRule) -> job_pb2.RetryRule:
    message = job_pb2.RetryRule(error_type=rule.error_type)
    _set_backoff(message, rule)
    if not rule.retryable:
        message.retryable = False
    return message


def retry_policy_message(policy: models.RetryPolicy | None) -> job_pb2.RetryPolicy | None:
    if policy is None:
        return None
    message = job_pb2.RetryPolicy(rules=[retry_rule_message(rule) for rule in policy.rules])
    _set_backoff(message, policy)
    if policy.max_retry_duration is not None:
        message.max_retry_duration.CopyFrom(to_duration(policy.max_retry_duration))
    return message


def unique_options_message(unique: models.UniqueOptions | str | None) -> job_service_pb2.UniqueOptions | None:
    if unique is None:
        return None
    if isinstance(unique, str):
        unique = models.UniqueOptions(unique_key=unique)
    message = job_service_pb2.UniqueOptions(unique_key=unique.unique_key, window=duration(unique.window))
    for state in unique.states:
        message.states.append(cast("job_pb2.Job.State", job_state_number(state, "unique.states")))
    return message


# Responses


def retry_rule(message: job_pb2.RetryRule) -> models.RetryRule:
    return models.RetryRule(
        error_type=message.error_type,
        max_retries=message.max_retries if message.HasField("max_retries") else None,
        retry_delays=tuple(delay.ToTimedelta() for delay in message.retry_delays),
        max_delay=optional_timedelta(message, "max_delay"),
        jitter=message.jitter if message.HasField("jitter") else None,
        retryable=message.retryable if message.HasField("retryable") else True,
    )


def retry_policy(message: job_pb2.RetryPolicy) -> models.RetryPolicy:
    return models.RetryPolicy(
        max_retries=message.max_retries if message.HasField("max_retries") else None,
        retry_delays=tuple(delay.ToTimedelta() for delay in message.retry_delays),
        max_delay=optional_timedelta(message, "max_delay"),
        jitter=message.jitter if message.HasField("jitter") else None,
        rules=tuple(retry_rule(rule) for rule in message.rules),
        max_retry_duration=optional_timedelta(message, "max_retry_duration"),
    )


def job_error(message: job_pb2.JobError) -> models.JobError:
    return models.JobError(
        message=message.message,
        type=message.type,
        details=message.details,
        attempt_number=message.attempt_number,
        occurred_at=optional_datetime(message, "occurred_at"),
        omitted_count=message.omitted_count,
        retry_rule=message.retry_rule,
    )


def job(message: job_pb2.Job) -> models.Job:
    return models.Job(
        job_id=message.job_id,
        queue_name=message.queue_name,
        job_name=message.job_name,
        job_data=document(message.job_data),
        state=enum_value(models.JobState, job_pb2.Job.State, "STATE_", message.state) or models.JobState.WAITING,
        priority=message.priority,
        attempt_number=message.attempt_number,
        remaining_retries=message.remaining_retries,
        retry_policy=retry_policy(message.retry_policy) if message.HasField("retry_policy") else None,
        run_at=optional_datetime(message, "run_at"),
        next_retry_at=optional_datetime(message, "next_retry_at"),
        lease_expires_at=optional_datetime(message, "lease_expires_at"),
        worker_id=message.worker_id,
        last_error=job_error(message.last_error) if message.HasField("last_error") else None,
        result=optional_document(message, "result"),
        processing_duration=optional_timedelta(message, "processing_duration"),
        created_at=optional_datetime(message, "created_at"),
        updated_at=optional_datetime(message, "updated_at"),
        started_at=optional_datetime(message, "started_at"),
        completed_at=optional_datetime(message, "completed_at"),
        dead_letter_id=message.dead_letter_id,
        trace_parent=message.trace_parent,
        unique_key=message.unique_key,
        retry_rule=message.retry_rule,
        first_failed_at=optional_datetime(message, "first_failed_at"),
        cancel_requested_at=optional_datetime(message, "cancel_requested_at"),
    )


def optional_job(owner: Message, name: str = "job") -> models.Job | None:
    return job(getattr(owner, name)) if owner.HasField(name) else None


def retry_log_entry(message: job_pb2.RetryLogEntry) -> models.RetryLogEntry:
    return models.RetryLogEntry(
        id=message.id,
        job_id=message.job_id,
        queue_name=message.queue_name,
        attempt_number=message.attempt_number,
        error=job_error(message.error) if message.HasField("error") else None,
        decision=enum_value(models.RetryDecision, job_pb2.RetryDecision, "RETRY_DECISION_", message.decision),
        retry_delay=optional_timedelta(message, "retry_delay"),
        next_retry_at=optional_datetime(message, "next_retry_at"),
        death_reason=enum_value(models.DeathReason, job_pb2.DeathReason, "DEATH_REASON_", message.death_reason),
        created_at=optional_datetime(message, "created_at"),
    )


def dead_letter_entry(message: job_pb2.DeadLetterEntry) -> models.DeadLetterEntry:
    return models.DeadLetterEntry(
        id=message.id,
        job_id=message.job_id,
        queue_name=message.queue_name,
        job_name=message.job_name,
        job_data=document(message.job_data),
        failure_reason=message.failure_reason,
        error_type=message.error_type,
        total_attempts=message.total_attempts,
        error_history=tuple(job_error(error) for error in message.error_history),
        death_reason=enum_value(models.DeathReason, job_pb2.DeathReason, "DEATH_REASON_", message.death_reason),
        recovery_status=enum_value(
            models.RecoveryStatus,
            job_pb2.DeadLetterEntry.RecoveryStatus,
            "RECOVERY_STATUS_",
            message.recovery_status,
        ),
        recovery_attempts=message.recovery_attempts,
        admin_notes=message.admin_notes,
        assigned_to=message.assigned_to,
        priority=message.priority,
        fingerprint=message.fingerprint,
        created_at=optional_datetime(message, "created_at"),
        dead_lettered_at=optional_datetime(message, "dead_lettered_at"),
        updated_at=optional_datetime(message, "updated_at"),
        resolution_reason=message.resolution_reason,
        resolved_by=message.resolved_by,
        resolved_at=optional_datetime(message, "resolved_at"),
    )


# Admin responses


def dead_letter_summary(message: admin_pb2.DeadLetterSummary) -> models.DeadLetterSummary:
    return models.DeadLetterSummary(
        total_count=message.total_count,
        pending_count=message.pending_count,
        recovered_count=message.recovered_count,
        permanently_failed_count=message.permanently_failed_count,
    )


def queue_statistics(message: admin_pb2.QueueStatistics) -> models.QueueStatistics:
    return models.QueueStatistics(
        queue_name=message.queue_name,
        paused=message.paused,
        waiting_count=message.waiting_count,
        delayed_count=message.delayed_count,
        active_count=message.active_count,
        completed_count=message.completed_count,
        failed_count=message.failed_count,
        retryable_count=message.retryable_count,
        dead_letter_count=message.dead_letter_count,
        dead_letter_summary=dead_letter_summary(message.dead_letter_summary),
        cancelled_count=message.cancelled_count,
    )


def statistics(message: admin_pb2.GetStatisticsResponse) -> models.Statistics:
    return models.Statistics(
        queues=tuple(queue_statistics(queue) for queue in message.queues),
        totals=queue_statistics(message.totals),
        computed_at=optional_datetime(message, "computed_at"),
        omitted_queue_count=message.omitted_queue_count,
    )


def queue_activity(message: admin_pb2.QueueActivity) -> models.QueueActivity:
    return models.QueueActivity(
        queue_name=message.queue_name,
        buckets=tuple(
            models.ActivityBucket(
                start=bucket.start_time.ToDatetime(tzinfo=UTC),
                completed_count=bucket.completed_count,
                failed_count=bucket.failed_count,
                retried_count=bucket.retried_count,
                dead_lettered_count=bucket.dead_lettered_count,
                cancelled_count=bucket.cancelled_count,
            )
            for bucket in message.buckets
        ),
    )


def activity(message: admin_pb2.GetQueueActivityResponse) -> models.Activity:
    return models.Activity(
        queues=tuple(queue_activity(queue) for queue in message.queues),
        totals=queue_activity(message.totals),
        start=optional_datetime(message, "start_time"),
        end=optional_datetime(message, "end_time"),
        bucket_width=optional_timedelta(message, "bucket_width"),
        omitted_queue_count=message.omitted_queue_count,
    )


def failure_pattern(message: admin_pb2.FailurePattern) -> models.FailurePattern:
    return models.FailurePattern(
        fingerprint=message.fingerprint,
        error_type=message.error_type,
        normalised_message=message.normalised_message,
        count=message.count,
        queue_names=tuple(message.queue_names),
        first_seen_at=optional_datetime(message, "first_seen_at"),
        last_seen_at=optional_datetime(message, "last_seen_at"),
        sample=dead_letter_entry(message.sample) if message.HasField("sample") else None,
        last_hour_count=message.last_hour_count,
        last_day_count=message.last_day_count,
        queue_count=message.queue_count,
    )


def redrive_progress(message: admin_pb2.RetryDeadLetterJobsResponse) -> models.RedriveProgress:
    return models.RedriveProgress(
        matched_count=message.matched_count,
        retried_count=message.retried_count,
        skipped_count=message.skipped_count,
        done=message.done,
        sample=tuple(dead_letter_entry(entry) for entry in message.sample),
        retried_ids=tuple(message.retried_ids),
        skipped=tuple(models.RedriveSkip(skip.id, skip.reason) for skip in message.skipped),
    )


def cancel_progress(message: admin_pb2.CancelJobsResponse) -> models.CancelProgress:
    return models.CancelProgress(
        matched_count=message.matched_count,
        cancelled_count=message.cancelled_count,
        cancel_requested_count=message.cancel_requested_count,
        skipped_count=message.skipped_count,
        done=message.done,
        sample=tuple(job(item) for item in message.sample),
        cancelled_ids=tuple(message.cancelled_ids),
        cancel_requested_ids=tuple(message.cancel_requested_ids),
        skipped=tuple(models.CancelSkip(skip.job_id, skip.reason) for skip in message.skipped),
    )


def queue(message: admin_pb2.Queue) -> models.Queue:
    return models.Queue(
        name=message.name,
        paused=message.paused,
        retry_policy=retry_policy(message.retry_policy) if message.HasField("retry_policy") else None,
        effective_retry_policy=retry_policy(message.effective_retry_policy)
        if message.HasField("effective_retry_policy")
        else None,
        delay_schedule=tuple(delay.ToTimedelta() for delay in message.delay_schedule),
        created_at=optional_datetime(message, "created_at"),
        updated_at=optional_datetime(message, "updated_at"),
        max_active=message.max_active if message.HasField("max_active") else None,
        max_starts_per_second=message.max_starts_per_second if message.HasField("max_starts_per_second") else None,
        circuit_breaker=circuit_breaker(message.circuit_breaker) if message.HasField("circuit_breaker") else None,
        circuit_breaker_status=circuit_breaker_status(message.circuit_breaker_status)
        if message.HasField("circuit_breaker_status")
        else None,
    )


def circuit_breaker(message: admin_pb2.CircuitBreakerPolicy) -> models.CircuitBreakerPolicy:
    return models.CircuitBreakerPolicy(
        enabled=message.enabled,
        failure_ratio=message.failure_ratio if message.HasField("failure_ratio") else None,
        min_runs=message.min_runs if message.HasField("min_runs") else None,
        window=optional_timedelta(message, "window"),
        cooldown=optional_timedelta(message, "cooldown"),
        ramp=optional_timedelta(message, "ramp"),
    )


def circuit_breaker_status(message: admin_pb2.CircuitBreakerStatus) -> models.CircuitBreakerStatus:
    state = enum_value(
        models.CircuitBreakerState, admin_pb2.CircuitBreakerState, "CIRCUIT_BREAKER_STATE_", message.state
    )
    return models.CircuitBreakerStatus(
        state=state or models.CircuitBreakerState.CLOSED,
        change_time=optional_datetime(message, "change_time"),
        open_time=optional_datetime(message, "open_time"),
        probe_job_id=message.probe_job_id,
        window_runs=message.window_runs,
        window_failures=message.window_failures,
    )


def circuit_breaker_message(policy: models.CircuitBreakerPolicy | None) -> admin_pb2.CircuitBreakerPolicy | None:
    if policy is None:
        return None
    message = admin_pb2.CircuitBreakerPolicy(enabled=policy.enabled)
    if policy.failure_ratio is not None:
        message.failure_ratio = policy.failure_ratio
    if policy.min_runs is not None:
        message.min_runs = policy.min_runs
    for name in ("window", "cooldown", "ramp"):
        value = getattr(policy, name)
        if value is not None:
            getattr(message, name).CopyFrom(to_duration(value))
    return message


def queue_alert_policy(message: admin_pb2.QueueAlertPolicy) -> models.QueueAlertPolicy:
    return models.QueueAlertPolicy(
        queue_name=message.queue_name,
        dlq_alert_threshold=message.dlq_alert_threshold if message.HasField("dlq_alert_threshold") else None,
        email_recipients=tuple(message.email_recipients),
        update_time=optional_datetime(message, "update_time"),
    )


def queue_alert_policy_message(policy: models.QueueAlertPolicy) -> admin_pb2.QueueAlertPolicy:
    return admin_pb2.QueueAlertPolicy(
        queue_name=policy.queue_name,
        dlq_alert_threshold=policy.dlq_alert_threshold,
        email_recipients=list(policy.email_recipients),
    )


def recovery_run(message: admin_pb2.RecoveryRun) -> models.RecoveryRun:
    counts = message.counts
    return models.RecoveryRun(
        id=message.id,
        started_at=optional_datetime(message, "started_at"),
        finished_at=optional_datetime(message, "finished_at"),
        status=enum_value(models.RecoveryRunStatus, admin_pb2.RecoveryRun.Status, "STATUS_", message.status),
        trigger=enum_value(models.RecoveryTrigger, admin_pb2.RecoveryRun.Trigger, "TRIGGER_", message.trigger),
        node_id=message.node_id,
        counts=models.RecoveryTaskCounts(
            due_retries=counts.due_retries,
            stalled_jobs=counts.stalled_jobs,
            exhausted_jobs=counts.exhausted_jobs,
            deleted_completed_jobs=counts.deleted_completed_jobs,
            deleted_retry_log_rows=counts.deleted_retry_log_rows,
            deleted_activity_rows=counts.deleted_activity_rows,
            dead_letter_alerts=counts.dead_letter_alerts,
            stalled_jobs_dead_lettered=counts.stalled_jobs_dead_lettered,
            dead_letter_alerts_cleared=counts.dead_letter_alerts_cleared,
            alert_webhook_failures=counts.alert_webhook_failures,
            alert_emails_sent=counts.alert_emails_sent,
            alert_email_failures=counts.alert_email_failures,
            alert_emails_given_up=counts.alert_emails_given_up,
            stalled_jobs_cancelled=counts.stalled_jobs_cancelled,
        ),
        error=message.error,
    )


def recovery_report(message: admin_pb2.GetRecoveryStatusResponse) -> models.RecoveryReport:
    return models.RecoveryReport(
        total_runs=message.total_runs,
        successful_runs=message.successful_runs,
        failed_runs=message.failed_runs,
        last_run_at=optional_datetime(message, "last_run_at"),
        last_run_duration=optional_timedelta(message, "last_run_duration"),
        next_run_at=optional_datetime(message, "next_run_at"),
        is_leader=message.is_leader,
        recent_runs=tuple(recovery_run(run) for run in message.recent_runs),
        next_page_token=message.next_page_token,
        leader_node_id=message.leader_node_id,
    )


def audit_event(message: admin_pb2.AuditEvent) -> models.AuditEvent:
    return models.AuditEvent(
        id=message.id,
        actor=message.actor,
        action=message.action,
        target=message.target,
        parameters=document(message.parameters),
        created_at=optional_datetime(message, "created_at"),
    )


# Schedules


def misfire_policy_number(policy: models.MisfirePolicy | str | None, field: str = "misfire_policy") -> int:
    return enum_number(models.MisfirePolicy, admin_pb2.Schedule.MisfirePolicy, "MISFIRE_POLICY_", policy, field)


def schedule_message(schedule: models.Schedule) -> admin_pb2.Schedule:
    return admin_pb2.Schedule(
        name=schedule.name,
        cron=schedule.cron,
        time_zone=schedule.time_zone,
        queue_name=schedule.queue_name,
        job_name=schedule.job_name,
        job_data=struct(schedule.job_data),
        retry_policy=retry_policy_message(schedule.retry_policy),
        misfire_policy=misfire_policy_number(schedule.misfire_policy),  # type: ignore[arg-type]
    )


def schedule(message: admin_pb2.Schedule) -> models.Schedule:
    return models.Schedule(
        name=message.name,
        cron=message.cron,
        time_zone=message.time_zone,
        queue_name=message.queue_name,
        job_name=message.job_name,
        job_data=optional_document(message, "job_data"),
        retry_policy=retry_policy(message.retry_policy) if message.HasField("retry_policy") else None,
        misfire_policy=enum_value(
            models.MisfirePolicy, admin_pb2.Schedule.MisfirePolicy, "MISFIRE_POLICY_", message.misfire_policy
        ),
        paused=message.paused,
        next_run_times=tuple(moment.ToDatetime(tzinfo=UTC) for moment in message.next_run_times),
        last_run_at=optional_datetime(message, "last_run_at"),
        created_at=optional_datetime(message, "created_at"),
        updated_at=optional_datetime(message, "updated_at"),
    )
