"""The asyncio AdminClient: the synchronous AdminClient's methods, models and errors, awaited over grpc.aio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from jobqueue import _convert as convert
from jobqueue.admin_client import (
    IDEMPOTENT_METHODS,
    audit_event_page,
    audit_events_request,
    cancel_jobs_request,
    clean_queue_request,
    dead_letter_details,
    dead_letter_filter,
    dead_letter_page,
    dead_letter_retry_request,
    dead_letter_update_request,
    failure_pattern_page,
    job_details,
    job_page,
    jobs_request,
    queue_activity_request,
    queue_page,
    queue_policy_request,
    redrive_request,
    retry_log_page,
    retry_log_request,
    schedule_page,
    schedule_update_request,
    with_page_token,
)
from jobqueue.aio.connection import ClientCore
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
from jobqueue.v1 import admin_service_pb2_grpc

T = TypeVar("T")


class AsyncPager(Generic[T]):
    """The result of a list call: `async for` it for every item over all pages, fetched as needed.

    The list call awaits the first page, so errors surface there; `items`, `next_page_token`
    and `total_size` describe that first page, and `pages()` yields page by page.
    """

    def __init__(self, fetch: Callable[[str], Awaitable[Page[T]]], first_page: Page[T]) -> None:
        self._fetch = fetch
        self.first_page = first_page

    @classmethod
    async def start(cls, fetch: Callable[[str], Awaitable[Page[T]]], page_token: str = "") -> AsyncPager[T]:
        return cls(fetch, await fetch(page_token))

    @property
    def items(self) -> tuple[T, ...]:
        return self.first_page.items

    @property
    def next_page_token(self) -> str:
        return self.first_page.next_page_token

    @property
    def total_size(self) -> int | None:
        return self.first_page.total_size

    async def pages(self) -> AsyncIterator[Page[T]]:
        page = self.first_page
        yield page
        while page.next_page_token:
            page = await self._fetch(page.next_page_token)
            yield page

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item


class AdminClient(ClientCore):
    """An asyncio client of AdminService; the options and methods are those of jobqueue.AdminClient.

    List calls return an AsyncPager. Create the client inside a running event loop.
    """

    stub_class = admin_service_pb2_grpc.AdminServiceStub
    stub: admin_service_pb2_grpc.AdminServiceStub
    idempotent_methods = IDEMPOTENT_METHODS

    async def _call(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        return await self.connection.unary(method, request, timeout)

    async def _pager(
        self,
        method: Callable[..., Any],
        request: Message,
        read_page: Callable[[Any], Page[T]],
        page_token: str,
        timeout: float | None,
    ) -> AsyncPager[T]:
        async def fetch(token: str) -> Page[T]:
            return read_page(await self._call(method, with_page_token(request, token), timeout))

        return await AsyncPager.start(fetch, page_token)

    # Statistics

    async def get_statistics(
        self, queue_names: Sequence[str] = (), *, max_queues: int = 0, timeout: float | None = None
    ) -> Statistics:
        """Job counts per queue and in total, with each queue's dead-letter summary. Lists at most
        `max_queues` queues (default 100), the busiest; totals cover all of them."""
        request = pb.GetStatisticsRequest(queue_names=list(queue_names), max_queues=max_queues)
        return convert.statistics(await self._call(self.stub.GetStatistics, request, timeout))

    async def get_queue_activity(
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
        """Jobs per queue and outcome in time buckets; see jobqueue.AdminClient.get_queue_activity."""
        request = queue_activity_request(queue_names, start, end, bucket_width, period, max_queues)
        return convert.activity(await self._call(self.stub.GetQueueActivity, request, timeout))

    # Dead-letter queue

    async def list_dead_letter_jobs(
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
    ) -> AsyncPager[DeadLetterEntry]:
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
        return await self._pager(self.stub.ListDeadLetterJobs, request, dead_letter_page, page_token, timeout)

    async def get_dead_letter_job(self, id: str, *, timeout: float | None = None) -> DeadLetterDetails:
        """One entry with its payload and error history, its job, and the job's retry log."""
        response = await self._call(self.stub.GetDeadLetterJob, pb.GetDeadLetterJobRequest(id=id), timeout)
        return dead_letter_details(response)

    async def retry_dead_letter_job(
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
        response = await self._call(self.stub.RetryDeadLetterJob, request, timeout)
        return DeadLetterRetry(entry=convert.dead_letter_entry(response.entry), job=convert.job(response.job))

    async def mark_permanently_failed(self, id: str, reason: str, *, timeout: float | None = None) -> DeadLetterEntry:
        """Give up on a PENDING entry for good."""
        request = pb.MarkPermanentlyFailedRequest(id=id, reason=reason)
        return convert.dead_letter_entry((await self._call(self.stub.MarkPermanentlyFailed, request, timeout)).entry)

    async def update_dead_letter_job(
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
        return convert.dead_letter_entry((await self._call(self.stub.UpdateDeadLetterJob, request, timeout)).entry)

    async def list_failure_patterns(
        self,
        *,
        queue_name: str | None = None,
        recovery_status: RecoveryStatus | str | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> AsyncPager[FailurePattern]:
        """Dead-letter entries grouped by error fingerprint, largest group first (PENDING by default)."""
        request = pb.ListFailurePatternsRequest(
            queue_name=queue_name or "",
            recovery_status=convert.recovery_status_number(recovery_status),  # type: ignore[arg-type]
            page_size=page_size,
        )
        return await self._pager(self.stub.ListFailurePatterns, request, failure_pattern_page, page_token, timeout)

    async def retry_dead_letter_jobs(
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
    ) -> AsyncIterator[RedriveProgress]:
        """Bulk redrive, `async for` its progress; see jobqueue.AdminClient.retry_dead_letter_jobs."""
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
        async for message in responses:
            yield convert.redrive_progress(message)

    async def cancel_jobs(
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
    ) -> AsyncIterator[CancelProgress]:
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
        async for message in responses:
            yield convert.cancel_progress(message)

    # Jobs

    async def list_jobs(
        self,
        *,
        queue_name: str | None = None,
        state: JobState | str | None = None,
        job_name: str | None = None,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> AsyncPager[Job]:
        """Jobs, most recently changed first, without job_data and result."""
        request = jobs_request(queue_name, state, job_name, page_size)
        return await self._pager(self.stub.ListJobs, request, job_page, page_token, timeout)

    async def get_job_details(self, job_id: str, *, timeout: float | None = None) -> JobDetails:
        """A job with its error history, retry log and dead-letter entry."""
        response = await self._call(self.stub.GetJobDetails, pb.GetJobDetailsRequest(job_id=job_id), timeout)
        return job_details(response)

    async def list_retry_log(
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
    ) -> AsyncPager[RetryLogEntry]:
        """Retry decisions, newest first."""
        request = retry_log_request(job_id, queue_name, decision, created_after, created_before, page_size)
        return await self._pager(self.stub.ListRetryLog, request, retry_log_page, page_token, timeout)

    # Queues

    async def list_queues(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> AsyncPager[Queue]:
        """Known queues by name, with their policies and paused flags."""
        request = pb.ListQueuesRequest(page_size=page_size)
        return await self._pager(self.stub.ListQueues, request, queue_page, page_token, timeout)

    async def get_queue(self, queue_name: str, *, timeout: float | None = None) -> Queue:
        response = await self._call(self.stub.GetQueue, pb.GetQueueRequest(queue_name=queue_name), timeout)
        return convert.queue(response.queue)

    async def update_queue_policy(
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
        """Set the queue's retry policy, lease limits and circuit breaker; see jobqueue.AdminClient.update_queue_policy."""
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
        return convert.queue((await self._call(self.stub.UpdateQueuePolicy, request, timeout)).queue)

    async def get_queue_alert_policy(self, queue_name: str, *, timeout: float | None = None) -> QueueAlertPolicy:
        """The queue's alert policy; see jobqueue.AdminClient.get_queue_alert_policy."""
        request = pb.GetQueueAlertPolicyRequest(queue_name=queue_name)
        response = await self._call(self.stub.GetQueueAlertPolicy, request, timeout)
        return convert.queue_alert_policy(response.alert_policy)

    async def update_queue_alert_policy(
        self, policy: QueueAlertPolicy, *, timeout: float | None = None
    ) -> QueueAlertPolicy:
        """Replace the queue's alert policy; see jobqueue.AdminClient.update_queue_alert_policy."""
        request = pb.UpdateQueueAlertPolicyRequest(alert_policy=convert.queue_alert_policy_message(policy))
        response = await self._call(self.stub.UpdateQueueAlertPolicy, request, timeout)
        return convert.queue_alert_policy(response.alert_policy)

    async def pause_queue(self, queue_name: str, *, allow_missing: bool = False, timeout: float | None = None) -> Queue:
        """Stop leasing from the queue; enqueueing and tracking go on."""
        request = pb.PauseQueueRequest(queue_name=queue_name, allow_missing=allow_missing)
        return convert.queue((await self._call(self.stub.PauseQueue, request, timeout)).queue)

    async def resume_queue(self, queue_name: str, *, timeout: float | None = None) -> Queue:
        request = pb.ResumeQueueRequest(queue_name=queue_name)
        return convert.queue((await self._call(self.stub.ResumeQueue, request, timeout)).queue)

    async def clean_queue(
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
        deleted: int = (await self._call(self.stub.CleanQueue, request, timeout)).deleted_count
        return deleted

    # Recovery

    async def trigger_recovery(self, *, timeout: float | None = None) -> RecoveryRun:
        """Run a recovery sweep now and return its summary."""
        response = await self._call(self.stub.TriggerRecovery, pb.TriggerRecoveryRequest(), timeout)
        return convert.recovery_run(response.run)

    async def get_recovery_status(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> RecoveryReport:
        """Recovery totals, leadership, next run, and one page of recent runs."""
        request = pb.GetRecoveryStatusRequest(page_size=page_size, page_token=page_token)
        return convert.recovery_report(await self._call(self.stub.GetRecoveryStatus, request, timeout))

    # Audit

    async def list_audit_events(
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
    ) -> AsyncPager[AuditEvent]:
        """Admin actions, newest first: who, what, on which target, with which parameters, when."""
        request = audit_events_request(actor, action, target, created_after, created_before, page_size)
        return await self._pager(self.stub.ListAuditEvents, request, audit_event_page, page_token, timeout)

    # Schedules

    async def create_schedule(self, schedule: Schedule, *, timeout: float | None = None) -> Schedule:
        """Create a cron schedule; the server fills in its next run times. AlreadyExists if the name is taken."""
        request = pb.CreateScheduleRequest(schedule=convert.schedule_message(schedule))
        return convert.schedule((await self._call(self.stub.CreateSchedule, request, timeout)).schedule)

    async def list_schedules(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> AsyncPager[Schedule]:
        """Schedules by name, each with its next run times."""
        request = pb.ListSchedulesRequest(page_size=page_size)
        return await self._pager(self.stub.ListSchedules, request, schedule_page, page_token, timeout)

    async def get_schedule(self, name: str, *, timeout: float | None = None) -> Schedule:
        response = await self._call(self.stub.GetSchedule, pb.GetScheduleRequest(name=name), timeout)
        return convert.schedule(response.schedule)

    async def update_schedule(
        self, schedule: Schedule, *, update_mask: Sequence[str] = (), timeout: float | None = None
    ) -> Schedule:
        """Change the fields of `schedule.name` listed in `update_mask` (all of them without one)."""
        request = schedule_update_request(schedule, update_mask)
        return convert.schedule((await self._call(self.stub.UpdateSchedule, request, timeout)).schedule)

    async def pause_schedule(self, name: str, *, timeout: float | None = None) -> Schedule:
        response = await self._call(self.stub.PauseSchedule, pb.PauseScheduleRequest(name=name), timeout)
        return convert.schedule(response.schedule)

    async def resume_schedule(self, name: str, *, timeout: float | None = None) -> Schedule:
        """Start again at the first slot after now; slots passed while paused never run."""
        response = await self._call(self.stub.ResumeSchedule, pb.ResumeScheduleRequest(name=name), timeout)
        return convert.schedule(response.schedule)

    async def delete_schedule(self, name: str, *, timeout: float | None = None) -> None:
        """Delete the schedule; jobs it already enqueued stay."""
        await self._call(self.stub.DeleteSchedule, pb.DeleteScheduleRequest(name=name), timeout)
