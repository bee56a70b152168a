"""Group commit through a real server on both backends: concurrent reports and leases share commits,
every report is applied, and each bad report gets its own error while its neighbours succeed."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import field_mask_pb2
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import admin_service_pb2_grpc, job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import event, select

from queue_service.api.server import QueueServer
from queue_service.core.jobs import LifecycleSettings
from queue_service.store.schema import queue_jobs
from tests.conftest import RunningService, make_config

JOBS = 96
WORKERS = 8
TIMEOUT = 60


def enqueue_jobs(stub, queue: str, count: int) -> list[str]:
    job_ids = [f"{queue}-{index:03d}" for index in range(count)]
    stub.EnqueueJobs(
        pb.EnqueueJobsRequest(jobs=[pb.EnqueueJobRequest(queue_name=queue, job_name="n", job_id=i) for i in job_ids])
    )
    return job_ids


def states(database, queue: str) -> dict[str, tuple[str, int]]:
    with database.engine.connect() as connection:
        rows = connection.execute(
            select(queue_jobs.c.job_id, queue_jobs.c.state, queue_jobs.c.attempt_number).where(
                queue_jobs.c.queue_name == queue
            )
        ).all()
    return {row.job_id: (row.state, row.attempt_number) for row in rows}


def code_of(call, request) -> grpc.StatusCode:
    try:
        call(request, timeout=TIMEOUT)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def failure(job_id: str, attempt: int) -> pb.TrackFailureRequest:
    return pb.TrackFailureRequest(
        job_id=job_id, attempt_number=attempt, error=job_pb2.JobError(message="boom", type="IOError")
    )


def test_concurrent_workers_reports_are_all_applied_and_bad_ones_fail_alone(service, database):
    job_ids = enqueue_jobs(service.jobs, "grouped", JOBS)
    calls: Counter[tuple[str, grpc.StatusCode]] = Counter()
    leased: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(WORKERS)

    def worker(index: int) -> None:
        with grpc.insecure_channel(service.target) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            start.wait()
            while True:
                jobs = stub.LeaseJobs(
                    pb.LeaseJobsRequest(queue_names=["grouped"], worker_id=f"w{index}", max_jobs=1), timeout=TIMEOUT
                ).jobs
                if not jobs:
                    return
                (job,) = jobs
                number = int(job.job_id.rsplit("-", 1)[1])
                attempt = job.attempt_number
                outcomes = [
                    (
                        "heartbeat",
                        code_of(stub.HeartbeatJob, pb.HeartbeatJobRequest(job_id=job.job_id, attempt_number=attempt)),
                    ),
                    # Bad reports, each amid the good ones of the other workers.
                    (
                        "stale completion",
                        code_of(
                            stub.TrackCompletion,
                            pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=attempt + 1),
                        ),
                    ),
                    ("unknown failure", code_of(stub.TrackFailure, failure(f"missing-{job.job_id}", 1))),
                    (
                        "unknown start",
                        code_of(stub.TrackStart, pb.TrackStartRequest(job_id=f"missing-{job.job_id}")),
                    ),
                ]
                if number % 2 == 0:
                    request = pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=attempt, result={"n": number})
                    outcomes.append(("completion", code_of(stub.TrackCompletion, request)))
                else:
                    outcomes.append(("failure", code_of(stub.TrackFailure, failure(job.job_id, attempt))))
                with lock:
                    leased.append(job.job_id)
                    calls.update(outcomes)

    with ThreadPoolExecutor(WORKERS) as pool:
        for future in [pool.submit(worker, index) for index in range(WORKERS)]:
            future.result(timeout=TIMEOUT * 3)

    assert sorted(leased) == job_ids
    ok = grpc.StatusCode.OK
    assert calls == Counter(
        {
            ("heartbeat", ok): JOBS,
            ("stale completion", grpc.StatusCode.FAILED_PRECONDITION): JOBS,
            ("unknown failure", grpc.StatusCode.NOT_FOUND): JOBS,
            ("unknown start", grpc.StatusCode.INVALID_ARGUMENT): JOBS,
            ("completion", ok): JOBS // 2,
            ("failure", ok): JOBS // 2,
        }
    )
    # Every good report is applied; no bad one wrote anything.
    assert states(database, "grouped") == {
        job_id: ("completed" if index % 2 == 0 else "failed", 1) for index, job_id in enumerate(job_ids)
    }
    with database.engine.connect() as connection:
        assert connection.execute(select(queue_jobs.c.job_id).where(queue_jobs.c.job_id.like("missing-%"))).all() == []
    stats = service.server.jobs.committer.stats()
    assert stats.units >= JOBS * 5
    assert stats.transactions <= stats.units


def test_reports_arriving_during_a_transaction_share_one_commit(service, database):
    """Hold a transaction in flight, send reports (good and bad) meanwhile: they commit together."""
    job_ids = enqueue_jobs(service.jobs, "shared", 6)
    jobs = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["shared"], worker_id="w", max_jobs=6)).jobs
    assert sorted(job.job_id for job in jobs) == job_ids
    committer = service.server.jobs.committer
    commits: list[int] = []
    event.listen(service.server.database.engine, "commit", lambda _connection: commits.append(1))
    # One transaction held open in every lane, so that the calls below must queue.
    in_flight = threading.Semaphore(0)
    releases = [threading.Event() for _ in range(committer.lanes)]

    def held_open(release: threading.Event):
        def work(_repo):
            in_flight.release()
            assert release.wait(TIMEOUT)

        return work

    holders = [threading.Thread(target=committer.run, args=(held_open(release),)) for release in releases]
    for holder in holders:
        holder.start()
        assert in_flight.acquire(timeout=TIMEOUT)
    by_id = {job.job_id: job for job in jobs}
    requests = [
        (service.jobs.TrackCompletion, pb.TrackCompletionRequest(job_id=job_ids[0], attempt_number=1)),
        (service.jobs.TrackCompletion, pb.TrackCompletionRequest(job_id=job_ids[1], attempt_number=9)),
        (service.jobs.TrackFailure, failure(job_ids[2], 1)),
        (service.jobs.TrackFailure, failure("no-such-job", 1)),
        (service.jobs.HeartbeatJob, pb.HeartbeatJobRequest(job_id=job_ids[3], attempt_number=1)),
        (service.jobs.TrackCompletion, pb.TrackCompletionRequest(job_id=job_ids[4], attempt_number=1)),
        (service.jobs.LeaseJobs, pb.LeaseJobsRequest(queue_names=["other"], worker_id="w")),
    ]
    with ThreadPoolExecutor(len(requests)) as pool:
        futures = []
        for call, request in requests:
            futures.append(pool.submit(code_of, call, request))
            deadline = time.monotonic() + TIMEOUT
            # One at a time, so that they queue in this order.
            while committer.queued() < len(futures):
                assert time.monotonic() < deadline
                time.sleep(0.001)
        assert commits == []
        # One lane frees up: the first call queued takes it, and the six behind it with it.
        releases[0].set()
        codes = [future.result(timeout=TIMEOUT) for future in futures]
    # The held transaction's commit, then one commit for all seven calls.
    assert len(commits) == 2
    for release in releases:
        release.set()
    for holder in holders:
        holder.join(TIMEOUT)

    assert codes == [
        grpc.StatusCode.OK,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OK,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OK,
        grpc.StatusCode.OK,
        grpc.StatusCode.OK,
    ]
    assert committer.stats().largest_group == len(requests)
    assert states(database, "shared") == {
        job_ids[0]: ("completed", 1),
        job_ids[1]: ("active", 1),
        job_ids[2]: ("failed", 1),
        job_ids[3]: ("active", 1),
        job_ids[4]: ("completed", 1),
        job_ids[5]: ("active", 1),
    }
    assert by_id[job_ids[5]].attempt_number == 1


def hold_every_lane(committer) -> list[threading.Event]:
    """A transaction held open in every lane, so that the calls that follow queue; set an event
    to let its transaction commit."""
    in_flight = threading.Semaphore(0)
    releases = [threading.Event() for _ in range(committer.lanes)]

    def held_open(release: threading.Event):
        def work(_repo):
            in_flight.release()
            assert release.wait(TIMEOUT)

        return work

    for release in releases:
        threading.Thread(target=committer.run, args=(held_open(release),), daemon=True).start()
        assert in_flight.acquire(timeout=TIMEOUT)
    return releases


def test_leases_of_limited_queues_in_a_group_keep_their_limits(service, database):
    """On PostgreSQL a lease that locks lease-limit rows runs in a transaction of its own (grouped,
    its locks would interleave with its neighbours' and could deadlock with another lane); on
    SQLite, one writer at a time, it stays in the group. Either way the limits hold."""
    for queue in ("capped-a", "capped-b"):
        enqueue_jobs(service.jobs, queue, 3)
        service.admin.UpdateQueuePolicy(
            admin.UpdateQueuePolicyRequest(
                queue_name=queue, update_mask=field_mask_pb2.FieldMask(paths=["max_active"]), max_active=1
            )
        )
    enqueue_jobs(service.jobs, "free", 1)
    committer = service.server.jobs.committer
    releases = hold_every_lane(committer)

    def lease(queues: list[str]) -> list[str]:
        request = pb.LeaseJobsRequest(queue_names=queues, worker_id="w", max_jobs=3)
        return [job.job_id for job in service.jobs.LeaseJobs(request, timeout=TIMEOUT).jobs]

    calls = [["capped-b", "capped-a"], ["free"], ["capped-a", "capped-b"], ["capped-a"]]
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = []
        for queues in calls:
            futures.append(pool.submit(lease, queues))
            deadline = time.monotonic() + TIMEOUT
            while committer.queued() < len(futures):
                assert time.monotonic() < deadline
                time.sleep(0.001)
        # One lane frees up: the four leases go into one group.
        releases[0].set()
        leased = [future.result(timeout=TIMEOUT) for future in futures]
    for release in releases:
        release.set()

    assert leased[1] == ["free-000"]
    capped = sorted(job_id for result in leased[:1] + leased[2:] for job_id in result)
    # One job of each capped queue, whichever lease got it.
    assert capped == ["capped-a-000", "capped-b-000"]
    stored = states(database, "capped-a") | states(database, "capped-b")
    assert sorted(job_id for job_id, (state, _) in stored.items() if state == "active") == capped
    stats = committer.stats()
    assert stats.largest_group == len(calls)
    # The three leases naming a limited queue ran alone on PostgreSQL, none on SQLite.
    assert stats.alone == (3 if database.dialect == "postgresql" else 0)


@pytest.fixture
def service(database_url, clock):
    """The conftest service with group commit on, whichever backend (PostgreSQL's default is off)."""
    lifecycle = LifecycleSettings(lease_poll_interval=0.05, group_commit=True)
    server = QueueServer(make_config(database_url, lifecycle=lifecycle), clock=clock, sleep=clock.advance).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield RunningService(
            server,
            channel,
            job_service_pb2_grpc.JobServiceStub(channel),
            clock,
            admin_service_pb2_grpc.AdminServiceStub(channel),
        )
    finally:
        channel.close()
        server.stop(0)


@pytest.fixture
def service_without_group_commit(database_url, clock):
    lifecycle = LifecycleSettings(lease_poll_interval=0.05, group_commit=False)
    server = QueueServer(make_config(database_url, lifecycle=lifecycle), clock=clock, sleep=clock.advance).start()
    try:
        yield server
    finally:
        server.stop(0)


def test_with_group_commit_off_each_report_has_its_own_transaction(service_without_group_commit, database):
    server = service_without_group_commit
    assert server.jobs.committer is None
    commits: list[int] = []
    event.listen(server.database.engine, "commit", lambda _connection: commits.append(1))
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        enqueue_jobs(stub, "alone", 2)
        jobs = stub.LeaseJobs(pb.LeaseJobsRequest(queue_names=["alone"], worker_id="w", max_jobs=2)).jobs
        assert len(jobs) == 2
        assert code_of(stub.TrackCompletion, pb.TrackCompletionRequest(job_id=jobs[0].job_id, attempt_number=1)) == (
            grpc.StatusCode.OK
        )
        assert code_of(stub.TrackFailure, failure(jobs[1].job_id, 2)) == grpc.StatusCode.FAILED_PRECONDITION
    # Enqueue, lease and the completion each committed; the refused failure rolled back. On PostgreSQL
    # the completion is one statement that commits alone (autocommit), with no transaction to commit.
    assert len(commits) == (2 if server.database.dialect == "postgresql" else 3)
    assert states(database, "alone") == {jobs[0].job_id: ("completed", 1), jobs[1].job_id: ("active", 1)}
