"""Replies that would outgrow what a gRPC client accepts: leases fill only what fits, job records stay readable."""

from __future__ import annotations

import grpc
import pytest
from jobqueue import JobClient
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb

from tests.rpc_errors import assert_rejected, row_counts

# What a gRPC client accepts by default.
DEFAULT_RECEIVE_BYTES = 4 * 1024 * 1024


def job_states(service, job_ids):
    return [service.jobs.GetJob(pb.GetJobRequest(job_id=job_id)).job.state for job_id in job_ids]


def test_the_readmes_batch_lease_delivers_what_fits_and_leaves_the_rest_waiting(service):
    with JobClient(service.target, timeout=30) as client:
        ids = [f"big-{index:03}" for index in range(100)]
        for job_id in ids:
            client.enqueue("reports", "render", {"blob": "x" * 50_000}, job_id=job_id)
        delivered = client.lease("reports", worker_id="w1", max_jobs=100)
        assert 0 < len(delivered) < 100
        leased = {job.job_id for job in delivered}
        states = dict(zip(ids, job_states(service, ids)))
        # Exactly the delivered jobs are ACTIVE; the others wait for the next call, no run used.
        assert {job_id for job_id, state in states.items() if state == job_pb2.Job.STATE_ACTIVE} == leased
        rest = [job_id for job_id in ids if job_id not in leased]
        assert all(states[job_id] == job_pb2.Job.STATE_WAITING for job_id in rest)
        while rest:
            batch = client.lease("reports", worker_id="w1", max_jobs=100)
            assert batch
            rest = [job_id for job_id in rest if job_id not in {job.job_id for job in batch}]


def test_the_python_client_states_its_own_receive_limit(service):
    options = [("grpc.max_receive_message_length", 1_000_000)]
    with JobClient(service.target, timeout=30, options=options) as client:
        for index in range(30):
            client.enqueue("reports", "render", {"blob": "x" * 50_000}, job_id=f"big-{index:02}")
        delivered = client.lease("reports", max_jobs=30)
        assert 10 < len(delivered) < 20


def test_a_stated_response_limit_bounds_the_batch(service):
    for index in range(10):
        service.jobs.EnqueueJob(
            pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id=f"j{index}", job_data={"blob": "y" * 10_000})
        )
    response = service.jobs.LeaseJobs(
        pb.LeaseJobsRequest(queue_names=["q"], max_jobs=10, max_response_bytes=35_000)
    )
    assert len(response.jobs) == 3
    assert response.ByteSize() <= 35_000


def test_a_job_larger_than_the_stated_limit_is_refused_by_id_before_any_change(service):
    service.jobs.EnqueueJob(
        pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id="heavy", job_data={"blob": "z" * 20_000})
    )
    before = row_counts(service.server.database)
    assert_rejected(
        service.jobs.LeaseJobs,
        pb.LeaseJobsRequest(queue_names=["q"], max_response_bytes=10_000),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "max_response_bytes",
        mentions="heavy",
    )
    assert row_counts(service.server.database) == before
    assert job_states(service, ["heavy"]) == [job_pb2.Job.STATE_WAITING]
    (job,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["q"])).jobs
    assert (job.job_id, job.attempt_number) == ("heavy", 1)


def test_a_negative_response_limit_is_refused(service):
    assert_rejected(
        service.jobs.LeaseJobs,
        pb.LeaseJobsRequest(queue_names=["q"], max_response_bytes=-1),
        grpc.StatusCode.INVALID_ARGUMENT,
        "max_response_bytes",
    )


def test_enqueue_refuses_a_job_no_default_client_could_receive(service):
    # 700,000 numbers are 1.4 MB of JSON, within the payload limit, but 7.7 MB on the wire.
    data = {"numbers": [0] * 700_000}
    before = row_counts(service.server.database)
    assert_rejected(
        service.jobs.EnqueueJob,
        pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id="huge", job_data=data),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "job_data",
    )
    assert row_counts(service.server.database) == before
