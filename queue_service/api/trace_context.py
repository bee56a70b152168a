"""The caller's W3C trace context, as the client's OpenTelemetry instrumentation sends it."""

from __future__ import annotations

import re

import grpc
from opentelemetry import trace

from queue_service.core.jobs import FailureOutcome
from queue_service.domain import TRACE_PARENT_LENGTH, JobState

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


def record_failure_decision(job_id: str, attempt_number: int, outcome: FailureOutcome) -> None:
    """The retry or dead-letter decision as an event of the RPC's span (nothing when tracing is off)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    decision = outcome.decision
    attributes: dict[str, str | int | float] = {
        "jobqueue.job_id": job_id,
        "jobqueue.attempt_number": attempt_number,
        "jobqueue.remaining_retries": decision.remaining_retries,
    }
    if decision.should_retry:
        attributes["jobqueue.retry_delay_seconds"] = decision.retry_delay.total_seconds()
        span.add_event("job.retry_scheduled", attributes)
    elif outcome.dead_letter is None and outcome.job.record.state == JobState.CANCELLED:
        span.add_event("job.cancelled", attributes)
    else:
        if decision.death_reason is not None:
            attributes["jobqueue.death_reason"] = str(decision.death_reason.value)
        if outcome.dead_letter is not None:
            attributes["jobqueue.dead_letter_id"] = outcome.dead_letter.id
        span.add_event("job.dead_lettered", attributes)
