"""Protobuf scalars and well-known types (Timestamp, Duration, Struct) to and from Python values;
a value out of range is INVALID_ARGUMENT naming its field."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from queue_service.core.errors import InvalidArgument, ResourceExhausted

MAX_DURATION_SECONDS = 315_576_000_000  # the protobuf Duration range


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    message = timestamp_pb2.Timestamp()
    set_timestamp(message, value)
    return message


def set_timestamp(field: timestamp_pb2.Timestamp, value: datetime) -> None:
    """`timestamp(value)` written into a message's Timestamp field in place (assigning makes it
    present, even at the epoch): a job sets several per reply, and building each one apart, then
    copying it, cost more."""
    # What Timestamp.FromDatetime does (naive means UTC), without its calendar.timegm: every job
    # in a response carries several timestamps, and that ran a tenth of a large lease's time.
    delta = (value if value.tzinfo else value.replace(tzinfo=UTC)) - EPOCH
    field.seconds = delta.days * 86_400 + delta.seconds
    field.nanos = delta.microseconds * 1000


def set_struct(field: struct_pb2.Struct, document: dict[str, Any]) -> None:
    """`struct(document)` written into a message's Struct field in place, present even when empty."""
    field.SetInParent()
    field.update(document)


def duration(value: timedelta | None) -> duration_pb2.Duration | None:
    if value is None:
        return None
    message = duration_pb2.Duration()
    message.FromTimedelta(value)
    return message


def duration_ms(milliseconds: int | None) -> duration_pb2.Duration | None:
    return None if milliseconds is None else duration(timedelta(milliseconds=milliseconds))


def to_timedelta(message: duration_pb2.Duration, field: str) -> timedelta:
    if abs(message.seconds) > MAX_DURATION_SECONDS or abs(message.nanos) >= 1_000_000_000:
        raise InvalidArgument(f"{field} is not a valid duration", field=field)
    if (message.seconds > 0 and message.nanos < 0) or (message.seconds < 0 and message.nanos > 0):
        raise InvalidArgument(f"{field} is not a valid duration", field=field)
    if message.seconds == 0 and 0 < abs(message.nanos) < 1000:
        # It would become 0: 1 ns would read as "not positive", -5 ns as an accepted 0.
        raise InvalidArgument(
            f"{field} is {message.nanos} ns, below the resolution of 1 microsecond that durations are kept in",
            field=field,
        )
    try:
        return message.ToTimedelta()
    except (OverflowError, ValueError):
        raise InvalidArgument(f"{field} is out of range", field=field) from None


def optional_timedelta(owner, name: str, field: str | None = None) -> timedelta | None:
    return to_timedelta(getattr(owner, name), field or name) if owner.HasField(name) else None


def optional_datetime(owner, name: str, field: str | None = None) -> datetime | None:
    return to_datetime(getattr(owner, name), field or name) if owner.HasField(name) else None


def to_datetime(message: timestamp_pb2.Timestamp, field: str) -> datetime:
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (OverflowError, ValueError):
        raise InvalidArgument(f"{field} is not a valid timestamp", field=field) from None


def struct(document: dict[str, Any] | None) -> struct_pb2.Struct | None:
    if document is None:
        return None
    message = struct_pb2.Struct()
    message.update(document)
    return message


def document(message: struct_pb2.Struct, field: str) -> dict[str, Any]:
    """The Struct as json_format.MessageToDict gives it, read without its per-value descriptor
    lookups and dispatch, at half its cost: every job of a batch carries one."""
    try:
        return _struct_dict(message)
    except (ValueError, RecursionError):
        raise InvalidArgument(f"{field} is not a valid JSON object", field=field) from None


def _struct_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    return {key: _value(value) for key, value in message.fields.items()}


def _value(message: struct_pb2.Value) -> Any:
    kind = message.WhichOneof("kind")
    if kind == "string_value":
        return message.string_value
    if kind == "number_value":
        number = message.number_value
        if math.isinf(number) or math.isnan(number):
            # MessageToDict refuses them too: JSON has no such number.
            raise ValueError("NaN or Infinity in a Struct")
        return number
    if kind == "bool_value":
        return message.bool_value
    if kind == "struct_value":
        return _struct_dict(message.struct_value)
    if kind == "list_value":
        return [_value(item) for item in message.list_value.values]
    return None  # null_value, or no kind set: MessageToDict reads both as null


# A leased job is its job_data plus at most this much: names, ids, policy, timestamps and the
# last error (10,000-character message, 64 KiB details).
JOB_ENVELOPE_BYTES = 128 * 1024
# The largest job_data, as sent, that a lease can still deliver to a client with gRPC's default
# 4 MiB receive limit. JSON can grow several times over as a Struct (a number costs 11 bytes).
MAX_DELIVERABLE_JOB_DATA_BYTES = 4 * 1024 * 1024 - JOB_ENVELOPE_BYTES


def deliverable_document(message: struct_pb2.Struct, field: str) -> dict[str, Any]:
    """A job's payload, refused when a leased job carrying it would not fit a default client's reply."""
    size = message.ByteSize()
    if size > MAX_DELIVERABLE_JOB_DATA_BYTES:
        raise ResourceExhausted(
            f"{field} is {size} bytes as sent, more than the {MAX_DELIVERABLE_JOB_DATA_BYTES} a leased job "
            "may carry to fit a worker's 4 MiB reply",
            field=field,
        )
    return document(message, field)


def finite(value: float, field: str) -> float:
    if math.isnan(value) or math.isinf(value):
        raise InvalidArgument(f"{field} must be a finite number", field=field)
    return value
