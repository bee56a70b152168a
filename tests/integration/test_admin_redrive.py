"""Failure patterns grouped by fingerprint, and bulk redrive: dry run, rate limit, ids, progress."""

import grpc
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import job_pb2

from tests.integration.admin_helpers import bad_field, dead_letter, lease, rpc_error

PENDING = job_pb2.DeadLetterEntry.RECOVERY_STATUS_PENDING
RECOVERED = job_pb2.DeadLetterEntry.RECOVERY_STATUS_RECOVERED

TIMEOUTS = [
    "Connection to 10.0.0.12:5432 timed out after 30s (request 7f3a9c2e-1b4d-4e8f-9a6b-2c5d8e1f0a3b)",
    "Connection to 10.0.4.7:5432 timed out after 31s (request 0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d)",
    "Connection to 192.168.1.20:6543 timed out after 5s (request 11111111-2222-4333-8444-555555555555)",
]
MISSING_USER = ["User 'alice' not found (id 123)", 'User "bob" not found (id 98765)']


def patterns(service, **fields):
    return service.admin.ListFailurePatterns(admin.ListFailurePatternsRequest(**fields))


def seed_patterns(service):
    ids = {}
    for index, message in enumerate(TIMEOUTS):
        ids[f"t{index}"] = dead_letter(service, f"t{index}", "emails", message, "TimeoutError")
        service.clock.advance(10)
    for index, message in enumerate(MISSING_USER):
        ids[f"u{index}"] = dead_letter(service, f"u{index}", "sms", message, "LookupError")
    # Same message, different error type: a different failure.
    ids["v"] = dead_letter(service, "v", "sms", MISSING_USER[0], "KeyError")
    return ids


def test_fingerprints_group_messages_that_differ_only_in_ids_and_numbers(service):
    seed_patterns(service)
    response = patterns(service)
    assert response.total_size == 3
    groups = [(p.error_type, p.count, list(p.queue_names)) for p in response.patterns]
    assert groups == [("TimeoutError", 3, ["emails"]), ("LookupError", 2, ["sms"]), ("KeyError", 1, ["sms"])]
    timeouts = response.patterns[0]
    assert timeouts.normalised_message == "Connection to <address> timed out after <n>s (request <uuid>)"
    assert timeouts.sample.job_id == "t2"  # the most recent
    assert timeouts.first_seen_at.ToDatetime() < timeouts.last_seen_at.ToDatetime()
    assert timeouts.last_hour_count == 3 and timeouts.last_day_count == 3
    assert response.patterns[1].normalised_message == "User <value> not found (id <n>)"
    assert len({p.fingerprint for p in response.patterns}) == 3

    # The fingerprint selects the group in listings.
    listed = service.admin.ListDeadLetterJobs(
        admin.ListDeadLetterJobsRequest(filter=admin.DeadLetterFilter(fingerprint=timeouts.fingerprint))
    )
    assert sorted(entry.job_id for entry in listed.entries) == ["t0", "t1", "t2"]

    # Pages, and filters by queue.
    first = patterns(service, page_size=2)
    assert len(first.patterns) == 2 and first.next_page_token
    second = patterns(service, page_size=2, page_token=first.next_page_token)
    assert [p.error_type for p in second.patterns] == ["KeyError"] and second.next_page_token == ""
    assert [p.error_type for p in patterns(service, queue_name="emails").patterns] == ["TimeoutError"]
    error = rpc_error(service.admin.ListFailurePatterns, admin.ListFailurePatternsRequest(page_token="!!"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def redrive(service, **fields):
    return list(service.admin.RetryDeadLetterJobs(admin.RetryDeadLetterJobsRequest(**fields)))


def test_dry_run_counts_and_samples_without_changing_anything(service):
    seed_patterns(service)
    timeouts = patterns(service).patterns[0]
    (only,) = redrive(
        service, filter=admin.DeadLetterFilter(fingerprint=timeouts.fingerprint), dry_run=True, sample_size=2
    )
    assert only.done and only.matched_count == 3
    assert len(only.sample) == 2 and all(entry.fingerprint == timeouts.fingerprint for entry in only.sample)
    assert only.retried_count == 0
    assert patterns(service).patterns[0].count == 3  # still pending


def test_redrive_by_fingerprint_with_a_rate_limit_and_a_new_policy(service):
    ids = seed_patterns(service)
    timeouts = patterns(service).patterns[0]
    started = service.clock.now()
    messages = redrive(
        service,
        filter=admin.DeadLetterFilter(fingerprint=timeouts.fingerprint),
        rate_limit=2.0,
        retry_policy=job_pb2.RetryPolicy(max_retries=7),
    )
    final = messages[-1]
    assert final.done and not any(message.done for message in messages[:-1])
    assert (final.matched_count, final.retried_count, final.skipped_count) == (3, 3, 0)
    assert sorted(i for message in messages for i in message.retried_ids) == sorted(ids[k] for k in ("t0", "t1", "t2"))
    # Three jobs at two per second: the first at once, then two half-second waits on the injected clock.
    assert (service.clock.now() - started).total_seconds() == 1.0

    for key in ("t0", "t1", "t2"):
        details = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=ids[key]))
        assert details.entry.recovery_status == RECOVERED and details.entry.recovery_attempts == 1
        assert details.job.state == job_pb2.Job.STATE_WAITING
        assert details.job.retry_policy.max_retries == 7 and details.job.remaining_retries == 7
    # The other groups are untouched.
    assert [p.error_type for p in patterns(service).patterns] == ["LookupError", "KeyError"]
    assert len(lease(service, "emails", max_jobs=10)) == 3


def test_redrive_by_ids_reports_skips_and_max_jobs(service):
    ids = seed_patterns(service)
    service.admin.MarkPermanentlyFailed(admin.MarkPermanentlyFailedRequest(id=ids["u0"], reason="gone"))
    messages = redrive(service, ids=admin.DeadLetterIds(ids=[ids["u0"], ids["u1"], "missing-id"]))
    final = messages[-1]
    assert (final.matched_count, final.retried_count, final.skipped_count) == (3, 1, 2)
    skipped = {item.id: item.reason for message in messages for item in message.skipped}
    assert "PERMANENTLY_FAILED" in skipped[ids["u0"]] and "not found" in skipped["missing-id"]

    final = redrive(service, filter=admin.DeadLetterFilter(), max_jobs=2)[-1]
    assert (final.matched_count, final.retried_count) == (2, 2)
    assert redrive(service, filter=admin.DeadLetterFilter(), dry_run=True)[0].matched_count == 2


def test_redrive_rejects_bad_requests(service):
    seed_patterns(service)
    cases = [
        (admin.RetryDeadLetterJobsRequest(), "filter"),
        (admin.RetryDeadLetterJobsRequest(filter=admin.DeadLetterFilter(), rate_limit=-1), "rate_limit"),
        # So slow that one job's interval overflowed a timedelta: once INTERNAL, found by the fuzz test.
        (admin.RetryDeadLetterJobsRequest(filter=admin.DeadLetterFilter(), rate_limit=1e-300), "rate_limit"),
        (admin.RetryDeadLetterJobsRequest(filter=admin.DeadLetterFilter(), rate_limit=float("inf")), "rate_limit"),
        (
            admin.RetryDeadLetterJobsRequest(filter=admin.DeadLetterFilter(recovery_status=RECOVERED)),
            "filter.recovery_status",
        ),
        (admin.RetryDeadLetterJobsRequest(filter=admin.DeadLetterFilter(), sample_size=1000), "sample_size"),
        (
            admin.RetryDeadLetterJobsRequest(
                filter=admin.DeadLetterFilter(), retry_policy=job_pb2.RetryPolicy(max_retries=-2)
            ),
            "retry_policy.max_retries",
        ),
    ]
    for request, field in cases:
        error = rpc_error(lambda r: list(service.admin.RetryDeadLetterJobs(r)), request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert bad_field(error) == field
    assert patterns(service).patterns[0].count == 3  # nothing was retried
