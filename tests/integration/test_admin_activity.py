"""GetQueueActivity: trigger-kept counts of completed, failed, retried and dead-lettered jobs per bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from jobqueue import AdminClient
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import text

from queue_service.store.database import Database
from tests.integration.admin_helpers import bad_field, enqueue, fail_current, lease, rpc_error

START = datetime(2026, 2, 14, 10, 0, tzinfo=UTC)  # the FakeClock's start
FIVE_MINUTES = timedelta(minutes=5)


def ts(moment: datetime) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(moment)
    return message


def seconds(delta: timedelta) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=int(delta.total_seconds()))


def counts(bucket) -> tuple[int, int, int, int]:
    return (bucket.completed_count, bucket.failed_count, bucket.retried_count, bucket.dead_lettered_count)


def activity(service, *names, start=START, end=START + timedelta(minutes=30), width=FIVE_MINUTES):
    request = admin.GetQueueActivityRequest(
        queue_names=names, start_time=ts(start), end_time=ts(end), bucket_width=seconds(width)
    )
    return service.admin.GetQueueActivity(request)


def test_each_kind_of_change_is_counted_in_the_bucket_of_the_change(service):
    for job_id in ("done", "flaky", "moved"):
        enqueue(service, job_id)
    enqueue(service, "dead", priority=10, delay=duration_pb2.Duration(seconds=20 * 60))
    enqueue(service, "idle", queue="sms")
    service.clock.advance(60)
    (job,) = lease(service)
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number))

    service.clock.advance(10 * 60)  # 10:11
    (job,) = lease(service)
    fail_current(service, job.job_id, "timeout")  # a failed run with a retry scheduled

    service.clock.advance(10 * 60)  # 10:21
    (job,) = lease(service)
    assert job.job_id == "dead"
    entry_id = fail_current(
        service, "dead", "boom", non_retryable=True
    ).dead_letter_id  # a failed run that dead-letters
    service.jobs.MoveToDeadLetter(pb.MoveToDeadLetterRequest(job_id="moved", reason="operator"))  # no run failed
    service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=entry_id))  # sent back

    response = activity(service)
    queues = {queue.queue_name: queue for queue in response.queues}
    assert list(queues) == ["emails", "sms"]
    assert [counts(bucket) for bucket in queues["emails"].buckets] == [
        (1, 0, 0, 0),  # 10:00
        (0, 0, 0, 0),
        (0, 1, 1, 0),  # 10:10
        (0, 0, 0, 0),
        (0, 1, 1, 2),  # 10:20
        (0, 0, 0, 0),
    ]
    assert [bucket.start_time.ToDatetime(tzinfo=UTC) for bucket in queues["emails"].buckets] == [
        START + index * FIVE_MINUTES for index in range(6)
    ]
    assert all(counts(bucket) == (0, 0, 0, 0) for bucket in queues["sms"].buckets)
    assert [counts(bucket) for bucket in response.totals.buckets] == [
        counts(bucket) for bucket in queues["emails"].buckets
    ]
    assert response.start_time.ToDatetime(tzinfo=UTC) == START
    assert response.end_time.ToDatetime(tzinfo=UTC) == START + timedelta(minutes=30)

    # Wider buckets sum the five-minute ones; a period is widened to whole buckets.
    hourly = activity(service, "emails", start=START + timedelta(minutes=7), width=timedelta(hours=1))
    (emails,) = hourly.queues
    assert [counts(bucket) for bucket in emails.buckets] == [(1, 2, 2, 2)]
    assert hourly.start_time.ToDatetime(tzinfo=UTC) == START


def test_defaults_are_the_last_day_in_hours_through_the_typed_client(service):
    enqueue(service, "a")
    (job,) = lease(service)
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="a", attempt_number=job.attempt_number))
    service.clock.advance(timedelta(hours=3, minutes=30))  # 13:30: the current hour is the last bucket
    with AdminClient(service.target, timeout=10) as client:
        result = client.get_queue_activity()
    assert result.bucket_width == timedelta(hours=1)
    assert result.end == START + timedelta(hours=4)
    assert len(result.totals.buckets) == 25  # 24 hours not on the hour span 25 hourly buckets
    assert [bucket.completed_count for bucket in result.totals.buckets][-4:] == [1, 0, 0, 0]
    assert result.queues[0].queue_name == "emails"
    with AdminClient(service.target, timeout=10) as client:
        last_week = client.get_queue_activity(period=timedelta(days=7), bucket_width=timedelta(hours=6))
    assert last_week.start == datetime(2026, 2, 7, 12, 0, tzinfo=UTC)  # 7 days before 13:30, floored to 6 hours
    assert sum(bucket.completed_count for bucket in last_week.totals.buckets) == 1


def test_batched_completions_count_every_job(service):
    for index in range(5):
        enqueue(service, f"job-{index}")
    jobs = lease(service, max_jobs=5)
    service.jobs.TrackCompletions(
        pb.TrackCompletionsRequest(
            completions=[
                pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number) for job in jobs
            ]
        )
    )
    (emails,) = activity(service, "emails").queues
    assert counts(emails.buckets[0]) == (5, 0, 0, 0)


def test_counts_match_the_retry_log_and_states_after_a_mixed_workload(service, database_url):
    for index in range(40):
        enqueue(service, f"job-{index}", queue=("emails", "sms")[index % 2])
    for round_number in range(4):
        for queue in ("emails", "sms"):
            for position, job in enumerate(lease(service, queue, max_jobs=5)):
                if position % 3 == 0:
                    service.jobs.TrackCompletion(
                        pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number)
                    )
                else:
                    fail_current(service, job.job_id, "boom", non_retryable=position % 3 == 2)
        service.clock.advance(60)
    database = Database(database_url)
    try:
        with database.engine.connect() as connection:
            expected = {
                "completed": connection.execute(
                    text("SELECT count(*) FROM queue_jobs WHERE state = 'completed'")
                ).scalar(),
                "retried": connection.execute(
                    text("SELECT count(*) FROM queue_retry_log WHERE decision = 'retry'")
                ).scalar(),
                "failed": connection.execute(text("SELECT count(*) FROM queue_retry_log")).scalar(),
                "dead_lettered": connection.execute(text("SELECT count(*) FROM dead_letter_queue")).scalar(),
            }
    finally:
        database.dispose()
    totals = activity(service, end=START + timedelta(hours=1), width=timedelta(hours=1)).totals.buckets[0]
    assert expected["completed"] > 0 and expected["retried"] > 0 and expected["dead_lettered"] > 0
    assert counts(totals) == (expected["completed"], expected["failed"], expected["retried"], expected["dead_lettered"])


def test_bad_requests_name_the_field(service):
    enqueue(service, "a")
    cases = [
        (dict(bucket_width=duration_pb2.Duration(seconds=7 * 60)), grpc.StatusCode.INVALID_ARGUMENT, "bucket_width"),
        (dict(bucket_width=duration_pb2.Duration(seconds=-300)), grpc.StatusCode.INVALID_ARGUMENT, "bucket_width"),
        (dict(start_time=ts(START), end_time=ts(START)), grpc.StatusCode.INVALID_ARGUMENT, "start_time"),
        (
            dict(start_time=ts(START - timedelta(days=5)), end_time=ts(START), bucket_width=seconds(FIVE_MINUTES)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "bucket_width",
        ),
        (
            dict(start_time=ts(START - timedelta(days=40)), end_time=ts(START)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "start_time",
        ),
        (dict(end_time=timestamp_pb2.Timestamp(seconds=-62135596800)), grpc.StatusCode.INVALID_ARGUMENT, "end_time"),
        (dict(period=duration_pb2.Duration(seconds=0)), grpc.StatusCode.INVALID_ARGUMENT, "period"),
        (dict(period=seconds(timedelta(days=36))), grpc.StatusCode.INVALID_ARGUMENT, "start_time"),
        (dict(queue_names=["nope"]), grpc.StatusCode.NOT_FOUND, "queue_names"),
    ]
    for fields, code, field in cases:
        error = rpc_error(service.admin.GetQueueActivity, admin.GetQueueActivityRequest(**fields))
        assert (error.code(), bad_field(error)) == (code, field), fields
