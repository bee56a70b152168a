"""Bad input on every JobService RPC: the exact status, the field named in message and details, nothing written."""

from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb

from tests.rpc_errors import assert_rejected, error_details, row_counts, rpc_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
TOO_BIG = grpc.StatusCode.RESOURCE_EXHAUSTED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
MEBIBYTE = 1024 * 1024


def nan_struct():
    document = struct_pb2.Struct()
    document.update({"amount": float("nan")})
    return document


def enqueue(**fields):
    fields.setdefault("queue_name", "emails")
    fields.setdefault("job_name", "send")
    return "EnqueueJob", pb.EnqueueJobRequest(**fields)


def failure(**fields):
    fields.setdefault("job_id", "active-job")
    fields.setdefault("attempt_number", 1)
    fields.setdefault("error", job_pb2.JobError(message="boom"))
    return "TrackFailure", pb.TrackFailureRequest(**fields)


def completion(**fields):
    fields.setdefault("job_id", "active-job")
    fields.setdefault("attempt_number", 1)
    return "TrackCompletion", pb.TrackCompletionRequest(**fields)


CASES = {
    # EnqueueJob
    "empty queue_name": (enqueue(queue_name=""), INVALID, "queue_name"),
    "blank queue_name": (enqueue(queue_name="   "), INVALID, "queue_name"),
    "long queue_name": (enqueue(queue_name="q" * 101), INVALID, "queue_name"),
    "control character in queue_name": (enqueue(queue_name="a\nb"), INVALID, "queue_name"),
    "empty job_name": (enqueue(job_name=""), INVALID, "job_name"),
    "long job_name": (enqueue(job_name="n" * 101), INVALID, "job_name"),
    "long job_id": (enqueue(job_id="j" * 256), INVALID, "job_id"),
    "NUL in job_id": (enqueue(job_id="a\x00b"), INVALID, "job_id"),
    "negative delay": (enqueue(delay=timedelta(seconds=-5)), INVALID, "delay"),
    "delay with mixed signs": (enqueue(delay=duration_pb2.Duration(seconds=1, nanos=-1)), INVALID, "delay"),
    "delay beyond ten years": (enqueue(delay=timedelta(days=4000)), INVALID, "delay"),
    "run_at beyond ten years": (enqueue(run_at={"seconds": 4_000_000_000}), INVALID, "run_at"),
    "run_at out of range": (enqueue(run_at={"seconds": 253_402_300_800 + 1}), INVALID, "run_at"),
    "priority out of range": (enqueue(priority=2_000_000), INVALID, "priority"),
    "NaN in job_data": (enqueue(job_data=nan_struct()), INVALID, "job_data"),
    "NUL in job_data value": (enqueue(job_data={"to": "a\x00"}), INVALID, "job_data"),
    "NUL in job_data key": (enqueue(job_data={"t\x00": "a"}), INVALID, "job_data"),
    "job_data over the limit": (enqueue(job_data={"blob": "x" * MEBIBYTE}), TOO_BIG, "job_data"),
    "negative max_retries": (
        enqueue(retry_policy=job_pb2.RetryPolicy(max_retries=-1)),
        INVALID,
        "retry_policy.max_retries",
    ),
    "negative retry delay": (
        enqueue(retry_policy=job_pb2.RetryPolicy(retry_delays=[timedelta(seconds=1), timedelta(seconds=-1)])),
        INVALID,
        "retry_policy.retry_delays",
    ),
    "zero max_delay": (
        enqueue(retry_policy=job_pb2.RetryPolicy(max_delay=timedelta(0))),
        INVALID,
        "retry_policy.max_delay",
    ),
    "duplicate rule error types": (
        enqueue(
            retry_policy=job_pb2.RetryPolicy(
                rules=[job_pb2.RetryRule(error_type="TimeoutError"), job_pb2.RetryRule(error_type="TimeoutError")]
            )
        ),
        INVALID,
        "retry_policy.rules[1].error_type",
    ),
    "too many rules": (
        enqueue(retry_policy=job_pb2.RetryPolicy(rules=[job_pb2.RetryRule(error_type=f"E{n}") for n in range(51)])),
        INVALID,
        "retry_policy.rules",
    ),
    "negative max_retry_duration": (
        enqueue(retry_policy=job_pb2.RetryPolicy(max_retry_duration=timedelta(seconds=-1))),
        INVALID,
        "retry_policy.max_retry_duration",
    ),
    "max_retry_duration beyond a year": (
        enqueue(retry_policy=job_pb2.RetryPolicy(max_retry_duration=timedelta(days=366))),
        INVALID,
        "retry_policy.max_retry_duration",
    ),
    # Durations finer than they can be kept, and past every sane bound.
    "1 ns max_delay": (
        enqueue(retry_policy=job_pb2.RetryPolicy(max_delay=duration_pb2.Duration(nanos=1))),
        INVALID,
        "retry_policy.max_delay",
    ),
    "1 µs max_delay": (
        enqueue(retry_policy=job_pb2.RetryPolicy(max_delay=duration_pb2.Duration(nanos=1000))),
        INVALID,
        "retry_policy.max_delay",
    ),
    "-5 ns retry delay": (
        enqueue(retry_policy=job_pb2.RetryPolicy(retry_delays=[duration_pb2.Duration(nanos=-5)])),
        INVALID,
        "retry_policy.retry_delays[0]",
    ),
    "1 ns delay": (enqueue(delay=duration_pb2.Duration(nanos=1)), INVALID, "delay"),
    "NaN jitter": (enqueue(retry_policy=job_pb2.RetryPolicy(jitter=float("nan"))), INVALID, "retry_policy.jitter"),
    "jitter above one": (enqueue(retry_policy=job_pb2.RetryPolicy(jitter=1.5)), INVALID, "retry_policy.jitter"),
    # EnqueueJob unique options
    "empty unique_key": (enqueue(unique=pb.UniqueOptions()), INVALID, "unique.unique_key"),
    "blank unique_key": (enqueue(unique=pb.UniqueOptions(unique_key="  ")), INVALID, "unique.unique_key"),
    "long unique_key": (enqueue(unique=pb.UniqueOptions(unique_key="k" * 256)), INVALID, "unique.unique_key"),
    "NUL in unique_key": (enqueue(unique=pb.UniqueOptions(unique_key="a\x00b")), INVALID, "unique.unique_key"),
    "negative unique window": (
        enqueue(unique=pb.UniqueOptions(unique_key="k", window=timedelta(seconds=-1))),
        INVALID,
        "unique.window",
    ),
    "zero unique window": (
        enqueue(unique=pb.UniqueOptions(unique_key="k", window=timedelta(0))),
        INVALID,
        "unique.window",
    ),
    "sub-second unique window": (
        enqueue(unique=pb.UniqueOptions(unique_key="k", window=timedelta(milliseconds=999))),
        INVALID,
        "unique.window",
    ),
    "unique window beyond ten years": (
        enqueue(unique=pb.UniqueOptions(unique_key="k", window=timedelta(days=4000))),
        INVALID,
        "unique.window",
    ),
    "unique window out of the Duration range": (
        enqueue(unique=pb.UniqueOptions(unique_key="k", window=duration_pb2.Duration(seconds=2**62))),
        INVALID,
        "unique.window",
    ),
    "unknown unique state": (
        enqueue(unique=pb.UniqueOptions(unique_key="k", states=[job_pb2.Job.STATE_WAITING, 99])),
        INVALID,
        "unique.states",
    ),
    "unspecified unique state": (
        enqueue(unique=pb.UniqueOptions(unique_key="k", states=[job_pb2.Job.STATE_UNSPECIFIED])),
        INVALID,
        "unique.states",
    ),
    "finished-only unique states": (
        enqueue(unique=pb.UniqueOptions(unique_key="k", states=[job_pb2.Job.STATE_COMPLETED])),
        INVALID,
        "unique.states",
    ),
    "unique states missing FAILED": (
        enqueue(unique=pb.UniqueOptions(unique_key="k", states=[job_pb2.Job.STATE_WAITING, job_pb2.Job.STATE_ACTIVE])),
        INVALID,
        "unique.states",
    ),
    "bad unique_key in a batch": (
        (
            "EnqueueJobs",
            pb.EnqueueJobsRequest(
                jobs=[
                    pb.EnqueueJobRequest(queue_name="emails", job_name="send", unique=pb.UniqueOptions(unique_key="k")),
                    pb.EnqueueJobRequest(queue_name="emails", job_name="send", unique=pb.UniqueOptions()),
                ]
            ),
        ),
        INVALID,
        "jobs[1].unique.unique_key",
    ),
    # LeaseJobs
    "NUL in worker_id": (
        ("LeaseJobs", pb.LeaseJobsRequest(queue_names=["waiting-queue"], worker_id="w\x00")),
        INVALID,
        "worker_id",
    ),
    # HeartbeatJob
    "heartbeat unknown job": (
        ("HeartbeatJob", pb.HeartbeatJobRequest(job_id="nope", attempt_number=1)),
        NOT_FOUND,
        "job_id",
    ),
    "heartbeat empty job_id": (("HeartbeatJob", pb.HeartbeatJobRequest(attempt_number=1)), INVALID, "job_id"),
    "heartbeat negative lease": (
        (
            "HeartbeatJob",
            pb.HeartbeatJobRequest(job_id="active-job", attempt_number=1, lease_duration=timedelta(seconds=-1)),
        ),
        INVALID,
        "lease_duration",
    ),
    # TrackStart
    "start NaN job_data": (
        ("TrackStart", pb.TrackStartRequest(job_id="new", queue_name="q", job_name="n", job_data=nan_struct())),
        INVALID,
        "job_data",
    ),
    "start job_data over the limit": (
        (
            "TrackStart",
            pb.TrackStartRequest(job_id="new", queue_name="q", job_name="n", job_data={"b": "x" * MEBIBYTE}),
        ),
        TOO_BIG,
        "job_data",
    ),
    "start long worker_id": (
        ("TrackStart", pb.TrackStartRequest(job_id="new", queue_name="q", job_name="n", worker_id="w" * 256)),
        INVALID,
        "worker_id",
    ),
    "start long queue_name": (
        ("TrackStart", pb.TrackStartRequest(job_id="new", queue_name="q" * 101, job_name="n")),
        INVALID,
        "queue_name",
    ),
    # TrackCompletion
    "complete unknown job": (completion(job_id="nope"), NOT_FOUND, "job_id"),
    "complete negative duration": (
        completion(processing_duration=timedelta(seconds=-1)),
        INVALID,
        "processing_duration",
    ),
    "complete duration beyond ten years": (
        completion(processing_duration=duration_pb2.Duration(seconds=315_576_000_000)),
        INVALID,
        "processing_duration",
    ),
    "complete NaN result": (completion(result=nan_struct()), INVALID, "result"),
    "complete result over the limit": (completion(result={"b": "x" * MEBIBYTE}), TOO_BIG, "result"),
    # TrackFailure
    "fail unknown job": (failure(job_id="nope"), NOT_FOUND, "job_id"),
    "fail without error message": (failure(error=job_pb2.JobError(type="IOError")), INVALID, "error.message"),
    "fail blank error message": (failure(error=job_pb2.JobError(message=" \n")), INVALID, "error.message"),
    "fail long error message": (failure(error=job_pb2.JobError(message="m" * 10_001)), INVALID, "error.message"),
    "fail long error type": (failure(error=job_pb2.JobError(message="m", type="t" * 256)), INVALID, "error.type"),
    "fail NUL in error message": (failure(error=job_pb2.JobError(message="a\x00b")), INVALID, "error.message"),
    "fail NUL in error details": (
        failure(error=job_pb2.JobError(message="m", details="trace\x00")),
        INVALID,
        "error.details",
    ),
    "fail error details over the limit": (
        failure(error=job_pb2.JobError(message="m", details="d" * (64 * 1024 + 1))),
        TOO_BIG,
        "error.details",
    ),
    "fail negative retry_after": (failure(retry_after=timedelta(seconds=-3)), INVALID, "retry_after"),
    "fail retry_after beyond ten years": (
        failure(retry_after=duration_pb2.Duration(seconds=315_576_000_000)),
        INVALID,
        "retry_after",
    ),
    "fail retry_after below a microsecond": (
        failure(retry_after=duration_pb2.Duration(nanos=-5)),
        INVALID,
        "retry_after",
    ),
    # MoveToDeadLetter
    "move unknown job": (
        ("MoveToDeadLetter", pb.MoveToDeadLetterRequest(job_id="nope", reason="r")),
        NOT_FOUND,
        "job_id",
    ),
    "move without reason": (("MoveToDeadLetter", pb.MoveToDeadLetterRequest(job_id="active-job")), INVALID, "reason"),
    "move long reason": (
        ("MoveToDeadLetter", pb.MoveToDeadLetterRequest(job_id="active-job", reason="r" * 10_001)),
        INVALID,
        "reason",
    ),
    "move NUL in reason": (
        ("MoveToDeadLetter", pb.MoveToDeadLetterRequest(job_id="active-job", reason="r\x00")),
        INVALID,
        "reason",
    ),
    # CancelJob
    "cancel empty job_id": (("CancelJob", pb.CancelJobRequest()), INVALID, "job_id"),
    "cancel long job_id": (("CancelJob", pb.CancelJobRequest(job_id="j" * 256)), INVALID, "job_id"),
    "cancel unknown job": (("CancelJob", pb.CancelJobRequest(job_id="nope")), NOT_FOUND, "job_id"),
    "cancel long reason": (
        ("CancelJob", pb.CancelJobRequest(job_id="active-job", reason="r" * 10_001)),
        INVALID,
        "reason",
    ),
    "cancel NUL in reason": (
        ("CancelJob", pb.CancelJobRequest(job_id="waiting-job", reason="r\x00")),
        INVALID,
        "reason",
    ),
    # GetJob
    "get empty job_id": (("GetJob", pb.GetJobRequest()), INVALID, "job_id"),
    "get long job_id": (("GetJob", pb.GetJobRequest(job_id="j" * 256)), INVALID, "job_id"),
}


@pytest.fixture
def seeded(service, database):
    """One waiting and one active job; a rejected call must leave both, and every table, as they were."""
    service.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="waiting-queue", job_name="send", job_id="waiting-job"))
    service.jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="active-queue", job_name="send", job_id="active-job"))
    service.jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["active-queue"], worker_id="w1"))

    def snapshot():
        jobs = [service.jobs.GetJob(pb.GetJobRequest(job_id=job_id)) for job_id in ("waiting-job", "active-job")]
        return row_counts(database), jobs

    return snapshot


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_rejected_naming_the_field_and_writes_nothing(service, seeded, case):
    (method, request), code, field = CASES[case]
    before = seeded()
    mentions = None if code != NOT_FOUND else "'nope'"
    assert_rejected(getattr(service.jobs, method), request, code, field, mentions=mentions)
    assert seeded() == before


@pytest.mark.parametrize(
    "request_, resolution",
    [
        (enqueue(retry_policy=job_pb2.RetryPolicy(max_delay=duration_pb2.Duration(nanos=1)))[1], "1 microsecond"),
        (enqueue(retry_policy=job_pb2.RetryPolicy(retry_delays=[duration_pb2.Duration(nanos=-5)]))[1], "1 microsecond"),
        (enqueue(retry_policy=job_pb2.RetryPolicy(max_delay=duration_pb2.Duration(nanos=1000)))[1], "1 millisecond"),
    ],
)
def test_a_duration_below_the_resolution_is_refused_saying_the_resolution(service, request_, resolution):
    error = rpc_error(service.jobs.EnqueueJob, request_)
    assert error.code() == INVALID, error.details()
    assert f"resolution of {resolution}" in error.details()
    assert "must be positive" not in error.details()


def test_a_duration_with_a_part_below_the_resolution_is_kept_to_it(service):
    # 1000/3 ms, as a client computing delays in milliseconds sends it: nanosecond digits included.
    third = duration_pb2.Duration(nanos=333_333_333)
    job = service.jobs.EnqueueJob(
        enqueue(delay=third, retry_policy=job_pb2.RetryPolicy(retry_delays=[third], max_delay=third))[1]
    ).job
    assert job.retry_policy.retry_delays[0].ToTimedelta() == timedelta(milliseconds=333)
    assert job.retry_policy.max_delay.ToTimedelta() == timedelta(milliseconds=333)


def test_a_bound_is_said_in_days_not_as_a_timedelta(service):
    error = rpc_error(service.jobs.EnqueueJob, enqueue(delay=timedelta(days=4000))[1])
    assert "delay must be at most 3650 days" in error.details()
    assert "0:00:00" not in error.details()


def test_a_message_over_the_grpc_limit_is_refused_before_decoding(service, seeded):
    before = seeded()
    request = pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_data={"blob": "x" * (9 * MEBIBYTE)})
    error = rpc_error(service.jobs.EnqueueJob, request)
    assert error.code() == TOO_BIG
    assert seeded() == before


def raw_method(service, name):
    return service.channel.unary_unary(
        f"/jobqueue.v1.JobService/{name}", request_serializer=lambda data: data, response_deserializer=lambda data: data
    )


def nested_struct_bytes(depth: int) -> bytes:
    """Serialized EnqueueJobRequest whose job_data nests `depth` objects, built by hand past protobuf's depth limit."""

    def field(number: int, payload: bytes) -> bytes:
        length, out = len(payload), bytearray()
        while True:
            byte = length & 0x7F
            length >>= 7
            out.append(byte | (0x80 if length else 0))
            if not length:
                break
        return bytes([number << 3 | 2]) + bytes(out) + payload

    document = b""
    for _ in range(depth):
        value = field(5, document)  # Value.struct_value
        document = field(1, field(1, b"a") + field(2, value))  # Struct.fields["a"] = value
    prefix = pb.EnqueueJobRequest(queue_name="emails", job_name="send").SerializeToString()
    return prefix + field(3, document)


@pytest.mark.parametrize(
    "method, payload",
    [
        ("GetJob", b"\xff\xff\xff"),  # not a protobuf message
        ("GetJob", b"\x0a\x02\xff\xfe"),  # job_id that is not UTF-8
        ("EnqueueJob", nested_struct_bytes(200)),  # deeper than protobuf decodes
    ],
    ids=["garbage", "invalid-utf8", "too-deep"],
)
def test_undecodable_requests_are_invalid_argument(service, seeded, method, payload):
    before = seeded()
    error = rpc_error(raw_method(service, method), payload)
    assert error.code() == INVALID, error.details()
    assert "not a valid message" in error.details()
    info, _ = error_details(error)
    assert info.reason == "MALFORMED_REQUEST"
    assert seeded() == before


def test_nesting_within_the_protobuf_limit_is_accepted(service):
    response = pb.EnqueueJobResponse.FromString(raw_method(service, "EnqueueJob")(nested_struct_bytes(30)))
    assert response.created


text = st.text(st.characters(codec="utf-8"), max_size=120)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    queue_name=text,
    job_name=text,
    job_id=text,
    priority=st.integers(-(2**31), 2**31 - 1),
    delay_seconds=st.integers(-(10**11), 10**11),
    data=st.dictionaries(text, json_values, max_size=4),
)
def test_arbitrary_enqueues_never_get_internal(service, queue_name, job_name, job_id, priority, delay_seconds, data):
    document = struct_pb2.Struct()
    document.update(data)
    request = pb.EnqueueJobRequest(
        queue_name=queue_name,
        job_name=job_name,
        job_id=job_id,
        priority=priority,
        delay=duration_pb2.Duration(seconds=delay_seconds),
        job_data=document,
    )
    try:
        service.jobs.EnqueueJob(request)
    except grpc.RpcError as error:
        assert error.code() in (INVALID, TOO_BIG), f"{error.code()}: {error.details()}"
        info, _ = error_details(error)
        assert info.metadata["field"] in error.details()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    job_id=text,
    attempt=st.integers(-(2**31), 2**31 - 1),
    message=text,
    error_type=text,
    details=text,
    non_retryable=st.booleans(),
    retry_after_seconds=st.integers(-(10**11), 10**11),
)
def test_arbitrary_failure_reports_never_get_internal(
    service, seeded, job_id, attempt, message, error_type, details, non_retryable, retry_after_seconds
):
    request = pb.TrackFailureRequest(
        job_id=job_id or "active-job",
        attempt_number=attempt,
        error=job_pb2.JobError(message=message, type=error_type, details=details),
        non_retryable=non_retryable,
        retry_after=duration_pb2.Duration(seconds=retry_after_seconds),
    )
    try:
        service.jobs.TrackFailure(request)
    except grpc.RpcError as error:
        assert error.code() in (INVALID, TOO_BIG, NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION), (
            f"{error.code()}: {error.details()}"
        )
