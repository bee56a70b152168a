"""Admin views of jobs and the retry log, and the audit trail every admin action leaves."""

import grpc
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import job_pb2

from queue_service.api.principal import ANONYMOUS, attach_principal, current_actor
from tests.conftest import ADMIN_TOKEN
from tests.integration.admin_helpers import bad_field, dead_letter, enqueue, fail_current, lease, rpc_error


def test_list_jobs_by_queue_and_state_most_recent_first(service):
    for index in range(3):
        enqueue(service, f"e{index}", "emails", job_data={"n": index})
        service.clock.advance(1)
    enqueue(service, "s0", "sms")
    service.clock.advance(1)
    (job,) = lease(service, "emails")
    assert job.job_id == "e0"

    everything = service.admin.ListJobs(admin.ListJobsRequest())
    assert [job.job_id for job in everything.jobs] == ["e0", "s0", "e2", "e1"]
    assert everything.total_size == 4
    assert not everything.jobs[0].HasField("job_data")  # lists leave payloads out

    waiting = service.admin.ListJobs(admin.ListJobsRequest(queue_name="emails", state=job_pb2.Job.STATE_WAITING))
    assert [job.job_id for job in waiting.jobs] == ["e2", "e1"] and waiting.total_size == 2
    first = service.admin.ListJobs(admin.ListJobsRequest(queue_name="emails", page_size=2))
    assert [job.job_id for job in first.jobs] == ["e0", "e2"] and first.total_size == 3
    second = service.admin.ListJobs(
        admin.ListJobsRequest(queue_name="emails", page_size=2, page_token=first.next_page_token)
    )
    assert [job.job_id for job in second.jobs] == ["e1"] and second.next_page_token == ""
    error = rpc_error(service.admin.ListJobs, admin.ListJobsRequest(queue_name="sms", page_token=first.next_page_token))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_field(error) == "page_token"
    error = rpc_error(service.admin.ListJobs, admin.ListJobsRequest(state=42))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_field(error) == "state"


def test_list_jobs_by_job_name_pages_with_its_own_count_and_names_a_bad_field(service):
    from jobqueue.v1 import job_service_pb2 as jobs_pb

    for index, (queue, name) in enumerate(
        [("emails", "welcome"), ("emails", "receipt"), ("sms", "welcome"), ("emails", "welcome")]
    ):
        service.jobs.EnqueueJob(jobs_pb.EnqueueJobRequest(queue_name=queue, job_name=name, job_id=f"n{index}"))
        service.clock.advance(1)

    welcome = service.admin.ListJobs(admin.ListJobsRequest(job_name="welcome"))
    assert [job.job_id for job in welcome.jobs] == ["n3", "n2", "n0"] and welcome.total_size == 3
    in_emails = service.admin.ListJobs(admin.ListJobsRequest(job_name="welcome", queue_name="emails", page_size=1))
    assert [job.job_id for job in in_emails.jobs] == ["n3"] and in_emails.total_size == 2
    rest = service.admin.ListJobs(
        admin.ListJobsRequest(
            job_name="welcome", queue_name="emails", page_size=1, page_token=in_emails.next_page_token
        )
    )
    assert [job.job_id for job in rest.jobs] == ["n0"] and rest.next_page_token == ""
    waiting = service.admin.ListJobs(admin.ListJobsRequest(job_name="receipt", state=job_pb2.Job.STATE_WAITING))
    assert [job.job_id for job in waiting.jobs] == ["n1"] and waiting.total_size == 1
    assert service.admin.ListJobs(admin.ListJobsRequest(job_name="nothing")).total_size == 0
    # Without the name the listing is what it always was, and its tokens do not carry a name.
    unnamed = service.admin.ListJobs(admin.ListJobsRequest(queue_name="emails", page_size=1))
    assert unnamed.total_size == 3
    error = rpc_error(
        service.admin.ListJobs,
        admin.ListJobsRequest(queue_name="emails", job_name="welcome", page_size=1, page_token=unnamed.next_page_token),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_field(error) == "page_token"
    for bad_name in ("x" * 10_000, "a\x00b"):
        error = rpc_error(service.admin.ListJobs, admin.ListJobsRequest(job_name=bad_name))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_field(error) == "job_name"


def test_job_details_and_retry_log(service):
    enqueue(service, "a", job_data={"to": "x@example.com"})
    lease(service)
    fail_current(service, "a", "timeout")
    service.clock.advance(5)
    lease(service)
    entry_id = fail_current(service, "a", "fatal", non_retryable=True).dead_letter_id
    enqueue(service, "b", "sms")
    lease(service, "sms")
    fail_current(service, "b", "timeout")

    details = service.admin.GetJobDetails(admin.GetJobDetailsRequest(job_id="a"))
    assert details.job.job_data["to"] == "x@example.com"
    assert [error.message for error in details.error_history] == ["timeout", "fatal"]
    assert [row.decision for row in details.retry_log] == [
        job_pb2.RETRY_DECISION_RETRY,
        job_pb2.RETRY_DECISION_DEAD_LETTER,
    ]
    assert details.dead_letter_entry.id == entry_id
    assert not service.admin.GetJobDetails(admin.GetJobDetailsRequest(job_id="b")).HasField("dead_letter_entry")
    error = rpc_error(service.admin.GetJobDetails, admin.GetJobDetailsRequest(job_id="zzz"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and bad_field(error) == "job_id"

    log = service.admin.ListRetryLog(admin.ListRetryLogRequest())
    assert [(row.job_id, row.attempt_number) for row in log.entries] == [("b", 1), ("a", 2), ("a", 1)]
    assert [row.job_id for row in service.admin.ListRetryLog(admin.ListRetryLogRequest(job_id="a")).entries] == [
        "a",
        "a",
    ]
    assert [row.job_id for row in service.admin.ListRetryLog(admin.ListRetryLogRequest(queue_name="sms")).entries] == [
        "b"
    ]
    dead = service.admin.ListRetryLog(admin.ListRetryLogRequest(decision=job_pb2.RETRY_DECISION_DEAD_LETTER))
    assert [row.job_id for row in dead.entries] == ["a"]
    since = timestamp_pb2.Timestamp()
    since.FromDatetime(service.clock.now())
    assert [
        row.job_id for row in service.admin.ListRetryLog(admin.ListRetryLogRequest(created_after=since)).entries
    ] == [
        "a",
        "b",
    ][::-1]
    page = service.admin.ListRetryLog(admin.ListRetryLogRequest(page_size=2))
    rest = service.admin.ListRetryLog(admin.ListRetryLogRequest(page_size=2, page_token=page.next_page_token))
    assert [row.attempt_number for row in rest.entries] == [1] and rest.next_page_token == ""
    error = rpc_error(service.admin.ListRetryLog, admin.ListRetryLogRequest(created_after=since, created_before=since))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_every_admin_action_is_audited(service):
    first = dead_letter(service, "a")
    second = dead_letter(service, "b")
    third = dead_letter(service, "c")
    service.admin.UpdateDeadLetterJob(
        admin.UpdateDeadLetterJobRequest(
            entry=job_pb2.DeadLetterEntry(id=first, admin_notes="checking"),
            update_mask=field_mask_pb2.FieldMask(paths=["admin_notes"]),
        )
    )
    service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=first))
    service.admin.MarkPermanentlyFailed(admin.MarkPermanentlyFailedRequest(id=second, reason="bad input"))
    list(service.admin.RetryDeadLetterJobs(admin.RetryDeadLetterJobsRequest(ids=admin.DeadLetterIds(ids=[third]))))
    service.admin.PauseQueue(admin.PauseQueueRequest(queue_name="emails"))
    service.admin.ResumeQueue(admin.ResumeQueueRequest(queue_name="emails"))
    service.admin.UpdateQueuePolicy(
        admin.UpdateQueuePolicyRequest(queue_name="emails", retry_policy=job_pb2.RetryPolicy(max_retries=1))
    )
    service.admin.CleanQueue(
        admin.CleanQueueRequest(
            queue_name="emails", state=job_pb2.Job.STATE_COMPLETED, grace=duration_pb2.Duration(seconds=60)
        )
    )
    # Reads, dry runs and refused calls leave no event.
    service.admin.GetStatistics(admin.GetStatisticsRequest())
    list(
        service.admin.RetryDeadLetterJobs(
            admin.RetryDeadLetterJobsRequest(filter=admin.DeadLetterFilter(), dry_run=True)
        )
    )
    rpc_error(service.admin.RetryDeadLetterJob, admin.RetryDeadLetterJobRequest(id=second))

    events = service.admin.ListAuditEvents(admin.ListAuditEventsRequest()).events
    assert [(event.action, event.target) for event in events] == [
        ("CleanQueue", "queue/emails"),
        ("UpdateQueuePolicy", "queue/emails"),
        ("ResumeQueue", "queue/emails"),
        ("PauseQueue", "queue/emails"),
        ("RetryDeadLetterJob", f"dead_letter/{third}"),
        ("RetryDeadLetterJobs", "dead_letter_queue/*"),
        ("MarkPermanentlyFailed", f"dead_letter/{second}"),
        ("RetryDeadLetterJob", f"dead_letter/{first}"),
        ("UpdateDeadLetterJob", f"dead_letter/{first}"),
    ]
    assert all(event.actor == "anonymous" for event in events)
    by_action = {event.action: event for event in events}
    assert by_action["MarkPermanentlyFailed"].parameters["reason"] == "bad input"
    assert by_action["UpdateDeadLetterJob"].parameters["admin_notes"] == "checking"
    assert by_action["CleanQueue"].parameters["grace_seconds"] == 60
    bulk_id = by_action["RetryDeadLetterJobs"].parameters["operation_id"]
    assert events[4].parameters["operation_id"] == bulk_id  # each entry of a bulk redrive links to it

    def actions(**fields):
        return [event.action for event in service.admin.ListAuditEvents(admin.ListAuditEventsRequest(**fields)).events]

    assert actions(action="RetryDeadLetterJob") == ["RetryDeadLetterJob", "RetryDeadLetterJob"]
    assert actions(target=f"dead_letter/{first}") == ["RetryDeadLetterJob", "UpdateDeadLetterJob"]
    assert actions(actor="someone-else") == []
    later = timestamp_pb2.Timestamp()
    later.FromDatetime(service.clock.now())
    assert actions(created_before=later) == []
    assert len(actions(created_after=later)) == 9
    page = service.admin.ListAuditEvents(admin.ListAuditEventsRequest(page_size=4))
    assert len(page.events) == 4
    rest = service.admin.ListAuditEvents(admin.ListAuditEventsRequest(page_size=100, page_token=page.next_page_token))
    assert len(rest.events) == 5 and rest.next_page_token == ""
    error = rpc_error(
        service.admin.ListAuditEvents,
        admin.ListAuditEventsRequest(action="PauseQueue", page_token=page.next_page_token),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_field(error) == "page_token"


def test_current_actor_reads_the_principal_attached_to_the_call():
    class Context:
        pass

    context = Context()
    assert current_actor(context) == ANONYMOUS
    attach_principal(context, "ops-token")
    assert current_actor(context) == "ops-token"


def test_audit_events_name_the_authenticated_token(secured_service):
    service = secured_service
    metadata = [("authorization", f"Bearer {ADMIN_TOKEN}")]
    service.admin.PauseQueue(admin.PauseQueueRequest(queue_name="emails", allow_missing=True), metadata=metadata)
    list(
        service.admin.RetryDeadLetterJobs(
            admin.RetryDeadLetterJobsRequest(filter=admin.DeadLetterFilter()), metadata=metadata
        )
    )
    events = service.admin.ListAuditEvents(admin.ListAuditEventsRequest(), metadata=metadata).events
    assert [(event.action, event.actor) for event in events] == [
        ("RetryDeadLetterJobs", "admin"),
        ("PauseQueue", "admin"),
    ]
