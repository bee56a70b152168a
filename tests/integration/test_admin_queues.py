"""Queues over gRPC: pause and resume, retry policies with field masks, cleaning, listing."""

import grpc
from google.protobuf import duration_pb2, field_mask_pb2
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb

from tests.integration.admin_helpers import bad_field, dead_letter, enqueue, fail_current, lease, rpc_error


def seconds(*values):
    return [duration_pb2.Duration(seconds=value) for value in values]


def test_pause_stops_leasing_only(service):
    enqueue(service, "a")
    paused = service.admin.PauseQueue(admin.PauseQueueRequest(queue_name="emails")).queue
    assert paused.paused
    assert lease(service) == []
    enqueue(service, "b")  # enqueueing still works
    started = service.jobs.TrackStart(pb.TrackStartRequest(job_id="external", queue_name="emails", job_name="x"))
    assert started.job.state == job_pb2.Job.STATE_ACTIVE  # tracking still works
    assert lease(service) == []
    resumed = service.admin.ResumeQueue(admin.ResumeQueueRequest(queue_name="emails")).queue
    assert not resumed.paused
    assert {job.job_id for job in lease(service, max_jobs=5)} == {"a", "b"}


def test_pause_unknown_queue(service):
    error = rpc_error(service.admin.PauseQueue, admin.PauseQueueRequest(queue_name="later"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert bad_field(error) == "queue_name"
    created = service.admin.PauseQueue(admin.PauseQueueRequest(queue_name="later", allow_missing=True)).queue
    assert created.name == "later" and created.paused
    enqueue(service, "x", "later")
    assert lease(service, "later") == []
    error = rpc_error(service.admin.ResumeQueue, admin.ResumeQueueRequest(queue_name="unknown"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = rpc_error(service.admin.PauseQueue, admin.PauseQueueRequest(queue_name=""))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_queue_policy_applies_to_jobs_and_previews_its_schedule(service):
    enqueue(service, "a")
    queue = service.admin.GetQueue(admin.GetQueueRequest(queue_name="emails")).queue
    assert not queue.HasField("retry_policy")
    assert queue.effective_retry_policy.max_retries == 3
    assert [d.seconds for d in queue.delay_schedule] == [5, 15, 45]

    updated = service.admin.UpdateQueuePolicy(
        admin.UpdateQueuePolicyRequest(
            queue_name="emails", retry_policy=job_pb2.RetryPolicy(max_retries=5, retry_delays=seconds(1, 2))
        )
    ).queue
    assert updated.retry_policy.max_retries == 5
    assert [d.seconds for d in updated.delay_schedule] == [1, 2, 4, 8, 16]
    (job,) = lease(service)
    decision = fail_current(service, "a", "timeout")
    assert decision.retry_delay.ToTimedelta().total_seconds() == 1
    assert decision.remaining_retries == 5

    # A mask changes only the named fields.
    masked = service.admin.UpdateQueuePolicy(
        admin.UpdateQueuePolicyRequest(
            queue_name="emails",
            retry_policy=job_pb2.RetryPolicy(max_retries=1, jitter=0.5),
            update_mask=field_mask_pb2.FieldMask(paths=["max_retries"]),
        )
    ).queue
    assert masked.retry_policy.max_retries == 1
    assert [d.seconds for d in masked.retry_policy.retry_delays] == [1, 2]
    assert not masked.retry_policy.HasField("jitter")

    preview = service.admin.UpdateQueuePolicy(
        admin.UpdateQueuePolicyRequest(
            queue_name="emails", retry_policy=job_pb2.RetryPolicy(max_retries=2), validate_only=True
        )
    ).queue
    assert [d.seconds for d in preview.delay_schedule] == [5, 15]
    assert service.admin.GetQueue(admin.GetQueueRequest(queue_name="emails")).queue.retry_policy.max_retries == 1

    cleared = service.admin.UpdateQueuePolicy(admin.UpdateQueuePolicyRequest(queue_name="emails")).queue
    assert not cleared.HasField("retry_policy")
    assert cleared.effective_retry_policy.max_retries == 3


def test_queue_policy_errors(service):
    enqueue(service, "a")
    error = rpc_error(
        service.admin.UpdateQueuePolicy,
        admin.UpdateQueuePolicyRequest(
            queue_name="emails",
            retry_policy=job_pb2.RetryPolicy(max_retries=2),
            update_mask=field_mask_pb2.FieldMask(paths=["max_attempts"]),
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field(error) == "update_mask"
    assert "max_attempts" in error.details()
    error = rpc_error(
        service.admin.UpdateQueuePolicy,
        admin.UpdateQueuePolicyRequest(queue_name="emails", retry_policy=job_pb2.RetryPolicy(jitter=2)),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field(error) == "retry_policy.jitter"
    error = rpc_error(service.admin.UpdateQueuePolicy, admin.UpdateQueuePolicyRequest(queue_name="new"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    created = service.admin.UpdateQueuePolicy(
        admin.UpdateQueuePolicyRequest(
            queue_name="new", retry_policy=job_pb2.RetryPolicy(max_retries=0), allow_missing=True
        )
    ).queue
    assert created.name == "new" and created.delay_schedule == []
    error = rpc_error(service.admin.GetQueue, admin.GetQueueRequest(queue_name="missing"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_list_queues_pages_by_name(service):
    for name in ("c", "a", "b"):
        enqueue(service, f"job-{name}", name)
    first = service.admin.ListQueues(admin.ListQueuesRequest(page_size=2))
    assert [queue.name for queue in first.queues] == ["a", "b"]
    second = service.admin.ListQueues(admin.ListQueuesRequest(page_size=2, page_token=first.next_page_token))
    assert [queue.name for queue in second.queues] == ["c"] and second.next_page_token == ""


def complete(service, job):
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number))


def test_clean_completed_respects_grace(service):
    for index in range(3):
        enqueue(service, f"old-{index}")
    for job in lease(service, max_jobs=3):
        complete(service, job)
    service.clock.advance(3600)
    enqueue(service, "new")
    (job,) = lease(service)
    complete(service, job)
    enqueue(service, "other-queue", "sms")

    cleaned = service.admin.CleanQueue(
        admin.CleanQueueRequest(
            queue_name="emails", state=job_pb2.Job.STATE_COMPLETED, grace=duration_pb2.Duration(seconds=1800)
        )
    )
    assert cleaned.deleted_count == 3
    remaining = service.admin.ListJobs(admin.ListJobsRequest(queue_name="emails"))
    assert [job.job_id for job in remaining.jobs] == ["new"]
    cleaned = service.admin.CleanQueue(admin.CleanQueueRequest(queue_name="emails", state=job_pb2.Job.STATE_COMPLETED))
    assert cleaned.deleted_count == 1
    assert service.admin.ListJobs(admin.ListJobsRequest(queue_name="sms")).total_size == 1


def test_clean_refuses_active_and_pending_dead_letters(service):
    enqueue(service, "running")
    lease(service)
    error = rpc_error(
        service.admin.CleanQueue, admin.CleanQueueRequest(queue_name="emails", state=job_pb2.Job.STATE_ACTIVE)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert bad_field(error) == "state"

    pending = dead_letter(service, "dead-1")
    given_up = dead_letter(service, "dead-2")
    service.admin.MarkPermanentlyFailed(admin.MarkPermanentlyFailedRequest(id=given_up, reason="bad data"))
    error = rpc_error(
        service.admin.CleanQueue,
        admin.CleanQueueRequest(
            queue_name="emails",
            state=job_pb2.Job.STATE_DEAD_LETTER,
            recovery_status=job_pb2.DeadLetterEntry.RECOVERY_STATUS_PENDING,
        ),
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert bad_field(error) == "recovery_status"
    # DEAD_LETTER without a status cleans the permanently failed ones only, with their entries.
    cleaned = service.admin.CleanQueue(
        admin.CleanQueueRequest(queue_name="emails", state=job_pb2.Job.STATE_DEAD_LETTER)
    )
    assert cleaned.deleted_count == 1
    entries = service.admin.ListDeadLetterJobs(admin.ListDeadLetterJobsRequest()).entries
    assert [entry.id for entry in entries] == [pending]
    assert service.jobs.GetJob(pb.GetJobRequest(job_id="dead-1")).job.state == job_pb2.Job.STATE_DEAD_LETTER

    error = rpc_error(service.admin.CleanQueue, admin.CleanQueueRequest(queue_name="emails"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field(error) == "state"
    error = rpc_error(
        service.admin.CleanQueue, admin.CleanQueueRequest(queue_name="nope", state=job_pb2.Job.STATE_COMPLETED)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_clean_refuses_a_grace_beyond_ten_years_and_deletes_nothing(service):
    enqueue(service, "done-1")
    (job,) = lease(service)
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number))
    for grace in (
        duration_pb2.Duration(seconds=315_576_000_000),  # the largest Duration: about 10,000 years
        duration_pb2.Duration(seconds=86_400 * 3650 + 1),
    ):
        error = rpc_error(
            service.admin.CleanQueue,
            admin.CleanQueueRequest(queue_name="emails", state=job_pb2.Job.STATE_COMPLETED, grace=grace),
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert bad_field(error) == "grace"
        assert "grace must be at most 3650 days" in error.details() and "0:00:00" not in error.details()
    assert service.jobs.GetJob(pb.GetJobRequest(job_id="done-1")).job.state == job_pb2.Job.STATE_COMPLETED
