"""`serve --workers 2`: sweeps run in the sweeper process, whichever server process is asked."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import admin_service_pb2_grpc

from queue_service.clock import FakeClock, SystemClock
from queue_service.core.jobs import JobManager, JobSpec
from queue_service.core.leadership import Lease
from queue_service.core.sweep.runner import SWEEP_LOCK
from queue_service.domain import JobState
from tests.e2e.server_process import serve
from tests.rpc_errors import error_details, rpc_error

pytestmark = pytest.mark.timeout(180)


def trigger(address: str, **call_options) -> admin_pb.RecoveryRun:
    # A local subchannel pool gives each call its own connection, so the calls reach both processes.
    with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stub = admin_service_pb2_grpc.AdminServiceStub(channel)
        return stub.TriggerRecovery(admin_pb.TriggerRecoveryRequest(), timeout=60, **call_options).run


def expire_leases(database, job_ids: list[str]) -> JobManager:
    """Jobs whose runs started an hour ago and whose leases ran out long since."""
    hour_ago = JobManager(database, FakeClock(datetime.now(UTC) - timedelta(hours=1)))
    hour_ago.enqueue([JobSpec("emails", "send", job_id=job_id) for job_id in job_ids])
    for job_id in job_ids:
        hour_ago.track_start(job_id)
    return JobManager(database, SystemClock())


def test_every_server_process_hands_its_sweeps_to_the_sweeper(database, database_url, tmp_path):
    jobs = expire_leases(database, ["stalled-1", "stalled-2"])
    with serve(
        database_url, tmp_path, "--workers", "2", "--metrics-port", "0", "--node-id", "replica-s", "--log-level", "INFO"
    ) as server:
        runs = [trigger(server.address) for _ in range(8)]
        log = server.log()
        answered = server.terminate()

    assert answered == 0, log
    assert {run.node_id for run in runs} == {"replica-s/sweeper"}
    assert [run.counts.stalled_jobs for run in runs] == [2, 0, 0, 0, 0, 0, 0, 0]
    assert {run.status for run in runs} == {admin_pb.RecoveryRun.STATUS_SUCCEEDED}
    for job_id in ("stalled-1", "stalled-2"):
        assert jobs.get_job(job_id).job.record.state == JobState.FAILED  # waiting for its retry
    # Both server processes took calls (the kernel spreads connections), and neither swept.
    sweepers = set(re.findall(r"\[(\d+)\] queue_service\.core\.sweep\.runner: recovery run \d+ \(manual\)", log))
    servers = set(re.findall(r"\[(\d+)\] queue_service\.multiprocess: server process \d serving on", log))
    assert len(sweepers) == 1 and len(servers) == 2 and not sweepers & servers, log


def test_a_sweep_refused_in_the_sweeper_is_refused_to_the_caller(database, database_url, tmp_path):
    holder = Lease(database, SystemClock(), SWEEP_LOCK, "busy-node", timedelta(minutes=5))
    assert holder.elect()
    with serve(database_url, tmp_path, "--workers", "2", "--metrics-port", "0") as server:
        error = rpc_error(trigger, server.address)
        assert error.code() == grpc.StatusCode.ABORTED
        assert "already running on node 'busy-node'" in error.details()
        info, _ = error_details(error)
        assert info is not None and info.reason == "RECOVERY_RUNNING"

        holder.resign()
        assert trigger(server.address).status == admin_pb.RecoveryRun.STATUS_SUCCEEDED
