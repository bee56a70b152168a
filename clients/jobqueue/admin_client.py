"""AdminClient: every AdminService RPC with Python types; list calls return page iterators."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, cast

from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from jobqueue import _convert as convert
from jobqueue.connection import ClientCore
from jobqueue.models import (
    Activity,
    AuditEvent,
    CancelProgress,
    CircuitBreakerPolicy,
    DeadLetterDetails,
    DeadLetterEntry,
    DeadLetterRetry,
    DeathReason,
    FailurePattern,
    Job,
    JobDetails,
    JobState,
    Page,
    Queue,
    QueueAlertPolicy,
    RecoveryReport,
    RecoveryRun,
    RecoveryStatus,
    RedriveProgress,
    RetryDecision,
    RetryLogEntry,
    RetryPolicy,
    Schedule,
    Statistics,
)
from jobqueue.v1 import admin_service_pb2 as pb
from jobqueue.v1 import admin_service_pb2_grpc, job_pb2

ADMIN_SERVICE = "jobqueue.v1.AdminService"
# Reads, and writes that set a value (repeating them changes nothing more). Retrying, marking,
# cleaning, redriving and triggering act again on each call, so they are never repeated.
IDEMPOTENT_METHODS = {
    ADMIN_SERVICE: (
        "GetStatistics",
        "GetQueueActivity",
        "ListDeadLetterJobs",
        "GetDeadLetterJob",
        "UpdateDeadLetterJob",
        "ListFailurePatterns",
        "ListJobs",
        "GetJobDetails",
        "ListRetryLog",
        "ListQueues",
        "GetQueue",
        "UpdateQueuePolicy",
        "PauseQueue",
        "ResumeQueue",
        "GetRecoveryStatus",
        "ListAuditEvents",
        "ListSchedules",
        "GetSchedule",
        "UpdateSchedule",
        "PauseSchedule",
        "ResumeSchedule",
    )
}

T = TypeVar("T")
Request = TypeVar("Request", bound=Message)


class Pager(Generic[T]):
    """The result of a list call: iterate it for every item over all pages, fetched as needed.

    The first page is fetched at once, so errors surface at the call; `items`, `next_page_token`
    and `total_size` describe that first page, and `pages()` yields page by page.
    """

    def __init__(self, fetch: Callable[[str], Page[T]], page_token: str = "") -> None:
        self._fetch = fetch
        self.first_page = fetch(page_token)

    @property
    def items(self) -> tuple[T, ...]:
        return self.first_page.items

    @property
    def next_page_token(self) -> str:
        return self.first_page.next_page_token

    @property
    def total_size(self) -> int | None:
        return self.first_page.total_size

    def pages(self) -> Iterator[Page[T]]:
        page = self.first_page
        yield page
        while page.next_page_token:
            page = self._fetch(page.next_page_token)
            yield page

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.items


def dead_letter_filter(
    *,
    queue_name: str | None = None,
    recovery_status: RecoveryStatus | str | None = None,
    death_reason: DeathReason | str | None = None,
    failure_reason_contains: str | None = None,
    error_type: str | None = None,
    fingerprint: str | None = None,
    assigned_to: str | None = None,
    dead_lettered_after: datetime | None = None,
    dead_lettered_before: datetime | None = None,
) -> pb.DeadLetterFilter:
    return pb.DeadLetterFilter(
        queue_name=queue_name or "",
        recovery_status=convert.recovery_status_number(recovery_status),  # type: ignore[arg-type]
        death_reason=convert.death_reason_number(death_reason),  # type: ignore[arg-type]
        failure_reason_contains=failure_reason_contains or "",
        error_type=error_type or "",
        fingerprint=fingerprint or "",
        assigned_to=assigned_to or "",
        dead_lettered_after=convert.timestamp(dead_lettered_after),
        dead_lettered_before=convert.timestamp(dead_lettered_before),
    )


def queue_activity_request(
    queue_names: Sequence[str],
    start: datetime | None,
    end: datetime | None,
    bucket_width: timedelta | None,
    period: timedelta | None,
    max_queues: int,
) -> pb.GetQueueActivityRequest:
    return pb.GetQueueActivityRequest(
        queue_names=list(queue_names),
        start_time=convert.timestamp(start),
        end_time=convert.timestamp(end),
        bucket_width=convert.duration(bucket_width),
        period=convert.duration(period),
        max_queues=max_queues,
    )


def jobs_request(
    queue_name: str | None, state: JobState | str | None, job_name: str | None, page_size: int
) -> pb.ListJobsRequest:
    return pb.ListJobsRequest(
        queue_name=queue_name or "",
        state=convert.job_state_number(state),  # type: ignore[arg-type]
        job_name=job_name or "",
        page_size=page_size,
    )


def retry_log_request(
    job_id: str | None,
    queue_name: str | None,
    decision: RetryDecision | str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    page_size: int,
) -> pb.ListRetryLogRequest:
    return pb.ListRetryLogRequest(
        job_id=job_id or "",
        queue_name=queue_name or "",
        decision=convert.retry_decision_number(decision),  # type: ignore[arg-type]
        created_after=convert.timestamp(created_after),
        created_before=convert.timestamp(created_before),
        page_size=page_size,
    )


def queue_policy_request(
    queue_name: str,
    retry_policy: RetryPolicy | None,
    update_mask: Sequence[str],
    allow_missing: bool,
    validate_only: bool,
    max_active: int | None = None,
    max_starts_per_second: float | None = None,
    circuit_breaker: CircuitBreakerPolicy | None = None,
) -> pb.UpdateQueuePolicyRequest:
    return pb.UpdateQueuePolicyRequest(
        queue_name=queue_name,
        retry_policy=convert.retry_policy_message(retry_policy),
        update_mask=field_mask_pb2.FieldMask(paths=list(update_mask)),
        allow_missing=allow_missing,
        validate_only=validate_only,
        max_active=max_active,
        max_starts_per_second=max_starts_per_second,
        circuit_breaker=convert.circuit_breaker_message(circuit_breaker),
    )


def dead_letter_retry_request(
    id: str, retry_policy: RetryPolicy | None, job_data: Mapping[str, Any] | None
) -> pb.RetryDeadLetterJobRequest:
    return pb.RetryDeadLetterJobRequest(
        id=id, retry_policy=convert.retry_policy_message(retry_policy), job_data=convert.struct(job_data)
    )


def clean_queue_request(
    queue_name: str, state: JobState | str, grace: timedelta | None, recovery_status: RecoveryStatus | str | None
) -> pb.CleanQueueRequest:
    return pb.CleanQueueRequest(
        queue_name=queue_name,
        state=convert.job_state_number(state),  # type: ignore[arg-type]
        grace=convert.duration(grace),
        recovery_status=convert.recovery_status_number(recovery_status),  # type: ignore[arg-type]
    )


def audit_events_request(
    actor: str | None,
    action: str | None,
    target: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    page_size: int,
) -> pb.ListAuditEventsRequest:
    return pb.ListAuditEventsRequest(
        actor=actor or "",
        action=action or "",
        target=target or "",
        created_after=convert.timestamp(created_after),
        created_before=convert.timestamp(created_before),
        page_size=page_size,
    )


def with_page_token(request: Request, token: str) -> Request:
    """A copy of a list request that asks for the page at `token`."""
    page_request = type(request)()
    page_request.CopyFrom(request)
    page_request.page_token = token  # type: ignore[attr-defined]
    return page_request


def dead_letter_page(response: pb.ListDeadLetterJobsResponse) -> Page[DeadLetterEntry]:
    entries = tuple(convert.dead_letter_entry(entry) for entry in response.entries)
    return Page(entries, response.next_page_token, response.total_size)


def failure_pattern_page(response: pb.ListFailurePatternsResponse) -> Page[FailurePattern]:
    patterns = tuple(convert.failure_pattern(pattern) for pattern in response.patterns)
    return Page(patterns, response.next_page_token, response.total_size)


def job_page(response: pb.ListJobsResponse) -> Page[Job]:
    return Page(tuple(convert.job(job) for job in response.jobs), response.next_page_token, response.total_size)


def retry_log_page(response: pb.ListRetryLogResponse) -> Page[RetryLogEntry]:
    return Page(tuple(convert.retry_log_entry(entry) for entry in response.entries), response.next_page_token)


def queue_page(response: pb.ListQueuesResponse) -> Page[Queue]:
    return Page(tuple(convert.queue(queue) for queue in response.queues), response.next_page_token)


def audit_event_page(response: pb.ListAuditEventsResponse) -> Page[AuditEvent]:
    return Page(tuple(convert.audit_event(event) for event in response.events), response.next_page_token)


def schedule_page(response: pb.ListSchedulesResponse) -> Page[Schedule]:
    return Page(tuple(convert.schedule(schedule) for schedule in response.schedules), response.next_page_token)


def schedule_update_request(schedule: Schedule, update_mask: Sequence[str]) -> pb.UpdateScheduleRequest:
    return pb.UpdateScheduleRequest(
        schedule=convert.schedule_message(schedule), update_mask=field_mask_pb2.FieldMask(paths=list(update_mask))
    )


def dead_letter_details(response: pb.GetDeadLetterJobResponse) -> DeadLetterDetails:
    return DeadLetterDetails(
        entry=convert.dead_letter_entry(response.entry),
        job=convert.optional_job(response),
        retry_log=tuple(convert.retry_log_entry(entry) for entry in response.retry_log),
        retry_log_omitted_count=response.retry_log_omitted_count,
    )


def job_details(response: pb.GetJobDetailsResponse) -> JobDetails:
    return JobDetails(
        job=convert.job(response.job),
        error_history=tuple(convert.job_error(error) for error in response.error_history),
        retry_log=tuple(convert.retry_log_entry(entry) for entry in response.retry_log),
        dead_letter_entry=convert.dead_letter_entry(response.dead_letter_entry)
        if response.HasField("dead_letter_entry")
        else None,
        retry_log_omitted_count=response.retry_log_omitted_count,
    )


def dead_letter_update_request(
    id: str, admin_notes: str | None, assigned_to: str | None, priority: int | None
) -> pb.UpdateDeadLetterJobRequest:
    """A request that changes the triage fields given and names them in its update mask."""
    entry = job_pb2.DeadLetterEntry(id=id)
    mask = []
    if admin_notes is not None:
        entry.admin_notes = admin_notes
        mask.append("admin_notes")
    if assigned_to is not None:
        entry.assigned_to = assigned_to
        mask.append("assigned_to")
    if priority is not None:
        entry.priority = priority
        mask.append("priority")
    if not mask:
        raise ValueError("give at least one of admin_notes, assigned_to, priority")
    return pb.UpdateDeadLetterJobRequest(entry=entry, update_mask=field_mask_pb2.FieldMask(paths=mask))


def redrive_request(
    ids: Sequence[str] | None,
    selector: pb.DeadLetterFilter | None,
    *,
    dry_run: bool,
    retry_policy: RetryPolicy | None,
    rate_limit: float | None,
    max_jobs: int | None,
    sample_size: int | None,
) -> pb.RetryDeadLetterJobsRequest:
    """A bulk redrive of the entries `ids`, or else of those `selector` matches."""
    request = pb.RetryDeadLetterJobsRequest(
        dry_run=dry_run,
        retry_policy=convert.retry_policy_message(retry_policy),
        rate_limit=rate_limit or 0.0,
        max_jobs=max_jobs or 0,
        sample_size=sample_size or 0,
    )
    if ids is not None:
        request.ids.ids.extend(ids)
    elif selector is not None:
        request.filter.CopyFrom(selector)
    return request


def cancel_jobs_request(
    ids: Sequence[str] | None,
    *,
    queue_name: str | None,
    states: Sequence[JobState | str] | None,
    job_name: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    dry_run: bool,
    rate_limit: float | None,
    max_jobs: int | None,
    sample_size: int | None,
    reason: str,
) -> pb.CancelJobsRequest:
    """A bulk cancel of the jobs `ids`, or else of those the filters match."""
    request = pb.CancelJobsRequest(
        dry_run=dry_run,
        rate_limit=rate_limit or 0.0,
        max_jobs=max_jobs or 0,
        sample_size=sample_size or 0,
        reason=reason,
    )
    if ids is not None:
        request.ids.ids.extend(ids)
    else:
        request.filter.CopyFrom(
            pb.JobFilter(
                queue_name=queue_name or "",
                job_name=job_name or "",
                created_after=convert.timestamp(created_after),
                created_before=convert.timestamp(created_before),
            )
        )
        request.filter.states.extend(
            cast("job_pb2.Job.State", convert.job_state_number(state, "states")) for state in states or ()
        )
    return request


class AdminClient(ClientCore):
    """A client of AdminService; the options are those of JobClient. Needs an admin token."""

    stub_class = admin_service_pb2_grpc.AdminServiceStub
    stub: admin_service_pb2_grpc.AdminServiceStub
    idempotent_methods = IDEMPOTENT_METHODS

    def _call(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        return self.connection.unary(method, request, timeout)

    def _pager(
        self,
        method: Callable[..., Any],
        request: Message,
        read_page: Callable[[Any], Page[T]],
        page_token: str,
        timeout: float | None,
    ) -> Pager[T]:
        return Pager(lambda token: read_page(self._call(method, with_page_token(request, token), timeout)), page_token)

    # Statistics

    def get_statistics(
        self, queue_names: Sequence[str] = (), *, max_queues: int = 0, timeout: float | None = None
    ) -> Statistics:
        """Job counts per queue and in total, with each queue's dead-letter summary. Lists at most
        `max_queues` queues (default 100), the busiest; totals cover all of them."""
        request = pb.GetStatisticsRequest(queue_names=list(queue_names), max_queues=max_queues)
        return convert.statistics(self._call(self.stub.GetStatistics, request, timeout))

    def get_queue_activity(
        self,
        queue_names: Sequence[str] = (),
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        bucket_width: timedelta | None = None,
        period: timedelta | None = None,
        max_queues: int = 0,
        timeout: float | None = None,
    ) -> Activity:
        """Completed, failed, retried and dead-lettered jobs per queue in buckets of `bucket_width`
        (a multiple of 5 minutes; default 1 hour) from `start` (default `period`, 24 hours unless
        given, before `end`) to `end` (default now by the server's clock). Lists at most
        `max_queues` queues (default 20), the busiest; totals cover all of them."""
        request = queue_activity_request(queue_names, start, end, bucket_width, period, max_queues)
        return convert.activity(self._call(self.stub.GetQueueActivity, request, timeout))

    # Dead-letter queue

    def list_dead_letter_jobs(
        self,
        *,
        queue_name: str | None = None,
        recovery_status: RecoveryStatus | str | None = None,
        death_reason: DeathReason | str | None = None,
        failure_reason_contains: str | None = None,
        error_type: str | None = None,
        fingerprint: str | None = None,
        assigned_to: str | None = None,
        dead_lettered_after: datetime | None = None,
        dead_lettered_before: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Pager[DeadLetterEntry]:
        """Dead-letter entries, priority first then newest, without job_data and error history."""
        selector = dead_letter_filter(
            queue_name=queue_name,
            recovery_status=recovery_status,
            death_reason=death_reason,
            failure_reason_contains=failure_reason_contains,
            error_type=error_type,
            fingerprint=fingerprint,
            assigned_to=assigned_to,
            dead_lettered_after=dead_lettered_after,
            dead_lettered_before=dead_lettered_before,
        )

        request = pb.ListDeadLetterJobsRequest(filter=selector, page_size=page_size)
        return self._pager(self.stub.ListDeadLetterJobs, request, dead_letter_page, page_token, timeout)

    def get_dead_letter_job(self, id: str, *, timeout: float | None = None) -> DeadLetterDetails:
        """One entry with its payload and error history, its job, and the job's retry log."""
        return dead_letter_details(self._call(self.stub.GetDeadLetterJob, pb.GetDeadLetterJobRequest(id=id), timeout))

    def retry_dead_letter_job(
        self,
        id: str,
        *,
        retry_policy: RetryPolicy | None = None,
        job_data: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> DeadLetterRetry:
        """Send a PENDING entry's job back to its queue with a fresh retry budget; `job_data`, if given,
        replaces its payload (the audit log keeps the old one)."""
        request = dead_letter_retry_request(id, retry_policy, job_data)
        response = self._call(self.stub.RetryDeadLetterJob, request, timeout)
        return DeadLetterRetry(entry=convert.dead_letter_entry(response.entry), job=convert.job(response.job))

    def mark_permanently_failed(self, id: str, reason: str, *, timeout: float | None = None) -> DeadLetterEntry:
        """Give up on a PENDING entry for good."""
        request = pb.MarkPermanentlyFailedRequest(id=id, reason=reason)
        return convert.dead_letter_entry(self._call(self.stub.MarkPermanentlyFailed, request, timeout).entry)

    def update_dead_letter_job(
        self,
        id: str,
        *,
        admin_notes: str | None = None,
        assigned_to: str | None = None,
        priority: int | None = None,
        timeout: float | None = None,
    ) -> DeadLetterEntry:
        """Change the triage fields given (an empty string clears a text field); the others stay."""
        request = dead_letter_update_request(id, admin_notes, assigned_to, priority)
        return convert.dead_letter_entry(self._call(self.stub.UpdateDeadLetterJob, request, timeout).entry)

    def list_failure_patterns(
        self,
        *,
        queue_name: str | None = None,
        recovery_status: RecoveryStatus | str | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Pager[FailurePattern]:
        """Dead-letter entries grouped by error fingerprint, largest group first (PENDING by default)."""
        request = pb.ListFailurePatternsRequest(
            queue_name=queue_name or "",
            recovery_status=convert.recovery_status_number(recovery_status),  # type: ignore[arg-type]
            page_size=page_size,
        )
        return self._pager(self.stub.ListFailurePatterns, request, failure_pattern_page, page_token, timeout)

    def retry_dead_letter_jobs(
        self,
        *,
        ids: Sequence[str] | None = None,
        queue_name: str | None = None,
        death_reason: DeathReason | str | None = None,
        failure_reason_contains: str | None = None,
        error_type: str | None = None,
        fingerprint: str | None = None,
        assigned_to: str | None = None,
        dead_lettered_after: datetime | None = None,
        dead_lettered_before: datetime | None = None,
        dry_run: bool = False,
        retry_policy: RetryPolicy | None = None,
        rate_limit: float | None = None,
        max_jobs: int | None = None,
        sample_size: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[RedriveProgress]:
        """Bulk redrive: retry the PENDING entries listed by `ids`, or else matching the filters.

        Yields progress as the server streams it; the last item has done = True. A dry run
        changes nothing and its one message carries the matched count and a sample. There is
        no deadline unless `timeout` is given, as a rate-limited redrive may take long.
        """
        selector = (
            None
            if ids is not None
            else dead_letter_filter(
                queue_name=queue_name,
                death_reason=death_reason,
                failure_reason_contains=failure_reason_contains,
                error_type=error_type,
                fingerprint=fingerprint,
                assigned_to=assigned_to,
                dead_lettered_after=dead_lettered_after,
                dead_lettered_before=dead_lettered_before,
            )
        )
        request = redrive_request(
            ids,
            selector,
            dry_run=dry_run,
            retry_policy=retry_policy,
            rate_limit=rate_limit,
            max_jobs=max_jobs,
            sample_size=sample_size,
        )
        responses = self.connection.stream(self.stub.RetryDeadLetterJobs, request, timeout, default_deadline=False)
        for message in responses:
            yield convert.redrive_progress(message)

    def cancel_jobs(
        self,
        *,
        ids: Sequence[str] | None = None,
        queue_name: str | None = None,
        states: Sequence[JobState | str] | None = None,
        job_name: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        dry_run: bool = False,
        rate_limit: float | None = None,
        max_jobs: int | None = None,
        sample_size: int | None = None,
        reason: str = "",
        timeout: float | None = None,
    ) -> Iterator[CancelProgress]:
        """Bulk cancel: cancel the jobs listed by `ids`, or else those matching the filters (by
        default every WAITING, FAILED and ACTIVE job), each as JobClient.cancel_job does.

        Yields progress as the server streams it; the last item has done = True. A dry run
        changes nothing and its one message carries the matched count and a sample. There is
        no deadline unless `timeout` is given, as a rate-limited cancel may take long.
        """
        request = cancel_jobs_request(
            ids,
            queue_name=queue_name,
            states=states,
            job_name=job_name,
            created_after=created_after,
            created_before=created_before,
            dry_run=dry_run,
            rate_limit=rate_limit,
            max_jobs=max_jobs,
            sample_size=sample_size,
            reason=reason,
        )
        responses = self.connection.stream(self.stub.CancelJobs, request, timeout, default_deadline=False)
        for message in responses:
            yield convert.cancel_progress(message)

    # Jobs

    def list_jobs(
        self,
        *,
        queue_name: str | None = None,
        state: JobState | str | None = None,
        job_name: str | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Pager[Job]:
        """Jobs, most recently changed first, without job_data and result."""
        request = jobs_request(queue_name, state, job_name, page_size)
        return self._pager(self.stub.ListJobs, request, job_page, page_token, timeout)

    def get_job_details(self, job_id: str, *, timeout: float | None = None) -> JobDetails:
        """A job with its error history, retry log and dead-letter entry."""
        return job_details(self._call(self.stub.GetJobDetails, pb.GetJobDetailsRequest(job_id=job_id), timeout))

    def list_retry_log(
        self,
        *,
        job_id: str | None = None,
        queue_name: str | None = None,
        decision: RetryDecision | str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Pager[RetryLogEntry]:
        """Retry decisions, newest first."""
        request = retry_log_request(job_id, queue_name, decision, created_after, created_before, page_size)
        return self._pager(self.stub.ListRetryLog, request, retry_log_page, page_token, timeout)

    # Queues

    def list_queues(self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None) -> Pager[Queue]:
        """Known queues by name, with their policies and paused flags."""
        request = pb.ListQueuesRequest(page_size=page_size)
        return self._pager(self.stub.ListQueues, request, queue_page, page_token, timeout)

    def get_queue(self, queue_name: str, *, timeout: float | None = None) -> Queue:
        response = self._call(self.stub.GetQueue, pb.GetQueueRequest(queue_name=queue_name), timeout)
        return convert.queue(response.queue)

    def update_queue_policy(
        self,
        queue_name: str,
        retry_policy: RetryPolicy | None = None,
        *,
        max_active: int | None = None,
        max_starts_per_second: float | None = None,
        update_mask: Sequence[str] = (),
        allow_missing: bool = False,
        validate_only: bool = False,
        circuit_breaker: CircuitBreakerPolicy | None = None,
        timeout: float | None = None,
    ) -> Queue:
        """Set the queue's retry policy and lease limits: the fields in `update_mask`, or without
        one the whole policy and the limits given (limits left None stay as they are).

        No policy and no mask clears the policy; a limit named in the mask but left None is removed.
        `max_active` caps the queue's ACTIVE jobs and `max_starts_per_second` its start rate, over
        every worker and replica. `validate_only` previews the result without saving.
        `circuit_breaker` sets the queue's circuit breaker: whole with no mask, else as the mask's
        "circuit_breaker" or "circuit_breaker.<field>" paths say (a mask naming only those leaves
        the retry policy alone).
        """
        request = queue_policy_request(
            queue_name,
            retry_policy,
            update_mask,
            allow_missing,
            validate_only,
            max_active,
            max_starts_per_second,
            circuit_breaker,
        )
        return convert.queue(self._call(self.stub.UpdateQueuePolicy, request, timeout).queue)

    def get_queue_alert_policy(self, queue_name: str, *, timeout: float | None = None) -> QueueAlertPolicy:
        """The queue's DLQ alert threshold and email recipients (empty if never set)."""
        request = pb.GetQueueAlertPolicyRequest(queue_name=queue_name)
        return convert.queue_alert_policy(self._call(self.stub.GetQueueAlertPolicy, request, timeout).alert_policy)

    def update_queue_alert_policy(self, policy: QueueAlertPolicy, *, timeout: float | None = None) -> QueueAlertPolicy:
        """Replace the queue's alert policy; a threshold of None falls back to the server's."""
        request = pb.UpdateQueueAlertPolicyRequest(alert_policy=convert.queue_alert_policy_message(policy))
        return convert.queue_alert_policy(self._call(self.stub.UpdateQueueAlertPolicy, request, timeout).alert_policy)

    def pause_queue(self, queue_name: str, *, allow_missing: bool = False, timeout: float | None = None) -> Queue:
        """Stop leasing from the queue; enqueueing and tracking go on."""
        request = pb.PauseQueueRequest(queue_name=queue_name, allow_missing=allow_missing)
        return convert.queue(self._call(self.stub.PauseQueue, request, timeout).queue)

    def resume_queue(self, queue_name: str, *, timeout: float | None = None) -> Queue:
        request = pb.ResumeQueueRequest(queue_name=queue_name)
        return convert.queue(self._call(self.stub.ResumeQueue, request, timeout).queue)

    def clean_queue(
        self,
        queue_name: str,
        state: JobState | str,
        *,
        grace: timedelta | None = None,
        recovery_status: RecoveryStatus | str | None = None,
        timeout: float | None = None,
    ) -> int:
        """Delete the queue's jobs in `state` for longer than `grace`; returns how many."""
        request = clean_queue_request(queue_name, state, grace, recovery_status)
        deleted: int = self._call(self.stub.CleanQueue, request, timeout).deleted_count
        return deleted

    # Recovery

    def trigger_recovery(self, *, timeout: float | None = None) -> RecoveryRun:
        """Run a recovery sweep now and return its summary."""
        response = self._call(self.stub.TriggerRecovery, pb.TriggerRecoveryRequest(), timeout)
        return convert.recovery_run(response.run)

    def get_recovery_status(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> RecoveryReport:
        """Recovery totals, leadership, next run, and one page of recent runs."""
        request = pb.GetRecoveryStatusRequest(page_size=page_size, page_token=page_token)
        return convert.recovery_report(self._call(self.stub.GetRecoveryStatus, request, timeout))

    # Audit

    def list_audit_events(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> Pager[AuditEvent]:
        """Admin actions, newest first: who, what, on which target, with which parameters, when."""
        request = audit_events_request(actor, action, target, created_after, created_before, page_size)
        return self._pager(self.stub.ListAuditEvents, request, audit_event_page, page_token, timeout)

    # Schedules

    def create_schedule(self, schedule: Schedule, *, timeout: float | None = None) -> Schedule:
        """Create a cron schedule; the server fills in its next run times. AlreadyExists if the name is taken."""
        request = pb.CreateScheduleRequest(schedule=convert.schedule_message(schedule))
        return convert.schedule(self._call(self.stub.CreateSchedule, request, timeout).schedule)

    def list_schedules(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> Pager[Schedule]:
        """Schedules by name, each with its next run times."""
        request = pb.ListSchedulesRequest(page_size=page_size)
        return self._pager(self.stub.ListSchedules, request, schedule_page, page_token, timeout)

    def get_schedule(self, name: str, *, timeout: float | None = None) -> Schedule:
        return convert.schedule(self._call(self.stub.GetSchedule, pb.GetScheduleRequest(name=name), timeout).schedule)

    def update_schedule(
        self, schedule: Schedule, *, update_mask: Sequence[str] = (), timeout: float | None = None
    ) -> Schedule:
        """Change the fields of `schedule.name` listed in `update_mask` (all of them without one)."""
        request = schedule_update_request(schedule, update_mask)
        return convert.schedule(self._call(self.stub.UpdateSchedule, request, timeout).schedule)

    def pause_schedule(self, name: str, *, timeout: float | None = None) -> Schedule:
        return convert.schedule(
            self._call(self.stub.PauseSchedule, pb.PauseScheduleRequest(name=name), timeout).schedule
        )

    def resume_schedule(self, name: str, *, timeout: float | None = None) -> Schedule:
        """Start again at the first slot after now; slots passed while paused never run."""
        request = pb.ResumeScheduleRequest(name=name)
        return convert.schedule(self._call(self.stub.ResumeSchedule, request, timeout).schedule)

    def delete_schedule(self, name: str, *, timeout: float | None = None) -> None:
        """Delete the schedule; jobs it already enqueued stay."""
        self._call(self.stub.DeleteSchedule, pb.DeleteScheduleRequest(name=name), timeout)
