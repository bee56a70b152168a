"""TrackStart, TrackCompletion, TrackFailure, MoveToDeadLetter and GetJob over gRPC on both backends."""

from datetime import UTC, timedelta

import grpc
from google.protobuf.json_format import MessageToDict
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import update

from queue_service.domain import DeathReason, RecoveryStatus
from queue_service.store.schema import queues
from tests.rpc_errors import assert_rejected, error_details, row_counts

SECOND = timedelta(seconds=1)


def when(timestamp):
    return timestamp.ToDatetime(tzinfo=UTC)


def enqueue(service, job_id, queue="emails", **fields):
    return service.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name=queue, job_name="send", job_id=job_id, **fields)).job


def lease(service, queue="emails"):
    (job,) = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[queue], worker_id="w1")).jobs
    return job


def fail(service, job_id, attempt, message="Connection timeout", **fields):
    return service.jobs.TrackFailure(
        pb.TrackFailureRequest(
            job_id=job_id, attempt_number=attempt, error=job_pb2.JobError(message=message, type="IOError"), **fields
        )
    )


def get(service, job_id):
    return service.jobs.GetJob(pb.GetJobRequest(job_id=job_id))


def set_queue_policy(database, queue, policy):
    with database.engine.begin() as connection:
        assert connection.execute(update(queues).where(queues.c.name == queue).values(retry_policy=policy)).rowcount


def dead_letter_entry(database, entry_id):
    with database.transaction() as repo:
        return repo.get_dead_letter(entry_id)


# TrackStart


def test_track_start_creates_an_unknown_job_as_active_attempt_one(service, database):
    response = service.jobs.TrackStart(
        pb.TrackStartRequest(
            job_id="ext-1", queue_name="bull", job_name="resize", job_data={"image": "a.png"}, worker_id="node-3"
        )
    )
    job = response.job
    assert response.created
    assert (job.job_id, job.queue_name, job.job_name) == ("ext-1", "bull", "resize")
    assert MessageToDict(job.job_data) == {"image": "a.png"}
    assert job.state == job_pb2.Job.STATE_ACTIVE
    assert job.attempt_number == 1
    assert job.remaining_retries == 3
    assert job.worker_id == "node-3"
    assert when(job.started_at) == service.clock.now()
    assert when(job.lease_expires_at) == service.clock.now() + timedelta(minutes=5)  # the stall timeout
    assert get(service, "ext-1").job == job
    assert row_counts(database)["queues"] == 1


def test_track_start_on_a_waiting_job_starts_attempt_one(service):
    enqueue(service, "w")
    response = service.jobs.TrackStart(pb.TrackStartRequest(job_id="w", worker_id="node-1"))
    assert not response.created
    assert response.job.state == job_pb2.Job.STATE_ACTIVE
    assert response.job.attempt_number == 1


def test_track_start_on_a_failed_job_starts_the_next_attempt_at_once(service):
    service.jobs.TrackStart(pb.TrackStartRequest(job_id="ext", queue_name="bull", job_name="resize"))
    decision = fail(service, "ext", 1)
    assert decision.should_retry
    # The external queue owns the timing: no need to wait for next_retry_at.
    response = service.jobs.TrackStart(pb.TrackStartRequest(job_id="ext", queue_name="bull", job_name="resize"))
    assert not response.created
    assert response.job.state == job_pb2.Job.STATE_ACTIVE
    assert response.job.attempt_number == 2
    assert response.job.remaining_retries == 2


def test_track_start_on_an_active_job_counts_a_redelivery(service):
    service.jobs.TrackStart(pb.TrackStartRequest(job_id="ext", queue_name="bull", job_name="resize"))
    again = service.jobs.TrackStart(pb.TrackStartRequest(job_id="ext", queue_name="bull", job_name="resize"))
    assert again.job.attempt_number == 2
    # The first run can no longer report.
    assert_rejected(
        service.jobs.TrackCompletion,
        pb.TrackCompletionRequest(job_id="ext", attempt_number=1),
        grpc.StatusCode.FAILED_PRECONDITION,
        "attempt_number",
    )


def test_track_start_refuses_finished_jobs(service):
    service.jobs.TrackStart(pb.TrackStartRequest(job_id="done", queue_name="bull", job_name="resize"))
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="done", attempt_number=1))
    service.jobs.TrackStart(pb.TrackStartRequest(job_id="dead", queue_name="bull", job_name="resize"))
    fail(service, "dead", 1, non_retryable=True)
    for job_id, state in (("done", "COMPLETED"), ("dead", "DEAD_LETTER")):
        before = get(service, job_id)
        error = assert_rejected(
            service.jobs.TrackStart,
            pb.TrackStartRequest(job_id=job_id, queue_name="bull", job_name="resize"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "job_id",
            mentions=f"{job_id!r} is {state}",
        )
        assert error_details(error)[0].reason == "INVALID_JOB_STATE"
        assert get(service, job_id) == before


def test_track_start_of_an_unknown_job_needs_queue_and_job_name(service, database):
    for request, field in (
        (pb.TrackStartRequest(job_id="new", job_name="resize"), "queue_name"),
        (pb.TrackStartRequest(job_id="new", queue_name="bull"), "job_name"),
        (pb.TrackStartRequest(queue_name="bull", job_name="resize"), "job_id"),
    ):
        assert_rejected(service.jobs.TrackStart, request, grpc.StatusCode.INVALID_ARGUMENT, field)
    assert row_counts(database)["queue_jobs"] == 0
    assert row_counts(database)["queues"] == 0


def test_track_start_with_another_queue_is_refused(service):
    enqueue(service, "j", queue="emails")
    assert_rejected(
        service.jobs.TrackStart,
        pb.TrackStartRequest(job_id="j", queue_name="sms"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "queue_name",
    )
    assert get(service, "j").job.state == job_pb2.Job.STATE_WAITING


# TrackCompletion


def test_track_completion_completes_the_current_run(service):
    enqueue(service, "c")
    lease(service)
    service.clock.advance(3)
    job = service.jobs.TrackCompletion(
        pb.TrackCompletionRequest(
            job_id="c", attempt_number=1, result={"sent": True}, processing_duration=timedelta(milliseconds=2500)
        )
    ).job
    assert job.state == job_pb2.Job.STATE_COMPLETED
    assert MessageToDict(job.result) == {"sent": True}
    assert job.processing_duration.ToTimedelta() == timedelta(milliseconds=2500)
    assert when(job.completed_at) == service.clock.now()
    assert not job.HasField("lease_expires_at")
    assert job.remaining_retries == 0
    assert get(service, "c").job == job


def test_track_completion_replay_returns_the_same_job(service):
    enqueue(service, "c")
    lease(service)
    request = pb.TrackCompletionRequest(job_id="c", attempt_number=1, result={"n": 1})
    first = service.jobs.TrackCompletion(request).job
    service.clock.advance(60)
    replay = service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="c", attempt_number=1, result={"n": 2}))
    assert replay.job == first
    assert get(service, "c").job == first


def test_track_completion_for_a_stale_attempt_changes_nothing(service):
    enqueue(service, "c")
    lease(service)
    fail(service, "c", 1)
    service.clock.advance(5)
    lease(service)
    before = get(service, "c")
    error = assert_rejected(
        service.jobs.TrackCompletion,
        pb.TrackCompletionRequest(job_id="c", attempt_number=1),
        grpc.StatusCode.FAILED_PRECONDITION,
        "attempt_number",
    )
    assert error_details(error)[0].reason == "STALE_ATTEMPT"
    assert get(service, "c") == before


def test_track_completion_of_a_job_that_never_ran_is_refused(service):
    enqueue(service, "c")
    assert_rejected(
        service.jobs.TrackCompletion,
        pb.TrackCompletionRequest(job_id="c", attempt_number=0),
        grpc.StatusCode.FAILED_PRECONDITION,
        "job_id",
        mentions="'c' is WAITING",
    )
    assert get(service, "c").job.state == job_pb2.Job.STATE_WAITING


# TrackFailure


def test_failure_replay_returns_the_same_decision_and_logs_once(service):
    enqueue(service, "f")
    lease(service)
    first = fail(service, "f", 1)
    service.clock.advance(2)
    replay = fail(service, "f", 1, message="reported again")
    for name in ("should_retry", "retry_delay", "next_retry_at", "remaining_retries", "moved_to_dead_letter"):
        assert getattr(replay, name) == getattr(first, name), name
    assert first.retry_delay.ToTimedelta() == 5 * SECOND
    details = get(service, "f")
    assert len(details.retry_log) == 1
    assert [error.message for error in details.error_history] == ["Connection timeout"]


def test_failure_replay_of_a_dead_letter_decision(service, database):
    enqueue(service, "f")
    lease(service)
    first = fail(service, "f", 1, non_retryable=True)
    replay = fail(service, "f", 1, non_retryable=True)
    assert replay.moved_to_dead_letter and not replay.should_retry
    assert replay.dead_letter_id == first.dead_letter_id
    assert len(get(service, "f").retry_log) == 1
    assert row_counts(database)["dead_letter_queue"] == 1


def test_failure_for_a_stale_or_unstarted_attempt_changes_nothing(service, database):
    enqueue(service, "f")
    lease(service)
    before, counts = get(service, "f"), row_counts(database)
    for attempt in (0, 2, 7):
        assert_rejected(
            service.jobs.TrackFailure,
            pb.TrackFailureRequest(job_id="f", attempt_number=attempt, error=job_pb2.JobError(message="x")),
            grpc.StatusCode.FAILED_PRECONDITION,
            "attempt_number",
        )
    assert get(service, "f") == before
    assert row_counts(database) == counts


def test_failure_of_a_completed_job_is_refused(service, database):
    enqueue(service, "f")
    lease(service)
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="f", attempt_number=1))
    counts = row_counts(database)
    assert_rejected(
        service.jobs.TrackFailure,
        pb.TrackFailureRequest(job_id="f", attempt_number=1, error=job_pb2.JobError(message="late")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "job_id",
        mentions="'f' is COMPLETED",
    )
    assert row_counts(database) == counts


def test_non_retryable_goes_to_the_dead_letter_queue_at_once(service, database):
    enqueue(service, "f", job_data={"k": "v"})
    lease(service)
    decision = fail(service, "f", 1, message="invalid phone number", non_retryable=True)
    assert not decision.should_retry and decision.moved_to_dead_letter
    assert decision.remaining_retries == 0
    assert decision.retry_delay.ToTimedelta() == timedelta(0)
    assert not decision.HasField("next_retry_at")
    assert decision.job.state == job_pb2.Job.STATE_DEAD_LETTER
    assert decision.job.dead_letter_id == decision.dead_letter_id
    entry = dead_letter_entry(database, decision.dead_letter_id)
    assert entry.death_reason == DeathReason.NON_RETRYABLE
    assert entry.total_attempts == 1
    assert get(service, "f").retry_log[0].death_reason == job_pb2.DEATH_REASON_NON_RETRYABLE


def test_retry_after_replaces_the_delay_within_max_delay(service):
    enqueue(service, "a")
    enqueue(service, "b")
    enqueue(service, "c", retry_policy=job_pb2.RetryPolicy(max_delay=timedelta(minutes=1)))
    for job_id in ("a", "b", "c"):
        lease(service)
    short = fail(service, "a", 1, retry_after=timedelta(seconds=7))
    assert short.retry_delay.ToTimedelta() == 7 * SECOND
    assert when(short.next_retry_at) == service.clock.now() + 7 * SECOND
    capped = fail(service, "b", 1, retry_after=timedelta(hours=3))
    assert capped.retry_delay.ToTimedelta() == timedelta(hours=1)  # the default max_delay
    job_capped = fail(service, "c", 1, retry_after=timedelta(minutes=10))
    assert job_capped.retry_delay.ToTimedelta() == timedelta(minutes=1)
    assert [entry.retry_delay.ToTimedelta() for entry in get(service, "b").retry_log] == [timedelta(hours=1)]


def test_policy_precedence_job_then_queue_then_default(service, database):
    enqueue(service, "queue-policy", queue="flaky")
    enqueue(
        service,
        "job-policy",
        queue="flaky",
        retry_policy=job_pb2.RetryPolicy(max_retries=2, retry_delays=[timedelta(seconds=3)]),
    )
    enqueue(service, "job-max-delay", queue="flaky", retry_policy=job_pb2.RetryPolicy(max_delay=timedelta(seconds=2)))
    enqueue(service, "default", queue="steady")
    set_queue_policy(database, "flaky", {"max_retries": 1, "retry_delays_ms": [1000, 4000]})

    delays = {}
    for job_id, queue in (
        ("queue-policy", "flaky"),
        ("job-policy", "flaky"),
        ("job-max-delay", "flaky"),
        ("default", "steady"),
    ):
        leased = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[queue], max_jobs=1)).jobs[0]
        assert leased.job_id == job_id
        decision = fail(service, job_id, 1)
        delays[job_id] = (decision.retry_delay.ToTimedelta(), decision.remaining_retries)
    assert delays == {
        "queue-policy": (1 * SECOND, 1),
        "job-policy": (3 * SECOND, 2),
        "job-max-delay": (1 * SECOND, 1),  # queue delays, capped by the job's 2 s
        "default": (5 * SECOND, 3),
    }

    service.clock.advance(5)
    # The queue's max_retries = 1 allows two runs; the job's override allows three.
    leased = service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["flaky"], max_jobs=3)).jobs
    assert sorted(job.job_id for job in leased) == ["job-max-delay", "job-policy", "queue-policy"]
    outcomes = {job.job_id: fail(service, job.job_id, 2) for job in leased}
    assert {job_id: outcome.should_retry for job_id, outcome in outcomes.items()} == {
        "queue-policy": False,
        "job-policy": True,
        "job-max-delay": False,
    }
    assert outcomes["queue-policy"].moved_to_dead_letter
    assert outcomes["job-policy"].retry_delay.ToTimedelta() == 3 * SECOND  # the job's single delay repeats


def test_retries_exhausted_dead_letter_entry_keeps_everything(service, database):
    enqueue(service, "order-42", queue="payments", job_data={"order": 42, "items": ["a", "b"]})
    messages = ["timeout 1", "timeout 2", "refused 3", "gave up 4"]
    for attempt, message in enumerate(messages, start=1):
        leased = lease(service, queue="payments")
        assert leased.attempt_number == attempt
        decision = fail(service, "order-42", attempt, message=message)
        service.clock.advance(60)
    assert decision.moved_to_dead_letter
    entry = dead_letter_entry(database, decision.dead_letter_id)
    assert entry.job_id == "order-42"
    assert entry.queue_name == "payments"
    assert entry.job_name == "send"
    assert entry.job_data == {"order": 42, "items": ["a", "b"]}
    assert entry.failure_reason == "gave up 4"
    assert entry.error_type == "IOError"
    assert entry.total_attempts == 4
    assert [(error.attempt_number, error.message) for error in entry.error_history] == list(
        enumerate(messages, start=1)
    )
    assert entry.death_reason == DeathReason.RETRIES_EXHAUSTED
    assert entry.recovery_status == RecoveryStatus.PENDING
    assert (entry.recovery_attempts, entry.admin_notes, entry.assigned_to, entry.priority) == (0, "", "", 0)
    assert entry.dead_lettered_at == service.clock.now() - timedelta(seconds=60)


# MoveToDeadLetter


def test_move_to_dead_letter_from_each_live_state(service, database):
    enqueue(service, "active")
    enqueue(service, "failed")
    assert len(service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"], max_jobs=3)).jobs) == 2
    fail(service, "failed", 1)
    enqueue(service, "waiting", job_data={"w": 1})

    entries = {}
    for job_id in ("waiting", "active", "failed"):
        entries[job_id] = service.jobs.MoveToDeadLetter(
            pb.MoveToDeadLetterRequest(job_id=job_id, reason=f"operator: {job_id}")
        ).entry
    for job_id, entry in entries.items():
        assert entry.job_id == job_id
        assert entry.failure_reason == f"operator: {job_id}"
        assert entry.death_reason == job_pb2.DEATH_REASON_MOVED_EXPLICITLY
        assert entry.recovery_status == job_pb2.DeadLetterEntry.RECOVERY_STATUS_PENDING
        job = get(service, job_id).job
        assert job.state == job_pb2.Job.STATE_DEAD_LETTER
        assert job.dead_letter_id == entry.id
    assert MessageToDict(entries["waiting"].job_data) == {"w": 1}
    assert entries["waiting"].total_attempts == 0
    assert entries["failed"].total_attempts == 1
    assert [error.message for error in entries["failed"].error_history] == ["Connection timeout", "operator: failed"]
    assert row_counts(database)["dead_letter_queue"] == 3


def test_move_to_dead_letter_refusals(service, database):
    enqueue(service, "done")
    lease(service)
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="done", attempt_number=1))
    enqueue(service, "live")
    counts = row_counts(database)
    assert_rejected(
        service.jobs.MoveToDeadLetter,
        pb.MoveToDeadLetterRequest(job_id="done", reason="r"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "job_id",
        mentions="'done' is COMPLETED",
    )
    assert_rejected(
        service.jobs.MoveToDeadLetter,
        pb.MoveToDeadLetterRequest(job_id="nope", reason="r"),
        grpc.StatusCode.NOT_FOUND,
        "job_id",
        mentions="'nope'",
    )
    assert_rejected(
        service.jobs.MoveToDeadLetter,
        pb.MoveToDeadLetterRequest(job_id="live", reason="  "),
        grpc.StatusCode.INVALID_ARGUMENT,
        "reason",
    )
    assert row_counts(database) == counts


# GetJob


def test_get_job_returns_error_history_and_retry_log(service):
    enqueue(service, "g")
    lease(service)
    fail(service, "g", 1, message="first")
    service.clock.advance(5)
    lease(service)
    service.clock.advance(1)
    fail(service, "g", 2, message="second", retry_after=timedelta(seconds=30))
    service.clock.advance(30)
    lease(service)
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="g", attempt_number=3))

    details = get(service, "g")
    assert details.job.state == job_pb2.Job.STATE_COMPLETED
    assert details.job.last_error.message == "second"
    assert [(error.attempt_number, error.message, error.type) for error in details.error_history] == [
        (1, "first", "IOError"),
        (2, "second", "IOError"),
    ]
    log = details.retry_log
    assert [(entry.attempt_number, entry.decision) for entry in log] == [
        (1, job_pb2.RETRY_DECISION_RETRY),
        (2, job_pb2.RETRY_DECISION_RETRY),
    ]
    assert [entry.retry_delay.ToTimedelta() for entry in log] == [5 * SECOND, 30 * SECOND]
    assert when(log[1].next_retry_at) == when(log[1].created_at) + 30 * SECOND
    assert all(entry.job_id == "g" and entry.queue_name == "emails" for entry in log)
    assert log[0].error.message == "first"


def test_get_job_unknown_and_empty_ids(service):
    assert_rejected(
        service.jobs.GetJob,
        pb.GetJobRequest(job_id="missing"),
        grpc.StatusCode.NOT_FOUND,
        "job_id",
        mentions="'missing'",
    )
    assert_rejected(service.jobs.GetJob, pb.GetJobRequest(), grpc.StatusCode.INVALID_ARGUMENT, "job_id")
