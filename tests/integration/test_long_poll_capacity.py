"""Idle long-polls never take every RPC thread: past `max_waiting_leases` they are answered at once,
so health checks and short calls keep finding a thread."""

from __future__ import annotations

import time
from datetime import timedelta

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb
from jobqueue.v1 import job_service_pb2_grpc

from queue_service.api.server import QueueServer
from tests.conftest import make_config

pytestmark = pytest.mark.slow

IDLE_POLLS = 2000
CHANNELS = 8


def test_two_thousand_idle_long_polls_leave_health_and_enqueue_answering(database_url):
    server = QueueServer(make_config(database_url)).start()
    limit = server.config.waiting_lease_limit
    target = f"127.0.0.1:{server.port}"
    # Separate connections, as separate workers would have.
    channels = [grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(CHANNELS)]
    polls = []
    try:
        request = pb.LeaseJobsRequest(queue_names=["idle"], worker_id="idle", wait=timedelta(seconds=60))
        stubs = [job_service_pb2_grpc.JobServiceStub(channel) for channel in channels]
        polls = [stubs[index % CHANNELS].LeaseJobs.future(request, timeout=90) for index in range(IDLE_POLLS)]

        # In the middle of the flood (the server and the 2,000 callers share this process and its
        # interpreter lock, so the deadlines are generous; they would wait 60 s if polls held threads).
        health = health_pb2_grpc.HealthStub(channels[0]).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        enqueued = stubs[1].EnqueueJob(
            pb.EnqueueJobRequest(queue_name="busy", job_name="n", job_id="while-polled"), timeout=10
        )
        assert enqueued.created

        # All but `limit` long-polls got an ordinary, empty answer; those keep waiting.
        deadline = time.monotonic() + 60
        while sum(poll.done() for poll in polls) < IDLE_POLLS - limit and time.monotonic() < deadline:
            time.sleep(0.1)
        answered = [poll for poll in polls if poll.done()]
        assert len(answered) == IDLE_POLLS - limit
        assert all(list(poll.result().jobs) == [] for poll in answered)
        # With the flood settled, short calls answer well within a tight deadline.
        for index in range(20):
            stubs[index % CHANNELS].EnqueueJob(
                pb.EnqueueJobRequest(queue_name="busy", job_name="n", job_id=f"settled-{index}"), timeout=2
            )
            health_pb2_grpc.HealthStub(channels[index % CHANNELS]).Check(health_pb2.HealthCheckRequest(), timeout=2)
    finally:
        for poll in polls:
            poll.cancel()
        for channel in channels:
            channel.close()
        server.stop(0)
