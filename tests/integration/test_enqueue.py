"""EnqueueJob and EnqueueJobs over gRPC on both backends: scheduling, idempotency, batches."""

from datetime import UTC, timedelta

import grpc
from google.protobuf.json_format import MessageToDict
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb

from tests.rpc_errors import assert_rejected, row_counts


def when(timestamp):
    return timestamp.ToDatetime(tzinfo=UTC)


def lease(service, queue="emails", **options):
    return list(service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[queue], worker_id="w1", **options)).jobs)


def enqueue(service, **fields):
    fields.setdefault("queue_name", "emails")
    fields.setdefault("job_name", "send")
    return service.jobs.EnqueueJob(pb.EnqueueJobRequest(**fields))


def test_enqueue_stores_a_waiting_job_ready_now(service):
    response = enqueue(service, job_data={"to": "a@example.com", "n": 3})
    job = response.job
    assert response.created
    assert len(job.job_id) == 36  # a generated UUID
    assert (job.queue_name, job.job_name) == ("emails", "send")
    assert MessageToDict(job.job_data) == {"to": "a@example.com", "n": 3}
    assert job.state == job_pb2.Job.STATE_WAITING
    assert job.attempt_number == 0
    assert job.remaining_retries == 3
    assert when(job.run_at) == when(job.created_at) == service.clock.now()
    assert not job.HasField("lease_expires_at") and not job.HasField("next_retry_at")
    fetched = service.jobs.GetJob(pb.GetJobRequest(job_id=job.job_id)).job
    assert fetched == job


def test_enqueue_with_an_existing_job_id_returns_the_stored_job_unchanged(service, database):
    first = enqueue(service, job_id="order-17", job_data={"v": 1}, priority=2)
    service.clock.advance(30)
    again = enqueue(service, job_id="order-17", job_data={"v": 2}, priority=9, queue_name="other", job_name="x")
    assert first.created and not again.created
    assert again.job == first.job
    assert MessageToDict(again.job.job_data) == {"v": 1}
    assert row_counts(database)["queue_jobs"] == 1


def test_run_at_in_the_future_holds_the_job_until_then(service):
    ready_at = service.clock.now() + timedelta(minutes=10)
    job = enqueue(service, job_id="later", run_at=ready_at).job
    assert when(job.run_at) == ready_at
    assert lease(service) == []
    service.clock.advance(timedelta(minutes=10) - timedelta(milliseconds=1))
    assert lease(service) == []
    service.clock.advance(timedelta(milliseconds=1))
    assert [leased.job_id for leased in lease(service)] == ["later"]


def test_run_at_in_the_past_is_ready_at_once(service):
    past = service.clock.now() - timedelta(days=2)
    job = enqueue(service, job_id="overdue", run_at=past).job
    assert when(job.run_at) == past
    assert [leased.job_id for leased in lease(service)] == ["overdue"]


def test_delay_is_relative_to_now(service):
    job = enqueue(service, job_id="delayed", delay=timedelta(seconds=90)).job
    assert when(job.run_at) == service.clock.now() + timedelta(seconds=90)
    service.clock.advance(89)
    assert lease(service) == []
    service.clock.advance(1)
    assert [leased.job_id for leased in lease(service)] == ["delayed"]


def test_priority_is_stored_and_leased_first(service):
    enqueue(service, job_id="low", priority=-5)
    enqueue(service, job_id="high", priority=7)
    enqueue(service, job_id="normal")
    assert enqueue(service, job_id="low").job.priority == -5
    assert [job.job_id for job in lease(service, max_jobs=3)] == ["high", "normal", "low"]


def test_retry_policy_override_is_stored_and_counted(service):
    policy = job_pb2.RetryPolicy(max_retries=1, retry_delays=[timedelta(seconds=2)], max_delay=timedelta(minutes=1))
    job = enqueue(service, job_id="custom", retry_policy=policy).job
    assert job.retry_policy == policy
    assert job.remaining_retries == 1
    partial = enqueue(service, job_id="partial", retry_policy=job_pb2.RetryPolicy(max_retries=6)).job
    assert partial.remaining_retries == 6
    assert partial.retry_policy.max_retries == 6 and not partial.retry_policy.retry_delays
    assert not enqueue(service, job_id="plain").job.HasField("retry_policy")


def test_enqueue_jobs_writes_a_batch_in_request_order(service, database):
    requests = [
        pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id=f"b{index}", priority=index)
        for index in range(5)
    ]
    response = service.jobs.EnqueueJobs(pb.EnqueueJobsRequest(jobs=requests))
    assert [result.job.job_id for result in response.results] == ["b0", "b1", "b2", "b3", "b4"]
    assert all(result.created for result in response.results)
    assert [result.job.priority for result in response.results] == [0, 1, 2, 3, 4]
    assert row_counts(database)["queue_jobs"] == 5


def test_enqueue_jobs_is_idempotent_per_job(service, database):
    enqueue(service, job_id="old", job_data={"v": "old"})
    response = service.jobs.EnqueueJobs(
        pb.EnqueueJobsRequest(
            jobs=[
                pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="old", job_data={"v": "new"}),
                pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="fresh"),
            ]
        )
    )
    assert [(result.job.job_id, result.created) for result in response.results] == [("old", False), ("fresh", True)]
    assert MessageToDict(response.results[0].job.job_data) == {"v": "old"}
    assert row_counts(database)["queue_jobs"] == 2


def test_duplicate_job_ids_inside_a_batch_store_the_first(service, database):
    response = service.jobs.EnqueueJobs(
        pb.EnqueueJobsRequest(
            jobs=[
                pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="twin", job_data={"copy": 1}),
                pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="other"),
                pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="twin", job_data={"copy": 2}),
            ]
        )
    )
    assert [(result.job.job_id, result.created) for result in response.results] == [
        ("twin", True),
        ("other", True),
        ("twin", False),
    ]
    assert response.results[2].job == response.results[0].job
    assert MessageToDict(response.results[2].job.job_data) == {"copy": 1}
    assert row_counts(database)["queue_jobs"] == 2


def test_a_bad_job_rejects_the_whole_batch(service, database):
    good = pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="good")
    cases = [
        (pb.EnqueueJobRequest(queue_name="emails", job_name=""), grpc.StatusCode.INVALID_ARGUMENT, "jobs[2].job_name"),
        (pb.EnqueueJobRequest(queue_name="", job_name="send"), grpc.StatusCode.INVALID_ARGUMENT, "jobs[2].queue_name"),
        (
            pb.EnqueueJobRequest(queue_name="emails", job_name="send", delay=timedelta(seconds=-1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "jobs[2].delay",
        ),
        (
            pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_data={"blob": "x" * (1024 * 1024)}),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "jobs[2].job_data",
        ),
        (
            pb.EnqueueJobRequest(
                queue_name="emails", job_name="send", retry_policy=job_pb2.RetryPolicy(max_retries=-1)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "jobs[2].retry_policy.max_retries",
        ),
        (
            pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_data={"x": float("nan")}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "jobs[2].job_data",
        ),
    ]
    before = row_counts(database)
    for bad, code, field in cases:
        batch = pb.EnqueueJobsRequest(jobs=[good, pb.EnqueueJobRequest(queue_name="q2", job_name="n"), bad])
        assert_rejected(service.jobs.EnqueueJobs, batch, code, field)
    assert row_counts(database) == before
    assert before["queue_jobs"] == 0 and before["queues"] == 0


def test_batch_size_limits(service, database):
    assert_rejected(service.jobs.EnqueueJobs, pb.EnqueueJobsRequest(), grpc.StatusCode.INVALID_ARGUMENT, "jobs")
    too_many = pb.EnqueueJobsRequest(jobs=[pb.EnqueueJobRequest(queue_name="q", job_name="n")] * 1001)
    assert_rejected(service.jobs.EnqueueJobs, too_many, grpc.StatusCode.INVALID_ARGUMENT, "jobs")
    assert row_counts(database)["queue_jobs"] == 0
