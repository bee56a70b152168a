"""GetStatistics: exact counts from the trigger-kept counters, ready-now versus delayed, DLQ summaries."""

import random
from datetime import timedelta

import grpc
from google.protobuf import duration_pb2
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import text

from queue_service.store.database import Database
from tests.integration.admin_helpers import bad_field, dead_letter, enqueue, fail_current, lease, rpc_error


def stats_by_queue(service, *names):
    response = service.admin.GetStatistics(admin.GetStatisticsRequest(queue_names=names))
    return {item.queue_name: item for item in response.queues}, response.totals


def test_counts_split_ready_and_delayed(service):
    enqueue(service, "now-1")
    enqueue(service, "now-2")
    enqueue(service, "later", delay=duration_pb2.Duration(seconds=60))
    enqueue(service, "running")
    # Lease "now-1" (oldest ready), then fail it: FAILED with a 5 s backoff.
    (job,) = lease(service)
    fail_current(service, job.job_id, "timeout")
    dead_letter(service, "dead", queue="sms")

    queues, totals = stats_by_queue(service)
    emails = queues["emails"]
    assert (emails.waiting_count, emails.delayed_count) == (2, 1)
    assert (emails.failed_count, emails.retryable_count) == (1, 0)
    assert emails.active_count == 0 and emails.completed_count == 0
    sms = queues["sms"]
    assert sms.dead_letter_count == 1
    assert sms.dead_letter_summary.total_count == 1 and sms.dead_letter_summary.pending_count == 1
    assert totals.waiting_count == 2 and totals.dead_letter_count == 1 and totals.queue_name == ""

    service.clock.advance(5)  # the retry is due, the delayed job not yet
    emails = stats_by_queue(service, "emails")[0]["emails"]
    assert (emails.failed_count, emails.retryable_count) == (1, 1)
    assert (emails.waiting_count, emails.delayed_count) == (2, 1)
    service.clock.advance(55)
    emails = stats_by_queue(service, "emails")[0]["emails"]
    assert (emails.waiting_count, emails.delayed_count) == (3, 0)


def test_paused_flag_and_unknown_queue(service):
    enqueue(service, "a")
    service.admin.PauseQueue(admin.PauseQueueRequest(queue_name="emails"))
    assert stats_by_queue(service)[0]["emails"].paused
    error = rpc_error(service.admin.GetStatistics, admin.GetStatisticsRequest(queue_names=["nope"]))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert bad_field(error) == "queue_names"


def recount(database_url):
    """The slow, obviously right answer: count the tables."""
    database = Database(database_url)
    try:
        with database.engine.connect() as connection:
            jobs = connection.execute(text("SELECT queue_name, state, count(*) FROM queue_jobs GROUP BY 1, 2")).all()
            entries = connection.execute(
                text("SELECT queue_name, recovery_status, count(*) FROM dead_letter_queue GROUP BY 1, 2")
            ).all()
    finally:
        database.dispose()
    counts = {}
    for queue, state, amount in jobs:
        counts[(queue, state)] = amount
    for queue, status, amount in entries:
        counts[(queue, f"dlq:{status}")] = amount
    return counts


def reported(service):
    counts = {}
    queues, _ = stats_by_queue(service)
    for name, item in queues.items():
        fields = {
            "waiting": item.waiting_count + item.delayed_count,
            "active": item.active_count,
            "completed": item.completed_count,
            "failed": item.failed_count,
            "dead_letter": item.dead_letter_count,
            "dlq:pending": item.dead_letter_summary.pending_count,
            "dlq:recovered": item.dead_letter_summary.recovered_count,
            "dlq:permanently_failed": item.dead_letter_summary.permanently_failed_count,
        }
        counts.update({(name, key): value for key, value in fields.items() if value})
    return counts


def test_statistics_match_a_recount_after_a_mixed_workload(service, database_url):
    rng = random.Random(7)
    queues = ["emails", "sms", "push"]
    for index in range(60):
        delay = duration_pb2.Duration(seconds=rng.choice([0, 0, 30]))
        enqueue(service, f"job-{index}", rng.choice(queues), delay=delay)
    service.jobs.EnqueueJobs(
        pb.EnqueueJobsRequest(
            jobs=[pb.EnqueueJobRequest(queue_name="push", job_name="n", job_id=f"batch-{i}") for i in range(20)]
        )
    )
    for round_number in range(6):
        for queue in queues:
            for job in lease(service, queue, max_jobs=rng.randint(1, 6)):
                roll = rng.random()
                if roll < 0.4:
                    service.jobs.TrackCompletion(
                        pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number)
                    )
                elif roll < 0.8:
                    fail_current(service, job.job_id, f"timeout {rng.randint(1, 99)}", non_retryable=roll > 0.7)
                elif roll < 0.9:
                    service.jobs.MoveToDeadLetter(pb.MoveToDeadLetterRequest(job_id=job.job_id, reason="manual"))
                # else: stays ACTIVE
        pending = service.admin.ListDeadLetterJobs(
            admin.ListDeadLetterJobsRequest(
                filter=admin.DeadLetterFilter(recovery_status=job_pb2.DeadLetterEntry.RECOVERY_STATUS_PENDING)
            )
        ).entries
        for entry in pending[:2]:
            service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=entry.id))
        for entry in pending[2:3]:
            service.admin.MarkPermanentlyFailed(admin.MarkPermanentlyFailedRequest(id=entry.id, reason="no"))
        service.clock.advance(timedelta(seconds=20 * (round_number + 1)))
    expected = recount(database_url)
    assert {"active", "completed", "failed", "waiting", "dead_letter", "dlq:recovered"} <= {s for _, s in expected}
    assert reported(service) == expected

    service.admin.CleanQueue(admin.CleanQueueRequest(queue_name="emails", state=job_pb2.Job.STATE_COMPLETED))
    service.admin.CleanQueue(
        admin.CleanQueueRequest(
            queue_name="sms",
            state=job_pb2.Job.STATE_DEAD_LETTER,
            recovery_status=job_pb2.DeadLetterEntry.RECOVERY_STATUS_PERMANENTLY_FAILED,
        )
    )
    assert reported(service) == recount(database_url)
    # A statement no admin code path issues also keeps the counters right: they live in the database.
    database = Database(database_url)
    with database.transaction() as repo:
        repo.connection.execute(text("DELETE FROM queue_jobs WHERE state = 'completed' AND queue_name = 'push'"))
        repo.connection.execute(text("UPDATE queue_jobs SET state = 'waiting' WHERE state = 'failed'"))
    database.dispose()

    assert reported(service) == recount(database_url)
