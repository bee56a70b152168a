"""Fuzz every RPC of JobService and AdminService with random and malformed requests.

The server runs as its own process with authentication on, over SQLite and PostgreSQL. Whatever
arrives, it must answer with a status that blames the request (or OK), never INTERNAL or UNKNOWN,
and it must stay up and SERVING. `--fuzz-cases N` sets the number of requests per backend
(300 by default, as in CI); `--fuzz-seed S` replays a run.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from datetime import UTC

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.json_format import ParseDict
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import admin_service_pb2_grpc, job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.core.unique import window_start
from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.integration.admin_helpers import bad_field
from tests.integration.test_auth import jobqueue_methods
from tests.reliability.fuzzing import (
    EXTREME_DURATIONS,
    EXTREME_TIMESTAMPS,
    FLOATS,
    INT32,
    KnownValues,
    RequestFuzzer,
    time_fields,
    with_time_value,
)
from tests.reliability.processes import ServerProcess, clean_env, health_status
from tests.rpc_errors import final_code

METHODS = jobqueue_methods()
SERVER_FAULTS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
# Long-polls and paced redrives may run into the client's deadline; that is the client's choice.
CALL_TIMEOUT = 3.0
ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


@pytest.fixture
def fuzz_server(database_url, tmp_path):
    server = ServerProcess(
        database_url,
        tmp_path / "server.log",
        args=("--no-migrate", "--log-level", "INFO"),
        env=clean_env(QUEUE_ADMIN_TOKEN=ADMIN_TOKEN, QUEUE_WORKER_TOKEN=WORKER_TOKEN),
    ).start()
    try:
        yield server
    finally:
        server.stop()


def seed(channel: grpc.Channel) -> KnownValues:
    """Jobs in every state and dead-letter entries, whose ids and page tokens the fuzzer may use."""
    jobs = job_service_pb2_grpc.JobServiceStub(channel)
    admin = admin_service_pb2_grpc.AdminServiceStub(channel)
    known = KnownValues(ints=[1, 2])
    for queue in ("emails", "reports"):
        known.texts.append(queue)
        for index in range(6):
            job_id = f"{queue}-{index}"
            known.texts.append(job_id)
            jobs.EnqueueJob(
                pb.EnqueueJobRequest(queue_name=queue, job_name="send", job_id=job_id, job_data={"n": index}),
                metadata=ADMIN,
            )
        leased = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[queue], worker_id="w1", max_jobs=4), metadata=ADMIN)
        for position, job in enumerate(leased.jobs):
            if position == 0:
                jobs.TrackCompletion(
                    pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number), metadata=ADMIN
                )
            elif position == 1:
                jobs.TrackFailure(
                    pb.TrackFailureRequest(
                        job_id=job.job_id, attempt_number=job.attempt_number, error=job_pb2.JobError(message="boom")
                    ),
                    metadata=ADMIN,
                )
            elif position == 2:
                failure = jobs.TrackFailure(
                    pb.TrackFailureRequest(
                        job_id=job.job_id,
                        attempt_number=job.attempt_number,
                        error=job_pb2.JobError(message="bad input", type="ValueError"),
                        non_retryable=True,
                    ),
                    metadata=ADMIN,
                )
                known.texts.append(failure.dead_letter_id)
    known.texts.append("w1")
    for page in (
        admin.ListJobs(admin_pb.ListJobsRequest(page_size=1), metadata=ADMIN).next_page_token,
        admin.ListDeadLetterJobs(admin_pb.ListDeadLetterJobsRequest(page_size=1), metadata=ADMIN).next_page_token,
        admin.ListQueues(admin_pb.ListQueuesRequest(page_size=1), metadata=ADMIN).next_page_token,
    ):
        if page:
            known.texts.append(page)
    patterns = admin.ListFailurePatterns(admin_pb.ListFailurePatternsRequest(), metadata=ADMIN).patterns
    known.texts.extend(pattern.fingerprint for pattern in patterns)
    return known


def call_raw(channel: grpc.Channel, method, payload: bytes) -> grpc.StatusCode:
    """Send `payload` as the request bytes of `method` and return the final status code."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_class = GetMessageClass(method.output_type)
    if method.server_streaming:
        stub = channel.unary_stream(path, request_serializer=None, response_deserializer=response_class.FromString)
    else:
        stub = channel.unary_unary(path, request_serializer=None, response_deserializer=response_class.FromString)
    return final_code(stub, payload, server_streaming=method.server_streaming, metadata=ADMIN, timeout=CALL_TIMEOUT)


@pytest.mark.slow
def test_every_rpc_survives_random_and_malformed_requests(fuzz_server, request):
    cases = request.config.getoption("--fuzz-cases")
    seed_value = request.config.getoption("--fuzz-seed")
    if seed_value is None:
        seed_value = random.SystemRandom().randrange(2**32)
    options = [
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ]
    channel = grpc.insecure_channel(fuzz_server.target, options=options)
    known = seed(channel)
    rng = random.Random(seed_value)
    fuzzer = RequestFuzzer(rng, known)
    codes: Counter[tuple[str, str]] = Counter()
    faults: list[str] = []
    started = time.monotonic()
    for index in range(cases):
        method = METHODS[index % len(METHODS)] if index < len(METHODS) else rng.choice(METHODS)
        payload = fuzzer.case(method.input_type)
        code = call_raw(channel, method, payload)
        codes[(method.name, code.name)] += 1
        if code in SERVER_FAULTS and len(faults) < 10:
            faults.append(f"case {index} {method.full_name} -> {code.name}: {payload[:300]!r}")
        if index % 200 == 199:
            assert fuzz_server.alive(), f"the server died at case {index} (seed {seed_value})\n{fuzz_server.log_tail()}"
    elapsed = time.monotonic() - started
    channel.close()

    assert fuzz_server.alive(), f"the server died (seed {seed_value})\n{fuzz_server.log_tail()}"
    assert health_status(fuzz_server.target) == health_pb2.HealthCheckResponse.SERVING
    # Still reads and writes. A seeded job is no witness: the fuzzed admin calls may clean it away.
    with grpc.insecure_channel(fuzz_server.target) as check:
        jobs = job_service_pb2_grpc.JobServiceStub(check)
        jobs.EnqueueJob(
            pb.EnqueueJobRequest(queue_name="after-fuzz", job_name="send", job_id="after-fuzz-1"),
            metadata=ADMIN,
            timeout=10,
        )
        job = jobs.GetJob(pb.GetJobRequest(job_id="after-fuzz-1"), metadata=ADMIN, timeout=10)
        assert job.job.job_id == "after-fuzz-1", f"seed {seed_value}"
    assert not faults, f"seed {seed_value}: server faults:\n" + "\n".join(faults) + f"\n{fuzz_server.log_tail()}"
    assert {name for name, _ in codes} == {method.name for method in METHODS}
    # The cases must reach the servicers' work, not only the parser and validation.
    past_validation = sum(n for (_, code), n in codes.items() if code in ("OK", "NOT_FOUND", "FAILED_PRECONDITION"))
    assert past_validation >= cases // 20, codes
    print(
        f"fuzz: {cases} cases in {elapsed:.1f}s, seed {seed_value}: {dict(sorted(sum((Counter({code: n}) for (_, code), n in codes.items()), Counter()).items()))}"
    )


# Requests that pass validation but for their time fields, so an extreme value reaches the arithmetic.
# "{job}" is a job that is ACTIVE right before the call, "{entry}" a pending dead-letter entry.
VALID_REQUESTS = {
    # Unique and with a rule, so that an extreme window or rule duration reaches the arithmetic past
    # the key's and the rule's own checks.
    "EnqueueJob": {
        "queue_name": "extremes",
        "job_name": "send",
        "unique": {"unique_key": "extremes"},
        "retry_policy": {"rules": [{"error_type": "E"}]},
    },
    "EnqueueJobs": {"jobs": [{"queue_name": "extremes", "job_name": "send", "unique": {"unique_key": "extremes"}}]},
    "LeaseJobs": {"queue_names": ["extremes"], "worker_id": "w-extremes", "max_jobs": 1},
    "HeartbeatJob": {"job_id": "{job}", "attempt_number": 1},
    "TrackCompletion": {"job_id": "{job}", "attempt_number": 1},
    "TrackCompletions": {"completions": [{"job_id": "{job}", "attempt_number": 1}]},
    "TrackFailure": {"job_id": "{job}", "attempt_number": 1, "error": {"message": "boom"}},
    "GetQueueActivity": {},
    "ListDeadLetterJobs": {},
    "RetryDeadLetterJob": {"id": "{entry}"},
    "UpdateDeadLetterJob": {"entry": {"id": "{entry}", "admin_notes": "n"}, "update_mask": "adminNotes"},
    "RetryDeadLetterJobs": {"filter": {"queue_name": "dlq-extremes"}, "dry_run": True},
    "CancelJobs": {"filter": {"queue_name": "extremes"}, "dry_run": True},
    "ListRetryLog": {},
    "UpdateQueuePolicy": {
        "queue_name": "extremes",
        "allow_missing": True,
        "validate_only": True,
        "retry_policy": {"rules": [{"error_type": "E"}]},
        "circuit_breaker": {"enabled": True},
    },
    "CleanQueue": {"queue_name": "extremes", "state": "STATE_COMPLETED"},
    # update_time is output only: the server ignores it, whatever its value.
    "UpdateQueueAlertPolicy": {"alert_policy": {"queue_name": "extremes", "dlq_alert_threshold": 5}},
    "ListAuditEvents": {},
    "CreateSchedule": {
        "schedule": {
            "name": "extremes",
            "cron": "* * * * *",
            "time_zone": "UTC",
            "queue_name": "extremes",
            "job_name": "send",
        }
    },
    "UpdateSchedule": {
        "schedule": {
            "name": "extremes",
            "cron": "* * * * *",
            "time_zone": "UTC",
            "queue_name": "extremes",
            "job_name": "send",
        }
    },
}


# Both ends of a range at the calendar's ends together, where one alone is refused early.
CALENDAR_ENDS = [
    ("GetQueueActivity", {"start_time": "0001-01-01T00:00:00Z", "end_time": "0001-01-02T00:00:00Z"}),
    ("GetQueueActivity", {"start_time": "9999-12-30T00:00:00Z", "end_time": "9999-12-31T23:59:59.999999Z"}),
    ("GetQueueActivity", {"end_time": "9999-12-31T23:59:59.999999Z", "period": "3024000s", "bucket_width": "3024000s"}),
    (
        "ListDeadLetterJobs",
        {
            "filter": {
                "dead_lettered_after": "0001-01-01T00:00:00Z",
                "dead_lettered_before": "9999-12-31T23:59:59.999999999Z",
            }
        },
    ),
    ("ListRetryLog", {"created_after": "0001-01-01T00:00:00Z", "created_before": "9999-12-31T23:59:59.999999999Z"}),
    ("ListAuditEvents", {"created_after": "0001-01-01T00:00:00Z", "created_before": "9999-12-31T23:59:59.999999999Z"}),
    (
        "RetryDeadLetterJobs",
        {
            "filter": {
                "dead_lettered_after": "0001-01-01T00:00:00Z",
                "dead_lettered_before": "9999-12-31T23:59:59.999999999Z",
            },
            "dry_run": True,
        },
    ),
]


def active_job(jobs, index: int) -> str:
    job_id, queue = f"extreme-active-{index}", f"active-extremes-{index}"
    jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name=queue, job_name="send", job_id=job_id), metadata=ADMIN)
    leased = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[queue], worker_id="w", max_jobs=1), metadata=ADMIN)
    assert [job.job_id for job in leased.jobs] == [job_id]
    return job_id


def pending_entry(jobs, index: int) -> str:
    job_id = active_job(jobs, index)
    failure = jobs.TrackFailure(
        pb.TrackFailureRequest(
            job_id=job_id, attempt_number=1, error=job_pb2.JobError(message="boom"), non_retryable=True
        ),
        metadata=ADMIN,
    )
    return failure.dead_letter_id


def test_extreme_durations_and_timestamps_on_every_field_that_takes_one(fuzz_server):
    """Each Duration and Timestamp field of every RPC, alone at each extreme, in an otherwise valid request."""
    channel = grpc.insecure_channel(fuzz_server.target)
    jobs = job_service_pb2_grpc.JobServiceStub(channel)
    methods = {method.name: method for method in METHODS}
    faults: list[str] = []
    calls = 0
    for name, method in methods.items():
        fields = time_fields(method.input_type)
        if not fields:
            continue
        assert name in VALID_REQUESTS, f"add a valid {name} request to VALID_REQUESTS"
        for path, kind in fields:
            for value in EXTREME_DURATIONS if kind == "duration" else EXTREME_TIMESTAMPS:
                template = json.dumps(VALID_REQUESTS[name])
                if "{job}" in template:
                    template = template.replace("{job}", active_job(jobs, calls))
                if "{entry}" in template:
                    template = template.replace("{entry}", pending_entry(jobs, calls))
                base = ParseDict(json.loads(template), GetMessageClass(method.input_type)())
                request = with_time_value(base, path, value)
                code = call_raw(channel, method, request.SerializeToString())
                calls += 1
                if code in SERVER_FAULTS:
                    faults.append(f"{name} {'.'.join(path)}={value} -> {code.name}")
    for name, fields in CALENDAR_ENDS:
        request = ParseDict(fields, GetMessageClass(methods[name].input_type)())
        code = call_raw(channel, methods[name], request.SerializeToString())
        calls += 1
        if code in SERVER_FAULTS:
            faults.append(f"{name} {fields} -> {code.name}")
    channel.close()
    assert calls > 200
    assert fuzz_server.alive(), fuzz_server.log_tail()
    assert not faults, "server faults:\n" + "\n".join(faults) + f"\n{fuzz_server.log_tail()}"


UNIQUE_FUZZ_CASES = 150


@pytest.mark.slow
def test_fuzzed_unique_options_are_bad_input_or_one_job_per_key(fuzz_server, request):
    """Random UniqueOptions (keys, windows, state lists) in otherwise valid enqueues: each call is
    refused as bad input or succeeds, and a repeat of a successful one returns the same job."""
    seed_value = request.config.getoption("--fuzz-seed")
    if seed_value is None:
        seed_value = random.SystemRandom().randrange(2**32)
    rng = random.Random(seed_value)
    fuzzer = RequestFuzzer(rng)
    codes: Counter[str] = Counter()
    faults: list[str] = []
    with grpc.insecure_channel(fuzz_server.target) as channel:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        for index in range(UNIQUE_FUZZ_CASES):
            options = fuzzer.message(pb.UniqueOptions.DESCRIPTOR)
            if rng.random() < 0.5:
                options.unique_key = f"fuzz-{rng.randrange(5)}"  # often a valid, repeated key
            enqueue = pb.EnqueueJobRequest(queue_name="unique-fuzz", job_name="send", unique=options)
            try:
                first = jobs.EnqueueJob(enqueue, metadata=ADMIN, timeout=CALL_TIMEOUT)
                again = jobs.EnqueueJob(enqueue, metadata=ADMIN, timeout=CALL_TIMEOUT)
            except grpc.RpcError as error:
                codes[error.code().name] += 1
                if error.code() in SERVER_FAULTS:
                    faults.append(f"case {index} {options!r} -> {error.code().name}: {error.details()}")
                elif error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    assert "unique." in error.details(), f"seed {seed_value}: {error.details()}"
                continue
            codes["OK"] += 1
            if again.created and options.HasField("window"):
                # Windows count from the epoch: the repeat may have fallen into the next one.
                window = options.window.ToTimedelta()
                first_window = window_start(first.job.created_at.ToDatetime(tzinfo=UTC), window)
                again_window = window_start(again.job.created_at.ToDatetime(tzinfo=UTC), window)
                assert again_window > first_window, f"seed {seed_value}: {options!r}"
            else:
                assert not again.created and again.job.job_id == first.job.job_id, f"seed {seed_value}: {options!r}"
            assert first.job.unique_key == options.unique_key
    assert fuzz_server.alive(), fuzz_server.log_tail()
    assert not faults, f"seed {seed_value}:\n" + "\n".join(faults) + f"\n{fuzz_server.log_tail()}"
    assert codes["OK"] and codes["INVALID_ARGUMENT"], codes


def _limit_is_valid(field: str, value: float) -> bool:
    if field == "max_active":
        return 1 <= value <= 1_000_000
    return math.isfinite(value) and 0.001 <= value <= 1_000_000


def test_lease_limits_at_every_extreme_value(fuzz_server):
    """max_active and max_starts_per_second at each extreme, with and without a field mask: saved as
    given, or INVALID_ARGUMENT naming the field and nothing saved; never a fault, and leasing goes on."""
    channel = grpc.insecure_channel(fuzz_server.target)
    jobs = job_service_pb2_grpc.JobServiceStub(channel)
    admin = admin_service_pb2_grpc.AdminServiceStub(channel)
    queue = "limits-extremes"
    for index in range(3):
        jobs.EnqueueJob(
            pb.EnqueueJobRequest(queue_name=queue, job_name="send", job_id=f"limits-{index}"), metadata=ADMIN
        )
    lease = pb.LeaseJobsRequest(queue_names=[queue], worker_id="w", max_jobs=1)
    wrong: list[str] = []
    for field, values in (("max_active", INT32), ("max_starts_per_second", FLOATS + (1_000_000.0, 1_000_001.0))):
        for value in values:
            for paths in ([], [field], ["*"]):
                request = admin_pb.UpdateQueuePolicyRequest(
                    queue_name=queue, allow_missing=True, update_mask=FieldMask(paths=paths), **{field: value}
                )
                before = admin.GetQueue(admin_pb.GetQueueRequest(queue_name=queue), metadata=ADMIN).queue
                try:
                    saved = admin.UpdateQueuePolicy(request, metadata=ADMIN).queue
                except grpc.RpcError as error:
                    after = admin.GetQueue(admin_pb.GetQueueRequest(queue_name=queue), metadata=ADMIN).queue
                    if (
                        error.code() != grpc.StatusCode.INVALID_ARGUMENT
                        or bad_field(error) != field
                        or _limit_is_valid(field, value)
                        or after != before
                    ):
                        wrong.append(f"{field}={value} mask={paths}: {error.code().name} {error.details()}")
                else:
                    if not _limit_is_valid(field, value) or getattr(saved, field) != value:
                        wrong.append(f"{field}={value} mask={paths}: saved {saved}")
                try:
                    jobs.LeaseJobs(lease, metadata=ADMIN, timeout=10)
                except grpc.RpcError as error:
                    wrong.append(f"LeaseJobs after {field}={value} mask={paths}: {error.code().name}")
    # Without limits, what is left leases at once.
    admin.UpdateQueuePolicy(
        admin_pb.UpdateQueuePolicyRequest(queue_name=queue, update_mask=FieldMask(paths=["*"])), metadata=ADMIN
    )
    left = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[queue], worker_id="w", max_jobs=10), metadata=ADMIN)
    stats = admin.GetStatistics(admin_pb.GetStatisticsRequest(queue_names=[queue]), metadata=ADMIN).queues[0]
    channel.close()
    assert not wrong, "\n".join(wrong[:20])
    assert stats.waiting_count == 0 and stats.active_count == 3, (len(left.jobs), stats)
    assert fuzz_server.alive(), fuzz_server.log_tail()
