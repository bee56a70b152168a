"""Server interceptor that times every RPC, counts it by final status code and logs it.

It must be the outermost interceptor: it then sees the status of calls that inner
interceptors (authentication) or servicers end with `context.abort`. It never reads
call metadata, and logs only the method, code, duration, job id and peer, never a payload.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc

from queue_service.metrics import ServiceMetrics

logger = logging.getLogger("queue_service.rpc")

# Statuses that mean the server, not the caller, has a problem.
SERVER_ERRORS = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS, grpc.StatusCode.UNAVAILABLE}
)


def _job_id(*messages) -> str:
    """The job a call is about, from the request's job_id or the response's job; never anything else."""
    for message in messages:
        descriptor = getattr(message, "DESCRIPTOR", None)
        if descriptor is None:
            continue
        fields = descriptor.fields_by_name
        if "job_id" in fields and message.job_id:
            return message.job_id
        for name in ("job", "entry"):
            try:
                present = name in fields and message.HasField(name)
            except ValueError:  # a scalar or repeated field of that name
                present = False
            job_id = getattr(getattr(message, name), "job_id", "") if present else ""
            if isinstance(job_id, str) and job_id:
                return job_id
    return ""


def _final_code(context: grpc.ServicerContext, raised: bool) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if not raised:
        return grpc.StatusCode.OK
    # A stream the client gave up on ends with GeneratorExit; any other exception without abort is UNKNOWN.
    return grpc.StatusCode.UNKNOWN if context.is_active() else grpc.StatusCode.CANCELLED


class RpcObserver(grpc.ServerInterceptor):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        full_method = handler_call_details.method
        service, _, method = full_method.lstrip("/").rpartition("/")
        streaming = (handler.request_streaming, handler.response_streaming)
        rpc_type = {
            (False, False): "unary",
            (False, True): "server_stream",
            (True, False): "client_stream",
            (True, True): "bidi_stream",
        }[streaming]

        def finish(started: float, context, request, response, raised: bool) -> None:
            seconds = time.perf_counter() - started
            code = _final_code(context, raised)
            self.metrics.observe_rpc(service, method, rpc_type, code.name, seconds)
            is_error = code in SERVER_ERRORS
            level = logging.ERROR if is_error else logging.DEBUG
            if not logger.isEnabledFor(level):
                return
            fields = {
                "method": full_method,
                "code": code.name,
                "duration_ms": round(seconds * 1000, 3),
                "job_id": _job_id(request, response),
                "peer": context.peer(),
            }
            if is_error:
                details = context.details()
                fields["details"] = (
                    details.decode("utf-8", "replace") if isinstance(details, bytes) else (details or "")
                )
                logger.error("%s failed with %s", full_method, code.name, extra={"fields": fields})
            else:
                logger.debug("%s %s", full_method, code.name, extra={"fields": fields})

        if handler.response_streaming:
            behavior = handler.unary_stream or handler.stream_stream

            def observed(request_or_iterator, context):
                started = time.perf_counter()
                request = None if handler.request_streaming else request_or_iterator
                raised = True
                try:
                    yield from behavior(request_or_iterator, context)
                    raised = False
                finally:
                    finish(started, context, request, None, raised)

        else:
            behavior = handler.unary_unary or handler.stream_unary

            def observed(request_or_iterator, context):
                started = time.perf_counter()
                request = None if handler.request_streaming else request_or_iterator
                try:
                    response = behavior(request_or_iterator, context)
                except BaseException:
                    finish(started, context, request, None, True)
                    raise
                finish(started, context, request, response, False)
                return response

        return _handler_like(handler, observed)


def _handler_like(handler: grpc.RpcMethodHandler, behavior: Callable) -> grpc.RpcMethodHandler:
    factory = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return factory(
        behavior, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )
