"""JobClient against a real server on SQLite and PostgreSQL: typed values in and out, typed errors, auth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from jobqueue import (
    Completion,
    DeathReason,
    FailedPrecondition,
    InvalidArgument,
    JobClient,
    JobRequest,
    JobState,
    NonRetryableError,
    NotFound,
    RetryAfterError,
    RetryDecision,
    RetryPolicy,
    Unauthenticated,
    UniqueOptions,
)

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN


@pytest.fixture
def client(service):
    with JobClient(service.target, timeout=10) as client:
        yield client


def test_enqueue_and_lease_round_trip_python_values(client, service):
    run_at = service.clock.now() + timedelta(seconds=30)
    first = client.enqueue(
        "emails",
        "send",
        {"to": "a@example.com", "attempts": 3, "ratio": 0.5, "tags": ["x", 1], "nested": {"ok": True, "none": None}},
        job_id="job-1",
        priority=7,
        run_at=run_at,
        retry_policy=RetryPolicy(
            max_retries=1, retry_delays=(timedelta(seconds=2),), max_delay=timedelta(minutes=1), jitter=0.0
        ),
    )
    assert first.created
    job = first.job
    assert (job.job_id, job.queue_name, job.job_name, job.priority) == ("job-1", "emails", "send", 7)
    assert job.state is JobState.WAITING
    assert job.job_data == {
        "to": "a@example.com",
        "attempts": 3,
        "ratio": 0.5,
        "tags": ["x", 1],
        "nested": {"ok": True, "none": None},
    }
    assert isinstance(job.job_data["attempts"], int)
    assert job.run_at == run_at and job.run_at.tzinfo is not None
    assert job.retry_policy == RetryPolicy(1, (timedelta(seconds=2),), timedelta(minutes=1), 0.0)
    assert job.remaining_retries == 1

    again = client.enqueue("emails", "send", {"to": "someone else"}, job_id="job-1")
    assert not again.created and again.job.job_data["to"] == "a@example.com"

    assert client.lease("emails", worker_id="w1") == []  # not due yet
    service.clock.advance(30)
    (leased,) = client.lease(["emails"], worker_id="w1", lease_duration=timedelta(seconds=90))
    assert leased.state is JobState.ACTIVE and leased.attempt_number == 1 and leased.worker_id == "w1"
    assert leased.lease_expires_at == service.clock.now() + timedelta(seconds=90)

    service.clock.advance(10)
    assert client.heartbeat("job-1", 1, lease_duration=timedelta(seconds=20)) == service.clock.now() + timedelta(
        seconds=20
    )

    done = client.track_completion("job-1", 1, result={"message_id": 42}, processing_duration=timedelta(seconds=1.5))
    assert done.state is JobState.COMPLETED
    assert done.result == {"message_id": 42}
    assert done.processing_duration == timedelta(seconds=1.5)
    assert done.completed_at == service.clock.now()


def test_track_completions_reports_each_run_alone(client, service):
    client.enqueue_many([JobRequest("emails", "send", job_id=f"batch-{index}") for index in range(3)])
    first, second, third = sorted(client.lease("emails", worker_id="w1", max_jobs=3), key=lambda job: job.job_id)

    results = client.track_completions(
        [
            Completion(first.job_id, first.attempt_number, result={"n": 1}, processing_duration=timedelta(seconds=2)),
            Completion(second.job_id, second.attempt_number + 1),  # not the current run
            Completion("no-such-job", 1),
        ]
    )

    assert [result.job_id for result in results] == [first.job_id, second.job_id, "no-such-job"]
    assert results[0].ok and results[0].error is None
    assert isinstance(results[1].error, FailedPrecondition) and results[1].error.reason
    assert isinstance(results[2].error, NotFound) and "no-such-job" in results[2].error.message
    done = client.get_job(first.job_id).job
    assert (done.state, done.result, done.processing_duration) == (JobState.COMPLETED, {"n": 1}, timedelta(seconds=2))
    assert client.get_job(second.job_id).job.state is JobState.ACTIVE
    assert client.get_job(third.job_id).job.state is JobState.ACTIVE

    with pytest.raises(InvalidArgument) as duplicate:
        client.track_completions([Completion(third.job_id, 1), Completion(third.job_id, 1)])
    assert duplicate.value.field == "completions[1].job_id"
    assert client.get_job(third.job_id).job.state is JobState.ACTIVE


def test_enqueue_generates_ids_and_batches(client):
    generated = client.enqueue("emails", "send")
    assert generated.created and len(generated.job.job_id) == 36
    results = client.enqueue_many(
        [JobRequest("emails", "send", {"n": n}, job_id=f"batch-{n}", delay=timedelta(seconds=n)) for n in range(3)]
    )
    assert [result.job.job_id for result in results] == ["batch-0", "batch-1", "batch-2"]
    assert all(result.created for result in results)
    with pytest.raises(ValueError, match="run_at or delay"):
        client.enqueue("emails", "send", run_at=datetime.now(UTC), delay=timedelta(seconds=1))
    with pytest.raises(ValueError, match="no time zone"):
        client.enqueue("emails", "send", run_at=datetime(2026, 1, 1))


def test_failure_reports_carry_type_message_and_traceback(client, service):
    client.enqueue("emails", "send", job_id="job-2")
    (job,) = client.lease("emails")
    try:
        raise ConnectionError("SMTP server closed the connection")
    except ConnectionError as error:
        decision = client.track_failure(job.job_id, job.attempt_number, error)
    assert decision.should_retry and not decision.moved_to_dead_letter
    assert decision.retry_delay == timedelta(seconds=5)
    assert decision.next_retry_at == service.clock.now() + timedelta(seconds=5)
    assert decision.remaining_retries == 3
    assert decision.job.state is JobState.FAILED

    details = client.get_job("job-2")
    (error,) = details.error_history
    assert (error.type, error.message, error.attempt_number) == (
        "ConnectionError",
        "SMTP server closed the connection",
        1,
    )
    assert error.details.startswith("Traceback (most recent call last)") and "test_job_client.py" in error.details
    (log,) = details.retry_log
    assert log.decision is RetryDecision.RETRY and log.retry_delay == timedelta(seconds=5)

    # A repeated report of the same attempt gets the same decision, counted once.
    assert client.track_failure("job-2", 1, "SMTP server closed the connection").retry_delay == timedelta(seconds=5)
    assert len(client.get_job("job-2").retry_log) == 1


def test_exceptions_steer_the_decision(client, service):
    client.enqueue("emails", "send", job_id="bad-data")
    client.enqueue("emails", "send", job_id="rate-limited")
    jobs = {job.job_id: job for job in client.lease("emails", max_jobs=2)}
    dead = client.track_failure("bad-data", 1, NonRetryableError("no recipient"))
    assert dead.moved_to_dead_letter and not dead.should_retry and dead.dead_letter_id
    assert client.get_job("bad-data").retry_log[-1].death_reason is DeathReason.NON_RETRYABLE
    later = client.track_failure(
        "rate-limited", jobs["rate-limited"].attempt_number, RetryAfterError("429", timedelta(seconds=40))
    )
    assert later.retry_delay == timedelta(seconds=40)
    # Keyword arguments win over what the exception says.
    client.enqueue("emails", "send", job_id="overridden")
    (job,) = client.lease("emails")
    decision = client.track_failure(job.job_id, 1, NonRetryableError("x"), non_retryable=False, error_type="Custom")
    assert decision.should_retry
    assert client.get_job("overridden").job.last_error.type == "Custom"


def test_move_to_dead_letter_and_track_start(client):
    client.enqueue("emails", "send", {"to": "x"}, job_id="job-3")
    entry = client.move_to_dead_letter("job-3", "customer deleted")
    assert entry.job_id == "job-3" and entry.failure_reason == "customer deleted"
    assert entry.death_reason is DeathReason.MOVED_EXPLICITLY
    assert entry.recovery_status.value == "pending"
    assert entry.job_data == {"to": "x"}
    assert entry.dead_lettered_at is not None

    started = client.track_start(
        "ext-1", queue_name="imports", job_name="csv", job_data={"rows": 10}, worker_id="bull-1"
    )
    assert started.created and started.job.state is JobState.ACTIVE and started.job.attempt_number == 1


def test_typed_errors_carry_the_server_message_and_error_info(client):
    with pytest.raises(NotFound) as raised:
        client.get_job("absent")
    assert raised.value.message == "job 'absent' not found"
    assert (raised.value.reason, raised.value.domain, raised.value.field) == ("NOT_FOUND", "jobqueue.v1", "job_id")

    with pytest.raises(InvalidArgument) as raised:
        client.enqueue("", "send")
    assert raised.value.field == "queue_name"
    assert raised.value.field_violations == {"queue_name": "queue_name must not be empty"}

    client.enqueue("emails", "send", job_id="job-4")
    client.lease("emails")
    with pytest.raises(FailedPrecondition):
        client.track_completion("job-4", 2)
    client.move_to_dead_letter("job-4", "stop")
    with pytest.raises(FailedPrecondition) as raised:
        client.move_to_dead_letter("job-4", "again")
    assert "job-4" in str(raised.value)


def test_token_is_sent_and_checked(secured_service):
    with JobClient(secured_service.target, timeout=10) as anonymous:
        with pytest.raises(Unauthenticated) as raised:
            anonymous.enqueue("emails", "send")
        assert raised.value.reason == "MISSING_TOKEN"
    with JobClient(secured_service.target, token="not-a-valid-token-000000", timeout=10) as stranger:
        with pytest.raises(Unauthenticated):
            stranger.enqueue("emails", "send")
    for token in (WORKER_TOKEN, ADMIN_TOKEN):
        with JobClient(secured_service.target, token=token, timeout=10) as client:
            assert client.enqueue("emails", "send").created
    assert ADMIN_TOKEN not in repr(JobClient(secured_service.target, token=ADMIN_TOKEN))


def test_unique_enqueue_returns_the_job_that_counts(client, service):
    first = client.enqueue("reports", "build", {"day": 1}, unique=UniqueOptions("day-1", window=timedelta(hours=1)))
    again = client.enqueue("reports", "build", {"day": 1}, unique=UniqueOptions("day-1", window=timedelta(hours=1)))
    assert first.created and not again.created
    assert again.job.job_id == first.job.job_id and again.job.unique_key == "day-1"
    # A bare key is the default window and states; COMPLETED added makes a finished job count.
    states = (JobState.WAITING, JobState.ACTIVE, JobState.FAILED, JobState.COMPLETED)
    keyed = client.enqueue("archive", "build", unique=UniqueOptions("done", states=states))
    (leased,) = client.lease("archive", worker_id="w")
    client.track_completion(leased.job_id, leased.attempt_number)
    assert client.enqueue("reports", "build", unique="plain").created
    batch = client.enqueue_many(
        [JobRequest("reports", "build", unique="plain"), JobRequest("reports", "build", unique="new")]
    )
    assert [result.created for result in batch] == [False, True]
    done = client.enqueue("archive", "build", unique=UniqueOptions("done", states=states))
    assert not done.created and done.job.job_id == keyed.job.job_id and done.job.state is JobState.COMPLETED
    with pytest.raises(InvalidArgument) as raised:
        client.enqueue("reports", "build", unique=UniqueOptions("k", states=(JobState.COMPLETED,)))
    assert raised.value.field == "unique.states"
    with pytest.raises(InvalidArgument) as raised:
        client.enqueue("reports", "build", unique="")
    assert raised.value.field == "unique.unique_key"
