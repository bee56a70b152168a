"""JobClient: every JobService RPC with Python types, plus `track()` for jobs run by another queue system."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from jobqueue import _convert as convert
from jobqueue.connection import ClientCore
from jobqueue.errors import JobQueueError, NonRetryableError, RetryAfterError, describe, from_status
from jobqueue.models import (
    Completion,
    CompletionResult,
    DeadLetterEntry,
    EnqueueResult,
    FailureResult,
    HeartbeatResult,
    Job,
    JobDetails,
    JobRequest,
    RetryPolicy,
    StartResult,
    UniqueOptions,
)
from jobqueue.v1 import job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb

JOB_SERVICE = "jobqueue.v1.JobService"
# Safe to repeat: enqueue always carries a job_id (generated here when not given) and the
# service answers a repeated report of the same attempt with the same outcome.
IDEMPOTENT_METHODS = {
    JOB_SERVICE: (
        "EnqueueJob",
        "EnqueueJobs",
        "HeartbeatJob",
        "TrackCompletion",
        "TrackCompletions",
        "TrackFailure",
        "GetJob",
        "CancelJob",
    )
}
# A long-poll lease may take this much longer than its wait before it counts as late.
LEASE_GRACE_SECONDS = 10.0
RECEIVE_LIMIT_OPTION = "grpc.max_receive_message_length"
# gRPC's own receive limit where a channel sets none, and the largest value LeaseJobs takes.
DEFAULT_RECEIVE_BYTES = 4 * 1024 * 1024
MAX_RESPONSE_BYTES = 2**31 - 1


def receive_limit(options: Sequence[tuple[str, Any]]) -> int:
    """The largest reply a channel built with `options` accepts; -1 (unlimited) asks for the most."""
    for name, value in options:
        if name == RECEIVE_LIMIT_OPTION:  # gRPC keeps the first of one name
            return MAX_RESPONSE_BYTES if int(value) < 0 else min(int(value), MAX_RESPONSE_BYTES)
    return DEFAULT_RECEIVE_BYTES


Client = TypeVar("Client")


def enqueue_request(job: JobRequest) -> pb.EnqueueJobRequest:
    if job.run_at is not None and job.delay is not None:
        raise ValueError("give run_at or delay, not both")
    return pb.EnqueueJobRequest(
        queue_name=job.queue_name,
        job_name=job.job_name,
        job_data=convert.struct(job.job_data),
        job_id=job.job_id or str(uuid.uuid4()),
        priority=job.priority,
        run_at=convert.timestamp(job.run_at),
        delay=convert.duration(job.delay),
        retry_policy=convert.retry_policy_message(job.retry_policy),
        unique=convert.unique_options_message(job.unique),
    )


def enqueue_result(message: pb.EnqueueJobResponse) -> EnqueueResult:
    return EnqueueResult(job=convert.job(message.job), created=message.created)


def lease_request(
    queue_names: str | Sequence[str],
    worker_id: str,
    max_jobs: int,
    lease_duration: timedelta | None,
    wait: timedelta | None,
    max_response_bytes: int,
) -> pb.LeaseJobsRequest:
    return pb.LeaseJobsRequest(
        queue_names=[queue_names] if isinstance(queue_names, str) else list(queue_names),
        worker_id=worker_id,
        max_jobs=max_jobs,
        lease_duration=convert.duration(lease_duration),
        wait=convert.duration(wait),
        max_response_bytes=max_response_bytes,
    )


def lease_deadline(deadline: float | None, wait: timedelta | None) -> float | None:
    """A long-poll lease's deadline: at least its wait plus a grace."""
    if wait is not None and deadline is not None:
        return max(deadline, wait.total_seconds() + LEASE_GRACE_SECONDS)
    return deadline


def completion_request(item: Completion) -> pb.TrackCompletionRequest:
    return pb.TrackCompletionRequest(
        job_id=item.job_id,
        attempt_number=item.attempt_number,
        result=convert.struct(item.result),
        processing_duration=convert.duration(item.processing_duration),
    )


def completion_results(response: pb.TrackCompletionsResponse) -> list[CompletionResult]:
    return [
        CompletionResult(job_id=result.job_id, error=from_status(result.status) if result.status.code else None)
        for result in response.results
    ]


def failure_request(
    job_id: str,
    attempt_number: int,
    error: BaseException | str,
    *,
    error_type: str | None,
    details: str | None,
    non_retryable: bool | None,
    retry_after: timedelta | None,
) -> pb.TrackFailureRequest:
    """A failure report; see JobClient.track_failure for how `error` and the overrides combine."""
    if isinstance(error, BaseException):
        described = describe(error)
        message = described["message"]
        error_type = described["error_type"] if error_type is None else error_type
        details = described["details"] if details is None else details
        if non_retryable is None:
            non_retryable = isinstance(error, NonRetryableError)
        if retry_after is None and isinstance(error, RetryAfterError):
            retry_after = error.retry_after
    else:
        message = error
    return pb.TrackFailureRequest(
        job_id=job_id,
        attempt_number=attempt_number,
        error=job_pb2.JobError(message=message, type=error_type or "", details=details or ""),
        non_retryable=bool(non_retryable),
        retry_after=convert.duration(retry_after),
    )


def failure_result(response: pb.TrackFailureResponse) -> FailureResult:
    return FailureResult(
        should_retry=response.should_retry,
        retry_delay=convert.optional_timedelta(response, "retry_delay"),
        next_retry_at=convert.optional_datetime(response, "next_retry_at"),
        remaining_retries=response.remaining_retries,
        moved_to_dead_letter=response.moved_to_dead_letter,
        dead_letter_id=response.dead_letter_id,
        job=convert.optional_job(response),
    )


def job_details(response: pb.GetJobResponse) -> JobDetails:
    return JobDetails(
        job=convert.job(response.job),
        error_history=tuple(convert.job_error(error) for error in response.error_history),
        retry_log=tuple(convert.retry_log_entry(entry) for entry in response.retry_log),
        retry_log_omitted_count=response.retry_log_omitted_count,
    )


@dataclass
class TrackedRunBase(Generic[Client]):
    """One run reported through a client's `track`; set `result` to report it with the completion."""

    client: Client = field(repr=False)
    job: Job
    created: bool
    result: Mapping[str, Any] | None = None

    @property
    def job_id(self) -> str:
        return self.job.job_id

    @property
    def attempt_number(self) -> int:
        return self.job.attempt_number


@dataclass
class TrackedRun(TrackedRunBase["JobClient"]):
    """One run reported through `JobClient.track`; set `result` to report it with the completion."""

    def heartbeat(self, lease_duration: timedelta | None = None) -> datetime | None:
        """Tell the service the run is still going, so it is not treated as stalled."""
        return self.client.heartbeat(self.job_id, self.attempt_number, lease_duration=lease_duration)


class JobClient(ClientCore):
    """A client of JobService.

    `target` is host:port, several of them, or a gRPC target such as dns:///name:port; calls
    are spread over the addresses round-robin, skipping any that is not healthy. `token` is sent as `authorization: Bearer <token>`. `tls` is True
    (system trust store) or a TlsConfig (own CA, client certificate for mutual TLS). `timeout`
    is each call's deadline in seconds unless a call says otherwise; None means no deadline.
    Calls that are safe to repeat are retried on UNAVAILABLE by gRPC's retry policy
    (`retry=False` turns that off). Errors are raised as jobqueue.errors types.
    """

    stub_class = job_service_pb2_grpc.JobServiceStub
    stub: job_service_pb2_grpc.JobServiceStub
    idempotent_methods = IDEMPOTENT_METHODS

    @property
    def max_response_bytes(self) -> int:
        """Leases fill their reply only up to what this channel accepts; for a channel passed in,
        whose options are unknown, the server assumes gRPC's default (0)."""
        options = self.connection.options
        return 0 if options is None else receive_limit(options)

    # Producers

    def enqueue(
        self,
        queue_name: str,
        job_name: str,
        job_data: Mapping[str, Any] | None = None,
        *,
        job_id: str | None = None,
        priority: int = 0,
        run_at: datetime | None = None,
        delay: timedelta | None = None,
        retry_policy: RetryPolicy | None = None,
        unique: UniqueOptions | str | None = None,
        timeout: float | None = None,
    ) -> EnqueueResult:
        """Add a job. Without `job_id` one is generated, so a retried call cannot enqueue twice.

        `run_at` (aware datetime) or `delay` schedules it; `retry_policy` overrides the queue's.
        `unique` (UniqueOptions, or just its key) makes it unique: while a duplicate counts, that
        job is returned with `created` False.
        """
        job = JobRequest(
            queue_name=queue_name,
            job_name=job_name,
            job_data=dict(job_data) if job_data is not None else None,
            job_id=job_id,
            priority=priority,
            run_at=run_at,
            delay=delay,
            retry_policy=retry_policy,
            unique=unique,
        )
        request = enqueue_request(job)
        return enqueue_result(self.connection.unary(self.stub.EnqueueJob, request, timeout))

    def enqueue_many(self, jobs: Iterable[JobRequest], *, timeout: float | None = None) -> list[EnqueueResult]:
        """Add several jobs in one transaction: all of them or none."""
        request = pb.EnqueueJobsRequest(jobs=[enqueue_request(job) for job in jobs])
        response = self.connection.unary(self.stub.EnqueueJobs, request, timeout)
        return [enqueue_result(result) for result in response.results]

    # Workers that lease

    def lease(
        self,
        queue_names: str | Sequence[str],
        *,
        worker_id: str = "",
        max_jobs: int = 1,
        lease_duration: timedelta | None = None,
        wait: timedelta | None = None,
        timeout: float | None = None,
    ) -> list[Job]:
        """Lease up to `max_jobs` ready jobs; with `wait`, long-poll that long for one to become ready.

        The server leases only as many as fit this client's receive limit (the channel option
        grpc.max_receive_message_length, 4 MiB by default); the others stay ready for the next call.
        """
        request = lease_request(queue_names, worker_id, max_jobs, lease_duration, wait, self.max_response_bytes)
        deadline = lease_deadline(self.connection.deadline(timeout), wait)
        response = self.connection.unary(self.stub.LeaseJobs, request, deadline)
        return [convert.job(job) for job in response.jobs]

    def heartbeat(
        self,
        job_id: str,
        attempt_number: int,
        *,
        lease_duration: timedelta | None = None,
        timeout: float | None = None,
    ) -> datetime | None:
        """Extend the lease of the current run; returns the new expiry."""
        beat = self.heartbeat_status(job_id, attempt_number, lease_duration=lease_duration, timeout=timeout)
        return beat.lease_expires_at

    def heartbeat_status(
        self,
        job_id: str,
        attempt_number: int,
        *,
        lease_duration: timedelta | None = None,
        timeout: float | None = None,
    ) -> HeartbeatResult:
        """Extend the lease of the current run; returns the new expiry and whether a cancellation
        asked the run to stop (then stop it and report: the job ends CANCELLED)."""
        request = pb.HeartbeatJobRequest(
            job_id=job_id, attempt_number=attempt_number, lease_duration=convert.duration(lease_duration)
        )
        response = self.connection.unary(self.stub.HeartbeatJob, request, timeout)
        return HeartbeatResult(convert.optional_datetime(response, "lease_expires_at"), response.cancel_requested)

    # Workers of another queue system

    def track_start(
        self,
        job_id: str,
        *,
        queue_name: str = "",
        job_name: str = "",
        job_data: Mapping[str, Any] | None = None,
        worker_id: str = "",
        timeout: float | None = None,
    ) -> StartResult:
        """Record that a run started; an unknown job is created (queue_name and job_name needed then)."""
        request = pb.TrackStartRequest(
            job_id=job_id,
            queue_name=queue_name,
            job_name=job_name,
            job_data=convert.struct(job_data),
            worker_id=worker_id,
        )
        response = self.connection.unary(self.stub.TrackStart, request, timeout)
        return StartResult(job=convert.job(response.job), created=response.created)

    # Reports

    def track_completion(
        self,
        job_id: str,
        attempt_number: int,
        *,
        result: Mapping[str, Any] | None = None,
        processing_duration: timedelta | None = None,
        timeout: float | None = None,
    ) -> Job:
        """Record that the run `attempt_number` succeeded."""
        request = completion_request(
            Completion(job_id, attempt_number, dict(result) if result is not None else None, processing_duration)
        )
        return convert.job(self.connection.unary(self.stub.TrackCompletion, request, timeout).job)

    def track_completions(
        self, completions: Iterable[Completion], *, timeout: float | None = None
    ) -> list[CompletionResult]:
        """Record up to 1000 successful runs in one call, and return one result per run, in order.

        A completion that track_completion would refuse is refused alone: its result carries the
        error that call would have raised, and the others still count. Invalid input (a bad
        result, duplicate job ids, an empty or oversized batch) raises for the whole batch.
        """
        request = pb.TrackCompletionsRequest(completions=[completion_request(item) for item in completions])
        return completion_results(self.connection.unary(self.stub.TrackCompletions, request, timeout))

    def track_failure(
        self,
        job_id: str,
        attempt_number: int,
        error: BaseException | str,
        *,
        error_type: str | None = None,
        details: str | None = None,
        non_retryable: bool | None = None,
        retry_after: timedelta | None = None,
        timeout: float | None = None,
    ) -> FailureResult:
        """Record that the run `attempt_number` failed, and return the retry decision.

        `error` is an exception (its type, message and traceback are reported; NonRetryableError
        means non-retryable, RetryAfterError gives retry_after) or a message. The keyword
        arguments override what comes from the exception.
        """
        request = failure_request(
            job_id,
            attempt_number,
            error,
            error_type=error_type,
            details=details,
            non_retryable=non_retryable,
            retry_after=retry_after,
        )
        return failure_result(self.connection.unary(self.stub.TrackFailure, request, timeout))

    def move_to_dead_letter(self, job_id: str, reason: str, *, timeout: float | None = None) -> DeadLetterEntry:
        """Send a waiting, active or failed job to the dead-letter queue now."""
        request = pb.MoveToDeadLetterRequest(job_id=job_id, reason=reason)
        return convert.dead_letter_entry(self.connection.unary(self.stub.MoveToDeadLetter, request, timeout).entry)

    def cancel_job(self, job_id: str, *, reason: str = "", timeout: float | None = None) -> Job:
        """Cancel a job: a waiting or failed one is CANCELLED at once; a running one stays ACTIVE,
        with cancel_requested_at set, until its worker stops the run and reports. Cancelling again
        changes nothing."""
        request = pb.CancelJobRequest(job_id=job_id, reason=reason)
        return convert.job((self.connection.unary(self.stub.CancelJob, request, timeout)).job)

    # Reads

    def get_job(self, job_id: str, *, timeout: float | None = None) -> JobDetails:
        """A job with its error history and retry log."""
        return job_details(self.connection.unary(self.stub.GetJob, pb.GetJobRequest(job_id=job_id), timeout))

    # A run of another queue system, reported as it happens

    @contextmanager
    def track(
        self,
        job_id: str,
        *,
        queue_name: str,
        job_name: str,
        job_data: Mapping[str, Any] | None = None,
        worker_id: str = "",
    ) -> Iterator[TrackedRun]:
        """Report a run: start on entry, completion on a normal exit, failure on an exception.

        The exception is re-raised after the failure report. Set `run.result` inside the block
        to report a result with the completion. KeyboardInterrupt and SystemExit are not
        reported: the run stays active until the service counts it as stalled.

            with client.track(job.id, queue_name="emails", job_name="send", job_data=job.data) as run:
                run.result = send(job.data)
        """
        started = self.track_start(
            job_id, queue_name=queue_name, job_name=job_name, job_data=job_data, worker_id=worker_id
        )
        run = TrackedRun(self, started.job, started.created)
        began = time.monotonic()
        try:
            yield run
        except Exception as error:
            try:
                self.track_failure(run.job_id, run.attempt_number, error)
            except JobQueueError as report_error:
                error.add_note(f"reporting this failure to the job service failed too: {report_error!r}")
            raise
        self.track_completion(
            run.job_id,
            run.attempt_number,
            result=run.result,
            processing_duration=timedelta(seconds=time.monotonic() - began),
        )
