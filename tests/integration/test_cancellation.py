"""Job cancellation through a real server on SQLite and PostgreSQL: CancelJob in each state, a running
job's cancel request seen at its heartbeat and ended by its report or its lease expiry, bulk
CancelJobs, statistics and activity, the audit trail, and re-enqueueing a cancelled job's id."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.integration.admin_helpers import bad_field
from tests.rpc_errors import assert_rejected, row_counts

CANCELLED = job_pb2.Job.STATE_CANCELLED


def enqueue(service, job_id, queue="emails", **fields):
    return service.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name=queue, job_name="send", job_id=job_id, **fields))


def lease(service, queue="emails", seconds=30):
    response = service.jobs.LeaseJobs(
        pb.LeaseJobsRequest(queue_names=[queue], worker_id="w1", lease_duration=duration_pb2.Duration(seconds=seconds))
    )
    return response.jobs


def cancel(service, job_id, reason=""):
    return service.jobs.CancelJob(pb.CancelJobRequest(job_id=job_id, reason=reason)).job


def get(service, job_id):
    return service.jobs.GetJob(pb.GetJobRequest(job_id=job_id)).job


def heartbeat(service, job_id, attempt):
    return service.jobs.HeartbeatJob(pb.HeartbeatJobRequest(job_id=job_id, attempt_number=attempt))


def fail(service, job_id, attempt, message="stopped"):
    return service.jobs.TrackFailure(
        pb.TrackFailureRequest(job_id=job_id, attempt_number=attempt, error=job_pb2.JobError(message=message))
    )


def statistics(service, queue="emails"):
    return service.admin.GetStatistics(admin_pb.GetStatisticsRequest(queue_names=[queue])).queues[0]


def recover(service):
    return service.admin.TriggerRecovery(admin_pb.TriggerRecoveryRequest()).run


# Jobs no run holds: cancelled at once


def test_a_waiting_job_is_cancelled_at_once_and_never_leased(service):
    enqueue(service, "a")
    job = cancel(service, "a", reason="not needed")
    assert job.state == CANCELLED
    assert not job.HasField("cancel_requested_at")
    assert lease(service) == []
    assert get(service, "a").state == CANCELLED


def test_a_scheduled_job_is_cancelled_at_once(service):
    enqueue(service, "later", delay=duration_pb2.Duration(seconds=3600))
    assert cancel(service, "later").state == CANCELLED
    service.clock.advance(timedelta(hours=2))
    assert lease(service) == []


def test_a_failed_job_waiting_for_its_retry_is_cancelled_and_not_retried(service):
    enqueue(service, "f")
    (job,) = lease(service)
    assert fail(service, "f", job.attempt_number).should_retry
    assert cancel(service, "f").state == CANCELLED
    service.clock.advance(timedelta(hours=1))
    recover(service)
    assert lease(service) == []
    assert get(service, "f").state == CANCELLED


@pytest.mark.parametrize("finish", ["complete", "dead_letter"])
def test_a_finished_job_cannot_be_cancelled(service, finish):
    enqueue(service, "done")
    (job,) = lease(service)
    if finish == "complete":
        service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="done", attempt_number=job.attempt_number))
    else:
        service.jobs.MoveToDeadLetter(pb.MoveToDeadLetterRequest(job_id="done", reason="give up"))
    with pytest.raises(grpc.RpcError) as raised:
        cancel(service, "done")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "only WAITING, ACTIVE, FAILED jobs can be cancelled" in raised.value.details()
    assert bad_field(raised.value) == "job_id"


def test_cancelling_twice_changes_nothing(service):
    enqueue(service, "a")
    first = cancel(service, "a")
    second = cancel(service, "a")
    assert second.state == CANCELLED
    assert second.updated_at == first.updated_at


def test_an_unknown_job_is_not_found(service):
    with pytest.raises(grpc.RpcError) as raised:
        cancel(service, "nope")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


# A running job: asked to stop at its heartbeat


def test_an_active_job_is_asked_to_stop_and_its_failure_report_cancels_it(service):
    enqueue(service, "run")
    (job,) = lease(service)
    assert heartbeat(service, "run", job.attempt_number).cancel_requested is False
    marked = cancel(service, "run")
    assert marked.state == job_pb2.Job.STATE_ACTIVE
    assert marked.HasField("cancel_requested_at")
    assert heartbeat(service, "run", job.attempt_number).cancel_requested is True
    response = fail(service, "run", job.attempt_number, "JobCancelled")
    assert not response.should_retry and not response.moved_to_dead_letter
    assert response.job.state == CANCELLED
    # A repeated report of the same run gets the same answer.
    assert fail(service, "run", job.attempt_number).job.state == CANCELLED
    service.clock.advance(timedelta(hours=1))
    recover(service)
    assert lease(service) == []
    stats = statistics(service)
    assert (stats.cancelled_count, stats.failed_count, stats.dead_letter_count, stats.active_count) == (1, 0, 0, 0)


def test_a_completion_report_of_a_run_asked_to_stop_cancels_the_job(service):
    enqueue(service, "run")
    (job,) = lease(service)
    cancel(service, "run")
    done = service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="run", attempt_number=job.attempt_number))
    assert done.job.state == CANCELLED
    batch = service.jobs.TrackCompletions(
        pb.TrackCompletionsRequest(
            completions=[pb.TrackCompletionRequest(job_id="run", attempt_number=job.attempt_number)]
        )
    )
    assert batch.results[0].status.code == 0


def test_a_batched_completion_of_a_run_asked_to_stop_cancels_it(service):
    for job_id in ("keep", "stop"):
        enqueue(service, job_id)
    leased = {
        job.job_id: job for job in service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"], max_jobs=2)).jobs
    }
    cancel(service, "stop")
    batch = service.jobs.TrackCompletions(
        pb.TrackCompletionsRequest(
            completions=[
                pb.TrackCompletionRequest(job_id=job_id, attempt_number=job.attempt_number)
                for job_id, job in sorted(leased.items())
            ]
        )
    )
    assert [result.status.code for result in batch.results] == [0, 0]
    assert get(service, "keep").state == job_pb2.Job.STATE_COMPLETED
    assert get(service, "stop").state == CANCELLED


def test_a_run_asked_to_stop_that_never_reports_ends_cancelled_at_lease_expiry(service):
    enqueue(service, "silent")
    (job,) = lease(service, seconds=10)
    cancel(service, "silent")
    service.clock.advance(timedelta(seconds=11))
    run = recover(service)
    assert run.counts.stalled_jobs_cancelled == 1
    assert run.counts.stalled_jobs == 0
    after = get(service, "silent")
    assert after.state == CANCELLED
    assert not after.HasField("last_error")
    # Its worker's late heartbeat learns the run is over.
    with pytest.raises(grpc.RpcError) as raised:
        heartbeat(service, "silent", job.attempt_number)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# Statistics, activity, audit, cleaning


def test_cancelled_jobs_show_in_statistics_activity_and_the_audit_log(service):
    for job_id in ("a", "b"):
        enqueue(service, job_id)
    cancel(service, "a", reason="duplicate")
    cancel(service, "b")
    stats = statistics(service)
    assert (stats.cancelled_count, stats.waiting_count) == (2, 0)
    service.clock.advance(timedelta(minutes=5))  # the period ends before now
    activity = service.admin.GetQueueActivity(admin_pb.GetQueueActivityRequest(queue_names=["emails"]))
    assert sum(bucket.cancelled_count for bucket in activity.totals.buckets) == 2
    assert sum(bucket.failed_count for bucket in activity.totals.buckets) == 0
    events = service.admin.ListAuditEvents(admin_pb.ListAuditEventsRequest(action="CancelJob")).events
    assert sorted(event.target for event in events) == ["job/a", "job/b"]
    reasons = {event.target: event.parameters["reason"] for event in events if "reason" in event.parameters}
    assert reasons == {"job/a": "duplicate"}


def test_a_cancelled_id_is_enqueued_again_only_once_cleaned(service):
    enqueue(service, "same")
    cancel(service, "same")
    again = enqueue(service, "same")
    assert not again.created and again.job.state == CANCELLED
    cleaned = service.admin.CleanQueue(admin_pb.CleanQueueRequest(queue_name="emails", state=CANCELLED))
    assert cleaned.deleted_count == 1
    assert statistics(service).cancelled_count == 0
    fresh = enqueue(service, "same")
    assert fresh.created and fresh.job.state == job_pb2.Job.STATE_WAITING


# Bulk


def test_bulk_cancel_dry_run_changes_nothing_then_cancels_with_progress(service):
    for n in range(5):
        enqueue(service, f"w{n}")
    enqueue(service, "other", queue="sms")
    (running,) = lease(service)
    request = admin_pb.CancelJobsRequest(filter=admin_pb.JobFilter(queue_name="emails"), dry_run=True, sample_size=3)
    (dry,) = list(service.admin.CancelJobs(request))
    assert dry.done and dry.matched_count == 5 and len(dry.sample) == 3
    assert statistics(service).cancelled_count == 0

    messages = list(
        service.admin.CancelJobs(admin_pb.CancelJobsRequest(filter=admin_pb.JobFilter(queue_name="emails")))
    )
    final = messages[-1]
    assert final.done and not any(message.done for message in messages[:-1])
    assert (final.matched_count, final.skipped_count) == (5, 0)
    cancelled = sum(message.cancelled_count for message in messages[-1:])
    assert cancelled == 4 and final.cancel_requested_count == 1
    assert sorted(i for message in messages for i in message.cancel_requested_ids) == [running.job_id]
    assert len({i for message in messages for i in message.cancelled_ids}) == 4
    assert statistics(service).cancelled_count == 4
    assert statistics(service, "sms").waiting_count == 1
    events = service.admin.ListAuditEvents(admin_pb.ListAuditEventsRequest(action="CancelJobs")).events
    assert len(events) == 1


def test_bulk_cancel_by_ids_skips_what_it_cannot_cancel(service):
    enqueue(service, "a")
    enqueue(service, "done")
    (job,) = [
        job
        for job in service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"], max_jobs=2)).jobs
        if job.job_id == "done"
    ] or [None]
    if job is not None:
        service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="done", attempt_number=job.attempt_number))
    messages = list(
        service.admin.CancelJobs(admin_pb.CancelJobsRequest(ids=admin_pb.JobIds(ids=["a", "done", "nope"])))
    )
    final = messages[-1]
    assert final.matched_count == 3
    assert final.skipped_count == 2
    assert sorted(skip.job_id for message in messages for skip in message.skipped) == ["done", "nope"]


def test_bulk_cancel_by_state_filter(service):
    enqueue(service, "w")
    enqueue(service, "f")
    leased = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"], max_jobs=2)).jobs
    for job in leased:
        if job.job_id == "f":
            fail(service, "f", job.attempt_number)
    request = admin_pb.CancelJobsRequest(filter=admin_pb.JobFilter(states=[job_pb2.Job.STATE_FAILED]))
    final = list(service.admin.CancelJobs(request))[-1]
    assert final.cancelled_count == 1
    assert get(service, "f").state == CANCELLED


# Bad input: rejected naming the field, nothing written


def cancel_jobs(**fields):
    return admin_pb.CancelJobsRequest(**fields)


BULK_CASES = {
    "no selector": (cancel_jobs(), "filter"),
    "too many ids": (cancel_jobs(ids=admin_pb.JobIds(ids=[f"j{n}" for n in range(1001)])), "ids.ids"),
    "empty id": (cancel_jobs(ids=admin_pb.JobIds(ids=[""])), "ids.ids"),
    "long id": (cancel_jobs(ids=admin_pb.JobIds(ids=["j" * 256])), "ids.ids"),
    "long queue_name": (cancel_jobs(filter=admin_pb.JobFilter(queue_name="q" * 101)), "filter.queue_name"),
    "long job_name": (cancel_jobs(filter=admin_pb.JobFilter(job_name="n" * 101)), "filter.job_name"),
    "finished state": (
        cancel_jobs(filter=admin_pb.JobFilter(states=[job_pb2.Job.STATE_COMPLETED])),
        "filter.states",
    ),
    "unspecified state": (cancel_jobs(filter=admin_pb.JobFilter(states=[0])), "filter.states"),
    "unknown state": (cancel_jobs(filter=admin_pb.JobFilter(states=[99])), "filter.states"),
    "created range reversed": (
        cancel_jobs(
            filter=admin_pb.JobFilter(created_after={"seconds": 2_000_000_000}, created_before={"seconds": 1_000})
        ),
        "filter.created_after",
    ),
    "created_before out of range": (
        cancel_jobs(filter=admin_pb.JobFilter(created_before={"seconds": 253_402_300_800 + 1})),
        "filter.created_before",
    ),
    "negative rate": (cancel_jobs(filter=admin_pb.JobFilter(), rate_limit=-1), "rate_limit"),
    "NaN rate": (cancel_jobs(filter=admin_pb.JobFilter(), rate_limit=float("nan")), "rate_limit"),
    "negative max_jobs": (cancel_jobs(filter=admin_pb.JobFilter(), max_jobs=-1), "max_jobs"),
    "sample too big": (cancel_jobs(filter=admin_pb.JobFilter(), dry_run=True, sample_size=101), "sample_size"),
    "long reason": (cancel_jobs(filter=admin_pb.JobFilter(), reason="r" * 10_001), "reason"),
}


@pytest.mark.parametrize("case", list(BULK_CASES))
def test_bad_bulk_cancel_input_is_rejected_naming_the_field(service, database, case):
    request, field = BULK_CASES[case]
    enqueue(service, "a")
    before = row_counts(database)
    assert_rejected(
        lambda message: list(service.admin.CancelJobs(message)), request, grpc.StatusCode.INVALID_ARGUMENT, field
    )
    assert row_counts(database) == before
    assert get(service, "a").state == job_pb2.Job.STATE_WAITING


# Who may cancel


def test_a_worker_token_may_cancel_one_job_but_not_in_bulk(secured_service):
    worker = (("authorization", f"Bearer {WORKER_TOKEN}"),)
    admin = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    for job_id in ("by-worker", "by-admin"):
        secured_service.jobs.EnqueueJob(
            pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id=job_id), metadata=worker
        )
    job = secured_service.jobs.CancelJob(pb.CancelJobRequest(job_id="by-worker"), metadata=worker).job
    assert job.state == CANCELLED
    secured_service.jobs.CancelJob(pb.CancelJobRequest(job_id="by-admin"), metadata=admin)
    with pytest.raises(grpc.RpcError) as raised:
        list(secured_service.admin.CancelJobs(cancel_jobs(filter=admin_pb.JobFilter()), metadata=worker))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    events = secured_service.admin.ListAuditEvents(
        admin_pb.ListAuditEventsRequest(action="CancelJob"), metadata=admin
    ).events
    assert {event.target: event.actor for event in events} == {"job/by-worker": "worker", "job/by-admin": "admin"}


def test_bulk_cancel_reports_progress_as_it_goes_and_respects_max_jobs(service):
    service.jobs.EnqueueJobs(
        pb.EnqueueJobsRequest(
            jobs=[pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id=f"bulk-{n:03}") for n in range(130)]
        )
    )
    request = admin_pb.CancelJobsRequest(filter=admin_pb.JobFilter(queue_name="emails"), max_jobs=120, reason="x")
    messages = list(service.admin.CancelJobs(request))
    assert [message.done for message in messages] == [False] * (len(messages) - 1) + [True]
    assert messages[0].matched_count == 120 and messages[0].cancelled_count == 0  # sent before any change
    counts = [message.cancelled_count for message in messages]
    assert counts == sorted(counts) and 0 < counts[1] < 120, "an intermediate message as the cancel goes"
    ids = [job_id for message in messages for job_id in message.cancelled_ids]
    assert len(ids) == len(set(ids)) == 120 == messages[-1].cancelled_count
    assert statistics(service).cancelled_count == 120 and statistics(service).waiting_count == 10
