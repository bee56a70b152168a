"""Long-polls started against a running server, once they wait, and the jobs that wake them: for the
tests of what wakes a long-poll."""

from __future__ import annotations

from datetime import timedelta

import grpc
from google.protobuf import duration_pb2
from jobqueue.v1 import job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.api.server import QueueServer
from tests.reliability.processes import wait_for

# Far longer than any test waits: a lease that returns a job in time was woken, not polling.
POLL_SECONDS = 120
WAIT = timedelta(seconds=90)
WOKEN_WITHIN = 20


def stub(server: QueueServer) -> job_service_pb2_grpc.JobServiceStub:
    return job_service_pb2_grpc.JobServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))


def long_poll(server: QueueServer, queue: str) -> grpc.Future:
    """A LeaseJobs of `queue` waiting up to WAIT, returned once the server counts it as waiting."""
    waiting_before = server.notifier.waiter_count()
    call = stub(server).LeaseJobs.future(
        pb.LeaseJobsRequest(queue_names=[queue], worker_id="poller", wait=WAIT), timeout=WAIT.total_seconds() + 30
    )
    wait_for(
        lambda: server.notifier.waiter_count() > waiting_before,
        timeout=WOKEN_WITHIN,
        interval=0.02,
        message="the long-poll to wait",
    )
    return call


def duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromTimedelta(timedelta(seconds=seconds))
    return value


def leased_job(jobs: job_service_pb2_grpc.JobServiceStub, queue: str, job_id: str) -> job_pb2.Job:
    """A new job `job_id` in `queue`, enqueued and leased: its run is under way."""
    jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name=queue, job_name="send", job_id=job_id))
    [leased] = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[queue], worker_id="first", max_jobs=1)).jobs
    assert leased.job_id == job_id
    return leased


def fail_with_retry_after(jobs: job_service_pb2_grpc.JobServiceStub, leased: job_pb2.Job, seconds: float) -> None:
    """Report the leased run failed, to be retried after `seconds`."""
    decision = jobs.TrackFailure(
        pb.TrackFailureRequest(
            job_id=leased.job_id,
            attempt_number=leased.attempt_number,
            error=job_pb2.JobError(message="timeout"),
            retry_after=duration(seconds),
        )
    )
    assert decision.should_retry
