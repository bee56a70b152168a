"""Each run's span, as a child of the producer's trace: the job carries its `traceparent`.

Optional: without the OpenTelemetry API installed (`pip install jobqueue-client[tracing]`) runs
are not traced and nothing is imported. With the API but no SDK configured, spans are no-ops.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobqueue.models import Job

try:
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the `tracing` extra is not installed
    trace = None  # type: ignore[assignment]

TRACER_NAME = "jobqueue"


class RunSpan:
    """What a worker tells the span of one run."""

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def failed(self, error: BaseException) -> None:
        if self._span is not None:
            self._span.record_exception(error)
            self._span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


@contextmanager
def run_span(job: Job, tracer_provider: Any = None) -> Iterator[RunSpan]:
    """A CONSUMER span around one run and its report, child of the job's trace_parent if it has one.

    The report's RPC is made inside it, so the service's retry or dead-letter decision lands in
    the same trace."""
    if trace is None:
        yield RunSpan()
        return
    parent = TraceContextTextMapPropagator().extract({"traceparent": job.trace_parent}) if job.trace_parent else None
    tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
    with tracer.start_as_current_span(
        f"process {job.queue_name}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "jobqueue",
            "messaging.operation.type": "process",
            "messaging.destination.name": job.queue_name,
            "messaging.message.id": job.job_id,
            "jobqueue.job_name": job.job_name,
            "jobqueue.attempt_number": job.attempt_number,
        },
        record_exception=False,
    ) as span:
        yield RunSpan(span)
