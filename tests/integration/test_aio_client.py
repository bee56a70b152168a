"""jobqueue.aio.JobClient and AdminClient against a real server on SQLite and PostgreSQL.

The same calls as the synchronous clients' tests, awaited: typed values in and out, typed
errors with the server's ErrorInfo, tokens, page iterators and the streamed bulk redrive.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import pytest_asyncio
from jobqueue import (
    Completion,
    DeathReason,
    FailedPrecondition,
    InvalidArgument,
    JobRequest,
    JobState,
    NonRetryableError,
    NotFound,
    PermissionDenied,
    RecoveryRun,
    RecoveryStatus,
    RetryAfterError,
    RetryDecision,
    RetryPolicy,
    RetryRule,
    Unauthenticated,
    Unavailable,
    UniqueOptions,
)
from jobqueue.aio import AdminClient, AsyncPager, JobClient

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def client(service):
    async with JobClient(service.target, timeout=10) as client:
        yield client


@pytest_asyncio.fixture
async def jobs(secured_service):
    async with JobClient(secured_service.target, token=WORKER_TOKEN, timeout=10) as client:
        yield client


@pytest_asyncio.fixture
async def admin(secured_service):
    async with AdminClient(secured_service.target, token=ADMIN_TOKEN, timeout=10) as client:
        yield client


async def kill(jobs, job_id, message, queue="emails", error_type="SmtpError"):
    """Enqueue a job and fail it non-retryably: one PENDING dead-letter entry. Returns its id."""
    await jobs.enqueue(queue, "send", {"id": job_id}, job_id=job_id)
    (job,) = await jobs.lease(queue)
    decision = await jobs.track_failure(
        job.job_id, job.attempt_number, message, error_type=error_type, non_retryable=True
    )
    assert decision.moved_to_dead_letter
    return decision.dead_letter_id


# JobClient


async def test_enqueue_lease_heartbeat_and_complete(client, service):
    first = await client.enqueue(
        "emails",
        "send",
        {"to": "a@example.com", "attempts": 3, "nested": {"ok": True, "none": None}},
        job_id="job-1",
        priority=7,
        delay=timedelta(seconds=30),
        retry_policy=RetryPolicy(max_retries=1, retry_delays=(timedelta(seconds=2),)),
    )
    assert first.created and first.job.state is JobState.WAITING and first.job.priority == 7
    assert first.job.job_data == {"to": "a@example.com", "attempts": 3, "nested": {"ok": True, "none": None}}
    assert first.job.run_at == service.clock.now() + timedelta(seconds=30)
    assert not (await client.enqueue("emails", "send", {"to": "b"}, job_id="job-1")).created

    assert await client.lease("emails", worker_id="w1") == []
    service.clock.advance(30)
    (leased,) = await client.lease(
        ["emails"], worker_id="w1", lease_duration=timedelta(seconds=90), wait=timedelta(seconds=1)
    )
    assert (leased.job_id, leased.state, leased.attempt_number, leased.worker_id) == ("job-1", JobState.ACTIVE, 1, "w1")
    assert await client.heartbeat("job-1", 1, lease_duration=timedelta(seconds=20)) == service.clock.now() + timedelta(
        seconds=20
    )

    done = await client.track_completion(
        "job-1", 1, result={"message_id": 42}, processing_duration=timedelta(seconds=1.5)
    )
    assert (done.state, done.result, done.processing_duration) == (
        JobState.COMPLETED,
        {"message_id": 42},
        timedelta(seconds=1.5),
    )


async def test_batches_and_generated_ids(client):
    generated = await client.enqueue("emails", "send")
    assert generated.created and len(generated.job.job_id) == 36
    results = await client.enqueue_many([JobRequest("emails", "send", {"n": n}, job_id=f"batch-{n}") for n in range(3)])
    assert [result.job.job_id for result in results] == ["batch-0", "batch-1", "batch-2"]

    leased = sorted(await client.lease("emails", max_jobs=4), key=lambda job: job.job_id)
    first = next(job for job in leased if job.job_id == "batch-0")
    answers = await client.track_completions(
        [
            Completion(first.job_id, first.attempt_number, result={"n": 1}),
            Completion("batch-1", 2),
            Completion("nope", 1),
        ]
    )
    assert answers[0].ok
    assert isinstance(answers[1].error, FailedPrecondition) and isinstance(answers[2].error, NotFound)
    assert (await client.get_job("batch-0")).job.result == {"n": 1}


async def test_failure_reports_and_the_decisions_they_steer(client, service):
    await client.enqueue("emails", "send", job_id="flaky")
    await client.enqueue("emails", "send", job_id="bad-data")
    await client.enqueue("emails", "send", job_id="rate-limited")
    await client.lease("emails", max_jobs=3)
    try:
        raise ConnectionError("SMTP server closed the connection")
    except ConnectionError as error:
        decision = await client.track_failure("flaky", 1, error)
    assert decision.should_retry and decision.retry_delay == timedelta(seconds=5) and decision.remaining_retries == 3
    assert decision.next_retry_at == service.clock.now() + timedelta(seconds=5)
    details = await client.get_job("flaky")
    (error,) = details.error_history
    assert (error.type, error.message) == ("ConnectionError", "SMTP server closed the connection")
    assert "test_aio_client.py" in error.details
    assert details.retry_log[0].decision is RetryDecision.RETRY

    dead = await client.track_failure("bad-data", 1, NonRetryableError("no recipient"))
    assert dead.moved_to_dead_letter and dead.dead_letter_id
    assert (await client.get_job("bad-data")).retry_log[-1].death_reason is DeathReason.NON_RETRYABLE
    later = await client.track_failure("rate-limited", 1, RetryAfterError("429", timedelta(seconds=40)))
    assert later.retry_delay == timedelta(seconds=40)


async def test_typed_errors_carry_the_server_message_and_error_info(client):
    with pytest.raises(NotFound) as raised:
        await client.get_job("absent")
    assert raised.value.message == "job 'absent' not found"
    assert (raised.value.reason, raised.value.domain, raised.value.field) == ("NOT_FOUND", "jobqueue.v1", "job_id")
    with pytest.raises(InvalidArgument) as raised:
        await client.enqueue("", "send")
    assert raised.value.field_violations == {"queue_name": "queue_name must not be empty"}
    await client.enqueue("emails", "send", job_id="job-4")
    entry = await client.move_to_dead_letter("job-4", "customer deleted")
    assert entry.death_reason is DeathReason.MOVED_EXPLICITLY and entry.failure_reason == "customer deleted"
    with pytest.raises(FailedPrecondition):
        await client.move_to_dead_letter("job-4", "again")


async def test_track_reports_start_completion_and_failure(client, service):
    async with client.track("ext-1", queue_name="imports", job_name="csv", job_data={"rows": 3}, worker_id="w") as run:
        assert run.created and run.attempt_number == 1
        assert await run.heartbeat() is not None
        run.result = {"imported": 3}
    job = (await client.get_job("ext-1")).job
    assert (job.state, job.result, job.worker_id) == (JobState.COMPLETED, {"imported": 3}, "w")

    with pytest.raises(KeyError):
        async with client.track("ext-2", queue_name="imports", job_name="csv"):
            {}["missing column"]
    details = await client.get_job("ext-2")
    assert details.job.state is JobState.FAILED and details.error_history[0].type == "KeyError"
    service.clock.advance(5)
    async with client.track("ext-2", queue_name="imports", job_name="csv") as again:
        assert not again.created and again.attempt_number == 2
    assert (await client.get_job("ext-2")).job.state is JobState.COMPLETED


async def test_tokens_are_sent_and_checked(secured_service):
    async with JobClient(secured_service.target, timeout=10) as anonymous:
        with pytest.raises(Unauthenticated) as raised:
            await anonymous.enqueue("emails", "send")
        assert raised.value.reason == "MISSING_TOKEN"
    async with JobClient(secured_service.target, token=WORKER_TOKEN, timeout=10) as worker:
        assert (await worker.enqueue("emails", "send")).created
    async with AdminClient(secured_service.target, token=WORKER_TOKEN, timeout=10) as not_admin:
        with pytest.raises(PermissionDenied) as raised:
            await not_admin.get_statistics()
        assert raised.value.reason == "ROLE_NOT_ALLOWED"
    assert ADMIN_TOKEN not in repr(AdminClient(secured_service.target, token=ADMIN_TOKEN))


async def test_an_unreachable_server_is_unavailable(service):
    target = service.target
    service.server.stop(0)
    async with JobClient(target, timeout=5, retry=False) as client:
        with pytest.raises(Unavailable):
            await client.get_job("any")


# AdminClient


async def test_dead_letter_triage(jobs, admin):
    ids = [await kill(jobs, f"job-{n}", f"connection to 10.0.0.{n} timed out after {n}s") for n in range(5)]
    stats = await admin.get_statistics(["emails"])
    assert stats.queues[0].dead_letter_count == 5 and stats.totals.dead_letter_count == 5

    listed = await admin.list_dead_letter_jobs(queue_name="emails", recovery_status="pending", page_size=2)
    assert isinstance(listed, AsyncPager)
    assert listed.total_size == 5 and len(listed.items) == 2 and listed.next_page_token
    assert sorted([entry.id async for entry in listed]) == sorted(ids)  # every page, fetched as needed
    assert [len(page.items) async for page in listed.pages()] == [2, 2, 1]

    details = await admin.get_dead_letter_job(ids[0])
    assert details.entry.job_data == {"id": "job-0"} and details.job.state is JobState.DEAD_LETTER
    updated = await admin.update_dead_letter_job(ids[0], admin_notes="Investigating root cause", priority=5)
    assert (updated.admin_notes, updated.priority) == ("Investigating root cause", 5)
    with pytest.raises(ValueError):
        await admin.update_dead_letter_job(ids[0])

    failed = await admin.mark_permanently_failed(ids[1], "Invalid data format")
    assert failed.recovery_status is RecoveryStatus.PERMANENTLY_FAILED and failed.resolved_by == "admin"
    with pytest.raises(FailedPrecondition):
        await admin.retry_dead_letter_job(ids[1])
    retried = await admin.retry_dead_letter_job(ids[2], retry_policy=RetryPolicy(max_retries=1))
    assert retried.job.state is JobState.WAITING and retried.job.retry_policy.max_retries == 1
    with pytest.raises(NotFound):
        await admin.get_dead_letter_job("no-such-entry")

    patterns = [pattern async for pattern in await admin.list_failure_patterns(queue_name="emails")]
    assert [(pattern.count, pattern.error_type) for pattern in patterns] == [(3, "SmtpError")]


async def test_bulk_redrive_streams_its_progress(jobs, admin):
    ids = {await kill(jobs, f"job-{n}", "401 Unauthorized") for n in range(4)}
    (dry,) = [
        message async for message in admin.retry_dead_letter_jobs(queue_name="emails", dry_run=True, sample_size=2)
    ]
    assert dry.done and dry.matched_count == 4 and dry.retried_count == 0 and len(dry.sample) == 2
    with pytest.raises(InvalidArgument) as raised:
        [message async for message in admin.retry_dead_letter_jobs(queue_name="emails", rate_limit=-1)]
    assert raised.value.field == "rate_limit"
    progress = [message async for message in admin.retry_dead_letter_jobs(error_type="SmtpError")]
    assert progress[-1].done and progress[-1].retried_count == 4
    assert {entry_id for message in progress for entry_id in message.retried_ids} == ids
    final = [message async for message in admin.retry_dead_letter_jobs(ids=sorted(ids))][-1]
    assert final.retried_count == 0 and final.skipped_count == 4


async def test_jobs_queues_recovery_and_audit(jobs, admin, secured_service):
    for n in range(3):
        await jobs.enqueue("emails", "send", job_id=f"job-{n}")
    (job,) = await jobs.lease("emails")
    await jobs.track_failure(job.job_id, job.attempt_number, "Connection timeout")

    listed = await admin.list_jobs(queue_name="emails", page_size=2)
    assert listed.total_size == 3 and len([item async for item in listed]) == 3
    assert [j.job_id async for j in await admin.list_jobs(state="failed")] == [job.job_id]
    assert [j.job_id async for j in await admin.list_jobs(job_name="nothing-of-that-name")] == []
    details = await admin.get_job_details(job.job_id)
    assert details.job.state is JobState.FAILED and details.dead_letter_entry is None
    (log,) = [entry async for entry in await admin.list_retry_log(queue_name="emails")]
    assert log.job_id == job.job_id and log.retry_delay == timedelta(seconds=5)

    assert [queue.name async for queue in await admin.list_queues()] == ["emails"]
    preview = await admin.update_queue_policy(
        "emails", RetryPolicy(max_retries=2, retry_delays=(timedelta(seconds=1),)), validate_only=True
    )
    assert preview.delay_schedule[:2] == (timedelta(seconds=1), timedelta(seconds=1))
    assert (await admin.get_queue("emails")).retry_policy is None
    assert (await admin.pause_queue("emails")).paused
    assert await jobs.lease("emails") == []
    assert not (await admin.resume_queue("emails")).paused
    assert len(await jobs.lease("emails", max_jobs=5)) == 2
    with pytest.raises(FailedPrecondition):
        await admin.clean_queue("emails", "active")
    assert await admin.clean_queue("emails", JobState.COMPLETED) == 0

    activity = await admin.get_queue_activity(["emails"], period=timedelta(hours=1), bucket_width=timedelta(minutes=5))
    assert activity.bucket_width == timedelta(minutes=5)
    run = await admin.trigger_recovery()
    assert isinstance(run, RecoveryRun) and run.status == "succeeded"
    assert [recent.id for recent in (await admin.get_recovery_status(page_size=5)).recent_runs] == [run.id]
    events = [event async for event in await admin.list_audit_events(actor="admin")]
    assert events and all(event.actor == "admin" for event in events)
    assert {"PauseQueue", "ResumeQueue", "TriggerRecovery"} <= {event.action for event in events}


async def test_unique_enqueue_returns_the_job_that_counts(client):
    options = UniqueOptions("nightly", window=timedelta(days=1))
    first = await client.enqueue("reports", "build", unique=options)
    again = await client.enqueue("reports", "build", {"other": True}, unique=options)
    assert first.created and not again.created
    assert again.job.job_id == first.job.job_id and again.job.unique_key == "nightly"
    batch = await client.enqueue_many(
        [JobRequest("reports", "build", unique="nightly-2"), JobRequest("reports", "build", unique="nightly-2")]
    )
    assert [result.created for result in batch] == [True, False]
    assert batch[0].job.job_id == batch[1].job.job_id
    with pytest.raises(InvalidArgument) as raised:
        await client.enqueue("reports", "build", unique=UniqueOptions("k", window=timedelta(seconds=-1)))
    assert raised.value.field == "unique.window"


async def test_queue_lease_limits(jobs, admin):
    for n in range(4):
        await jobs.enqueue("emails", "send", job_id=f"job-{n}")
    limited = await admin.update_queue_policy("emails", max_active=2, max_starts_per_second=10.0)
    assert (limited.max_active, limited.max_starts_per_second) == (2, 10.0)
    assert [queue.max_active async for queue in await admin.list_queues()] == [2]
    assert len(await jobs.lease("emails", max_jobs=4)) == 2
    assert await jobs.lease("emails") == []
    cleared = await admin.update_queue_policy("emails", update_mask=["max_active"])
    assert (cleared.max_active, cleared.max_starts_per_second) == (None, 10.0)
    with pytest.raises(InvalidArgument) as raised:
        await admin.update_queue_policy("emails", max_active=0)
    assert raised.value.field == "max_active"


async def test_retry_rules_deadline_and_redrive_with_a_new_payload(jobs, admin):
    rules = (RetryRule("TimeoutError", max_retries=1, retry_delays=(timedelta(seconds=3),)),)
    queue = await admin.update_queue_policy(
        "emails", RetryPolicy(rules=rules, max_retry_duration=timedelta(minutes=30)), allow_missing=True
    )
    assert queue.retry_policy.rules == rules
    assert queue.retry_policy.max_retry_duration == timedelta(minutes=30)
    await jobs.enqueue("emails", "send", {"to": "x"}, job_id="slow")
    (job,) = await jobs.lease("emails")
    decision = await jobs.track_failure("slow", job.attempt_number, "timed out", error_type="TimeoutError")
    assert decision.retry_delay == timedelta(seconds=3) and decision.job.retry_rule == "queue:TimeoutError"
    assert (await jobs.get_job("slow")).job.retry_rule == "queue:TimeoutError"

    entry_id = await kill(jobs, "bad-record", "bad address")
    retried = await admin.retry_dead_letter_job(entry_id, job_data={"id": "fixed"})
    assert retried.job.job_data == {"id": "fixed"}
    with pytest.raises(InvalidArgument) as raised:
        await admin.update_queue_policy("emails", RetryPolicy(max_retry_duration=timedelta(days=400)))
    assert raised.value.field == "retry_policy.max_retry_duration"
