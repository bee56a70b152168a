"""The caller's W3C trace context, as the client's OpenTelemetry instrumentation sends it."""

from __future__ import annotations

import re

import grpc

from queue_service.store.schema import TRACE_PARENT_LENGTH

TRACE_PARENT_HEADER = "traceparent"
# version-traceid-parentid-flags; a version other than 00 may append fields after a dash.
_TRACE_PARENT = re.compile(r"^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(-[^\s]*)?$")


def valid_trace_parent(value: str) -> bool:
    if len(value) > TRACE_PARENT_LENGTH or not _TRACE_PARENT.match(value):
        return False
    # Version 00 has exactly four fields.
    return not (value.startswith("00-") and len(value) != 55)


def caller_trace_parent(context: grpc.ServicerContext) -> str:
    """The call's `traceparent` metadata, or "" if it sent none or a malformed one.

    W3C Trace Context says a malformed header is ignored, not refused: tracing never fails a call."""
    for key, value in context.invocation_metadata() or ():
        if key == TRACE_PARENT_HEADER and isinstance(value, str):
            value = value.strip().lower()
            return value if valid_trace_parent(value) else ""
    return ""
