"""LeaseJobs and HeartbeatJob over gRPC on both backends: limits, order, paused queues, long-polling."""

import threading
import time
from datetime import UTC, timedelta

import grpc
import pytest
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import update

from queue_service.store.schema import queues
from tests.rpc_errors import assert_rejected, error_details


def when(timestamp):
    return timestamp.ToDatetime(tzinfo=UTC)


def enqueue(service, job_id, queue="emails", **fields):
    return service.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name=queue, job_name="send", job_id=job_id, **fields))


def lease_ids(service, queues=("emails",), **options):
    request = pb.LeaseJobsRequest(queue_names=list(queues), worker_id="w1", **options)
    return [job.job_id for job in service.jobs.LeaseJobs(request).jobs]


def set_paused(database, queue, paused):
    with database.engine.begin() as connection:
        changed = connection.execute(update(queues).where(queues.c.name == queue).values(paused=paused)).rowcount
    assert changed == 1


def test_leased_jobs_are_active_with_the_next_attempt_and_a_lease(service):
    enqueue(service, "a")
    (job,) = service.jobs.LeaseJobs(
        pb.LeaseJobsRequest(queue_names=["emails"], worker_id="worker-7", lease_duration=timedelta(seconds=90))
    ).jobs
    now = service.clock.now()
    assert job.state == job_pb2.Job.STATE_ACTIVE
    assert job.attempt_number == 1
    assert job.worker_id == "worker-7"
    assert when(job.lease_expires_at) == now + timedelta(seconds=90)
    assert when(job.started_at) == now
    assert service.jobs.GetJob(pb.GetJobRequest(job_id="a")).job == job
    assert lease_ids(service) == []  # an active job is not leased twice


def test_a_leased_job_counts_its_retries_by_its_queues_policy(service):
    enqueue(service, "plain", queue="plain")
    enqueue(service, "a")
    service.admin.UpdateQueuePolicy(
        admin.UpdateQueuePolicyRequest(queue_name="emails", retry_policy=job_pb2.RetryPolicy(max_retries=7))
    )
    (by_default,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["plain"], worker_id="w1")).jobs
    (job,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"], worker_id="w1")).jobs
    assert job.remaining_retries == 7
    assert by_default.remaining_retries != 7
    assert service.jobs.GetJob(pb.GetJobRequest(job_id="a")).job == job


def test_default_lease_duration_is_the_servers(service):
    enqueue(service, "a")
    (job,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"])).jobs
    assert when(job.lease_expires_at) == service.clock.now() + timedelta(seconds=60)


def test_max_jobs_bounds_each_lease(service):
    for index in range(5):
        enqueue(service, f"j{index}")
    assert len(lease_ids(service)) == 1  # max_jobs defaults to 1
    assert len(lease_ids(service, max_jobs=3)) == 3
    assert len(lease_ids(service, max_jobs=3)) == 1
    assert lease_ids(service, max_jobs=3) == []


def test_higher_priority_first_then_oldest_ready_time(service):
    now = service.clock.now()
    enqueue(service, "low-older", run_at=now - timedelta(seconds=30))
    enqueue(service, "high-newer", priority=5, run_at=now - timedelta(seconds=1))
    enqueue(service, "low-oldest", run_at=now - timedelta(seconds=60))
    enqueue(service, "high-older", priority=5, run_at=now - timedelta(seconds=10))
    enqueue(service, "low-newest", run_at=now)
    assert lease_ids(service, max_jobs=10) == ["high-older", "high-newer", "low-oldest", "low-older", "low-newest"]


def test_a_due_retry_orders_by_its_retry_time_not_its_creation(service):
    enqueue(service, "retried")
    lease_ids(service)
    service.jobs.TrackFailure(
        pb.TrackFailureRequest(job_id="retried", attempt_number=1, error=job_pb2.JobError(message="boom"))
    )
    service.clock.advance(3)
    enqueue(service, "fresh")  # ready 2 s before the retry
    service.clock.advance(10)
    assert lease_ids(service, max_jobs=2) == ["fresh", "retried"]


def test_lease_from_several_queues(service):
    enqueue(service, "e1", queue="emails")
    enqueue(service, "s1", queue="sms", priority=1)
    enqueue(service, "x1", queue="other", priority=9)
    assert lease_ids(service, queues=("emails", "sms", "emails"), max_jobs=5) == ["s1", "e1"]


def test_a_paused_queue_is_never_leased(service, database):
    enqueue(service, "held", queue="emails", priority=10)
    enqueue(service, "free", queue="sms")
    set_paused(database, "emails", True)
    assert lease_ids(service, queues=("emails", "sms"), max_jobs=5) == ["free"]
    assert lease_ids(service, queues=("emails",), max_jobs=5) == []
    # Nor by a long-poll that is woken by a new job in the paused queue.
    enqueue(service, "held-2", queue="emails")
    assert lease_ids(service, queues=("emails",), wait=timedelta(milliseconds=300)) == []
    set_paused(database, "emails", False)
    assert lease_ids(service, queues=("emails",), max_jobs=5) == ["held", "held-2"]


def test_long_poll_is_woken_by_an_enqueue(service):
    results = {}

    def poll():
        started = time.monotonic()
        results["ids"] = lease_ids(service, wait=timedelta(seconds=20))
        results["elapsed"] = time.monotonic() - started

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)
    assert "ids" not in results, "the long-poll returned before any job was ready"
    enqueue(service, "wake-up")
    poller.join(timeout=30)
    assert not poller.is_alive()
    assert results["ids"] == ["wake-up"]
    assert 0.3 <= results["elapsed"] < 15  # woken, not timed out after 20 s


def test_long_poll_returns_empty_when_the_wait_ends(service):
    started = time.monotonic()
    assert lease_ids(service, wait=timedelta(milliseconds=400)) == []
    assert 0.4 <= time.monotonic() - started < 10


def test_long_poll_ends_at_the_clients_deadline_and_leases_nothing_after(service):
    started = time.monotonic()
    request = pb.LeaseJobsRequest(queue_names=["emails"], worker_id="w1", wait=timedelta(seconds=30))
    # The server answers (empty) just before the deadline rather than letting the call expire; on a
    # machine too busy to answer within that margin the call expires instead, which is as good.
    try:
        assert list(service.jobs.LeaseJobs(request, timeout=1.5).jobs) == []
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 10  # the 30 s wait did not run on
    # A job that arrives after the caller left stays ready instead of going to a departed worker.
    enqueue(service, "after-deadline")
    time.sleep(1.0)
    job = service.jobs.GetJob(pb.GetJobRequest(job_id="after-deadline")).job
    assert job.state == job_pb2.Job.STATE_WAITING


def test_heartbeat_extends_the_lease(service):
    enqueue(service, "a")
    (job,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"])).jobs
    service.clock.advance(45)
    response = service.jobs.HeartbeatJob(
        pb.HeartbeatJobRequest(job_id="a", attempt_number=1, lease_duration=timedelta(minutes=5))
    )
    assert when(response.lease_expires_at) == service.clock.now() + timedelta(minutes=5)
    assert when(service.jobs.GetJob(pb.GetJobRequest(job_id="a")).job.lease_expires_at) == when(
        response.lease_expires_at
    )
    default = service.jobs.HeartbeatJob(pb.HeartbeatJobRequest(job_id="a", attempt_number=1))
    assert when(default.lease_expires_at) == service.clock.now() + timedelta(seconds=60)


def test_heartbeat_for_a_stale_attempt_or_an_inactive_job_is_refused(service):
    enqueue(service, "a")
    lease_ids(service)
    service.jobs.TrackFailure(pb.TrackFailureRequest(job_id="a", attempt_number=1, error=job_pb2.JobError(message="x")))
    service.clock.advance(5)
    lease_ids(service)  # attempt 2
    before = service.jobs.GetJob(pb.GetJobRequest(job_id="a")).job
    stale = pb.HeartbeatJobRequest(job_id="a", attempt_number=1)
    assert_rejected(service.jobs.HeartbeatJob, stale, grpc.StatusCode.FAILED_PRECONDITION, "attempt_number")
    assert service.jobs.GetJob(pb.GetJobRequest(job_id="a")).job == before
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="a", attempt_number=2))
    done = pb.HeartbeatJobRequest(job_id="a", attempt_number=2)
    error = assert_rejected(
        service.jobs.HeartbeatJob, done, grpc.StatusCode.FAILED_PRECONDITION, "job_id", mentions="'a' is COMPLETED"
    )
    assert error_details(error)[0].reason == "INVALID_JOB_STATE"


@pytest.mark.parametrize(
    "request_fields, field",
    [
        ({"queue_names": []}, "queue_names"),
        ({"queue_names": [""]}, "queue_names"),
        ({"queue_names": ["q" * 101]}, "queue_names"),
        ({"queue_names": ["q"], "max_jobs": -1}, "max_jobs"),
        ({"queue_names": ["q"], "max_jobs": 1001}, "max_jobs"),
        ({"queue_names": ["q"], "worker_id": "w" * 256}, "worker_id"),
        ({"queue_names": ["q"], "lease_duration": timedelta(seconds=-1)}, "lease_duration"),
        ({"queue_names": ["q"], "lease_duration": timedelta(days=2)}, "lease_duration"),
        ({"queue_names": ["q"], "wait": timedelta(seconds=-1)}, "wait"),
        ({"queue_names": ["q"], "wait": timedelta(hours=1)}, "wait"),
    ],
)
def test_bad_lease_requests(service, request_fields, field):
    enqueue(service, "untouched", queue="q")
    request = pb.LeaseJobsRequest(**request_fields)
    assert_rejected(service.jobs.LeaseJobs, request, grpc.StatusCode.INVALID_ARGUMENT, field)
    assert service.jobs.GetJob(pb.GetJobRequest(job_id="untouched")).job.state == job_pb2.Job.STATE_WAITING
