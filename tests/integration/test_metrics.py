"""/metrics over HTTP: RPC counts by final status code, job counters and per-queue gauges as jobs flow."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from jobqueue.v1 import admin_service_pb2, admin_service_pb2_grpc, job_pb2, job_service_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb
from prometheus_client.parser import text_string_to_metric_families

from queue_service.api.server import QueueServer
from queue_service.config import ConfigError
from tests.conftest import WORKER_TOKEN, auth_tokens, make_config

JOB_SERVICE = "jobqueue.v1.JobService"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def metered_server(database_url: str, clock, **options) -> tuple[QueueServer, int]:
    """A started server with its metrics on a free port, and that port. A port is free when picked,
    but another socket may take it before the server binds it (the server's own gRPC port among
    them): then another is picked."""
    for _ in range(5):
        config = make_config(database_url, metrics_port=free_port(), **options)
        try:
            return QueueServer(config, clock=clock).start(), config.metrics_port
        except ConfigError as error:
            if "already in use" not in str(error):
                raise
    raise AssertionError("the metrics server found no free port in 5 tries")


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


class Metrics:
    def __init__(self, port: int) -> None:
        self.port = port
        self.samples = scrape(port)

    def refresh(self) -> Metrics:
        self.samples = scrape(self.port)
        return self

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def jobs(self, event: str, queue: str = "emails") -> float:
        return self.value(f"queue_service_jobs_{event}_total", queue=queue) or 0.0

    def gauges(self, queue: str = "emails") -> dict[str, float]:
        states = ("ready", "delayed", "active", "failed")
        values = {state: self.value("queue_service_queue_jobs", queue=queue, state=state) for state in states}
        values["dlq_pending"] = self.value("queue_service_dead_letter_pending", queue=queue)
        return values

    def rpcs(self, method: str, code: str, service: str = JOB_SERVICE) -> float:
        labels = {"grpc_service": service, "grpc_method": method, "grpc_type": "unary", "grpc_code": code}
        handled = self.value("grpc_server_handled_total", **labels) or 0.0
        observed = self.value("grpc_server_handling_seconds_count", **labels) or 0.0
        assert handled == observed, "the counter and the histogram disagree"
        return handled


@pytest.fixture
def metered(database_url, clock) -> Iterator[tuple[job_service_pb2_grpc.JobServiceStub, Metrics]]:
    # ttl 0: every scrape reads the database, so the test sees each step.
    server, metrics_port = metered_server(database_url, clock, queue_gauge_ttl=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield job_service_pb2_grpc.JobServiceStub(channel), Metrics(metrics_port)
    finally:
        channel.close()
        server.stop(0)


def fail(jobs, job_id: str, attempt: int, *, non_retryable: bool = False) -> pb.TrackFailureResponse:
    return jobs.TrackFailure(
        pb.TrackFailureRequest(
            job_id=job_id,
            attempt_number=attempt,
            error=job_pb2.JobError(message="Connection timeout"),
            non_retryable=non_retryable,
        )
    )


def test_job_counters_and_queue_gauges_move_as_jobs_flow(metered, clock):
    jobs, metrics = metered
    assert metrics.jobs("enqueued") == 0
    assert metrics.value("queue_service_queue_gauges_up") == 1

    jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="a"))
    jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="b"))
    jobs.EnqueueJob(
        pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="c", delay=duration_pb2.Duration(seconds=60))
    )
    jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="a"))  # idempotent: not counted
    metrics.refresh()
    assert metrics.jobs("enqueued") == 3
    assert metrics.gauges() == {"ready": 2, "delayed": 1, "active": 0, "failed": 0, "dlq_pending": 0}

    leased = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"], max_jobs=2)).jobs
    assert sorted(job.job_id for job in leased) == ["a", "b"]
    metrics.refresh()
    assert metrics.jobs("started") == 2
    assert metrics.gauges() == {"ready": 0, "delayed": 1, "active": 2, "failed": 0, "dlq_pending": 0}

    assert fail(jobs, "a", 1).should_retry
    fail(jobs, "a", 1)  # a repeated report returns the same decision and counts once
    jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="b", attempt_number=1))
    metrics.refresh()
    assert (metrics.jobs("failed"), metrics.jobs("retried"), metrics.jobs("completed")) == (1, 1, 1)
    assert metrics.gauges() == {"ready": 0, "delayed": 1, "active": 0, "failed": 1, "dlq_pending": 0}

    clock.advance(timedelta(seconds=5))
    (retry,) = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"])).jobs
    assert fail(jobs, retry.job_id, 2, non_retryable=True).moved_to_dead_letter
    jobs.MoveToDeadLetter(pb.MoveToDeadLetterRequest(job_id="c", reason="not needed"))
    jobs.TrackStart(pb.TrackStartRequest(job_id="external-1", queue_name="emails", job_name="send"))
    metrics.refresh()
    assert metrics.jobs("started") == 4  # 2 leased, the retry, the external start
    assert metrics.jobs("enqueued") == 4  # TrackStart created an unknown job
    assert (metrics.jobs("failed"), metrics.jobs("retried"), metrics.jobs("dead_lettered")) == (2, 1, 2)
    assert metrics.gauges() == {"ready": 0, "delayed": 0, "active": 1, "failed": 0, "dlq_pending": 2}

    assert metrics.rpcs("EnqueueJob", "OK") == 4
    assert metrics.rpcs("TrackFailure", "OK") == 3
    assert metrics.rpcs("LeaseJobs", "OK") == 2


def test_a_batch_naming_one_job_five_times_counts_one_enqueued_job(metered):
    jobs, metrics = metered
    same = pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="same")
    other = pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="other")
    jobs.EnqueueJobs(pb.EnqueueJobsRequest(jobs=[same] * 5 + [other]))
    jobs.EnqueueJobs(pb.EnqueueJobsRequest(jobs=[same] * 5))  # all repeats of a stored job
    metrics.refresh()
    assert metrics.jobs("enqueued") == 2
    assert metrics.gauges()["ready"] == 2


def test_rpcs_that_abort_are_counted_with_their_real_code(metered):
    jobs, metrics = metered
    with pytest.raises(grpc.RpcError) as missing:
        jobs.GetJob(pb.GetJobRequest(job_id="no-such-job"))
    with pytest.raises(grpc.RpcError) as invalid:
        jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="", job_name="send"))
    jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="x"))
    with pytest.raises(grpc.RpcError) as stale:
        jobs.TrackCompletion(pb.TrackCompletionRequest(job_id="x", attempt_number=7))
    assert (missing.value.code(), invalid.value.code(), stale.value.code()) == (
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    metrics.refresh()
    assert metrics.rpcs("GetJob", "NOT_FOUND") == 1
    assert metrics.rpcs("GetJob", "OK") == 0
    assert metrics.rpcs("EnqueueJob", "INVALID_ARGUMENT") == 1
    assert metrics.rpcs("EnqueueJob", "OK") == 1
    assert metrics.rpcs("TrackCompletion", "FAILED_PRECONDITION") == 1


def test_authentication_refusals_are_counted_with_their_code(database_url, clock):
    server, metrics_port = metered_server(database_url, clock, tokens=auth_tokens())
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        admin = admin_service_pb2_grpc.AdminServiceStub(channel)
        with pytest.raises(grpc.RpcError) as anonymous:
            jobs.GetJob(pb.GetJobRequest(job_id="x"))
        with pytest.raises(grpc.RpcError) as wrong_role:
            admin.GetStatistics(
                admin_service_pb2.GetStatisticsRequest(), metadata=[("authorization", f"Bearer {WORKER_TOKEN}")]
            )
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert wrong_role.value.code() == grpc.StatusCode.PERMISSION_DENIED
        metrics = Metrics(metrics_port)
        assert metrics.rpcs("GetJob", "UNAUTHENTICATED") == 1
        assert metrics.rpcs("GetStatistics", "PERMISSION_DENIED", service="jobqueue.v1.AdminService") == 1
    finally:
        channel.close()
        server.stop(0)


def test_metrics_port_in_use_is_a_configuration_error(database_url, clock):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = make_config(database_url, metrics_port=taken.getsockname()[1])
        with pytest.raises(ConfigError, match="--metrics-port"):
            QueueServer(config, clock=clock)


def test_sweep_metrics_and_job_counters_follow_a_recovery_run(database_url, clock):
    server, metrics_port = metered_server(database_url, clock, queue_gauge_ttl=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="stalls"))
        jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"], lease_duration=duration_pb2.Duration(seconds=10)))
        metrics = Metrics(metrics_port)
        assert metrics.value("queue_service_sweep_duration_seconds_count", status="succeeded") in (None, 0)

        clock.advance(timedelta(seconds=11))
        server.recovery.run_once()
        metrics.refresh()
        assert metrics.value("queue_service_sweep_duration_seconds_count", status="succeeded") == 1
        assert metrics.value("queue_service_sweep_items_total", task="stalled_jobs") == 1
        assert metrics.value("queue_service_sweep_last_success_timestamp_seconds") > 0
        # The expired lease is a failed run, counted like a reported one.
        assert (metrics.jobs("failed"), metrics.jobs("retried")) == (1, 1)
        assert metrics.gauges()["failed"] == 1
    finally:
        channel.close()
        server.stop(0)


def test_oldest_waiting_age_and_processing_time_per_queue(metered, clock):
    jobs, metrics = metered
    oldest = "queue_service_queue_oldest_waiting_age_seconds"
    assert metrics.value(oldest, queue="emails") is None

    jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="old"))
    clock.advance(timedelta(seconds=30))
    jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="emails", job_name="send", job_id="new"))
    jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="sms", job_name="send", job_id="s1"))
    # Not ready yet: a delayed job is not waiting for a worker.
    jobs.EnqueueJob(
        pb.EnqueueJobRequest(
            queue_name="reports", job_name="build", job_id="r1", delay=duration_pb2.Duration(seconds=600)
        )
    )
    clock.advance(timedelta(seconds=15))
    metrics.refresh()
    assert metrics.value(oldest, queue="emails") == 45
    assert metrics.value(oldest, queue="sms") == 15
    assert metrics.value(oldest, queue="reports") is None

    # Leasing the oldest leaves the next one as the longest wait.
    (leased,) = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=["emails"])).jobs
    assert leased.job_id == "old"
    assert metrics.refresh().value(oldest, queue="emails") == 15

    jobs.TrackCompletion(
        pb.TrackCompletionRequest(job_id="old", attempt_number=1, processing_duration=duration_pb2.Duration(seconds=2))
    )
    jobs.TrackStart(pb.TrackStartRequest(job_id="external", queue_name="emails", job_name="send"))
    jobs.TrackCompletions(
        pb.TrackCompletionsRequest(
            completions=[
                pb.TrackCompletionRequest(
                    job_id="external", attempt_number=1, processing_duration=duration_pb2.Duration(seconds=40)
                )
            ]
        )
    )
    metrics.refresh()
    histogram = "queue_service_job_processing_seconds"
    assert metrics.value(f"{histogram}_count", queue="emails") == 2
    assert metrics.value(f"{histogram}_sum", queue="emails") == 42
    assert metrics.value(f"{histogram}_bucket", queue="emails", le="1.0") == 0
    assert metrics.value(f"{histogram}_bucket", queue="emails", le="2.5") == 1
    assert metrics.value(f"{histogram}_bucket", queue="emails", le="60.0") == 2
    assert metrics.value(f"{histogram}_count", queue="sms") is None
