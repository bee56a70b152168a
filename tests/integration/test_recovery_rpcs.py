"""TriggerRecovery and GetRecoveryStatus over gRPC, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import admin_service_pb2_grpc, job_pb2, job_service_pb2
from sqlalchemy import update

from queue_service.api.server import QueueServer
from queue_service.core.leadership import Lease
from queue_service.core.sweep.runner import SWEEP_LOCK
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.store.schema import queue_jobs
from tests.conftest import ADMIN_TOKEN, grpcurl_path, make_config
from tests.integration.admin_helpers import bad_field, enqueue, lease, rpc_error

RUN = admin_pb.RecoveryRun


def error_reason(error: grpc.RpcError) -> str:
    for detail in rpc_status.from_call(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""


def test_trigger_recovery_sweeps_now_and_returns_the_run(service):
    enqueue(service, "stalled")
    lease(service)
    service.clock.advance(61)

    run = service.admin.TriggerRecovery(admin_pb.TriggerRecoveryRequest()).run

    assert run.id > 0
    assert run.status == RUN.STATUS_SUCCEEDED
    assert run.trigger == RUN.TRIGGER_MANUAL
    assert run.node_id == service.server.recovery.node_id
    assert run.started_at.ToDatetime(UTC) == service.clock.now()
    assert run.finished_at.ToDatetime(UTC) == service.clock.now()
    assert run.counts.stalled_jobs == 1
    assert run.counts.stalled_jobs_dead_lettered == 0
    assert run.error == ""
    job = service.jobs.GetJob(job_service_pb2.GetJobRequest(job_id="stalled")).job
    assert job.state == job_pb2.Job.STATE_FAILED
    assert job.last_error.message == "lease expired"


def test_trigger_recovery_is_aborted_while_another_sweep_runs(service):
    holder = Lease(service.server.database, service.clock, SWEEP_LOCK, "replica-b", timedelta(minutes=2))
    assert holder.elect()

    error = rpc_error(service.admin.TriggerRecovery, admin_pb.TriggerRecoveryRequest())

    assert error.code() == grpc.StatusCode.ABORTED
    assert "already running on node 'replica-b'" in error.details()
    assert error_reason(error) == "RECOVERY_RUNNING"
    assert service.admin.GetRecoveryStatus(admin_pb.GetRecoveryStatusRequest()).total_runs == 0

    holder.resign()
    assert service.admin.TriggerRecovery(admin_pb.TriggerRecoveryRequest()).run.status == RUN.STATUS_SUCCEEDED


def test_a_failed_run_is_reported_not_raised(service):
    enqueue(service, "poison")
    lease(service)
    with service.server.database.transaction() as repo:
        repo.connection.execute(
            update(queue_jobs).where(queue_jobs.c.job_id == "poison").values(retry_policy={"max_retries": "x"})
        )
    service.clock.advance(61)

    run = service.admin.TriggerRecovery(admin_pb.TriggerRecoveryRequest()).run

    assert run.status == RUN.STATUS_FAILED
    assert run.error.startswith("stalled_jobs: ValueError")


def test_recovery_status_totals_last_run_and_pages(service):
    enqueue(service, "poison")
    lease(service)
    with service.server.database.transaction() as repo:
        repo.connection.execute(
            update(queue_jobs).where(queue_jobs.c.job_id == "poison").values(retry_policy={"max_retries": "x"})
        )
    service.clock.advance(61)
    ids = [service.admin.TriggerRecovery(admin_pb.TriggerRecoveryRequest()).run.id]  # fails on the poison job
    with service.server.database.transaction() as repo:
        repo.connection.execute(update(queue_jobs).where(queue_jobs.c.job_id == "poison").values(retry_policy=None))
    for _ in range(4):
        service.clock.advance(300)
        ids.append(service.admin.TriggerRecovery(admin_pb.TriggerRecoveryRequest()).run.id)

    status = service.admin.GetRecoveryStatus(admin_pb.GetRecoveryStatusRequest(page_size=2))

    assert (status.total_runs, status.successful_runs, status.failed_runs) == (5, 4, 1)
    assert status.last_run_at.ToDatetime(UTC) == service.clock.now()
    assert status.HasField("last_run_duration")
    assert status.last_run_duration.ToTimedelta() == timedelta(0)  # the fake clock stood still during the run
    assert not status.is_leader  # this server runs no scheduler
    assert not status.HasField("next_run_at")
    assert [run.id for run in status.recent_runs] == ids[:-3:-1]
    pages = [list(status.recent_runs)]
    token = status.next_page_token
    while token:
        page = service.admin.GetRecoveryStatus(admin_pb.GetRecoveryStatusRequest(page_size=2, page_token=token))
        pages.append(list(page.recent_runs))
        token = page.next_page_token
    assert [[run.id for run in page] for page in pages] == [ids[:2:-1], ids[2:0:-1], ids[:1]]
    assert pages[-1][0].status == RUN.STATUS_FAILED
    assert pages[-1][0].error.startswith("stalled_jobs")


def test_recovery_status_rejects_a_bad_page_request(service):
    for request in (
        admin_pb.GetRecoveryStatusRequest(page_token="garbage"),
        admin_pb.GetRecoveryStatusRequest(page_size=-1),
    ):
        error = rpc_error(service.admin.GetRecoveryStatus, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_field(error) in ("page_token", "page_size")


def test_recovery_status_of_the_leader_has_its_next_run(database_url, clock):
    settings = RecoverySettings(interval=timedelta(minutes=5), leader_lease_term=timedelta(seconds=30))
    server = QueueServer(make_config(database_url, recovery=settings), clock=clock).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        deadline = time.monotonic() + 20
        while not server.recovery_scheduler.is_leader and time.monotonic() < deadline:
            time.sleep(0.05)
        status = admin.GetRecoveryStatus(admin_pb.GetRecoveryStatusRequest())
        assert status.is_leader
        # The scheduler runs on real time: the first sweep is one interval after the start.
        next_run = status.next_run_at.ToDatetime(UTC)
        assert datetime.now(UTC) < next_run <= datetime.now(UTC) + timedelta(minutes=5)
        assert status.total_runs == 0 and not status.HasField("last_run_at")
    finally:
        channel.close()
        server.stop(0)


def test_trigger_recovery_is_audited_with_the_caller(secured_service):
    metadata = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    run = secured_service.admin.TriggerRecovery(admin_pb.TriggerRecoveryRequest(), metadata=metadata).run

    events = secured_service.admin.ListAuditEvents(
        admin_pb.ListAuditEventsRequest(action="TriggerRecovery"), metadata=metadata
    ).events
    assert [(event.actor, event.target) for event in events] == [("admin", f"recovery_run/{run.id}")]


def test_grpcurl_triggers_recovery_and_reads_the_status(service):
    def grpcurl(method: str, body: str = "{}") -> dict:
        result = subprocess.run(
            [grpcurl_path(), "-plaintext", "-d", body, service.target, f"jobqueue.v1.AdminService/{method}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    triggered = grpcurl("TriggerRecovery")
    assert triggered["run"]["status"] == "STATUS_SUCCEEDED"
    assert triggered["run"]["trigger"] == "TRIGGER_MANUAL"
    status = grpcurl("GetRecoveryStatus", '{"page_size": 10}')
    # grpcurl prints the proto field names; 64-bit integers as strings.
    assert status["total_runs"] == "1" and status["successful_runs"] == "1"
    assert [run["id"] for run in status["recent_runs"]] == [triggered["run"]["id"]]
    assert status["recent_runs"][0]["counts"] == triggered["run"]["counts"]
