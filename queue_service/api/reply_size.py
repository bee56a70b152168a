"""Keeps replies within what a gRPC client accepts by default: the bytes a leased job adds, and
error details shortened where a job record would not fit otherwise."""

from __future__ import annotations

from google.protobuf.message import Message
from jobqueue.v1 import job_pb2

from queue_service.core.jobs import DEFAULT_RESPONSE_BYTES

JOB_ERROR = job_pb2.JobError.DESCRIPTOR


def varint_bytes(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def leased_job_bytes(message: Message) -> int:
    """Bytes one job adds to a LeaseJobsResponse: its field tag, its length and the job itself."""
    size = message.ByteSize()
    return 1 + varint_bytes(size) + size


def _job_errors(message: Message) -> list[Message]:
    """Every JobError inside `message`, at any depth (payload Structs are not searched)."""
    found = []
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.full_name.startswith("google.protobuf."):
            continue
        if field.message_type.GetOptions().map_entry:
            continue
        items = [value] if isinstance(value, Message) else value
        for item in items:
            if field.message_type is JOB_ERROR:
                found.append(item)
            else:
                found.extend(_job_errors(item))
    return found


def shorten_error_details(reply: Message, limit: int = DEFAULT_RESPONSE_BYTES) -> Message:
    """`reply`, with the details of its errors cut to the longest common length that keeps it
    within `limit` bytes, each cut one saying how much it lost. A reply that fits is unchanged."""
    if reply.ByteSize() <= limit:
        return reply
    errors = [(error, error.details) for error in _job_errors(reply)]

    def cut_to(length: int) -> int:
        for error, details in errors:
            if len(details) > length:
                error.details = f"{details[:length]}\n[{len(details) - length} more characters left out of this reply]"
            else:
                error.details = details
        return reply.ByteSize()

    low, high = 0, max((len(details) for _, details in errors), default=0)
    while low < high:  # the longest length that fits
        middle = (low + high + 1) // 2
        if cut_to(middle) <= limit:
            low = middle
        else:
            high = middle - 1
    cut_to(low)
    return reply
