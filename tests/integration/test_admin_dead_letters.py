"""Dead-letter triage over gRPC: list, get, retry, mark permanently failed, update with a field mask."""

import threading
from datetime import timedelta

import grpc
from google.protobuf import field_mask_pb2, timestamp_pb2
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import event

from tests.integration.admin_helpers import bad_field, dead_letter, enqueue, fail_current, lease, rpc_error

PENDING = job_pb2.DeadLetterEntry.RECOVERY_STATUS_PENDING
RECOVERED = job_pb2.DeadLetterEntry.RECOVERY_STATUS_RECOVERED
PERMANENTLY_FAILED = job_pb2.DeadLetterEntry.RECOVERY_STATUS_PERMANENTLY_FAILED


def set_priority(service, entry_id, priority):
    service.admin.UpdateDeadLetterJob(
        admin.UpdateDeadLetterJobRequest(
            entry=job_pb2.DeadLetterEntry(id=entry_id, priority=priority),
            update_mask=field_mask_pb2.FieldMask(paths=["priority"]),
        )
    )


def test_list_orders_by_priority_then_newest_and_pages_stably(service):
    ids = {}
    for index in range(5):
        ids[index] = dead_letter(service, f"job-{index}")
        service.clock.advance(1)
    set_priority(service, ids[1], 10)
    listed = service.admin.ListDeadLetterJobs(admin.ListDeadLetterJobsRequest())
    assert [entry.id for entry in listed.entries] == [ids[1], ids[4], ids[3], ids[2], ids[0]]
    assert listed.total_size == 5
    assert listed.next_page_token == ""
    # Lists leave the large fields out.
    assert not listed.entries[0].error_history and not listed.entries[0].HasField("job_data")

    first = service.admin.ListDeadLetterJobs(admin.ListDeadLetterJobsRequest(page_size=2))
    assert [entry.id for entry in first.entries] == [ids[1], ids[4]]
    assert first.total_size == 5 and first.next_page_token
    # Rows added meanwhile (newer, so ahead of the cursor) neither shift nor repeat the next page.
    dead_letter(service, "job-new")
    second = service.admin.ListDeadLetterJobs(
        admin.ListDeadLetterJobsRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [entry.id for entry in second.entries] == [ids[3], ids[2]]
    third = service.admin.ListDeadLetterJobs(
        admin.ListDeadLetterJobsRequest(page_size=2, page_token=second.next_page_token)
    )
    assert [entry.id for entry in third.entries] == [ids[0]]
    assert third.next_page_token == ""
    assert third.total_size == 6


def test_a_page_reads_no_job_data_or_error_history(service):
    """A page shows neither, and either can be large: the statements behind it do not read them."""
    for index in range(3):
        dead_letter(service, f"big-{index}")
    statements: list[str] = []

    def capture(_connection, _cursor, statement, _parameters, _context, _executemany):
        statements.append(statement)

    engine = service.server.database.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        first = service.admin.ListDeadLetterJobs(admin.ListDeadLetterJobsRequest(page_size=2))
        service.admin.ListDeadLetterJobs(admin.ListDeadLetterJobsRequest(page_token=first.next_page_token))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    pages = [statement for statement in statements if "FROM dead_letter_queue" in statement]
    assert len(pages) == 2, statements
    for statement in pages:
        assert "job_data" not in statement and "error_history" not in statement, statement
    # The whole entry still has both.
    entry = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=first.entries[0].id)).entry
    assert entry.error_history and entry.HasField("job_data")


def test_a_triage_page_and_its_total_are_one_statement(service):
    """Filtered on queue and status alone, the total comes from the counters in the page's own
    statement; a page left empty (its entries resolved meanwhile) still has its total."""
    ids = [dead_letter(service, f"one-{index}", queue="emails") for index in range(4)]
    dead_letter(service, "elsewhere", queue="sms")
    # By thread: the server's readiness probe may query the database meanwhile, on its own thread.
    statements: list[tuple[int, str]] = []

    def capture(_connection, _cursor, statement, _parameters, _context, _executemany):
        statements.append((threading.get_ident(), statement))

    request = admin.ListDeadLetterJobsRequest(
        filter=admin.DeadLetterFilter(queue_name="emails", recovery_status=PENDING), page_size=2
    )
    engine = service.server.database.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        first = service.admin.ListDeadLetterJobs(request)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [page_thread] = {thread for thread, statement in statements if "dead_letter_queue" in statement}
    queries = [statement for thread, statement in statements if thread == page_thread]
    assert len(queries) == 1, statements
    assert len(first.entries) == 2 and first.total_size == 4 and first.next_page_token

    for entry_id in ids:
        if entry_id not in {entry.id for entry in first.entries}:
            service.admin.MarkPermanentlyFailed(admin.MarkPermanentlyFailedRequest(id=entry_id, reason="known bug"))
    request.page_token = first.next_page_token
    emptied = service.admin.ListDeadLetterJobs(request)
    assert list(emptied.entries) == [] and emptied.total_size == 2 and emptied.next_page_token == ""
    every_queue = service.admin.ListDeadLetterJobs(
        admin.ListDeadLetterJobsRequest(filter=admin.DeadLetterFilter(recovery_status=PENDING))
    )
    assert every_queue.total_size == 3 and len(every_queue.entries) == 3


def test_pages_of_every_size_walk_ties_in_priority_and_time_exactly_once(service):
    ids = []
    for index in range(12):
        ids.append(dead_letter(service, f"tie-{index}"))
        if index % 3 == 2:  # three entries share each dead_lettered_at
            service.clock.advance(1)
    for position, entry_id in enumerate(ids):
        set_priority(service, entry_id, position % 4 // 2)  # two priorities, interleaved in time
    everything = [entry.id for entry in service.admin.ListDeadLetterJobs(admin.ListDeadLetterJobsRequest()).entries]
    assert sorted(everything) == sorted(ids)

    for page_size in range(1, 6):
        walked, token = [], ""
        for _ in range(len(ids) + 1):  # a cursor that repeats rows must not loop for ever
            page = service.admin.ListDeadLetterJobs(
                admin.ListDeadLetterJobsRequest(page_size=page_size, page_token=token)
            )
            walked += [entry.id for entry in page.entries]
            token = page.next_page_token
            if not token:
                break
        assert walked == everything, page_size


def test_list_filters(service):
    a = dead_letter(service, "a", queue="emails", message="SMTP timeout", error_type="TimeoutError")
    service.clock.advance(60)
    b = dead_letter(service, "b", queue="sms", message="invalid number", error_type="ValueError")
    enqueue(service, "c", "emails")
    service.jobs.MoveToDeadLetter(pb.MoveToDeadLetterRequest(job_id="c", reason="operator moved it"))

    def ids(**filter_fields):
        request = admin.ListDeadLetterJobsRequest(filter=admin.DeadLetterFilter(**filter_fields))
        response = service.admin.ListDeadLetterJobs(request)
        assert response.total_size == len(response.entries)
        return sorted(entry.job_id for entry in response.entries)

    assert ids(queue_name="emails") == ["a", "c"]
    assert ids(death_reason=job_pb2.DEATH_REASON_MOVED_EXPLICITLY) == ["c"]
    assert ids(failure_reason_contains="smtp") == ["a"]
    assert ids(failure_reason_contains="100%") == []
    assert ids(error_type="ValueError") == ["b"]
    start = service.clock.now() - timedelta(seconds=30)
    after = timestamp_pb2.Timestamp()
    after.FromDatetime(start)
    assert ids(dead_lettered_after=after) == ["b", "c"]
    assert ids(dead_lettered_before=after) == ["a"]
    service.admin.MarkPermanentlyFailed(admin.MarkPermanentlyFailedRequest(id=a, reason="bad data"))
    assert ids(recovery_status=PENDING) == ["b", "c"]
    assert ids(recovery_status=PERMANENTLY_FAILED) == ["a"]
    set_priority(service, b, 1)
    service.admin.UpdateDeadLetterJob(
        admin.UpdateDeadLetterJobRequest(
            entry=job_pb2.DeadLetterEntry(id=b, assigned_to="ops@example.com"),
            update_mask=field_mask_pb2.FieldMask(paths=["assigned_to"]),
        )
    )
    assert ids(assigned_to="ops@example.com") == ["b"]


def test_list_rejects_bad_paging_and_caps_page_size(service):
    for index in range(3):
        dead_letter(service, f"job-{index}")
    error = rpc_error(service.admin.ListDeadLetterJobs, admin.ListDeadLetterJobsRequest(page_token="not-a-token"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field(error) == "page_token"
    error = rpc_error(service.admin.ListDeadLetterJobs, admin.ListDeadLetterJobsRequest(page_size=-1))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field(error) == "page_size"
    # A huge page size is lowered to the maximum, not refused.
    assert len(service.admin.ListDeadLetterJobs(admin.ListDeadLetterJobsRequest(page_size=10**9)).entries) == 3
    # A token only works with the filters it was issued for.
    token = service.admin.ListDeadLetterJobs(admin.ListDeadLetterJobsRequest(page_size=1)).next_page_token
    error = rpc_error(
        service.admin.ListDeadLetterJobs,
        admin.ListDeadLetterJobsRequest(
            page_size=1, page_token=token, filter=admin.DeadLetterFilter(queue_name="other")
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "different filters" in error.details()


def test_get_returns_history_job_and_retry_log(service):
    enqueue(service, "job-1")
    for message in ("timeout after 5s", "timeout after 15s"):
        lease(service)
        fail_current(service, "job-1", message, "TimeoutError")
        service.clock.advance(60)
    lease(service)
    entry_id = fail_current(service, "job-1", "fatal", "ValueError", non_retryable=True).dead_letter_id
    details = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=entry_id))
    assert details.entry.id == entry_id
    assert [error.message for error in details.entry.error_history] == [
        "timeout after 5s",
        "timeout after 15s",
        "fatal",
    ]
    assert details.job.job_id == "job-1" and details.job.state == job_pb2.Job.STATE_DEAD_LETTER
    assert [row.attempt_number for row in details.retry_log] == [1, 2, 3]

    error = rpc_error(service.admin.GetDeadLetterJob, admin.GetDeadLetterJobRequest(id="no-such-entry"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert bad_field(error) == "id"
    error = rpc_error(service.admin.GetDeadLetterJob, admin.GetDeadLetterJobRequest(id=""))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_retry_gives_a_fresh_budget_and_a_second_death_reopens_the_same_entry(service):
    enqueue(service, "job-1")
    for run in range(1, 5):
        lease(service)
        decision = fail_current(service, "job-1", f"timeout #{run}")
        service.clock.advance(3600)
    assert decision.moved_to_dead_letter
    entry_id = decision.dead_letter_id
    service.admin.UpdateDeadLetterJob(
        admin.UpdateDeadLetterJobRequest(
            entry=job_pb2.DeadLetterEntry(id=entry_id, admin_notes="upstream was down"),
            update_mask=field_mask_pb2.FieldMask(paths=["admin_notes"]),
        )
    )

    retried = service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=entry_id))
    assert retried.entry.recovery_status == RECOVERED
    assert retried.entry.recovery_attempts == 1
    assert retried.entry.resolved_by == "anonymous"
    assert retried.job.state == job_pb2.Job.STATE_WAITING
    assert retried.job.remaining_retries == 3  # the whole default budget again
    assert retried.job.attempt_number == 4

    # The fresh budget allows four more runs with the usual delays.
    for run in range(5, 9):
        (job,) = lease(service)
        assert job.attempt_number == run
        decision = fail_current(service, "job-1", f"timeout #{run}")
        service.clock.advance(3600)
    assert decision.moved_to_dead_letter
    assert decision.dead_letter_id == entry_id

    reopened = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=entry_id)).entry
    assert reopened.recovery_status == PENDING
    assert reopened.recovery_attempts == 1
    assert reopened.admin_notes == "upstream was down"
    assert reopened.total_attempts == 8
    assert reopened.resolved_by == "" and not reopened.HasField("resolved_at")
    listed = service.admin.ListDeadLetterJobs(admin.ListDeadLetterJobsRequest())
    assert [entry.id for entry in listed.entries] == [entry_id]  # nothing duplicated

    again = service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=entry_id))
    assert again.entry.recovery_attempts == 2


def test_retry_with_a_new_policy(service):
    entry_id = dead_letter(service, "job-1")
    retried = service.admin.RetryDeadLetterJob(
        admin.RetryDeadLetterJobRequest(id=entry_id, retry_policy=job_pb2.RetryPolicy(max_retries=0))
    )
    assert retried.job.retry_policy.max_retries == 0
    assert retried.job.remaining_retries == 0
    lease(service)
    decision = fail_current(service, "job-1", "still broken")
    assert decision.moved_to_dead_letter  # max_retries 0: the first failure dead-letters

    entry_id = dead_letter(service, "job-2")
    error = rpc_error(
        service.admin.RetryDeadLetterJob,
        admin.RetryDeadLetterJobRequest(id=entry_id, retry_policy=job_pb2.RetryPolicy(max_retries=-1)),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field(error) == "retry_policy.max_retries"
    entry = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=entry_id)).entry
    assert entry.recovery_status == PENDING  # nothing written


def test_retried_job_is_leased_again(service):
    entry_id = dead_letter(service, "job-1")
    assert lease(service) == []
    service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=entry_id))
    (job,) = lease(service)
    assert job.job_id == "job-1"


def test_retry_errors(service):
    error = rpc_error(service.admin.RetryDeadLetterJob, admin.RetryDeadLetterJobRequest(id="missing"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    entry_id = dead_letter(service, "job-1")
    service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=entry_id))
    error = rpc_error(service.admin.RetryDeadLetterJob, admin.RetryDeadLetterJobRequest(id=entry_id))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "RECOVERED" in error.details()


def test_mark_permanently_failed_is_terminal(service):
    entry_id = dead_letter(service, "job-1")
    error = rpc_error(service.admin.MarkPermanentlyFailed, admin.MarkPermanentlyFailedRequest(id=entry_id))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field(error) == "reason"
    marked = service.admin.MarkPermanentlyFailed(
        admin.MarkPermanentlyFailedRequest(id=entry_id, reason="Invalid data format")
    ).entry
    assert marked.recovery_status == PERMANENTLY_FAILED
    assert marked.resolution_reason == "Invalid data format"
    assert marked.resolved_by == "anonymous" and marked.HasField("resolved_at")

    error = rpc_error(service.admin.RetryDeadLetterJob, admin.RetryDeadLetterJobRequest(id=entry_id))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "PERMANENTLY_FAILED" in error.details()
    error = rpc_error(
        service.admin.MarkPermanentlyFailed, admin.MarkPermanentlyFailedRequest(id=entry_id, reason="again")
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    job = service.jobs.GetJob(pb.GetJobRequest(job_id="job-1")).job
    assert job.state == job_pb2.Job.STATE_DEAD_LETTER
    error = rpc_error(service.admin.MarkPermanentlyFailed, admin.MarkPermanentlyFailedRequest(id="nope", reason="x"))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_update_with_field_masks(service):
    entry_id = dead_letter(service, "job-1")

    def update(paths, **fields):
        mask = field_mask_pb2.FieldMask(paths=paths)
        entry = job_pb2.DeadLetterEntry(id=entry_id, **fields)
        return service.admin.UpdateDeadLetterJob(admin.UpdateDeadLetterJobRequest(entry=entry, update_mask=mask)).entry

    entry = update(["admin_notes", "assigned_to"], admin_notes="looking", assigned_to="ana", priority=9)
    assert (entry.admin_notes, entry.assigned_to, entry.priority) == ("looking", "ana", 0)
    entry = update(["priority"], priority=5, admin_notes="ignored")
    assert (entry.admin_notes, entry.assigned_to, entry.priority) == ("looking", "ana", 5)
    entry = update([], assigned_to="bo")  # no mask: the fields that are set
    assert (entry.admin_notes, entry.assigned_to, entry.priority) == ("looking", "bo", 5)
    entry = update(["*"], admin_notes="done")  # "*": all three, unset ones cleared
    assert (entry.admin_notes, entry.assigned_to, entry.priority) == ("done", "", 0)

    error = rpc_error(
        service.admin.UpdateDeadLetterJob,
        admin.UpdateDeadLetterJobRequest(
            entry=job_pb2.DeadLetterEntry(id=entry_id, failure_reason="rewritten"),
            update_mask=field_mask_pb2.FieldMask(paths=["admin_notes", "failure_reason"]),
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field(error) == "update_mask"
    assert "failure_reason" in error.details()
    details = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=entry_id)).entry
    assert details.admin_notes == "done" and details.failure_reason == "boom"

    error = rpc_error(
        service.admin.UpdateDeadLetterJob,
        admin.UpdateDeadLetterJobRequest(
            entry=job_pb2.DeadLetterEntry(id=entry_id, priority=10**9),
            update_mask=field_mask_pb2.FieldMask(paths=["priority"]),
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field(error) == "entry.priority"
    error = rpc_error(
        service.admin.UpdateDeadLetterJob,
        admin.UpdateDeadLetterJobRequest(
            entry=job_pb2.DeadLetterEntry(id="missing", admin_notes="x"),
            update_mask=field_mask_pb2.FieldMask(paths=["admin_notes"]),
        ),
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert bad_field(error) == "entry.id"
