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
