"""Page tokens over gRPC: each list RPC refuses forged, altered and foreign tokens with INVALID_ARGUMENT
naming `page_token`, on SQLite and PostgreSQL, and replicas sharing QUEUE_PAGE_TOKEN_KEY accept each other's."""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import admin_service_pb2_grpc, job_pb2
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.api.server import QueueServer
from tests.conftest import make_config
from tests.rpc_errors import assert_rejected

NOW = "2026-02-14T10:00:00+00:00"
# Per list RPC: the request, the token field of its answer, and sort keys no row has that
# broke a store before tokens were signed (beyond int64 on SQLite, a year-0 instant, a NUL on
# PostgreSQL, deep nesting).
LISTS = {
    "ListDeadLetterJobs": (
        admin_pb.ListDeadLetterJobsRequest,
        [[2**63, NOW, "x"], [0, "0001-01-01T00:00:00+14:00", "x"], [0, NOW, "nul\x00"], [0, NOW, [[[["deep"]]]]]],
    ),
    "ListFailurePatterns": (admin_pb.ListFailurePatternsRequest, [[2**63, "x"], [0, "nul\x00"], [[[["deep"]]], "x"]]),
    "ListJobs": (admin_pb.ListJobsRequest, [["0001-01-01T00:00:00+14:00", 1], [NOW, 2**63], [NOW, [[["deep"]]]]]),
    "ListRetryLog": (admin_pb.ListRetryLogRequest, [[2**63], [-(2**63) - 1], [[[["deep"]]]]]),
    "ListAuditEvents": (admin_pb.ListAuditEventsRequest, [[2**63], [[[["deep"]]]]]),
    "ListQueues": (admin_pb.ListQueuesRequest, [["nul\x00"], [[[["deep"]]]]]),
    "GetRecoveryStatus": (admin_pb.GetRecoveryStatusRequest, [[2**63], [[[["deep"]]]]]),
}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def payload_of(token: str) -> dict:
    body = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def seed(service) -> None:
    """At least two rows in every list, so each answers a first page of one with a next token."""
    for queue in ("emails", "reports"):
        for index in range(2):
            job_id = f"{queue}-{index}"
            service.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name=queue, job_name="send", job_id=job_id))
        for job in service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[queue], worker_id="w", max_jobs=2)).jobs:
            service.jobs.TrackFailure(
                pb.TrackFailureRequest(
                    job_id=job.job_id,
                    attempt_number=job.attempt_number,
                    error=job_pb2.JobError(message=f"{queue} failed", type=f"{queue}Error"),
                    non_retryable=job.job_id.endswith("0"),
                )
            )
        service.admin.PauseQueue(admin_pb.PauseQueueRequest(queue_name=queue))
    for _ in range(2):
        service.admin.TriggerRecovery(admin_pb.TriggerRecoveryRequest())


def first_page_token(admin, method: str) -> str:
    request_class, _ = LISTS[method]
    response = getattr(admin, method)(request_class(page_size=1))
    assert response.next_page_token, f"{method} has a second page"
    return response.next_page_token


@pytest.mark.parametrize("method", list(LISTS))
def test_forged_and_altered_page_tokens_are_invalid_arguments(service, method):
    seed(service)
    request_class, hostile_keys = LISTS[method]
    call = getattr(service.admin, method)
    token = first_page_token(service.admin, method)
    assert call(request_class(page_size=1, page_token=token)) is not None, "the real token continues the list"

    digest = payload_of(token)["f"]
    signature = token.split(".")[1] if "." in token else ""
    forged = []
    for key in hostile_keys:
        body = b64(json.dumps({"k": key, "f": digest}).encode())
        forged += [body, f"{body}.{signature}"]  # unsigned, and with the real token's signature
    forged += [token[:-2], token + "A", "x" * 5000]
    for bad in forged:
        assert_rejected(
            call, request_class(page_size=1, page_token=bad), grpc.StatusCode.INVALID_ARGUMENT, "page_token"
        )


def test_replicas_sharing_the_key_continue_each_others_pages(service, database_url, clock):
    seed(service)
    shared = "a-shared-page-token-key-0123456789"
    replicas = [
        QueueServer(make_config(database_url, page_token_key=key), clock=clock).start()
        for key in (shared, shared, "another-page-token-key-0123456789")
    ]
    channels = [grpc.insecure_channel(f"127.0.0.1:{replica.port}") for replica in replicas]
    try:
        first, second, other = (admin_service_pb2_grpc.AdminServiceStub(channel) for channel in channels)
        token = first_page_token(first, "ListJobs")
        assert len(second.ListJobs(admin_pb.ListJobsRequest(page_size=1, page_token=token)).jobs) == 1
        assert_rejected(
            other.ListJobs,
            admin_pb.ListJobsRequest(page_size=1, page_token=token),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token",
        )
    finally:
        for channel in channels:
            channel.close()
        for replica in replicas:
            replica.stop(0)
