"""Requests that cannot be decoded get INVALID_ARGUMENT, not gRPC's own INTERNAL.

gRPC deserializes a request before any servicer code runs and answers INTERNAL when that
fails (bytes that are not the message, invalid UTF-8 in a string, nesting beyond the
protobuf depth limit). This interceptor lets the decode failure reach the handler as a
value, which then aborts with a client error.
"""

from __future__ import annotations

import logging

import grpc

from queue_service.api.errors import rich_status

logger = logging.getLogger(__name__)


class UndecodableRequest:
    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserialize):
    def decode(data: bytes):
        try:
            return deserialize(data)
        except Exception as error:  # noqa: BLE001 - any decode failure is the client's
            return UndecodableRequest(error)

    return decode


def _rejecting(behavior, method: str):
    def handle(request, context):
        if isinstance(request, UndecodableRequest):
            logger.debug("undecodable request to %s: %s", method, request.error)
            context.abort_with_status(
                rich_status(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"request to {method} is not a valid message: {request.error}",
                    reason="MALFORMED_REQUEST",
                    field=None,
                )
            )
        return behavior(request, context)

    return handle


class UndecodableRequestInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        behavior = "unary_stream" if handler.response_streaming else "unary_unary"
        return handler._replace(
            request_deserializer=_tolerant(handler.request_deserializer),
            **{behavior: _rejecting(getattr(handler, behavior), method)},
        )
