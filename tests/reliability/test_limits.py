"""Limits: the largest payload round-trips, page sizes are capped, long-polls respect callers that
leave, and a slow or abandoned worker holds its job no longer than its lease.

(Payloads and messages over their limits, batch caps and the deadline of a long-poll are in
tests/integration/test_bad_input.py, test_enqueue.py and test_lease.py.)
"""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import duration_pb2
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.api.server import QueueServer
from queue_service.clock import FakeClock
from queue_service.core.jobs import LifecycleSettings
from queue_service.core.paging import MAX_PAGE_SIZE
from queue_service.core.validation import Limits
from tests.conftest import make_config
from tests.integration.admin_helpers import rpc_error

LIMITS = Limits()


def test_a_payload_at_its_limit_is_stored_and_read_back_whole(service):
    blob = "x" * (LIMITS.max_payload_bytes - len('{"b":""}'))
    service.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id="j", job_data={"b": blob}))
    (job,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["q"])).jobs
    assert job.job_data["b"] == blob
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="j", attempt_number=1, result={"b": blob}))
    stored = service.jobs.GetJob(pb.GetJobRequest(job_id="j")).job
    assert stored.job_data["b"] == blob and stored.result["b"] == blob


def test_page_size_is_capped_at_the_maximum(service):
    # One more queue, and one more job, than a page may hold.
    total = MAX_PAGE_SIZE + 1
    names = [f"q{index:04d}" for index in range(total)]
    for chunk in (names[: LIMITS.max_batch_size], names[LIMITS.max_batch_size :]):
        service.jobs.EnqueueJobs(
            pb.EnqueueJobsRequest(jobs=[pb.EnqueueJobRequest(queue_name=n, job_name="n") for n in chunk])
        )
    huge = 2**31 - 1
    jobs = service.admin.ListJobs(admin_pb.ListJobsRequest(page_size=huge))
    assert len(jobs.jobs) == MAX_PAGE_SIZE and jobs.next_page_token and jobs.total_size == total
    rest = service.admin.ListJobs(admin_pb.ListJobsRequest(page_size=huge, page_token=jobs.next_page_token))
    assert len(rest.jobs) == 1 and not rest.next_page_token
    queues = service.admin.ListQueues(admin_pb.ListQueuesRequest(page_size=huge))
    assert len(queues.queues) == MAX_PAGE_SIZE and queues.next_page_token
    error = rpc_error(service.admin.ListJobs, admin_pb.ListJobsRequest(page_size=-1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


# Long-polls


def lease_request(queue: str, wait_seconds: int) -> pb.LeaseJobsRequest:
    return pb.LeaseJobsRequest(
        queue_names=[queue], worker_id="patient", wait=duration_pb2.Duration(seconds=wait_seconds)
    )


@pytest.fixture
def slow_polling_service(database_url):
    """A server whose long-polls only wake on a new job, so that a parked one is easy to catch."""
    lifecycle = LifecycleSettings(lease_poll_interval=30.0)
    server = QueueServer(make_config(database_url, lifecycle=lifecycle), clock=FakeClock()).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield job_service_pb2_grpc.JobServiceStub(channel)
    finally:
        channel.close()
        server.stop(0)


def test_a_cancelled_long_poll_is_never_handed_a_job(slow_polling_service):
    """A worker that gave up on its long-poll must not be leased the job that arrives after."""
    jobs = slow_polling_service
    for attempt in range(3):
        queue = f"race-{attempt}"
        waiting = jobs.LeaseJobs.future(lease_request(queue, 60), timeout=30)
        time.sleep(0.5)  # the long-poll is parked, waiting for a job
        assert waiting.cancel()
        time.sleep(1.0)  # the server has seen the cancellation, even on a busy machine
        jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name=queue, job_name="n", job_id=queue))
        (job,) = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[queue], worker_id="next")).jobs
        assert (job.job_id, job.attempt_number, job.worker_id) == (queue, 1, "next")


# Slow and abandoned workers


def sweep(service) -> admin_pb.RecoveryRun:
    return service.admin.TriggerRecovery(admin_pb.TriggerRecoveryRequest()).run


def test_an_abandoned_lease_goes_to_another_worker_after_it_expires(service):
    service.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id="j"))
    lease = pb.LeaseJobsRequest(queue_names=["q"], worker_id="gone", lease_duration=duration_pb2.Duration(seconds=30))
    (first,) = service.jobs.LeaseJobs(lease).jobs
    # Within its lease the job is the first worker's, whatever sweeps run.
    service.clock.advance(29)
    assert sweep(service).counts.stalled_jobs == 0
    assert not service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["q"], worker_id="next")).jobs
    # Past it, the next sweep counts the run as failed and the retry goes to whoever leases next.
    service.clock.advance(1)
    assert sweep(service).counts.stalled_jobs == 1
    service.clock.advance(5)  # the default policy's first retry delay
    (second,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["q"], worker_id="next")).jobs
    assert (second.job_id, second.attempt_number, second.worker_id) == ("j", 2, "next")
    history = service.jobs.GetJob(pb.GetJobRequest(job_id="j"))
    assert [(entry.attempt_number, entry.error.message) for entry in history.retry_log] == [(1, "lease expired")]
    assert first.attempt_number == 1


def test_a_slow_worker_cannot_touch_its_job_once_the_lease_was_taken_back(service):
    service.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id="j"))
    lease = pb.LeaseJobsRequest(queue_names=["q"], worker_id="slow", lease_duration=duration_pb2.Duration(seconds=10))
    service.jobs.LeaseJobs(lease)
    service.clock.advance(11)
    sweep(service)
    late_reports = [
        (service.jobs.HeartbeatJob, pb.HeartbeatJobRequest(job_id="j", attempt_number=1)),
        (service.jobs.TrackCompletion, pb.TrackCompletionRequest(job_id="j", attempt_number=1, result={"late": True})),
        (
            service.jobs.TrackFailure,
            pb.TrackFailureRequest(job_id="j", attempt_number=1, error=job_pb2.JobError(message="slow and failed")),
        ),
    ]

    def job_and_log():
        details = service.jobs.GetJob(pb.GetJobRequest(job_id="j"))
        return details.job, list(details.retry_log)

    # Before anyone else took the job, and after.
    for _ in range(2):
        before = job_and_log()
        for call, request in late_reports:
            error = rpc_error(call, request)
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, (type(request).__name__, error.details())
        assert job_and_log() == before, "a refused report changes nothing"
        service.clock.advance(5)
        service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["q"], worker_id="next"))
    job, _ = job_and_log()
    assert (job.state, job.attempt_number, job.worker_id) == (job_pb2.Job.STATE_ACTIVE, 2, "next")
