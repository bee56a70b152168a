"""Security beyond the auth matrix: worker tokens and bulk or streaming admin calls with real data,
and no token in any error message or in the log of a whole authenticated run."""

from __future__ import annotations

import threading
from datetime import timedelta

import grpc
import pytest
from jobqueue import AdminClient, JobClient, NonRetryableError, PermissionDenied, Unauthenticated, Worker
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.integration.test_auth import METHODS, call
from tests.reliability.processes import ServerProcess, clean_env, wait_for

WRONG_TOKEN = "wrong-token-but-a-secret-all-the-same-4242"
SECRETS = (ADMIN_TOKEN, WORKER_TOKEN, WRONG_TOKEN)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def dead_letters(service, count: int) -> list[str]:
    """`count` PENDING dead-letter entries, made through JobService with the worker token."""
    ids = []
    for index in range(count):
        job_id = f"doomed-{index}"
        service.jobs.EnqueueJob(
            pb.EnqueueJobRequest(queue_name="billing", job_name="charge", job_id=job_id), metadata=bearer(WORKER_TOKEN)
        )
        (job,) = service.jobs.LeaseJobs(
            pb.LeaseJobsRequest(queue_names=["billing"]), metadata=bearer(WORKER_TOKEN)
        ).jobs
        failure = service.jobs.TrackFailure(
            pb.TrackFailureRequest(
                job_id=job.job_id,
                attempt_number=job.attempt_number,
                error=job_pb2.JobError(message="card declined"),
                non_retryable=True,
            ),
            metadata=bearer(WORKER_TOKEN),
        )
        ids.append(failure.dead_letter_id)
    return ids


def pending_count(service) -> int:
    stats = service.admin.GetStatistics(admin_pb.GetStatisticsRequest(), metadata=bearer(ADMIN_TOKEN))
    return stats.totals.dead_letter_summary.pending_count


def test_a_worker_token_cannot_redrive_through_the_streaming_call(secured_service):
    ids = dead_letters(secured_service, 3)
    requests = [
        admin_pb.RetryDeadLetterJobsRequest(filter=admin_pb.DeadLetterFilter(queue_name="billing")),
        admin_pb.RetryDeadLetterJobsRequest(ids=admin_pb.DeadLetterIds(ids=ids)),
        admin_pb.RetryDeadLetterJobsRequest(ids=admin_pb.DeadLetterIds(ids=ids), dry_run=True),
    ]
    for request in requests:
        received = []
        with pytest.raises(grpc.RpcError) as raised:
            for message in secured_service.admin.RetryDeadLetterJobs(
                request, metadata=bearer(WORKER_TOKEN), timeout=10
            ):
                received.append(message)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert received == [], "not even the first progress message"
    # Through the client library too, and through the other bulk admin call.
    with AdminClient(secured_service.target, token=WORKER_TOKEN, timeout=10) as admin:
        with pytest.raises(PermissionDenied):
            list(admin.retry_dead_letter_jobs(queue_name="billing"))
        with pytest.raises(PermissionDenied):
            admin.clean_queue("billing", "dead_letter", recovery_status="pending")
    assert pending_count(secured_service) == 3
    events = secured_service.admin.ListAuditEvents(admin_pb.ListAuditEventsRequest(), metadata=bearer(ADMIN_TOKEN))
    # No admin action ran; each refusal is on record as such.
    assert [event.action for event in events.events] == ["AuthenticationFailed"] * 5
    assert {event.actor for event in events.events} == {"worker"}
    # The same calls with the admin token do work: the refusals above were about the role.
    with AdminClient(secured_service.target, token=ADMIN_TOKEN, timeout=10) as admin:
        progress = list(admin.retry_dead_letter_jobs(ids=ids))
    assert progress[-1].done and progress[-1].retried_count == 3
    assert pending_count(secured_service) == 0


@pytest.mark.parametrize("method", METHODS, ids=lambda method: method.full_name)
def test_no_rejection_carries_the_token(secured_service, method):
    """Details, ErrorInfo and trailing metadata of every refusal, for every RPC, name no token."""
    headers = [
        bearer(WRONG_TOKEN),
        (("authorization", WRONG_TOKEN),),
        (("authorization", f"Basic {WRONG_TOKEN}"),),
        (("authorization", f"Bearer {WRONG_TOKEN} {ADMIN_TOKEN}"),),
        bearer(WORKER_TOKEN),
    ]
    stub_kind = secured_service.channel.unary_stream if method.server_streaming else secured_service.channel.unary_unary
    stub = stub_kind(f"/{method.containing_service.full_name}/{method.name}")
    for metadata in headers:
        try:
            response = stub(b"", metadata=metadata, timeout=10)
            if method.server_streaming:
                list(response)
        except grpc.RpcError as error:
            text = repr((error.details(), error.trailing_metadata(), error.debug_error_string()))
            for secret in SECRETS:
                assert secret not in text
        else:
            assert metadata == bearer(WORKER_TOKEN), "only the worker token may get through, to JobService"
    # The code paths exercised above did refuse: the matrix's own helper agrees.
    assert call(secured_service.channel, method, bearer(WRONG_TOKEN)) == grpc.StatusCode.UNAUTHENTICATED


def test_client_errors_do_not_carry_the_token(secured_service):
    for token, error_class in ((WRONG_TOKEN, Unauthenticated), (WORKER_TOKEN, PermissionDenied)):
        with AdminClient(secured_service.target, token=token, timeout=10) as admin:
            with pytest.raises(error_class) as raised:
                admin.get_statistics()
        text = f"{raised.value} {raised.value!r} {raised.value.metadata} {raised.value.__cause__!r}"
        for secret in SECRETS:
            assert secret not in text
        assert token not in repr(admin) and token not in repr(admin.connection)


@pytest.mark.slow
def test_a_whole_authenticated_run_logs_no_token(tmp_path):
    """Workers, failures, dead letters, admin triage, a streamed redrive and refused callers, with
    DEBUG logs in both formats: neither token, nor a long piece of one, is ever written."""
    for log_format in ("text", "json"):
        server = ServerProcess(
            f"sqlite:///{tmp_path / f'{log_format}.sqlite3'}",
            tmp_path / f"{log_format}.log",
            args=("--log-level", "DEBUG", "--log-format", log_format),
            env=clean_env(QUEUE_ADMIN_TOKEN=ADMIN_TOKEN, QUEUE_WORKER_TOKEN=WORKER_TOKEN),
        ).start()
        try:
            drive_a_run(server.target)
        finally:
            assert server.stop() == 0
        log = server.log_text()
        assert "rejected /jobqueue.v1.AdminService" in log and "GetStatistics" in log, "the run was logged"
        for secret in SECRETS:
            pieces = {secret[start : start + 12] for start in range(len(secret) - 11)}
            leaked = [piece for piece in pieces if piece in log]
            assert not leaked, f"{log_format} log holds a piece of a token: {leaked[:3]}"


def drive_a_run(target: str) -> None:
    with JobClient(target, token=WORKER_TOKEN, timeout=10) as client:
        for index in range(20):
            client.enqueue("mail", "send", {"n": index}, job_id=f"mail-{index}")

        def handler(job):
            if job.job_data["n"] % 5 == 0:
                raise NonRetryableError(f"bad address in job {job.job_id}")
            return {"sent": True}

        worker = Worker(client, "mail", handler, concurrency=2, poll_wait=timedelta(seconds=0.2))
        worker.start()
        try:
            wait_for(lambda: worker.completed + worker.failed >= 20, timeout=60, message="the worker's 20 jobs")
        finally:
            worker.stop(timeout=30)
    with AdminClient(target, token=ADMIN_TOKEN, timeout=10) as admin:
        assert admin.get_statistics(["mail"]).totals.dead_letter_count == 4
        entries = list(admin.list_dead_letter_jobs(queue_name="mail"))
        admin.update_dead_letter_job(entries[0].id, admin_notes="looking", assigned_to="ops")
        admin.mark_permanently_failed(entries[1].id, "address does not exist")
        assert list(admin.retry_dead_letter_jobs(queue_name="mail"))[-1].retried_count == 3
        list(admin.list_audit_events())
    for token in (WORKER_TOKEN, WRONG_TOKEN):
        with AdminClient(target, token=token, timeout=10) as admin:
            with pytest.raises((PermissionDenied, Unauthenticated)):
                list(admin.retry_dead_letter_jobs(queue_name="mail"))
            with pytest.raises((PermissionDenied, Unauthenticated)):
                admin.get_statistics()
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary("/jobqueue.v1.JobService/GetJob")
        for metadata in ((("authorization", WRONG_TOKEN),), (("authorization", f"Basic {ADMIN_TOKEN}"),)):
            with pytest.raises(grpc.RpcError):
                stub(b"\x0a\x01x", metadata=metadata, timeout=10)
    threading.Event().wait(0.2)  # let the last log lines reach the file before the server stops
