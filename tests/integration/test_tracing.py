"""Traces: a server span per RPC, the producer's trace context kept with the job and handed to the
worker, whose runs, retries and dead-lettering land in the producer's trace (in-memory exporter)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from jobqueue import JobClient, NonRetryableError, RetryPolicy, Worker
from jobqueue.aio import JobClient as AsyncJobClient
from jobqueue.aio import Worker as AsyncWorker
from jobqueue.v1 import job_service_pb2, job_service_pb2_grpc
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcInstrumentorClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from queue_service.api.server import QueueServer
from queue_service.tracing import tracer_provider_from_environment, tracing_requested
from tests.conftest import make_config

SERVICE = "jobqueue.v1.JobService"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def traced_server(database_url, clock, provider) -> Iterator[QueueServer]:
    server = QueueServer(make_config(database_url, tracer_provider=provider), clock=clock).start()
    yield server
    server.stop(0)


@pytest.fixture
def instrumented_clients(provider) -> Iterator[None]:
    """The producer's and worker's channels send `traceparent`, as an instrumented application's do."""
    sync_client, aio_client = GrpcInstrumentorClient(), GrpcAioInstrumentorClient()
    sync_client.instrument(tracer_provider=provider)
    aio_client.instrument(tracer_provider=provider)
    yield
    sync_client.uninstrument()
    aio_client.uninstrument()


def failing_then_dead(job):
    if job.attempt_number == 1:
        raise TimeoutError("downstream timed out")
    raise NonRetryableError("bad record")


def server_spans(exporter, method: str):
    return [
        span
        for span in exporter.get_finished_spans()
        if span.kind == SpanKind.SERVER and span.name == f"/{SERVICE}/{method}"
    ]


def events_named(spans, name: str):
    return [event for span in spans for event in span.events if event.name == name]


def test_runs_retries_and_dead_lettering_join_the_producer_trace(
    traced_server, clock, provider, exporter, instrumented_clients
):
    tracer = provider.get_tracer("producer")
    with JobClient(f"127.0.0.1:{traced_server.port}", timeout=10) as client:
        with tracer.start_as_current_span("checkout") as producer:
            enqueued = client.enqueue("emails", "send", {"to": "a@example.com"}, job_id="j1")
        trace_id = producer.get_span_context().trace_id
        assert enqueued.job.trace_parent.split("-")[1] == f"{trace_id:032x}"

        worker = Worker(client, "emails", failing_then_dead, tracer_provider=provider, log_to_stderr=False)
        [first] = client.lease("emails", lease_duration=timedelta(seconds=30))
        assert first.trace_parent == enqueued.job.trace_parent
        assert worker.process(first) is False
        clock.advance(3600)
        [second] = client.lease("emails", lease_duration=timedelta(seconds=30))
        assert second.attempt_number == 2
        assert second.trace_parent == enqueued.job.trace_parent
        assert worker.process(second) is False

    runs = [span for span in exporter.get_finished_spans() if span.name == "process emails"]
    assert [span.attributes["jobqueue.attempt_number"] for span in runs] == [1, 2]
    stored_parent_id = int(enqueued.job.trace_parent.split("-")[2], 16)
    for run in runs:
        assert run.kind == SpanKind.CONSUMER
        assert run.context.trace_id == trace_id
        assert run.parent.span_id == stored_parent_id
        assert run.status.status_code == StatusCode.ERROR
        assert run.attributes["messaging.message.id"] == "j1"
    assert [event.attributes["exception.type"] for run in runs for event in run.events] == [
        "TimeoutError",
        "jobqueue.errors.NonRetryableError",
    ]

    # The service's decisions: events of the TrackFailure server spans, inside the runs' spans.
    failures = server_spans(exporter, "TrackFailure")
    assert len(failures) == 2
    assert all(span.context.trace_id == trace_id for span in failures)
    [retried] = events_named(failures, "job.retry_scheduled")
    assert (retried.attributes["jobqueue.job_id"], retried.attributes["jobqueue.attempt_number"]) == ("j1", 1)
    [dead] = events_named(failures, "job.dead_lettered")
    assert dead.attributes["jobqueue.death_reason"] == "non_retryable"
    assert dead.attributes["jobqueue.dead_letter_id"]

    # Every RPC got its server span, the producer's enqueue in the producer's trace.
    [enqueue] = server_spans(exporter, "EnqueueJob")
    assert enqueue.context.trace_id == trace_id
    assert len(server_spans(exporter, "LeaseJobs")) == 2


def test_the_async_worker_runs_in_the_producer_trace(traced_server, provider, exporter, instrumented_clients):
    async def scenario() -> str:
        async with AsyncJobClient(f"127.0.0.1:{traced_server.port}", timeout=10) as client:
            with provider.get_tracer("producer").start_as_current_span("signup"):
                enqueued = await client.enqueue("welcome", "send", job_id="a1")

            async def handler(job):
                return {"sent": True}

            worker = AsyncWorker(client, "welcome", handler, tracer_provider=provider)
            [job] = await client.lease("welcome", lease_duration=timedelta(seconds=30))
            assert await worker.process(job) is True
            return enqueued.job.trace_parent

    trace_parent = asyncio.run(scenario())
    [run] = [span for span in exporter.get_finished_spans() if span.name == "process welcome"]
    assert f"{run.context.trace_id:032x}" == trace_parent.split("-")[1]
    assert run.status.status_code == StatusCode.UNSET
    [completion] = server_spans(exporter, "TrackCompletion")
    assert completion.context.trace_id == run.context.trace_id
    assert completion.parent is not None


def test_a_malformed_traceparent_is_ignored_not_refused(traced_server):
    with grpc.insecure_channel(f"127.0.0.1:{traced_server.port}") as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        reply = stub.EnqueueJob(
            job_service_pb2.EnqueueJobRequest(queue_name="q", job_name="n", job_id="bad"),
            metadata=[("traceparent", "00-zz-not-a-trace")],
            timeout=10,
        )
        assert reply.job.trace_parent == ""
        good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        reply = stub.EnqueueJob(
            job_service_pb2.EnqueueJobRequest(queue_name="q", job_name="n", job_id="good"),
            metadata=[("traceparent", good)],
            timeout=10,
        )
        assert reply.job.trace_parent == good


def test_tracing_is_off_unless_otel_variables_ask():
    assert not tracing_requested({})
    assert tracer_provider_from_environment({}) is None
    assert not tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_SDK_DISABLED": "true"})
    assert not tracing_requested({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "otlp"})


def test_a_silent_worker_s_expired_lease_is_decided_in_the_producer_trace(
    traced_server, clock, provider, exporter, instrumented_clients
):
    tracer = provider.get_tracer("producer")
    with JobClient(f"127.0.0.1:{traced_server.port}", timeout=10) as client:
        with tracer.start_as_current_span("nightly-export") as producer:
            client.enqueue(
                "exports",
                "build",
                job_id="x1",
                retry_policy=RetryPolicy(max_retries=1, retry_delays=(timedelta(seconds=1),)),
            )
        trace_id = producer.get_span_context().trace_id
        for _ in range(2):
            client.lease("exports", lease_duration=timedelta(seconds=5))
            clock.advance(60)
            traced_server.recovery.run_once()  # counts the silent run as failed
            clock.advance(60)
            traced_server.recovery.run_once()  # makes the retry due

    decided = [span for span in exporter.get_finished_spans() if span.name == "lease expired exports"]
    assert len(decided) == 2
    assert all(span.context.trace_id == trace_id for span in decided)
    assert [event.name for span in decided for event in span.events] == ["job.retry_scheduled", "job.dead_lettered"]
    assert decided[1].events[0].attributes["jobqueue.death_reason"] == "lease_expired"
    assert decided[1].attributes["jobqueue.attempt_number"] == 2
