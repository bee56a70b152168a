"""OpenTelemetry traces: a span per RPC (the contrib gRPC instrumentation) exported over OTLP.

Off unless the standard OTEL_* variables ask for it: an OTLP endpoint
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER=otlp.
OTEL_SDK_DISABLED=true turns it off whatever else is set. When off, the server installs no
interceptor and creates no spans. The exporter reads the rest of its settings (protocol,
headers, time-out, sampler, OTEL_SERVICE_NAME) from the same variables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import grpc
from opentelemetry.instrumentation.grpc import server_interceptor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import TracerProvider as TracerProviderApi
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from queue_service.core.events import JobEvent, ServiceEvents
from queue_service.core.retry import RetryDecision
from queue_service.domain import JobRecord

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "queue-service"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_requested(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return exporter == "otlp" or any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    ).strip()
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    return GrpcExporter()


def tracer_provider_from_environment(environ: Mapping[str, str]) -> TracerProvider | None:
    """A provider that batches spans to the configured OTLP endpoint, or None when tracing is off."""
    if not tracing_requested(environ):
        return None
    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES.
    resource = Resource.create({SERVICE_NAME: environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(environ)))
    logger.info("tracing: exporting spans over OTLP")
    return provider


def rpc_span_interceptor(provider: TracerProviderApi) -> grpc.ServerInterceptor:
    """A server span for every RPC, child of the caller's `traceparent` when it sent one."""
    return server_interceptor(tracer_provider=provider)


class TracingEvents:
    """The core's events for `inner` (the metrics), plus a span per decision the sweep takes for
    a job whose lease expired, in the trace the job was enqueued in: a job's trace shows it
    retried or dead-lettered after a worker went silent, as it shows reported failures."""

    def __init__(self, inner: ServiceEvents, provider: TracerProviderApi) -> None:
        self.inner = inner
        self.tracer = provider.get_tracer("queue_service")

    def job_event(self, event: JobEvent, queue_name: str, count: int = 1) -> None:
        self.inner.job_event(event, queue_name, count)

    def job_processed(self, queue_name: str, seconds: float) -> None:
        self.inner.job_processed(queue_name, seconds)

    def sweep_finished(self, *, duration_seconds: float, counts: Mapping[str, int], succeeded: bool) -> None:
        self.inner.sweep_finished(duration_seconds=duration_seconds, counts=counts, succeeded=succeeded)

    def lease_expiry_decided(self, job: JobRecord, decision: RetryDecision, dead_letter_id: str) -> None:
        self.inner.lease_expiry_decided(job, decision, dead_letter_id)
        if not job.trace_parent:
            return
        parent = TraceContextTextMapPropagator().extract({"traceparent": job.trace_parent})
        attributes: dict[str, str | int | float] = {
            "jobqueue.job_id": job.job_id,
            "messaging.destination.name": job.queue_name,
            "jobqueue.attempt_number": job.attempt_number,
            "jobqueue.remaining_retries": decision.remaining_retries,
        }
        span = self.tracer.start_span(f"lease expired {job.queue_name}", context=parent, attributes=attributes)
        try:
            if decision.should_retry:
                span.add_event(
                    "job.retry_scheduled", {"jobqueue.retry_delay_seconds": decision.retry_delay.total_seconds()}
                )
            else:
                reason = decision.death_reason.value if decision.death_reason else ""
                span.add_event(
                    "job.dead_lettered", {"jobqueue.death_reason": reason, "jobqueue.dead_letter_id": dead_letter_id}
                )
        finally:
            span.end()
