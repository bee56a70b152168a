"""Per-queue lease limits over gRPC on both backends: max_active and the start-rate token bucket,
set and cleared by UpdateQueuePolicy's field mask, shown by GetQueue and ListQueues, and bad values refused.

The bucket refills by the server's clock, which here is the fake one the test advances."""

from datetime import timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import job_service_pb2 as pb

from tests.integration.admin_helpers import bad_field, enqueue, lease, rpc_error


def update(service, queue="emails", paths=(), **fields):
    request = admin.UpdateQueuePolicyRequest(
        queue_name=queue, update_mask=field_mask_pb2.FieldMask(paths=list(paths)), **fields
    )
    return service.admin.UpdateQueuePolicy(request).queue


def get(service, queue="emails"):
    return service.admin.GetQueue(admin.GetQueueRequest(queue_name=queue)).queue


def complete(service, job):
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number))


def limits(queue):
    return (
        queue.max_active if queue.HasField("max_active") else None,
        queue.max_starts_per_second if queue.HasField("max_starts_per_second") else None,
    )


def test_max_active_caps_running_jobs_until_one_finishes(service):
    for index in range(6):
        enqueue(service, f"j{index}")
    update(service, paths=["max_active"], max_active=2)
    first = lease(service, max_jobs=5)
    assert len(first) == 2
    assert lease(service, max_jobs=5) == []
    complete(service, first[0])
    second = lease(service, max_jobs=5)
    assert len(second) == 1
    assert lease(service) == []
    # Jobs started outside LeaseJobs are ACTIVE too and count against the limit.
    complete(service, first[1])
    complete(service, second[0])
    service.jobs.TrackStart(pb.TrackStartRequest(job_id="external", queue_name="emails", job_name="x"))
    assert len(lease(service, max_jobs=5)) == 1
    # Cleared: every ready job leases.
    update(service, paths=["max_active"])
    assert len(lease(service, max_jobs=5)) == 2


def test_start_rate_is_a_token_bucket_on_the_server_clock(service, clock):
    for index in range(20):
        enqueue(service, f"j{index}")
    update(service, paths=["max_starts_per_second"], max_starts_per_second=2.0)
    # A new rate starts with a full bucket: burst max(1, rate) = 2.
    started = lease(service, max_jobs=10)
    assert len(started) == 2
    assert lease(service, max_jobs=10) == []
    clock.advance(timedelta(milliseconds=499))
    assert lease(service, max_jobs=10) == []
    clock.advance(timedelta(milliseconds=1))
    assert len(lease(service, max_jobs=10)) == 1
    # A long idle spell fills the bucket to its burst, no further.
    clock.advance(timedelta(minutes=5))
    assert len(lease(service, max_jobs=10)) == 2
    # A rate below one start per second still holds one start.
    update(service, paths=["max_starts_per_second"], max_starts_per_second=0.25)
    assert len(lease(service, max_jobs=10)) == 1
    clock.advance(timedelta(seconds=3))
    assert lease(service) == []
    clock.advance(timedelta(seconds=1))
    assert len(lease(service)) == 1


def test_both_limits_and_an_unlimited_queue_in_one_lease(service, clock):
    for index in range(10):
        enqueue(service, f"l{index}", "limited")
        enqueue(service, f"f{index}", "free")
    update(service, "limited", max_active=3, max_starts_per_second=2.0)
    request = pb.LeaseJobsRequest(queue_names=["limited", "free"], worker_id="w", max_jobs=8)
    jobs = list(service.jobs.LeaseJobs(request).jobs)
    assert sorted(job.queue_name for job in jobs).count("limited") == 2
    assert len(jobs) == 8
    clock.advance(timedelta(seconds=10))
    jobs = list(service.jobs.LeaseJobs(request).jobs)
    # The bucket holds two starts again, but only one more fits under max_active.
    assert [job.queue_name for job in jobs].count("limited") == 1


def test_limits_show_and_follow_the_field_mask(service):
    enqueue(service, "a")
    assert limits(get(service)) == (None, None)
    queue = update(service, max_active=4, max_starts_per_second=1.5)
    assert limits(queue) == (4, 1.5)
    assert limits(get(service)) == (4, 1.5)
    listed = service.admin.ListQueues(admin.ListQueuesRequest()).queues
    assert [limits(queue) for queue in listed] == [(4, 1.5)]
    # An empty mask replaces the retry policy and leaves absent limits alone.
    assert limits(update(service, max_active=5)) == (5, 1.5)
    # A masked limit left unset is removed; one not in the mask is kept.
    assert limits(update(service, paths=["max_starts_per_second"], max_active=9)) == (5, None)
    # Retry policy paths leave the limits alone.
    assert limits(update(service, paths=["max_retries"])) == (5, None)
    preview = update(service, paths=["max_active"], max_active=7, validate_only=True)
    assert limits(preview) == (7, None)
    assert limits(get(service)) == (5, None)
    assert limits(update(service, paths=["*"])) == (None, None)
    created = update(service, "new", allow_missing=True, max_starts_per_second=3.0)
    assert limits(created) == (None, 3.0)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_active": 0}, "max_active"),
        ({"max_active": -1}, "max_active"),
        ({"max_active": 2**31 - 1}, "max_active"),
        ({"max_starts_per_second": 0.0}, "max_starts_per_second"),
        ({"max_starts_per_second": -1.0}, "max_starts_per_second"),
        ({"max_starts_per_second": float("nan")}, "max_starts_per_second"),
        ({"max_starts_per_second": float("inf")}, "max_starts_per_second"),
        ({"max_starts_per_second": float("-inf")}, "max_starts_per_second"),
        ({"max_starts_per_second": 1e300}, "max_starts_per_second"),
        ({"max_starts_per_second": 1e-300}, "max_starts_per_second"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(service, fields, field):
    enqueue(service, "a")
    update(service, max_active=3)
    for paths in ((), (field,)):
        error = rpc_error(
            service.admin.UpdateQueuePolicy,
            admin.UpdateQueuePolicyRequest(
                queue_name="emails", update_mask=field_mask_pb2.FieldMask(paths=list(paths)), **fields
            ),
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_field(error) == field
        assert field in error.details()
    # Nothing was written.
    assert limits(get(service)) == (3, None)


def test_unknown_mask_path_names_update_mask(service):
    enqueue(service, "a")
    error = rpc_error(
        service.admin.UpdateQueuePolicy,
        admin.UpdateQueuePolicyRequest(queue_name="emails", update_mask=field_mask_pb2.FieldMask(paths=["burst"])),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field(error) == "update_mask"
