"""The asyncio JobClient: the synchronous JobClient's methods, models and errors, awaited over grpc.aio."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jobqueue import _convert as convert
from jobqueue.aio.connection import ClientCore
from jobqueue.errors import JobQueueError
from jobqueue.job_client import (
    IDEMPOTENT_METHODS,
    TrackedRunBase,
    completion_request,
    completion_results,
    enqueue_request,
    enqueue_result,
    failure_request,
    failure_result,
    job_details,
    lease_deadline,
    lease_request,
    receive_limit,
)
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
from jobqueue.v1 import job_service_pb2 as pb
from jobqueue.v1 import job_service_pb2_grpc


@dataclass
class TrackedRun(TrackedRunBase["JobClient"]):
    """One run reported through `JobClient.track`; set `result` to report it with the completion."""

    async def heartbeat(self, lease_duration: timedelta | None = None) -> datetime | None:
        """Tell the service the run is still going, so it is not treated as stalled."""
        return await self.client.heartbeat(self.job_id, self.attempt_number, lease_duration=lease_duration)


class JobClient(ClientCore):
    """An asyncio client of JobService; the options and methods are those of jobqueue.JobClient.

    Create it inside a running event loop, and close it (`await client.close()` or
    `async with`) before the loop ends.
    """

    stub_class = job_service_pb2_grpc.JobServiceStub
    stub: job_service_pb2_grpc.JobServiceStub
    idempotent_methods = IDEMPOTENT_METHODS

    @property
    def max_response_bytes(self) -> int:
        """Leases fill their reply only up to what this channel accepts; see jobqueue.JobClient."""
        options = self.connection.options
        return 0 if options is None else receive_limit(options)

    # Producers

    async def enqueue(
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
        """Add a job; see jobqueue.JobClient.enqueue."""
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
        return enqueue_result(await self.connection.unary(self.stub.EnqueueJob, enqueue_request(job), timeout))

    async def enqueue_many(self, jobs: Iterable[JobRequest], *, timeout: float | None = None) -> list[EnqueueResult]:
        """Add several jobs in one transaction: all of them or none."""
        request = pb.EnqueueJobsRequest(jobs=[enqueue_request(job) for job in jobs])
        response = await self.connection.unary(self.stub.EnqueueJobs, request, timeout)
        return [enqueue_result(result) for result in response.results]

    # Workers that lease

    async def lease(
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

        The server leases only as many as fit this client's receive limit; see jobqueue.JobClient.lease.
        """
        request = lease_request(queue_names, worker_id, max_jobs, lease_duration, wait, self.max_response_bytes)
        deadline = lease_deadline(self.connection.deadline(timeout), wait)
        response = await self.connection.unary(self.stub.LeaseJobs, request, deadline)
        return [convert.job(job) for job in response.jobs]

    async def heartbeat(
        self,
        job_id: str,
        attempt_number: int,
        *,
        lease_duration: timedelta | None = None,
        timeout: float | None = None,
    ) -> datetime | None:
        """Extend the lease of the current run; returns the new expiry."""
        beat = await self.heartbeat_status(job_id, attempt_number, lease_duration=lease_duration, timeout=timeout)
        return beat.lease_expires_at

    async def heartbeat_status(
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
        response = await self.connection.unary(self.stub.HeartbeatJob, request, timeout)
        return HeartbeatResult(convert.optional_datetime(response, "lease_expires_at"), response.cancel_requested)

    # Workers of another queue system

    async def track_start(
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
        response = await self.connection.unary(self.stub.TrackStart, request, timeout)
        return StartResult(job=convert.job(response.job), created=response.created)

    # Reports

    async def track_completion(
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
        return convert.job((await self.connection.unary(self.stub.TrackCompletion, request, timeout)).job)

    async def track_completions(
        self, completions: Iterable[Completion], *, timeout: float | None = None
    ) -> list[CompletionResult]:
        """Record up to 1000 successful runs in one call; see jobqueue.JobClient.track_completions."""
        request = pb.TrackCompletionsRequest(completions=[completion_request(item) for item in completions])
        return completion_results(await self.connection.unary(self.stub.TrackCompletions, request, timeout))

    async def track_failure(
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
        """Record that the run `attempt_number` failed; see jobqueue.JobClient.track_failure."""
        request = failure_request(
            job_id,
            attempt_number,
            error,
            error_type=error_type,
            details=details,
            non_retryable=non_retryable,
            retry_after=retry_after,
        )
        return failure_result(await self.connection.unary(self.stub.TrackFailure, request, timeout))

    async def move_to_dead_letter(self, job_id: str, reason: str, *, timeout: float | None = None) -> DeadLetterEntry:
        """Send a waiting, active or failed job to the dead-letter queue now."""
        request = pb.MoveToDeadLetterRequest(job_id=job_id, reason=reason)
        response = await self.connection.unary(self.stub.MoveToDeadLetter, request, timeout)
        return convert.dead_letter_entry(response.entry)

    async def cancel_job(self, job_id: str, *, reason: str = "", timeout: float | None = None) -> Job:
        """Cancel a job: a waiting or failed one is CANCELLED at once; a running one stays ACTIVE,
        with cancel_requested_at set, until its worker stops the run and reports. Cancelling again
        changes nothing."""
        request = pb.CancelJobRequest(job_id=job_id, reason=reason)
        return convert.job((await self.connection.unary(self.stub.CancelJob, request, timeout)).job)

    # Reads

    async def get_job(self, job_id: str, *, timeout: float | None = None) -> JobDetails:
        """A job with its error history and retry log."""
        return job_details(await self.connection.unary(self.stub.GetJob, pb.GetJobRequest(job_id=job_id), timeout))

    # A run of another queue system, reported as it happens

    @asynccontextmanager
    async def track(
        self,
        job_id: str,
        *,
        queue_name: str,
        job_name: str,
        job_data: Mapping[str, Any] | None = None,
        worker_id: str = "",
    ) -> AsyncIterator[TrackedRun]:
        """Report a run: start on entry, completion on a normal exit, failure on an exception.

        As jobqueue.JobClient.track, with `async with`:

            async with client.track(job.id, queue_name="emails", job_name="send") as run:
                run.result = await send(job.data)
        """
        started = await self.track_start(
            job_id, queue_name=queue_name, job_name=job_name, job_data=job_data, worker_id=worker_id
        )
        run = TrackedRun(self, started.job, started.created)
        began = time.monotonic()
        try:
            yield run
        except Exception as error:
            try:
                await self.track_failure(run.job_id, run.attempt_number, error)
            except JobQueueError as report_error:
                error.add_note(f"reporting this failure to the job service failed too: {report_error!r}")
            raise
        await self.track_completion(
            run.job_id,
            run.attempt_number,
            result=run.result,
            processing_duration=timedelta(seconds=time.monotonic() - began),
        )
