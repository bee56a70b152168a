"""Conversion between protobuf messages and core values."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as job_service_pb

from queue_service.api import breaker_convert
from queue_service.api.scalars import (  # noqa: F401 - part of this module's interface
    EPOCH,
    JOB_ENVELOPE_BYTES,
    MAX_DELIVERABLE_JOB_DATA_BYTES,
    MAX_DURATION_SECONDS,
    deliverable_document,
    document,
    duration,
    duration_ms,
    finite,
    optional_datetime,
    optional_timedelta,
    set_struct,
    set_timestamp,
    struct,
    timestamp,
    to_datetime,
    to_timedelta,
)
from queue_service.core.alert_policies import QueueAlertPolicy
from queue_service.core.audit import AuditQuery
from queue_service.core.cancellations import BulkCancelProgress, BulkCancelRequest
from queue_service.core.dead_letters import FailurePattern, RedriveProgress, RedriveRequest
from queue_service.core.errors import InvalidArgument
from queue_service.core.jobs import JobView, ReportedError
from queue_service.core.queues import Activity, QueueActivity, QueueStatistics, QueueView, RetryLogQuery, Statistics
from queue_service.core.retry import PolicyOverride, RetryPolicy, RetryRule, policy_from_json
from queue_service.core.sweep.runner import Trigger
from queue_service.core.sweep.runs import RecoveryRunStats
from queue_service.core.unique import UniqueOptions
from queue_service.domain import (
    AuditEventRecord,
    DeadLetterFilter,
    DeadLetterRecord,
    DeadLetterSummary,
    DeathReason,
    Decision,
    ErrorInfo,
    JobFilter,
    JobState,
    LeaseLimits,
    RecoveryRunRecord,
    RecoveryStatus,
    RetryLogRecord,
    RunStatus,
)

JOB_STATES = {
    JobState.WAITING: job_pb2.Job.STATE_WAITING,
    JobState.ACTIVE: job_pb2.Job.STATE_ACTIVE,
    JobState.COMPLETED: job_pb2.Job.STATE_COMPLETED,
    JobState.FAILED: job_pb2.Job.STATE_FAILED,
    JobState.DEAD_LETTER: job_pb2.Job.STATE_DEAD_LETTER,
    JobState.CANCELLED: job_pb2.Job.STATE_CANCELLED,
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
    DeathReason.RETRY_DEADLINE_EXCEEDED: job_pb2.DEATH_REASON_RETRY_DEADLINE_EXCEEDED,
}
DEATH_REASONS_FROM_PROTO = {value: key for key, value in DEATH_REASONS.items()}
DECISIONS = {Decision.RETRY: job_pb2.RETRY_DECISION_RETRY, Decision.DEAD_LETTER: job_pb2.RETRY_DECISION_DEAD_LETTER}
DECISIONS_FROM_PROTO = {value: key for key, value in DECISIONS.items()}

# Requests


def _backoff(message: job_pb2.RetryPolicy | job_pb2.RetryRule, field: str) -> dict[str, Any]:
    return {
        "max_retries": message.max_retries if message.HasField("max_retries") else None,
        "retry_delays": tuple(
            to_timedelta(delay, f"{field}.retry_delays[{index}]") for index, delay in enumerate(message.retry_delays)
        ),
        "max_delay": to_timedelta(message.max_delay, f"{field}.max_delay") if message.HasField("max_delay") else None,
        "jitter": finite(message.jitter, f"{field}.jitter") if message.HasField("jitter") else None,
    }


def retry_rule(message: job_pb2.RetryRule, field: str) -> RetryRule:
    return RetryRule(
        error_type=message.error_type,
        retryable=message.retryable if message.HasField("retryable") else True,
        **_backoff(message, field),
    )


def policy_override(message: job_pb2.RetryPolicy, field: str = "retry_policy") -> PolicyOverride:
    return PolicyOverride(
        **_backoff(message, field),
        rules=tuple(retry_rule(rule, f"{field}.rules[{index}]") for index, rule in enumerate(message.rules)),
        max_retry_duration=optional_timedelta(message, "max_retry_duration", f"{field}.max_retry_duration"),
    )


def unique_options(message: job_service_pb.UniqueOptions, prefix: str = "unique.") -> UniqueOptions:
    """The producer's unique options; the key, window and state rules are checked by the core."""
    states = frozenset(
        enum_value(JOB_STATES_FROM_PROTO, value, f"{prefix}states", optional=False) for value in message.states
    )
    return UniqueOptions(
        key=message.unique_key,
        window=optional_timedelta(message, "window", f"{prefix}window"),
        states=states or None,
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
        omitted_count=error.omitted,
        retry_rule=error.retry_rule,
    )


def _set_backoff(message: job_pb2.RetryPolicy | job_pb2.RetryRule, backoff: RetryRule | PolicyOverride) -> None:
    if backoff.max_retries is not None:
        message.max_retries = backoff.max_retries
    message.retry_delays.extend(duration(delay) for delay in backoff.retry_delays)
    if backoff.max_delay is not None:
        message.max_delay.CopyFrom(duration(backoff.max_delay))
    if backoff.jitter is not None:
        message.jitter = backoff.jitter


def retry_rule_message(rule: RetryRule) -> job_pb2.RetryRule:
    message = job_pb2.RetryRule(error_type=rule.error_type)
    _set_backoff(message, rule)
    if not rule.retryable:
        message.retryable = False
    return message


def retry_policy_message(stored: dict[str, Any] | None) -> job_pb2.RetryPolicy | None:
    if not stored:
        return None
    override = policy_from_json(stored)
    message = job_pb2.RetryPolicy(rules=[retry_rule_message(rule) for rule in override.rules])
    _set_backoff(message, override)
    if override.max_retry_duration is not None:
        message.max_retry_duration.CopyFrom(duration(override.max_retry_duration))
    return message


def job_message(view: JobView, *, summary: bool = False) -> job_pb2.Job:
    """The job; a summary leaves out job_data and result, which can be large."""
    message = job_pb2.Job()
    write_job(message, view, summary=summary)
    return message


def write_job(
    message: job_pb2.Job, view: JobView, *, summary: bool = False, job_data: struct_pb2.Struct | None = None
) -> None:
    """`job_message(view)` written into `message`, an empty Job, such as a reply's own field: a reply
    of many jobs then copies none of them. `job_data`, when given, is the job's job_data as a
    message already (what created it sent), copied as it is."""
    # Only the fields a job has are set, each once and in place: every leased job passes here,
    # and building the unset ones as defaults, or each value apart and then copying it, cost more.
    job = view.record
    message.job_id = job.job_id
    message.queue_name = job.queue_name
    message.job_name = job.job_name
    message.state = JOB_STATES[job.state]
    message.attempt_number = job.attempt_number
    if job.priority:
        message.priority = job.priority
    if view.remaining_retries:
        message.remaining_retries = view.remaining_retries
    if job.worker_id:
        message.worker_id = job.worker_id
    if job.dead_letter_id:
        message.dead_letter_id = job.dead_letter_id
    if job.trace_parent:
        message.trace_parent = job.trace_parent
    if job.unique_key:
        message.unique_key = job.unique_key
    if job.retry_rule:
        message.retry_rule = job.retry_rule
    if not summary and job.job_data is not None:
        if job_data is not None:
            message.job_data.CopyFrom(job_data)
        else:
            set_struct(message.job_data, job.job_data)
    if not summary and job.result is not None:
        set_struct(message.result, job.result)
    if job.retry_policy:
        message.retry_policy.CopyFrom(retry_policy_message(job.retry_policy))
    if job.last_error is not None:
        message.last_error.CopyFrom(job_error(job.last_error))
    if job.processing_duration_ms is not None:
        message.processing_duration.CopyFrom(duration_ms(job.processing_duration_ms))
    if job.run_at is not None:
        set_timestamp(message.run_at, job.run_at)
        if job.state == JobState.FAILED:
            set_timestamp(message.next_retry_at, job.run_at)
    if job.state == JobState.ACTIVE and job.lease_expires_at is not None:
        set_timestamp(message.lease_expires_at, job.lease_expires_at)
    for name in _JOB_TIMES:
        value = getattr(job, name)
        if value is not None:
            set_timestamp(getattr(message, name), value)


# The job's times that a Job message carries under the same name whenever they are set.
_JOB_TIMES = ("created_at", "updated_at", "started_at", "completed_at", "first_failed_at", "cancel_requested_at")


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


def dead_letter_summary_message(entry: DeadLetterSummary) -> job_pb2.DeadLetterEntry:
    """The entry without job_data and error_history, which can be large."""
    return _with_dead_letter_times(job_pb2.DeadLetterEntry(**_dead_letter_summary_fields(entry)), entry)


def dead_letter_message(entry: DeadLetterRecord) -> job_pb2.DeadLetterEntry:
    message = job_pb2.DeadLetterEntry(
        **_dead_letter_summary_fields(entry),
        job_data=struct(entry.job_data),
        error_history=[job_error(error) for error in entry.error_history],
    )
    return _with_dead_letter_times(message, entry)


def _with_dead_letter_times(message: job_pb2.DeadLetterEntry, entry: DeadLetterSummary) -> job_pb2.DeadLetterEntry:
    """Sets the entry's timestamps in place: a page sets four per entry."""
    set_timestamp(message.created_at, entry.created_at)
    set_timestamp(message.dead_lettered_at, entry.dead_lettered_at)
    set_timestamp(message.updated_at, entry.updated_at)
    if entry.resolved_at is not None:
        set_timestamp(message.resolved_at, entry.resolved_at)
    return message


def _dead_letter_summary_fields(entry: DeadLetterSummary) -> dict[str, Any]:
    return {
        "id": entry.id,
        "job_id": entry.job_id,
        "queue_name": entry.queue_name,
        "job_name": entry.job_name,
        "failure_reason": entry.failure_reason,
        "error_type": entry.error_type,
        "total_attempts": entry.total_attempts,
        "death_reason": DEATH_REASONS[entry.death_reason],
        "recovery_status": RECOVERY_STATUSES[entry.recovery_status],
        "recovery_attempts": entry.recovery_attempts,
        "admin_notes": entry.admin_notes,
        "assigned_to": entry.assigned_to,
        "priority": entry.priority,
        "fingerprint": entry.fingerprint,
        "resolution_reason": entry.resolution_reason,
        "resolved_by": entry.resolved_by,
    }


# Admin requests


def enum_value(mapping: dict, value: int, field: str, *, optional: bool = True):
    """The core value of a proto enum; unspecified is None when optional, unknown numbers are errors."""
    if value == 0 and optional:
        return None
    if value not in mapping:
        raise InvalidArgument(f"{field} has an unknown value {value}", field=field)
    return mapping[value]


def dead_letter_filter(message: admin_pb.DeadLetterFilter, prefix: str = "filter.") -> DeadLetterFilter:
    return DeadLetterFilter(
        queue_name=message.queue_name or None,
        recovery_status=enum_value(RECOVERY_STATUSES_FROM_PROTO, message.recovery_status, f"{prefix}recovery_status"),
        death_reason=enum_value(DEATH_REASONS_FROM_PROTO, message.death_reason, f"{prefix}death_reason"),
        failure_reason_contains=message.failure_reason_contains or None,
        error_type=message.error_type or None,
        fingerprint=message.fingerprint or None,
        assigned_to=message.assigned_to or None,
        dead_lettered_after=optional_datetime(message, "dead_lettered_after", f"{prefix}dead_lettered_after"),
        dead_lettered_before=optional_datetime(message, "dead_lettered_before", f"{prefix}dead_lettered_before"),
    )


def optional_policy(owner, name: str = "retry_policy") -> PolicyOverride | None:
    return policy_override(getattr(owner, name), name) if owner.HasField(name) else None


def redrive_request(message: admin_pb.RetryDeadLetterJobsRequest) -> RedriveRequest:
    selector = message.WhichOneof("selector")
    return RedriveRequest(
        filter=dead_letter_filter(message.filter) if selector == "filter" else None,
        ids=tuple(message.ids.ids) if selector == "ids" else (),
        dry_run=message.dry_run,
        retry_policy=optional_policy(message),
        rate_limit=message.rate_limit,
        max_jobs=message.max_jobs,
        sample_size=message.sample_size,
    )


def job_filter(message: admin_pb.JobFilter, prefix: str = "filter.") -> JobFilter:
    return JobFilter(
        states=tuple(
            enum_value(JOB_STATES_FROM_PROTO, state, f"{prefix}states", optional=False) for state in message.states
        ),
        queue_name=message.queue_name or None,
        job_name=message.job_name or None,
        created_after=optional_datetime(message, "created_after", f"{prefix}created_after"),
        created_before=optional_datetime(message, "created_before", f"{prefix}created_before"),
    )


def bulk_cancel_request(message: admin_pb.CancelJobsRequest) -> BulkCancelRequest:
    selector = message.WhichOneof("selector")
    return BulkCancelRequest(
        filter=job_filter(message.filter) if selector == "filter" else None,
        ids=tuple(message.ids.ids) if selector == "ids" else (),
        dry_run=message.dry_run,
        rate_limit=message.rate_limit,
        max_jobs=message.max_jobs,
        sample_size=message.sample_size,
        reason=message.reason,
    )


def bulk_cancel_progress_message(progress: BulkCancelProgress) -> admin_pb.CancelJobsResponse:
    return admin_pb.CancelJobsResponse(
        matched_count=progress.matched_count,
        cancelled_count=progress.cancelled_count,
        cancel_requested_count=progress.cancel_requested_count,
        skipped_count=progress.skipped_count,
        done=progress.done,
        sample=[job_message(job, summary=True) for job in progress.sample],
        cancelled_ids=progress.cancelled_ids,
        cancel_requested_ids=progress.cancel_requested_ids,
        skipped=[admin_pb.CancelSkip(job_id=job_id, reason=reason) for job_id, reason in progress.skipped],
    )


def retry_log_query(message: admin_pb.ListRetryLogRequest) -> RetryLogQuery:
    return RetryLogQuery(
        job_id=message.job_id,
        queue_name=message.queue_name,
        decision=enum_value(DECISIONS_FROM_PROTO, message.decision, "decision"),
        created_after=optional_datetime(message, "created_after"),
        created_before=optional_datetime(message, "created_before"),
    )


def audit_query(message: admin_pb.ListAuditEventsRequest) -> AuditQuery:
    return AuditQuery(
        actor=message.actor,
        action=message.action,
        target=message.target,
        created_after=optional_datetime(message, "created_after"),
        created_before=optional_datetime(message, "created_before"),
    )


def dead_letter_changes(message: admin_pb.UpdateDeadLetterJobRequest, updatable: tuple[str, ...]) -> dict[str, Any]:
    """The triage fields an UpdateDeadLetterJob request changes, per its update_mask (AIP-134)."""
    entry = message.entry
    paths = list(message.update_mask.paths)
    if not paths:
        # No mask: the fields set to a non-default value.
        return {name: getattr(entry, name) for name in updatable if getattr(entry, name)}
    if paths == ["*"]:
        return {name: getattr(entry, name) for name in updatable}
    changes: dict[str, Any] = {}
    for index, path in enumerate(paths):
        if path not in updatable:
            raise InvalidArgument(
                f"update_mask.paths[{index}] {path!r} cannot be updated; use {', '.join(updatable)} or *",
                field="update_mask",
            )
        changes[path] = getattr(entry, path)
    return changes


# Admin responses


def full_policy_message(policy: RetryPolicy) -> job_pb2.RetryPolicy:
    return job_pb2.RetryPolicy(
        max_retries=policy.max_retries,
        retry_delays=[duration(delay) for delay in policy.retry_delays],
        max_delay=duration(policy.max_delay),
        jitter=policy.jitter,
        rules=[retry_rule_message(scoped.rule) for scoped in policy.rules],
        max_retry_duration=duration(policy.max_retry_duration),
    )


def queue_message(view: QueueView) -> admin_pb.Queue:
    record = view.record
    return admin_pb.Queue(
        name=record.name,
        paused=record.paused,
        retry_policy=retry_policy_message(record.retry_policy),
        effective_retry_policy=full_policy_message(view.effective_policy),
        delay_schedule=[duration(delay) for delay in view.delay_schedule],
        created_at=timestamp(record.created_at),
        updated_at=timestamp(record.updated_at),
        max_active=view.limits.max_active,
        max_starts_per_second=view.limits.max_starts_per_second,
        **breaker_convert.queue_fields(view.breaker, view.breaker_counts),
    )


def lease_limits(message) -> LeaseLimits:
    """The limits an UpdateQueuePolicyRequest holds; unset ones are None."""
    return LeaseLimits(
        max_active=message.max_active if message.HasField("max_active") else None,
        max_starts_per_second=message.max_starts_per_second if message.HasField("max_starts_per_second") else None,
    )


def queue_statistics_message(stats: QueueStatistics) -> admin_pb.QueueStatistics:
    return admin_pb.QueueStatistics(
        queue_name=stats.queue_name,
        paused=stats.paused,
        waiting_count=stats.waiting,
        delayed_count=stats.delayed,
        active_count=stats.active,
        completed_count=stats.completed,
        failed_count=stats.failed,
        retryable_count=stats.retryable,
        dead_letter_count=stats.dead_letter,
        cancelled_count=stats.cancelled,
        dead_letter_summary=admin_pb.DeadLetterSummary(
            total_count=stats.dead_letters_total,
            pending_count=stats.dead_letters_pending,
            recovered_count=stats.dead_letters_recovered,
            permanently_failed_count=stats.dead_letters_permanently_failed,
        ),
    )


def statistics_response(stats: Statistics) -> admin_pb.GetStatisticsResponse:
    return admin_pb.GetStatisticsResponse(
        queues=[queue_statistics_message(item) for item in stats.queues],
        totals=queue_statistics_message(stats.totals),
        computed_at=timestamp(stats.computed_at),
        omitted_queue_count=stats.omitted,
    )


def queue_activity_message(activity: QueueActivity) -> admin_pb.QueueActivity:
    return admin_pb.QueueActivity(
        queue_name=activity.queue_name,
        buckets=[
            admin_pb.ActivityBucket(
                start_time=timestamp(bucket.start),
                completed_count=bucket.completed,
                failed_count=bucket.failed,
                retried_count=bucket.retried,
                dead_lettered_count=bucket.dead_lettered,
                cancelled_count=bucket.cancelled,
            )
            for bucket in activity.buckets
        ],
    )


def activity_response(activity: Activity) -> admin_pb.GetQueueActivityResponse:
    return admin_pb.GetQueueActivityResponse(
        queues=[queue_activity_message(item) for item in activity.queues],
        totals=queue_activity_message(activity.totals),
        start_time=timestamp(activity.start),
        end_time=timestamp(activity.end),
        bucket_width=duration(activity.bucket_width),
        omitted_queue_count=activity.omitted,
    )


def failure_pattern_message(pattern: FailurePattern) -> admin_pb.FailurePattern:
    row = pattern.row
    return admin_pb.FailurePattern(
        fingerprint=row.fingerprint,
        error_type=row.error_type,
        normalised_message=pattern.normalised_message,
        count=row.count,
        queue_names=pattern.queue_names,
        first_seen_at=timestamp(row.first_seen_at),
        last_seen_at=timestamp(row.last_seen_at),
        sample=dead_letter_summary_message(pattern.sample) if pattern.sample else None,
        last_hour_count=row.last_hour_count,
        last_day_count=row.last_day_count,
        queue_count=pattern.queue_count,
    )


def redrive_progress_message(progress: RedriveProgress) -> admin_pb.RetryDeadLetterJobsResponse:
    return admin_pb.RetryDeadLetterJobsResponse(
        matched_count=progress.matched_count,
        retried_count=progress.retried_count,
        skipped_count=progress.skipped_count,
        done=progress.done,
        sample=[dead_letter_summary_message(entry) for entry in progress.sample],
        retried_ids=progress.retried_ids,
        skipped=[admin_pb.RedriveSkip(id=entry_id, reason=reason) for entry_id, reason in progress.skipped],
    )


def audit_event_message(event: AuditEventRecord) -> admin_pb.AuditEvent:
    return admin_pb.AuditEvent(
        id=event.id,
        actor=event.actor,
        action=event.action,
        target=event.target,
        parameters=struct(event.parameters),
        created_at=timestamp(event.created_at),
    )


# Recovery runs

RUN_STATUSES = {
    RunStatus.RUNNING: admin_pb.RecoveryRun.STATUS_RUNNING,
    RunStatus.SUCCEEDED: admin_pb.RecoveryRun.STATUS_SUCCEEDED,
    RunStatus.FAILED: admin_pb.RecoveryRun.STATUS_FAILED,
}
# The `recover` command counts as a manual run.
RUN_TRIGGERS = {
    Trigger.SCHEDULED: admin_pb.RecoveryRun.TRIGGER_SCHEDULED,
    Trigger.MANUAL: admin_pb.RecoveryRun.TRIGGER_MANUAL,
    Trigger.CLI: admin_pb.RecoveryRun.TRIGGER_MANUAL,
}
RECOVERY_COUNT_FIELDS = frozenset(admin_pb.RecoveryTaskCounts.DESCRIPTOR.fields_by_name)


def recovery_run_message(run: RecoveryRunRecord) -> admin_pb.RecoveryRun:
    return admin_pb.RecoveryRun(
        id=run.id,
        started_at=timestamp(run.started_at),
        finished_at=timestamp(run.finished_at),
        status=RUN_STATUSES[run.status],
        trigger=RUN_TRIGGERS.get(run.trigger, admin_pb.RecoveryRun.TRIGGER_UNSPECIFIED),
        node_id=run.node_id,
        # Counts a newer server version added are left out rather than refused.
        counts=admin_pb.RecoveryTaskCounts(
            **{name: value for name, value in run.counts.items() if name in RECOVERY_COUNT_FIELDS}
        ),
        error=run.error or "",
    )


def recovery_status_response(stats: RecoveryRunStats, *, is_leader: bool) -> admin_pb.GetRecoveryStatusResponse:
    last_finished = stats.last_finished
    leader = stats.leader
    return admin_pb.GetRecoveryStatusResponse(
        total_runs=stats.totals.total,
        successful_runs=stats.totals.succeeded,
        failed_runs=stats.totals.failed,
        last_run_at=timestamp(stats.latest.started_at) if stats.latest else None,
        last_run_duration=duration(last_finished.duration) if last_finished else None,
        next_run_at=timestamp(leader.next_run_at) if leader else None,
        is_leader=is_leader,
        recent_runs=[recovery_run_message(run) for run in stats.recent.items],
        next_page_token=stats.recent.next_page_token,
        leader_node_id=leader.holder if leader else "",
    )


def alert_policy_message(policy: QueueAlertPolicy) -> admin_pb.QueueAlertPolicy:
    return admin_pb.QueueAlertPolicy(
        queue_name=policy.queue_name,
        dlq_alert_threshold=policy.dlq_alert_threshold,
        email_recipients=list(policy.email_recipients),
        update_time=timestamp(policy.updated_at),
    )


def alert_policy(message: admin_pb.QueueAlertPolicy) -> QueueAlertPolicy:
    return QueueAlertPolicy(
        queue_name=message.queue_name,
        dlq_alert_threshold=message.dlq_alert_threshold if message.HasField("dlq_alert_threshold") else None,
        email_recipients=tuple(message.email_recipients),
    )
