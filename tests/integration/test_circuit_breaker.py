"""Circuit breakers over gRPC on both backends: open, half-open, close, re-open, held attempts,
the ramp, bad input, and two servers racing to open the same breaker."""

import math
import threading
import time
from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from jobqueue import AdminClient, CircuitBreakerPolicy, CircuitBreakerState, InvalidArgument
from jobqueue.aio import AdminClient as AsyncAdminClient
from jobqueue.v1 import admin_service_pb2 as admin
from jobqueue.v1 import admin_service_pb2_grpc, job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import select

from queue_service.alerts.email import EmailSettings
from queue_service.api.server import QueueServer
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.domain import JobState
from queue_service.store.alert_outbox import outbox_of
from queue_service.store.database import Database
from queue_service.store.schema import queue_breaker_outcomes
from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN, RunningService, make_config
from tests.integration.admin_helpers import bad_field, enqueue, fail_current, lease, rpc_error
from tests.integration.test_dlq_alerts import WebhookReceiver

CLOSED = admin.CIRCUIT_BREAKER_STATE_CLOSED
OPEN = admin.CIRCUIT_BREAKER_STATE_OPEN
HALF_OPEN = admin.CIRCUIT_BREAKER_STATE_HALF_OPEN


def seconds(value: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(timedelta(seconds=value))
    return message


def breaker(**fields) -> admin.CircuitBreakerPolicy:
    settings = {
        "enabled": True,
        "failure_ratio": 0.5,
        "min_runs": 4,
        "window": seconds(60),
        "cooldown": seconds(30),
        "ramp": seconds(10),
    }
    settings.update(fields)
    return admin.CircuitBreakerPolicy(**settings)


def set_breaker(service, queue: str = "emails", mask=("circuit_breaker",), **fields) -> admin.Queue:
    return service.admin.UpdateQueuePolicy(
        admin.UpdateQueuePolicyRequest(
            queue_name=queue,
            circuit_breaker=breaker(**fields),
            update_mask={"paths": list(mask)},
            allow_missing=True,
        )
    ).queue


def status(service, queue: str = "emails") -> admin.CircuitBreakerStatus:
    return service.admin.GetQueue(admin.GetQueueRequest(queue_name=queue)).queue.circuit_breaker_status


def audited(service, action: str) -> list[admin.AuditEvent]:
    return list(service.admin.ListAuditEvents(admin.ListAuditEventsRequest(action=action, page_size=100)).events)


def get_job(service, job_id: str) -> job_pb2.Job:
    return service.jobs.GetJob(pb.GetJobRequest(job_id=job_id)).job


def complete(service, job: job_pb2.Job) -> None:
    service.jobs.TrackCompletion(pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number))


def test_the_breaker_is_off_by_default(service):
    for index in range(6):
        enqueue(service, f"j{index}")
    for job in lease(service, max_jobs=6):
        fail_current(service, job.job_id, "downstream down")
    queue = service.admin.GetQueue(admin.GetQueueRequest(queue_name="emails")).queue
    assert not queue.HasField("circuit_breaker") and not queue.HasField("circuit_breaker_status")
    service.clock.advance(10)
    assert len(lease(service, max_jobs=6)) == 6  # every retry leases: nothing holds them


def test_open_half_open_reopen_close_and_the_outage_uses_no_attempt(service):
    service.admin.UpdateQueuePolicy(
        admin.UpdateQueuePolicyRequest(
            queue_name="emails",
            retry_policy=job_pb2.RetryPolicy(max_retries=2, retry_delays=[seconds(1)]),
            allow_missing=True,
        )
    )
    queue = set_breaker(service)
    assert queue.circuit_breaker.enabled and queue.circuit_breaker.min_runs == 4
    assert queue.circuit_breaker_status.state == CLOSED
    # The retry policy stays as it was: the mask named only the breaker.
    assert queue.retry_policy.max_retries == 2
    for index in range(5):
        enqueue(service, f"j{index}")
    leased = {job.job_id: job for job in lease(service, max_jobs=5)}
    assert {job.remaining_retries for job in leased.values()} == {2}

    # One success, then failures: 2 of 3 runs failed is below min_runs, 3 of 4 trips it (>= 50 %).
    complete(service, leased["j4"])
    for job_id in ("j0", "j1"):
        fail_current(service, job_id, "downstream down")
    assert status(service).state == CLOSED
    assert status(service).window_runs == 3 and status(service).window_failures == 2
    fail_current(service, "j2", "downstream down")
    assert status(service).state == OPEN
    [opened] = audited(service, "CircuitBreakerOpened")
    assert opened.target == "queue/emails" and opened.actor == "system:circuit-breaker"

    # While open: nothing leases, even once the retries are due; a run still out fails without using an attempt.
    service.clock.advance(20)
    assert lease(service, max_jobs=10) == []
    fail_current(service, "j3", "downstream down")
    assert get_job(service, "j3").state == job_pb2.Job.STATE_FAILED
    assert lease(service, max_jobs=10) == []

    # After the cool-down: one probe (the job due first), and only one until it reports.
    service.clock.advance(11)
    [probe] = lease(service, max_jobs=10)
    assert probe.job_id == "j0"
    assert status(service).state == HALF_OPEN
    assert status(service).probe_job_id == "j0"
    assert lease(service, max_jobs=10) == []
    fail_current(service, "j0", "still down")
    assert status(service).state == OPEN
    assert len(audited(service, "CircuitBreakerReopened")) == 1
    assert lease(service, max_jobs=10) == []

    service.clock.advance(31)
    [probe] = lease(service, max_jobs=10)
    assert probe.job_id == "j1"
    complete(service, probe)
    assert status(service).state == CLOSED
    assert len(audited(service, "CircuitBreakerHalfOpened")) == 2
    assert len(audited(service, "CircuitBreakerClosed")) == 1

    # The held jobs come back over the 10 s ramp, not at once.
    [first] = lease(service, max_jobs=10)
    assert lease(service, max_jobs=10) == []
    service.clock.advance(10)
    rest = lease(service, max_jobs=10)
    by_id = {job.job_id: job for job in [first, *rest]}
    assert [first.job_id, *(job.job_id for job in rest)] == ["j2", "j3", "j0"]
    # Runs that failed while the breaker held used up no attempt: j2 (which tripped it) and j3
    # lease with the retries they had before; j0 lost only the run it failed before the outage.
    assert by_id["j2"].remaining_retries == 2
    assert by_id["j3"].remaining_retries == 2
    assert by_id["j0"].remaining_retries == 1


def test_a_run_failing_while_open_does_not_reach_the_dead_letter_queue(service):
    service.admin.UpdateQueuePolicy(
        admin.UpdateQueuePolicyRequest(
            queue_name="emails", retry_policy=job_pb2.RetryPolicy(max_retries=0), allow_missing=True
        )
    )
    set_breaker(service, min_runs=2, failure_ratio=1.0)
    for index in range(3):
        enqueue(service, f"j{index}")
    lease(service, max_jobs=3)
    assert fail_current(service, "j0", "down").moved_to_dead_letter  # no retries at all, breaker closed
    decision = fail_current(service, "j1", "down")  # trips: held, retried, no attempt used
    assert not decision.moved_to_dead_letter
    assert status(service).state == OPEN
    decision = fail_current(service, "j2", "down")
    assert not decision.moved_to_dead_letter and decision.remaining_retries == 0
    assert get_job(service, "j2").state == job_pb2.Job.STATE_FAILED


def test_turning_the_breaker_off_releases_the_queue(service):
    set_breaker(service, min_runs=1, failure_ratio=1.0)
    enqueue(service, "a")
    enqueue(service, "b")
    lease(service)
    fail_current(service, "a", "down")
    assert status(service).state == OPEN
    service.clock.advance(10)
    assert lease(service, max_jobs=5) == []
    queue = set_breaker(service, mask=("circuit_breaker.enabled",), enabled=False)
    assert not queue.circuit_breaker.enabled and queue.circuit_breaker_status.state == CLOSED
    assert len(audited(service, "CircuitBreakerReset")) == 1
    assert {job.job_id for job in lease(service, max_jobs=5)} == {"a", "b"}


def test_masked_fields_merge_into_the_stored_policy(service):
    set_breaker(service, min_runs=7)
    queue = set_breaker(service, mask=("circuit_breaker.failure_ratio",), failure_ratio=0.25, min_runs=99)
    assert queue.circuit_breaker.failure_ratio == 0.25
    assert queue.circuit_breaker.min_runs == 7
    preview = service.admin.UpdateQueuePolicy(
        admin.UpdateQueuePolicyRequest(
            queue_name="emails",
            circuit_breaker=breaker(min_runs=50),
            update_mask={"paths": ["circuit_breaker.min_runs"]},
            validate_only=True,
        )
    ).queue
    assert preview.circuit_breaker.min_runs == 50
    stored = service.admin.GetQueue(admin.GetQueueRequest(queue_name="emails")).queue
    assert stored.circuit_breaker.min_runs == 7


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"failure_ratio": 0.0}, "circuit_breaker.failure_ratio"),
        ({"failure_ratio": 1.5}, "circuit_breaker.failure_ratio"),
        ({"failure_ratio": -0.1}, "circuit_breaker.failure_ratio"),
        ({"failure_ratio": math.nan}, "circuit_breaker.failure_ratio"),
        ({"min_runs": 0}, "circuit_breaker.min_runs"),
        ({"min_runs": -5}, "circuit_breaker.min_runs"),
        ({"min_runs": 2**31 - 1}, "circuit_breaker.min_runs"),
        ({"window": seconds(0)}, "circuit_breaker.window"),
        ({"window": seconds(-1)}, "circuit_breaker.window"),
        ({"window": seconds(7200)}, "circuit_breaker.window"),
        ({"window": seconds(1.5)}, "circuit_breaker.window"),
        ({"window": duration_pb2.Duration(seconds=315_576_000_000)}, "circuit_breaker.window"),
        ({"cooldown": seconds(0)}, "circuit_breaker.cooldown"),
        ({"cooldown": seconds(10 * 86400)}, "circuit_breaker.cooldown"),
        ({"ramp": seconds(-1)}, "circuit_breaker.ramp"),
        ({"ramp": seconds(7200)}, "circuit_breaker.ramp"),
    ],
)
def test_bad_breaker_policies_are_refused_naming_the_field(service, fields, field):
    error = rpc_error(
        service.admin.UpdateQueuePolicy,
        admin.UpdateQueuePolicyRequest(
            queue_name="emails",
            circuit_breaker=breaker(**fields),
            update_mask={"paths": ["circuit_breaker"]},
            allow_missing=True,
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_field(error) == field
    # Nothing was written: the queue was not even created.
    assert (
        rpc_error(service.admin.GetQueue, admin.GetQueueRequest(queue_name="emails")).code()
        == grpc.StatusCode.NOT_FOUND
    )


def test_an_unknown_breaker_mask_path_is_refused(service):
    error = rpc_error(
        service.admin.UpdateQueuePolicy,
        admin.UpdateQueuePolicyRequest(
            queue_name="emails",
            circuit_breaker=breaker(),
            update_mask={"paths": ["circuit_breaker.speed"]},
            allow_missing=True,
        ),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and bad_field(error) == "update_mask"


def test_two_servers_racing_open_the_breaker_once(database_url, clock):
    servers = [QueueServer(make_config(database_url), clock=clock).start() for _ in range(2)]
    channels = [grpc.insecure_channel(f"127.0.0.1:{server.port}") for server in servers]
    try:
        services = [
            RunningService(
                server,
                channel,
                job_service_pb2_grpc.JobServiceStub(channel),
                clock,
                admin_service_pb2_grpc.AdminServiceStub(channel),
            )
            for server, channel in zip(servers, channels, strict=True)
        ]
        first, second = services
        set_breaker(first, min_runs=4, failure_ratio=0.5)
        for index in range(12):
            enqueue(first, f"j{index}")
        jobs = lease(first, max_jobs=12)
        assert len(jobs) == 12
        barrier = threading.Barrier(len(jobs))
        errors = []

        def report(job, target):
            barrier.wait()
            try:
                target.jobs.TrackFailure(
                    pb.TrackFailureRequest(
                        job_id=job.job_id,
                        attempt_number=job.attempt_number,
                        error=job_pb2.JobError(message="downstream down"),
                    )
                )
            except grpc.RpcError as error:  # a serialisation conflict is the caller's to retry
                errors.append(error)

        threads = [threading.Thread(target=report, args=(job, services[index % 2])) for index, job in enumerate(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(error.code() == grpc.StatusCode.ABORTED for error in errors)
        assert status(first).state == OPEN and status(second).state == OPEN
        assert len(audited(first, "CircuitBreakerOpened")) == 1
        # Neither server leases the queue's jobs now.
        clock.advance(20)
        assert lease(first, max_jobs=12) == [] and lease(second, max_jobs=12) == []
        # After the cool-down both race for the probe; exactly one gets it.
        clock.advance(11)
        got = lease(first, max_jobs=12) + lease(second, max_jobs=12)
        assert len(got) == 1
        assert len(audited(second, "CircuitBreakerHalfOpened")) == 1
    finally:
        for channel in channels:
            channel.close()
        for server in servers:
            server.stop(0)


def test_each_transition_is_emailed_posted_and_counted(database_url, clock):
    receiver = WebhookReceiver()
    email = EmailSettings(host="127.0.0.1", port=1, sender="queue@example.com", recipients=("ops@example.com",))
    recovery = RecoverySettings(interval=timedelta(0), dlq_alert_webhook_url=receiver.url, alert_email=email)
    server = QueueServer(make_config(database_url, recovery=recovery), clock=clock).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    service = RunningService(
        server,
        channel,
        job_service_pb2_grpc.JobServiceStub(channel),
        clock,
        admin_service_pb2_grpc.AdminServiceStub(channel),
    )
    try:
        set_breaker(service, min_runs=1, failure_ratio=1.0)
        enqueue(service, "a")
        lease(service)
        fail_current(service, "a", "down")
        clock.advance(31)
        [probe] = lease(service)
        complete(service, probe)
        deadline = time.monotonic() + 10
        while len(receiver.bodies) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [body["transition"] for body in sorted(receiver.bodies, key=lambda body: body["at"])] == [
            "trip",
            "probe",
            "close",
        ]
        assert {body["queue_name"] for body in receiver.bodies} == {"emails"}
        database = Database(database_url)
        try:
            with database.transaction() as repo:
                rows = outbox_of(repo).list_recent(limit=10)
        finally:
            database.dispose()
        assert sorted(row.subject for row in rows if row.kind == "circuit_breaker") == [
            "[queue-service] emails: circuit breaker closed",
            "[queue-service] emails: circuit breaker half-open",
            "[queue-service] emails: circuit breaker open",
        ]
        assert all(list(row.recipients) == ["ops@example.com"] for row in rows)
        sample = server.metrics_registry.get_sample_value
        labels = {"queue": "emails"}
        assert (
            sample(
                "queue_service_circuit_breaker_transitions_total", {**labels, "transition": "trip", "to_state": "open"}
            )
            == 1
        )
        assert (
            sample(
                "queue_service_circuit_breaker_transitions_total",
                {**labels, "transition": "close", "to_state": "closed"},
            )
            == 1
        )
    finally:
        channel.close()
        server.stop(0)
        receiver.close()


def test_the_sync_client_sets_and_reads_the_breaker(service):
    with AdminClient(service.target, timeout=10) as client:
        policy = CircuitBreakerPolicy(enabled=True, failure_ratio=0.25, min_runs=2, window=timedelta(seconds=30))
        queue = client.update_queue_policy(
            "emails", circuit_breaker=policy, update_mask=["circuit_breaker"], allow_missing=True
        )
        assert queue.circuit_breaker == CircuitBreakerPolicy(
            enabled=True,
            failure_ratio=0.25,
            min_runs=2,
            window=timedelta(seconds=30),
            cooldown=timedelta(seconds=30),
            ramp=timedelta(seconds=60),
        )
        assert queue.circuit_breaker_status.state == CircuitBreakerState.CLOSED
        enqueue(service, "a")
        enqueue(service, "b")
        lease(service, max_jobs=2)
        fail_current(service, "a", "down")
        fail_current(service, "b", "down")
        status = client.get_queue("emails").circuit_breaker_status
        assert status.state == CircuitBreakerState.OPEN and status.open_time is not None
        with pytest.raises(InvalidArgument) as raised:
            client.update_queue_policy(
                "emails",
                circuit_breaker=CircuitBreakerPolicy(enabled=True, min_runs=0),
                update_mask=["circuit_breaker"],
            )
        assert raised.value.field == "circuit_breaker.min_runs"


@pytest.mark.asyncio
async def test_the_aio_client_sets_and_reads_the_breaker(service):
    async with AsyncAdminClient(service.target, timeout=10) as client:
        queue = await client.update_queue_policy(
            "emails",
            circuit_breaker=CircuitBreakerPolicy(enabled=True, ramp=timedelta(0)),
            update_mask=["circuit_breaker"],
            allow_missing=True,
        )
        assert queue.circuit_breaker.enabled and queue.circuit_breaker.ramp == timedelta(0)
        assert queue.circuit_breaker.min_runs == 20
        off = await client.update_queue_policy(
            "emails", circuit_breaker=CircuitBreakerPolicy(enabled=False), update_mask=["circuit_breaker.enabled"]
        )
        assert not off.circuit_breaker.enabled and off.circuit_breaker.ramp == timedelta(0)
        assert (await client.get_queue("emails")).circuit_breaker_status.state == CircuitBreakerState.CLOSED


def test_a_probe_whose_lease_expires_reopens_the_breaker(service):
    set_breaker(service, min_runs=1, failure_ratio=1.0)
    enqueue(service, "a")
    lease(service)
    fail_current(service, "a", "down")
    service.clock.advance(31)
    [probe] = lease(service)
    assert status(service).state == HALF_OPEN
    service.clock.advance(61)  # the probe's 60 s lease runs out without a report
    service.admin.TriggerRecovery(admin.TriggerRecoveryRequest())
    assert status(service).state == OPEN
    assert len(audited(service, "CircuitBreakerReopened")) == 1
    job = get_job(service, "a")
    assert job.state == job_pb2.Job.STATE_FAILED
    assert job.remaining_retries == 3  # neither the failure that opened it nor the expired probe used one


def test_only_admins_set_the_breaker_and_the_change_is_audited(secured_service):
    request = admin.UpdateQueuePolicyRequest(
        queue_name="emails", circuit_breaker=breaker(), update_mask={"paths": ["circuit_breaker"]}, allow_missing=True
    )
    with pytest.raises(grpc.RpcError) as refused:
        secured_service.admin.UpdateQueuePolicy(request, metadata=[("authorization", f"Bearer {WORKER_TOKEN}")])
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    token = [("authorization", f"Bearer {ADMIN_TOKEN}")]
    secured_service.admin.UpdateQueuePolicy(request, metadata=token)
    [event] = secured_service.admin.ListAuditEvents(
        admin.ListAuditEventsRequest(action="UpdateQueuePolicy"), metadata=token
    ).events
    assert event.actor == "admin"
    assert event.parameters["circuit_breaker"]["min_runs"] == 4
    assert event.parameters["circuit_breaker"]["enabled"] is True


def test_batched_completions_count_and_a_batched_probe_closes(service):
    set_breaker(service, min_runs=3, failure_ratio=0.5)
    for index in range(4):
        enqueue(service, f"j{index}")
    jobs = lease(service, max_jobs=4)

    def complete_batch(batch):
        service.jobs.TrackCompletions(
            pb.TrackCompletionsRequest(
                completions=[
                    pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number) for job in batch
                ]
            )
        )

    complete_batch(jobs[:2])
    assert status(service).window_runs == 2 and status(service).window_failures == 0
    fail_current(service, jobs[2].job_id, "down")  # 1 of 3: below the ratio
    assert status(service).state == CLOSED
    fail_current(service, jobs[3].job_id, "down")  # 2 of 4
    assert status(service).state == OPEN
    service.clock.advance(31)
    [probe] = lease(service, max_jobs=4)
    complete_batch([probe])
    assert status(service).state == CLOSED
    # The window starts again at the close: the failures that opened it no longer count.
    assert status(service).window_runs == 0


def test_counts_that_left_the_window_are_deleted(service, database_url):
    set_breaker(service, min_runs=100, window=seconds(10))
    for index in range(3):
        enqueue(service, f"j{index}")
    jobs = lease(service, max_jobs=3)
    complete(service, jobs[0])
    fail_current(service, jobs[1].job_id, "down")

    def stored_seconds() -> set:
        database = Database(database_url)
        try:
            with database.transaction() as repo:
                rows = repo.connection.execute(select(queue_breaker_outcomes.c.second_start)).all()
        finally:
            database.dispose()
        return {row.second_start for row in rows}

    assert stored_seconds() == {service.clock.now()}
    start = service.clock.now()
    service.clock.advance(11)
    complete(service, jobs[2])
    assert stored_seconds() == {start + timedelta(seconds=11)}


def test_a_probe_that_ends_without_a_verdict_is_replaced(service):
    set_breaker(service, min_runs=1, failure_ratio=1.0)
    enqueue(service, "a")
    enqueue(service, "b")
    lease(service)
    fail_current(service, "a", "down")
    service.clock.advance(31)
    [probe] = lease(service)
    assert probe.job_id == "b"
    assert lease(service) == []
    # An operator moves the probe away: neither success nor failure, so the next lease probes again.
    service.jobs.MoveToDeadLetter(pb.MoveToDeadLetterRequest(job_id="b", reason="stuck"))
    [replacement] = lease(service)
    assert replacement.job_id == "a"
    assert status(service).state == HALF_OPEN and status(service).probe_job_id == "a"
    assert len(audited(service, "CircuitBreakerHalfOpened")) == 2


def test_a_batch_over_two_queues_counts_only_the_runs_of_the_queue_with_a_breaker(service):
    set_breaker(service, min_runs=100)
    enqueue(service, "guarded")
    enqueue(service, "plain", queue="reports")
    (guarded,) = lease(service)
    (plain,) = lease(service, queue="reports")

    response = service.jobs.TrackCompletions(
        pb.TrackCompletionsRequest(
            completions=[
                pb.TrackCompletionRequest(job_id=job.job_id, attempt_number=job.attempt_number)
                for job in (plain, guarded)
            ]
        )
    )

    assert [result.status.code for result in response.results] == [0, 0]
    assert (status(service).window_runs, status(service).window_failures) == (1, 0)
    assert status(service, "reports").window_runs == 0


def test_a_completion_reads_the_breaker_of_its_own_queue_only(service):
    """The statement that completes a run says whether the run's queue has a breaker on; another
    queue's breaker must not count, on either backend."""
    set_breaker(service, min_runs=100)
    enqueue(service, "guarded")
    enqueue(service, "plain", queue="reports")
    (guarded,) = lease(service)
    (plain,) = lease(service, queue="reports")
    now = service.clock.now()
    with service.server.database.transaction() as repo:
        runs = {
            job.job_id: repo.complete_current_run(
                job.job_id,
                job.attempt_number,
                expected_states=[JobState.ACTIVE],
                result=None,
                processing_duration_ms=None,
                now=now,
            )
            for job in (guarded, plain)
        }
        failing = repo.get_job_for_failure("plain")
    assert runs["guarded"].breaker_on and not runs["plain"].breaker_on
    assert not failing.breaker_on
