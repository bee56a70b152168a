"""Helpers for admin API tests: put jobs into known states through the real JobService."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb


def enqueue(service, job_id: str, queue: str = "emails", **fields) -> job_pb2.Job:
    return service.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name=queue, job_name="send", job_id=job_id, **fields)).job


def lease(service, queue: str = "emails", max_jobs: int = 1) -> list[job_pb2.Job]:
    return list(service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[queue], worker_id="w", max_jobs=max_jobs)).jobs)


def fail_current(service, job_id: str, message: str, error_type: str = "", *, non_retryable: bool = False):
    job = service.jobs.GetJob(pb.GetJobRequest(job_id=job_id)).job
    return service.jobs.TrackFailure(
        pb.TrackFailureRequest(
            job_id=job_id,
            attempt_number=job.attempt_number,
            error=job_pb2.JobError(message=message, type=error_type),
            non_retryable=non_retryable,
        )
    )


def dead_letter(service, job_id: str, queue: str = "emails", message: str = "boom", error_type: str = "Error") -> str:
    """Enqueue, lease and fail the job non-retryably; return its dead-letter entry id."""
    enqueue(service, job_id, queue)
    (job,) = lease(service, queue)
    assert job.job_id == job_id
    decision = fail_current(service, job_id, message, error_type, non_retryable=True)
    assert decision.moved_to_dead_letter
    return decision.dead_letter_id


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request)
    return raised.value


def bad_field(error: grpc.RpcError) -> str | None:
    """The field named by the status's BadRequest or ErrorInfo detail."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            return bad_request.field_violations[0].field
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if "field" in info.metadata:
                return info.metadata["field"]
    return None
