"""Retry rules by error type, the total retry deadline and redrive with a new payload, through a real
server on both backends, with a fake clock."""

from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2
from google.protobuf.field_mask_pb2 import FieldMask
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import admin_service_pb2_grpc, job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.integration.admin_helpers import dead_letter, enqueue, fail_current, lease
from tests.rpc_errors import assert_rejected, row_counts

S = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
INVALID = grpc.StatusCode.INVALID_ARGUMENT
TIMEOUT_RULE = job_pb2.RetryRule(
    error_type="TimeoutError", max_retries=6, retry_delays=[2 * S, 4 * S], max_delay=2 * MINUTE
)
VALIDATION_RULE = job_pb2.RetryRule(error_type="ValidationError", retryable=False)


def set_queue_policy(service, queue="emails", *paths, **fields):
    return service.admin.UpdateQueuePolicy(
        admin.UpdateQueuePolicyRequest(
            queue_name=queue,
            retry_policy=job_pb2.RetryPolicy(**fields),
            update_mask=FieldMask(paths=list(paths)),
            allow_missing=True,
        )
    ).queue


def get_job(service, job_id):
    return service.jobs.GetJob(pb.GetJobRequest(job_id=job_id))


def run_and_fail(service, job_id, error_type, queue="emails"):
    (job,) = lease(service, queue)
    assert job.job_id == job_id
    return fail_current(service, job_id, f"{error_type} happened", error_type)


def test_queue_rules_decide_by_error_type_and_get_job_shows_the_rule(service):
    queue = set_queue_policy(service, "emails", "rules", rules=[TIMEOUT_RULE, VALIDATION_RULE])
    assert [rule.error_type for rule in queue.retry_policy.rules] == ["TimeoutError", "ValidationError"]
    assert [rule.error_type for rule in queue.effective_retry_policy.rules] == ["TimeoutError", "ValidationError"]
    assert queue.retry_policy.rules[1].HasField("retryable") and not queue.retry_policy.rules[1].retryable

    enqueue(service, "slow")
    delays = []
    for _ in range(6):
        decision = run_and_fail(service, "slow", "TimeoutError")
        assert decision.should_retry
        delays.append(decision.retry_delay.ToTimedelta())
        service.clock.advance(decision.retry_delay.ToTimedelta())
    assert delays == [2 * S, 4 * S, 8 * S, 16 * S, 32 * S, 64 * S]
    details = get_job(service, "slow")
    assert details.job.retry_rule == "queue:TimeoutError"
    assert details.job.remaining_retries == 1
    assert {error.retry_rule for error in details.error_history} == {"queue:TimeoutError"}
    assert {row.error.retry_rule for row in details.retry_log} == {"queue:TimeoutError"}
    last = run_and_fail(service, "slow", "TimeoutError")
    assert last.moved_to_dead_letter
    entry = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=last.dead_letter_id)).entry
    assert entry.death_reason == job_pb2.DEATH_REASON_RETRIES_EXHAUSTED
    assert entry.total_attempts == 7

    enqueue(service, "bad-record")
    refused = run_and_fail(service, "bad-record", "ValidationError")
    assert refused.moved_to_dead_letter and not refused.should_retry
    entry = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=refused.dead_letter_id)).entry
    assert entry.death_reason == job_pb2.DEATH_REASON_NON_RETRYABLE
    assert entry.error_history[-1].retry_rule == "queue:ValidationError"
    assert get_job(service, "bad-record").job.retry_rule == "queue:ValidationError"

    enqueue(service, "other")
    default = run_and_fail(service, "other", "KeyError")
    assert default.retry_delay.ToTimedelta() == 5 * S and default.remaining_retries == 3
    assert default.job.retry_rule == ""


def test_a_job_rule_wins_over_the_queue_rule_of_its_type(service):
    set_queue_policy(service, "emails", "rules", rules=[TIMEOUT_RULE, VALIDATION_RULE])
    enqueue(
        service,
        "impatient",
        retry_policy=job_pb2.RetryPolicy(rules=[job_pb2.RetryRule(error_type="TimeoutError", max_retries=0)]),
    )
    assert get_job(service, "impatient").job.retry_policy.rules[0].max_retries == 0
    decision = run_and_fail(service, "impatient", "TimeoutError")
    assert decision.moved_to_dead_letter
    job = get_job(service, "impatient").job
    assert job.retry_rule == "job:TimeoutError"
    assert job.state == job_pb2.Job.STATE_DEAD_LETTER


def test_expired_leases_are_decided_by_their_rule_in_one_batch(service):
    set_queue_policy(
        service,
        "emails",
        rules=[job_pb2.RetryRule(error_type="LeaseExpired", max_retries=5, retry_delays=[7 * S])],
    )
    for job_id in ("a", "b", "c"):
        enqueue(service, job_id)
    assert len(lease(service, "emails", max_jobs=3)) == 3
    service.clock.advance(timedelta(hours=1))
    service.admin.TriggerRecovery(admin.TriggerRecoveryRequest())
    for job_id in ("a", "b", "c"):
        job = get_job(service, job_id).job
        assert job.state == job_pb2.Job.STATE_FAILED
        assert job.retry_rule == "queue:LeaseExpired"
        assert job.next_retry_at.ToDatetime() - job.first_failed_at.ToDatetime() == 7 * S
        assert job.remaining_retries == 5


def test_the_retry_deadline_dead_letters_a_job_with_retries_left_and_redrive_restarts_it(service):
    queue = set_queue_policy(service, "emails", max_retries=100, max_retry_duration=10 * MINUTE)
    assert queue.effective_retry_policy.max_retry_duration.ToTimedelta() == 10 * MINUTE
    enqueue(service, "flaky")
    first = run_and_fail(service, "flaky", "IOError")
    assert first.should_retry
    first_failed_at = first.job.first_failed_at.ToDatetime()
    service.clock.advance(6 * MINUTE)
    second = run_and_fail(service, "flaky", "IOError")
    assert second.should_retry and second.job.first_failed_at.ToDatetime() == first_failed_at
    service.clock.advance(5 * MINUTE)
    third = run_and_fail(service, "flaky", "IOError")
    assert third.moved_to_dead_letter
    entry = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=third.dead_letter_id)).entry
    assert entry.death_reason == job_pb2.DEATH_REASON_RETRY_DEADLINE_EXCEEDED
    listed = service.admin.ListDeadLetterJobs(
        admin.ListDeadLetterJobsRequest(
            filter=admin.DeadLetterFilter(death_reason=job_pb2.DEATH_REASON_RETRY_DEADLINE_EXCEEDED)
        )
    )
    assert [item.job_id for item in listed.entries] == ["flaky"]
    log = get_job(service, "flaky").retry_log
    assert log[-1].death_reason == job_pb2.DEATH_REASON_RETRY_DEADLINE_EXCEEDED

    redriven = service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=third.dead_letter_id)).job
    assert not redriven.HasField("first_failed_at")
    again = run_and_fail(service, "flaky", "IOError")
    assert again.should_retry
    assert again.job.first_failed_at.ToDatetime() > first_failed_at


def test_a_job_deadline_overrides_the_queue_deadline(service):
    set_queue_policy(service, "emails", max_retry_duration=timedelta(hours=1))
    enqueue(service, "urgent", retry_policy=job_pb2.RetryPolicy(max_retry_duration=MINUTE, max_retries=50))
    assert run_and_fail(service, "urgent", "IOError").should_retry
    service.clock.advance(2 * MINUTE)
    decision = run_and_fail(service, "urgent", "IOError")
    assert decision.moved_to_dead_letter


def test_queue_policy_mask_changes_rules_and_deadline_alone(service):
    set_queue_policy(service, "emails", max_retries=9)
    queue = set_queue_policy(service, "emails", "rules", rules=[VALIDATION_RULE], max_retries=1)
    assert queue.retry_policy.max_retries == 9
    queue = set_queue_policy(service, "emails", "max_retry_duration", max_retry_duration=timedelta(hours=2))
    assert [rule.error_type for rule in queue.retry_policy.rules] == ["ValidationError"]
    assert queue.retry_policy.max_retry_duration.ToTimedelta() == timedelta(hours=2)
    queue = set_queue_policy(service, "emails", "rules")
    assert list(queue.retry_policy.rules) == []
    assert queue.retry_policy.max_retries == 9


def test_redrive_replaces_the_payload_and_audits_old_and_new(service):
    enqueue(service, "record", job_data={"email": "bad@", "id": 7})
    (job,) = lease(service)
    entry_id = fail_current(service, "record", "bad address", "ValidationError", non_retryable=True).dead_letter_id
    fixed = struct_pb2.Struct()
    fixed.update({"email": "good@example.com", "id": 7})
    outcome = service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=entry_id, job_data=fixed))
    assert dict(outcome.job.job_data) == {"email": "good@example.com", "id": 7}
    assert outcome.job.state == job_pb2.Job.STATE_WAITING
    (leased,) = lease(service)
    assert leased.job_data["email"] == "good@example.com"
    # The entry keeps the payload the job died with.
    assert service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=entry_id)).entry.job_data["email"] == "bad@"
    (event,) = service.admin.ListAuditEvents(admin.ListAuditEventsRequest(action="RetryDeadLetterJob")).events
    assert event.parameters["old_job_data"]["email"] == "bad@"
    assert event.parameters["job_data"]["email"] == "good@example.com"


def test_redrive_without_a_payload_keeps_it_and_audits_none(service):
    entry_id = dead_letter(service, "kept")
    service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=entry_id))
    (event,) = service.admin.ListAuditEvents(admin.ListAuditEventsRequest(action="RetryDeadLetterJob")).events
    assert "job_data" not in event.parameters and "old_job_data" not in event.parameters


def test_redrive_with_an_empty_payload_sets_it_empty(service):
    enqueue(service, "emptied", job_data={"a": 1})
    lease(service)
    entry_id = fail_current(service, "emptied", "boom", "E", non_retryable=True).dead_letter_id
    job = service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=entry_id, job_data={})).job
    assert dict(job.job_data) == {}


def nan_struct():
    document = struct_pb2.Struct()
    document.update({"amount": float("nan")})
    return document


@pytest.mark.parametrize(
    ("job_data", "code"),
    [
        ({"blob": "x" * (1024 * 1024)}, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (nan_struct(), INVALID),
        ({"to": "a\x00"}, INVALID),
    ],
    ids=["oversized", "NaN", "NUL"],
)
def test_bad_redrive_payloads_are_refused_and_nothing_changes(service, job_data, code):
    entry_id = dead_letter(service, "refused")
    before = row_counts(service.server.database)
    assert_rejected(
        service.admin.RetryDeadLetterJob,
        admin.RetryDeadLetterJobRequest(id=entry_id, job_data=job_data),
        code,
        "job_data",
    )
    assert row_counts(service.server.database) == before
    entry = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=entry_id)).entry
    assert entry.recovery_status == job_pb2.DeadLetterEntry.RECOVERY_STATUS_PENDING


def test_a_worker_token_cannot_redrive_with_a_payload(secured_service):
    admin_channel = secured_service.channel
    as_admin = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    as_worker = (("authorization", f"Bearer {WORKER_TOKEN}"),)
    jobs = job_service_pb2_grpc.JobServiceStub(admin_channel)
    stub = admin_service_pb2_grpc.AdminServiceStub(admin_channel)
    jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="j"), metadata=as_worker)
    jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"], worker_id="w"), metadata=as_worker)
    entry_id = jobs.TrackFailure(
        pb.TrackFailureRequest(
            job_id="j", attempt_number=1, error=job_pb2.JobError(message="boom"), non_retryable=True
        ),
        metadata=as_worker,
    ).dead_letter_id
    request = admin.RetryDeadLetterJobRequest(id=entry_id, job_data={"fixed": True})
    for metadata in (as_worker, ()):
        with pytest.raises(grpc.RpcError) as raised:
            stub.RetryDeadLetterJob(request, metadata=metadata)
        assert raised.value.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
    with pytest.raises(grpc.RpcError) as raised:
        stub.RetryDeadLetterJob(request, metadata=as_worker)
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    job = jobs.GetJob(pb.GetJobRequest(job_id="j"), metadata=as_worker).job
    assert job.state == job_pb2.Job.STATE_DEAD_LETTER and dict(job.job_data) == {}
    redriven = stub.RetryDeadLetterJob(request, metadata=as_admin).job
    assert dict(redriven.job_data) == {"fixed": True}


def rule(error_type="E", **fields):
    return job_pb2.RetryRule(error_type=error_type, **fields)


POLICY_CASES = {
    "duplicate error types": ([rule("A"), rule("B"), rule("A")], {}, "retry_policy.rules[2].error_type"),
    "too many rules": ([rule(f"E{n}") for n in range(51)], {}, "retry_policy.rules"),
    "empty error type": ([rule("")], {}, "retry_policy.rules[0].error_type"),
    "long error type": ([rule("E" * 256)], {}, "retry_policy.rules[0].error_type"),
    "negative rule max_retries": ([rule(max_retries=-1)], {}, "retry_policy.rules[0].max_retries"),
    "negative rule delay": ([rule(retry_delays=[-S])], {}, "retry_policy.rules[0].retry_delays"),
    "huge rule max_delay": ([rule(max_delay=timedelta(days=3000))], {}, "retry_policy.rules[0].max_delay"),
    "invalid rule delay": (
        [rule(retry_delays=[duration_pb2.Duration(seconds=1, nanos=-1)])],
        {},
        "retry_policy.rules[0].retry_delays[0]",
    ),
    "NaN rule jitter": ([rule(jitter=float("nan"))], {}, "retry_policy.rules[0].jitter"),
    "negative max_retry_duration": ([], {"max_retry_duration": -MINUTE}, "retry_policy.max_retry_duration"),
    "zero max_retry_duration": ([], {"max_retry_duration": timedelta(0)}, "retry_policy.max_retry_duration"),
    "huge max_retry_duration": ([], {"max_retry_duration": timedelta(days=400)}, "retry_policy.max_retry_duration"),
    "max_retry_duration out of range": (
        [],
        {"max_retry_duration": duration_pb2.Duration(seconds=10**12)},
        "retry_policy.max_retry_duration",
    ),
}


@pytest.mark.parametrize(("rules", "fields", "field"), POLICY_CASES.values(), ids=POLICY_CASES.keys())
def test_bad_queue_policies_are_refused_naming_the_field(service, rules, fields, field):
    set_queue_policy(service, "emails", max_retries=2)
    before = row_counts(service.server.database)
    request = admin.UpdateQueuePolicyRequest(
        queue_name="emails", retry_policy=job_pb2.RetryPolicy(rules=rules, **fields)
    )
    assert_rejected(service.admin.UpdateQueuePolicy, request, INVALID, field)
    assert row_counts(service.server.database) == before
    queue = service.admin.GetQueue(admin.GetQueueRequest(queue_name="emails")).queue
    assert queue.retry_policy.max_retries == 2 and not queue.retry_policy.rules


@pytest.mark.parametrize(("rules", "fields", "field"), POLICY_CASES.values(), ids=POLICY_CASES.keys())
def test_bad_job_policies_are_refused_naming_the_field(service, rules, fields, field):
    request = pb.EnqueueJobRequest(
        queue_name="emails", job_name="send", retry_policy=job_pb2.RetryPolicy(rules=rules, **fields)
    )
    before = row_counts(service.server.database)
    assert_rejected(service.jobs.EnqueueJob, request, INVALID, field)
    assert row_counts(service.server.database) == before


def test_an_unknown_mask_path_is_refused(service):
    request = admin.UpdateQueuePolicyRequest(
        queue_name="emails", retry_policy=job_pb2.RetryPolicy(), update_mask=FieldMask(paths=["rules.retryable"])
    )
    assert_rejected(service.admin.UpdateQueuePolicy, request, INVALID, "update_mask")


def test_a_large_new_payload_is_audited_by_its_size_and_digest(service):
    enqueue(service, "big", job_data={"note": "small"})
    lease(service)
    entry_id = fail_current(service, "big", "boom", "E", non_retryable=True).dead_letter_id
    large = {"blob": "x" * 40_000}
    job = service.admin.RetryDeadLetterJob(admin.RetryDeadLetterJobRequest(id=entry_id, job_data=large)).job
    assert len(job.job_data["blob"]) == 40_000
    (event,) = service.admin.ListAuditEvents(admin.ListAuditEventsRequest(action="RetryDeadLetterJob")).events
    assert event.parameters["old_job_data"]["note"] == "small"
    assert "job_data" not in event.parameters
    assert event.parameters["job_data_bytes"] > 40_000 and len(event.parameters["job_data_sha256"]) == 64


def test_the_recovery_sweep_judges_a_waiting_retry_by_its_rule(service):
    set_queue_policy(service, "emails", "rules", rules=[TIMEOUT_RULE])
    enqueue(service, "patient")
    for _ in range(4):  # past the default budget of 3 retries, within the rule's 6
        decision = run_and_fail(service, "patient", "TimeoutError")
        assert decision.should_retry
        service.clock.advance(decision.retry_delay.ToTimedelta())
    service.clock.advance(-timedelta(seconds=1))  # the 4th retry is not due yet
    service.admin.TriggerRecovery(admin.TriggerRecoveryRequest())
    assert get_job(service, "patient").job.state == job_pb2.Job.STATE_FAILED
    # Lowering the rule's budget below the runs made lets the sweep dead-letter the job.
    lowered = job_pb2.RetryRule(error_type="TimeoutError", max_retries=2)
    set_queue_policy(service, "emails", "rules", rules=[lowered])
    service.admin.TriggerRecovery(admin.TriggerRecoveryRequest())
    job = get_job(service, "patient").job
    assert job.state == job_pb2.Job.STATE_DEAD_LETTER
    entry = service.admin.GetDeadLetterJob(admin.GetDeadLetterJobRequest(id=job.dead_letter_id)).entry
    assert entry.death_reason == job_pb2.DEATH_REASON_RETRIES_EXHAUSTED
