"""JobService: translates requests into JobManager calls and results into responses."""

from __future__ import annotations

import threading

from google.rpc import status_pb2
from jobqueue.v1 import job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.api import convert
from queue_service.api.errors import error_status_message, translate_all
from queue_service.api.principal import caller_is_admin, current_actor
from queue_service.api.reply_size import leased_job_bytes, shorten_error_details
from queue_service.api.trace_context import caller_trace_parent, record_failure_decision
from queue_service.core.cancellations import CancellationManager
from queue_service.core.jobs import Completion, JobManager, JobSpec

OK_STATUS = status_pb2.Status(code=0)


def job_spec(request: pb.EnqueueJobRequest, prefix: str = "", trace_parent: str = "") -> JobSpec:
    schedule = request.WhichOneof("schedule")
    return JobSpec(
        queue_name=request.queue_name,
        job_name=request.job_name,
        job_data=convert.deliverable_document(request.job_data, f"{prefix}job_data"),
        job_id=request.job_id,
        priority=request.priority,
        run_at=convert.to_datetime(request.run_at, f"{prefix}run_at") if schedule == "run_at" else None,
        delay=convert.to_timedelta(request.delay, f"{prefix}delay") if schedule == "delay" else None,
        retry_policy=convert.policy_override(request.retry_policy, f"{prefix}retry_policy")
        if request.HasField("retry_policy")
        else None,
        trace_parent=trace_parent,
        unique=convert.unique_options(request.unique, f"{prefix}unique.") if request.HasField("unique") else None,
    )


def write_enqueue_response(response: pb.EnqueueJobResponse, result, request: pb.EnqueueJobRequest) -> None:
    """The answer to `request` written into `response`, a reply's own field, in place."""
    response.created = result.created
    # A job this request created holds the job_data it sent: the reply copies that message, which
    # costs a fraction of building it again from the stored document.
    convert.write_job(response.job, result.job, job_data=request.job_data if result.created else None)


@translate_all
class JobServicer(job_service_pb2_grpc.JobServiceServicer):
    def __init__(
        self, jobs: JobManager, max_waiting_leases: int, cancellations: CancellationManager | None = None
    ) -> None:
        self.jobs = jobs
        self.cancellations = cancellations or CancellationManager(jobs)
        self._stopping = threading.Event()
        # Each waiting long-poll holds an RPC thread; past this many, a long-poll is answered
        # at once with what is ready, so that short calls always find a thread.
        self._waiting_slots = threading.BoundedSemaphore(max_waiting_leases)

    def stop_waiting(self) -> None:
        """End every long-poll with an empty answer, so that a shutdown need not wait for them."""
        self._stopping.set()
        self.jobs.notifier.wake_here(None)

    def EnqueueJob(self, request, context):
        spec = job_spec(request, trace_parent=caller_trace_parent(context))
        (result,) = self.jobs.enqueue([spec], by_admin=caller_is_admin(context))
        response = pb.EnqueueJobResponse()
        write_enqueue_response(response, result, request)
        return response

    def EnqueueJobs(self, request, context):
        trace_parent = caller_trace_parent(context)
        specs = [job_spec(item, f"jobs[{index}].", trace_parent) for index, item in enumerate(request.jobs)]
        results = self.jobs.enqueue(specs, batch=True, by_admin=caller_is_admin(context))
        reply = pb.EnqueueJobsResponse()
        for result, item in zip(results, request.jobs, strict=True):
            write_enqueue_response(reply.results.add(), result, item)
        return reply

    def LeaseJobs(self, request, context):
        messages: dict[str, job_pb2.Job] = {}

        def reply_size(view) -> int:
            # Kept: each measured job is sent as measured, without converting it twice.
            messages[view.record.job_id] = convert.job_message(view)
            return leased_job_bytes(messages[view.record.job_id])

        # Only a call that asks to wait needs a slot; one that does not is never refused one.
        wants_to_wait = request.HasField("wait") and (request.wait.seconds > 0 or request.wait.nanos > 0)
        holds_slot = wants_to_wait and self._waiting_slots.acquire(blocking=False)
        try:
            jobs = self.jobs.lease(
                list(request.queue_names),
                worker_id=request.worker_id,
                max_jobs=request.max_jobs,
                lease_duration=convert.optional_timedelta(request, "lease_duration"),
                wait=convert.optional_timedelta(request, "wait"),
                is_active=lambda: context.is_active() and not self._stopping.is_set(),
                time_remaining=context.time_remaining,
                max_response_bytes=request.max_response_bytes,
                reply_size=reply_size,
                may_wait=holds_slot,
            )
        finally:
            if holds_slot:
                self._waiting_slots.release()
        return pb.LeaseJobsResponse(jobs=[messages[job.record.job_id] for job in jobs])

    def HeartbeatJob(self, request, context):
        job = self.jobs.heartbeat(
            request.job_id, request.attempt_number, convert.optional_timedelta(request, "lease_duration")
        )
        return pb.HeartbeatJobResponse(
            lease_expires_at=convert.timestamp(job.lease_expires_at),
            cancel_requested=job.cancel_requested_at is not None,
        )

    def TrackStart(self, request, context):
        job, created = self.jobs.track_start(
            request.job_id,
            queue_name=request.queue_name,
            job_name=request.job_name,
            job_data=convert.deliverable_document(request.job_data, "job_data"),
            worker_id=request.worker_id,
            by_admin=caller_is_admin(context),
            trace_parent=caller_trace_parent(context),
        )
        return pb.TrackStartResponse(job=convert.job_message(job), created=created)

    def TrackCompletion(self, request, context):
        job = self.jobs.complete(
            request.job_id,
            request.attempt_number,
            result=convert.document(request.result, "result"),
            processing_duration=convert.optional_timedelta(request, "processing_duration"),
        )
        response = pb.TrackCompletionResponse()
        convert.write_job(response.job, job)
        return response

    def TrackCompletions(self, request, context):
        outcomes = self.jobs.complete_many(
            [
                Completion(
                    job_id=item.job_id,
                    attempt_number=item.attempt_number,
                    result=convert.document(item.result, f"completions[{index}].result"),
                    processing_duration=convert.optional_timedelta(
                        item, "processing_duration", f"completions[{index}].processing_duration"
                    ),
                )
                for index, item in enumerate(request.completions)
            ]
        )
        return pb.TrackCompletionsResponse(
            results=[
                pb.TrackCompletionResult(
                    job_id=outcome.job_id,
                    status=OK_STATUS if outcome.error is None else error_status_message(outcome.error),
                )
                for outcome in outcomes
            ]
        )

    def TrackFailure(self, request, context):
        outcome = self.jobs.fail(
            request.job_id,
            request.attempt_number,
            convert.reported_error(request.error),
            non_retryable=request.non_retryable,
            retry_after=convert.optional_timedelta(request, "retry_after"),
        )
        record_failure_decision(request.job_id, request.attempt_number, outcome)
        decision = outcome.decision
        response = pb.TrackFailureResponse(
            should_retry=decision.should_retry,
            retry_delay=convert.duration(decision.retry_delay),
            next_retry_at=convert.timestamp(decision.next_retry_at),
            remaining_retries=decision.remaining_retries,
            moved_to_dead_letter=outcome.dead_letter is not None,
            dead_letter_id=outcome.dead_letter.id if outcome.dead_letter else "",
        )
        convert.write_job(response.job, outcome.job)
        return response

    def MoveToDeadLetter(self, request, context):
        entry = self.jobs.move_to_dead_letter(request.job_id, request.reason)
        return shorten_error_details(pb.MoveToDeadLetterResponse(entry=convert.dead_letter_message(entry)))

    def GetJob(self, request, context):
        details = self.jobs.get_job(request.job_id)
        return shorten_error_details(
            pb.GetJobResponse(
                job=convert.job_message(details.job),
                error_history=[convert.job_error(error) for error in details.job.record.error_history],
                retry_log=[convert.retry_log_message(entry) for entry in details.retry_log],
                retry_log_omitted_count=details.retry_log_omitted,
            )
        )

    def CancelJob(self, request, context):
        outcome = self.cancellations.cancel(request.job_id, actor=current_actor(context), reason=request.reason)
        return shorten_error_details(pb.CancelJobResponse(job=convert.job_message(outcome.job)))
