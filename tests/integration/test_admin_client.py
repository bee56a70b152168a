"""AdminClient against a real server with authentication on, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jobqueue import (
    AdminClient,
    FailedPrecondition,
    InvalidArgument,
    JobClient,
    JobState,
    NotFound,
    Pager,
    PermissionDenied,
    RecoveryRun,
    RecoveryStatus,
    RetryPolicy,
    RetryRule,
)

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN


@pytest.fixture
def jobs(secured_service):
    with JobClient(secured_service.target, token=WORKER_TOKEN, timeout=10) as client:
        yield client


@pytest.fixture
def admin(secured_service):
    with AdminClient(secured_service.target, token=ADMIN_TOKEN, timeout=10) as client:
        yield client


def kill(jobs, job_id, message, queue="emails", error_type="SmtpError"):
    """Enqueue a job and fail it non-retryably: one PENDING dead-letter entry. Returns its id."""
    jobs.enqueue(queue, "send", {"id": job_id}, job_id=job_id)
    (job,) = jobs.lease(queue)
    decision = jobs.track_failure(job.job_id, job.attempt_number, message, error_type=error_type, non_retryable=True)
    assert decision.moved_to_dead_letter
    return decision.dead_letter_id


def test_worker_tokens_cannot_administer(secured_service):
    with AdminClient(secured_service.target, token=WORKER_TOKEN, timeout=10) as client:
        with pytest.raises(PermissionDenied) as raised:
            client.get_statistics()
    assert raised.value.reason == "ROLE_NOT_ALLOWED"


def test_dead_letter_triage(jobs, admin):
    ids = [kill(jobs, f"job-{n}", f"connection to 10.0.0.{n} timed out after {n}s") for n in range(5)]
    stats = admin.get_statistics(["emails"])
    (emails,) = stats.queues
    assert emails.queue_name == "emails" and emails.dead_letter_count == 5
    assert emails.dead_letter_summary.pending_count == 5 and stats.totals.dead_letter_count == 5

    listed = admin.list_dead_letter_jobs(queue_name="emails", recovery_status="pending", page_size=2)
    assert isinstance(listed, Pager)
    assert listed.total_size == 5 and len(listed.items) == 2 and listed.next_page_token
    assert sorted(entry.id for entry in listed) == sorted(ids)  # iterating fetches every page
    assert [len(page.items) for page in listed.pages()] == [2, 2, 1]

    details = admin.get_dead_letter_job(ids[0])
    assert details.entry.job_data == {"id": "job-0"}
    assert details.entry.error_history[0].message == "connection to 10.0.0.0 timed out after 0s"
    assert details.job.state is JobState.DEAD_LETTER
    assert details.retry_log[-1].death_reason.value == "non_retryable"

    updated = admin.update_dead_letter_job(ids[0], admin_notes="Investigating root cause", priority=5)
    assert (updated.admin_notes, updated.priority, updated.assigned_to) == ("Investigating root cause", 5, "")
    updated = admin.update_dead_letter_job(ids[0], assigned_to="admin@example.com")
    assert (updated.admin_notes, updated.assigned_to) == ("Investigating root cause", "admin@example.com")
    with pytest.raises(ValueError):
        admin.update_dead_letter_job(ids[0])
    assert next(iter(admin.list_dead_letter_jobs())).id == ids[0]  # priority first

    failed = admin.mark_permanently_failed(ids[1], "Invalid data format, cannot be processed")
    assert failed.recovery_status is RecoveryStatus.PERMANENTLY_FAILED
    assert failed.resolution_reason == "Invalid data format, cannot be processed" and failed.resolved_by == "admin"
    with pytest.raises(FailedPrecondition):
        admin.retry_dead_letter_job(ids[1])

    retried = admin.retry_dead_letter_job(ids[2], retry_policy=RetryPolicy(max_retries=1))
    assert retried.entry.recovery_status is RecoveryStatus.RECOVERED and retried.entry.recovery_attempts == 1
    assert retried.job.state is JobState.WAITING and retried.job.retry_policy.max_retries == 1
    with pytest.raises(NotFound):
        admin.get_dead_letter_job("no-such-entry")

    (pattern,) = admin.list_failure_patterns(queue_name="emails")
    assert pattern.count == 3 and pattern.error_type == "SmtpError" and pattern.queue_names == ("emails",)
    assert "<" in pattern.normalised_message and pattern.sample is not None


def test_bulk_redrive_dry_run_then_for_real(jobs, admin):
    ids = {kill(jobs, f"job-{n}", "401 Unauthorized") for n in range(4)}
    kill(jobs, "other", "disk full", queue="reports", error_type="OSError")

    (dry,) = list(admin.retry_dead_letter_jobs(queue_name="emails", dry_run=True, sample_size=2))
    assert dry.done and dry.matched_count == 4 and dry.retried_count == 0 and len(dry.sample) == 2
    assert admin.get_statistics(["emails"]).queues[0].dead_letter_summary.pending_count == 4

    with pytest.raises(InvalidArgument) as raised:
        list(admin.retry_dead_letter_jobs(queue_name="emails", rate_limit=-1))
    assert raised.value.field == "rate_limit"

    progress = list(admin.retry_dead_letter_jobs(error_type="SmtpError", max_jobs=10))
    assert progress[-1].done and progress[-1].matched_count == 4 and progress[-1].retried_count == 4
    assert {entry_id for message in progress for entry_id in message.retried_ids} == ids
    assert admin.list_dead_letter_jobs(recovery_status="pending").total_size == 1

    final = list(admin.retry_dead_letter_jobs(ids=sorted(ids)))[-1]
    assert final.retried_count == 0 and final.skipped_count == 4
    assert all("RECOVERED" in skip.reason.upper() for skip in final.skipped)


def test_jobs_retry_log_and_queues(jobs, admin, secured_service):
    for n in range(3):
        jobs.enqueue("emails", "send", job_id=f"job-{n}")
    (job,) = jobs.lease("emails")
    jobs.track_failure(job.job_id, job.attempt_number, "Connection timeout")

    listed = admin.list_jobs(queue_name="emails", page_size=2)
    assert listed.total_size == 3 and len(list(listed)) == 3
    assert [j.job_id for j in admin.list_jobs(state="failed")] == [job.job_id]
    details = admin.get_job_details(job.job_id)
    assert details.job.state is JobState.FAILED and details.dead_letter_entry is None
    assert details.error_history[0].message == "Connection timeout"
    (log,) = admin.list_retry_log(queue_name="emails")
    assert log.job_id == job.job_id and log.retry_delay == timedelta(seconds=5)

    assert [queue.name for queue in admin.list_queues()] == ["emails"]
    preview = admin.update_queue_policy(
        "emails", RetryPolicy(max_retries=2, retry_delays=(timedelta(seconds=1),)), validate_only=True
    )
    assert preview.delay_schedule[:2] == (timedelta(seconds=1), timedelta(seconds=1))
    assert admin.get_queue("emails").retry_policy is None  # not saved
    saved = admin.update_queue_policy("emails", RetryPolicy(max_retries=5), update_mask=["max_retries"])
    assert saved.retry_policy.max_retries == 5 and saved.effective_retry_policy.max_retries == 5

    assert admin.pause_queue("emails").paused
    assert jobs.lease("emails") == []
    assert not admin.resume_queue("emails").paused
    assert len(jobs.lease("emails", max_jobs=5)) == 2

    secured_service.clock.advance(5)
    (again,) = jobs.lease("emails")
    jobs.track_completion(again.job_id, again.attempt_number)
    with pytest.raises(FailedPrecondition):
        admin.clean_queue("emails", "active")
    assert admin.clean_queue("emails", JobState.COMPLETED, grace=timedelta(days=1)) == 0
    assert admin.clean_queue("emails", "completed") == 1


def test_recovery_and_audit(jobs, admin):
    entry_id = kill(jobs, "job-1", "boom")
    admin.pause_queue("emails")
    admin.update_dead_letter_job(entry_id, admin_notes="looking")
    run = admin.trigger_recovery()
    assert isinstance(run, RecoveryRun) and run.status == "succeeded"
    report = admin.get_recovery_status(page_size=5)
    assert report.total_runs == 1 and [recent.id for recent in report.recent_runs] == [run.id]

    events = list(admin.list_audit_events(actor="admin"))
    actions = [event.action for event in events]
    assert len(actions) >= 2
    assert all(event.actor == "admin" and event.created_at is not None for event in events)
    targets = {event.target for event in events}
    assert any("emails" in target for target in targets) and any(entry_id in target for target in targets)
    assert list(admin.list_audit_events(actor="somebody-else")) == []


def test_queue_lease_limits(jobs, admin):
    for n in range(4):
        jobs.enqueue("emails", "send", job_id=f"job-{n}")
    limited = admin.update_queue_policy("emails", max_active=2, max_starts_per_second=10.0)
    assert (limited.max_active, limited.max_starts_per_second) == (2, 10.0)
    assert admin.get_queue("emails").max_active == 2
    assert len(jobs.lease("emails", max_jobs=4)) == 2
    assert jobs.lease("emails") == []
    cleared = admin.update_queue_policy("emails", update_mask=["max_active", "max_starts_per_second"])
    assert (cleared.max_active, cleared.max_starts_per_second) == (None, None)
    assert len(jobs.lease("emails", max_jobs=4)) == 2
    with pytest.raises(InvalidArgument) as raised:
        admin.update_queue_policy("emails", max_starts_per_second=float("nan"))
    assert raised.value.field == "max_starts_per_second"


def test_retry_rules_deadline_and_redrive_with_a_new_payload(jobs, admin):
    rules = (
        RetryRule("TimeoutError", max_retries=6, retry_delays=(timedelta(seconds=2),), max_delay=timedelta(minutes=2)),
        RetryRule("ValidationError", retryable=False),
    )
    policy = RetryPolicy(rules=rules, max_retry_duration=timedelta(hours=1))
    queue = admin.update_queue_policy("emails", policy, allow_missing=True)
    assert queue.retry_policy.rules == rules and queue.effective_retry_policy.rules == rules
    assert queue.effective_retry_policy.max_retry_duration == timedelta(hours=1)

    jobs.enqueue("emails", "send", {"to": "x"}, job_id="slow")
    (job,) = jobs.lease("emails")
    decision = jobs.track_failure("slow", job.attempt_number, "timed out", error_type="TimeoutError")
    assert decision.retry_delay == timedelta(seconds=2) and decision.remaining_retries == 6
    details = jobs.get_job("slow")
    assert details.job.retry_rule == "queue:TimeoutError" and details.job.first_failed_at is not None
    assert details.error_history[-1].retry_rule == "queue:TimeoutError"

    entry_id = kill(jobs, "bad-record", "bad address", error_type="ValidationError")
    retried = admin.retry_dead_letter_job(entry_id, job_data={"id": "bad-record", "to": "fixed@example.com"})
    assert retried.job.job_data == {"id": "bad-record", "to": "fixed@example.com"}
    (event, *_) = admin.list_audit_events(action="RetryDeadLetterJob").items
    assert event.parameters["old_job_data"] == {"id": "bad-record"}
    with pytest.raises(InvalidArgument) as raised:
        admin.update_queue_policy("emails", RetryPolicy(rules=(RetryRule("A"), RetryRule("A"))))
    assert raised.value.field == "retry_policy.rules[1].error_type"
