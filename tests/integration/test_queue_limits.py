"""However many queues callers make, queue creation stays within the server's rules and every
admin reply, dashboard page and the metrics endpoint stays bounded. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import admin_service_pb2_grpc, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.api.server import QueueServer
from queue_service.core.jobs import LifecycleSettings
from queue_service.core.validation import Limits
from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN, auth_tokens, make_config
from tests.rpc_errors import assert_rejected, row_counts


def start(database_url, clock, **lifecycle) -> QueueServer:
    settings = LifecycleSettings(lease_poll_interval=0.05, **lifecycle)
    return QueueServer(make_config(database_url, lifecycle=settings, tokens=auth_tokens()), clock=clock).start()


@pytest.fixture
def limited(database_url, clock) -> Iterator[QueueServer]:
    server = start(database_url, clock, limits=Limits(max_queues=5))
    yield server
    server.stop(0)


@pytest.fixture
def admin_only(database_url, clock) -> Iterator[QueueServer]:
    server = start(database_url, clock, admin_creates_queues=True)
    yield server
    server.stop(0)


def stubs(server: QueueServer, token: str):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    metadata = (("authorization", f"Bearer {token}"),)
    return channel, job_service_pb2_grpc.JobServiceStub(channel), admin_service_pb2_grpc.AdminServiceStub(channel), metadata


def job(queue: str, job_id: str = "") -> pb.EnqueueJobRequest:
    return pb.EnqueueJobRequest(queue_name=queue, job_name="n", job_id=job_id)


def test_queue_creation_stops_at_the_configured_maximum(limited):
    channel, jobs, admin, metadata = stubs(limited, WORKER_TOKEN)
    with channel:
        jobs.EnqueueJobs(pb.EnqueueJobsRequest(jobs=[job(f"q{n}") for n in range(4)]), metadata=metadata)
        before = row_counts(limited.database)
        assert_rejected(
            jobs.EnqueueJobs,
            pb.EnqueueJobsRequest(jobs=[job("q0"), job("new-1"), job("new-2")]),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "jobs[1].queue_name",
            mentions="new-1",
            metadata=metadata,
        )
        assert row_counts(limited.database) == before  # not even the job for the existing queue
        jobs.EnqueueJob(job("new-1"), metadata=metadata)  # the fifth queue
        jobs.EnqueueJob(job("q0"), metadata=metadata)  # existing queues take jobs as before
        assert_rejected(
            jobs.EnqueueJob, job("new-2"), grpc.StatusCode.RESOURCE_EXHAUSTED, "queue_name", metadata=metadata
        )
        assert_rejected(
            jobs.TrackStart,
            pb.TrackStartRequest(job_id="external", queue_name="new-3", job_name="n"),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "queue_name",
            metadata=metadata,
        )
        admin_metadata = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
        assert_rejected(
            admin.PauseQueue,
            admin_pb.PauseQueueRequest(queue_name="new-4", allow_missing=True),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "queue_name",
            metadata=admin_metadata,
        )


def test_only_admins_create_queues_when_so_configured(admin_only):
    channel, jobs, admin, worker = stubs(admin_only, WORKER_TOKEN)
    admin_metadata = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    with channel:
        before = row_counts(admin_only.database)
        assert_rejected(jobs.EnqueueJob, job("fresh"), grpc.StatusCode.NOT_FOUND, "queue_name", metadata=worker)
        assert_rejected(
            jobs.EnqueueJobs,
            pb.EnqueueJobsRequest(jobs=[job("fresh", "a"), job("other", "b")]),
            grpc.StatusCode.NOT_FOUND,
            "jobs[0].queue_name",
            metadata=worker,
        )
        assert_rejected(
            jobs.TrackStart,
            pb.TrackStartRequest(job_id="external", queue_name="fresh", job_name="n"),
            grpc.StatusCode.NOT_FOUND,
            "queue_name",
            metadata=worker,
        )
        assert row_counts(admin_only.database) == before
        # An admin creates the queue, by enqueueing or explicitly; then workers use it.
        jobs.EnqueueJob(job("fresh", "by-admin"), metadata=admin_metadata)
        admin.PauseQueue(admin_pb.PauseQueueRequest(queue_name="other", allow_missing=True), metadata=admin_metadata)
        jobs.EnqueueJobs(pb.EnqueueJobsRequest(jobs=[job("fresh", "a"), job("other", "b")]), metadata=worker)
        started = jobs.TrackStart(pb.TrackStartRequest(job_id="external", queue_name="fresh", job_name="n"), metadata=worker)
        assert started.created
