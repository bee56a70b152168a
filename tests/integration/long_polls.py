"""Long-polls started against a running server, once they wait: for the tests of what wakes them."""

from __future__ import annotations

from datetime import timedelta

import grpc
from jobqueue.v1 import job_service_pb2 as pb
from jobqueue.v1 import job_service_pb2_grpc

from queue_service.api.server import QueueServer
from tests.reliability.processes import wait_for


def stub(server: QueueServer) -> job_service_pb2_grpc.JobServiceStub:
    return job_service_pb2_grpc.JobServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))


def long_poll(server: QueueServer, queue: str, *, wait: timedelta, waiting_within: float) -> grpc.Future:
    """A LeaseJobs of `queue` waiting up to `wait`, returned once the server counts it as waiting."""
    waiting_before = server.notifier.waiter_count()
    call = stub(server).LeaseJobs.future(
        pb.LeaseJobsRequest(queue_names=[queue], worker_id="poller", wait=wait), timeout=wait.total_seconds() + 30
    )
    wait_for(
        lambda: server.notifier.waiter_count() > waiting_before,
        timeout=waiting_within,
        interval=0.02,
        message="the long-poll to wait",
    )
    return call
