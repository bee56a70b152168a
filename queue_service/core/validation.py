"""Input limits and checks shared by every operation; errors name the offending field."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from queue_service.core.errors import InvalidArgument, ResourceExhausted
from queue_service.domain import JSON_TEXT


@dataclass(frozen=True)
class Limits:
    max_name_length: int = 100
    max_job_id_length: int = 255
    max_worker_id_length: int = 255
    max_payload_bytes: int = 1024 * 1024
    max_error_bytes: int = 64 * 1024
    max_text_length: int = 10_000
    max_batch_size: int = 1000
    max_lease_jobs: int = 1000
    max_lease_duration: timedelta = timedelta(hours=24)
    max_wait: timedelta = timedelta(minutes=5)
    max_schedule_ahead: timedelta = timedelta(days=3650)
    max_priority: int = 1_000_000
    # Queues the server holds at most: enqueueing into a new queue beyond it is refused.
    max_queues: int = 10_000
    # The server's gRPC send limit: no reply may be larger, whatever a caller accepts.
    max_response_bytes: int = 8 * 1024 * 1024


# C0 controls and DEL; searched in C, where a generator over the characters cost a microsecond
# per name, three names per enqueued job.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def _has_control_characters(value: str) -> bool:
    return _CONTROL_CHARACTER.search(value) is not None


def require_name(value: str, field: str, max_length: int) -> str:
    if not value or not value.strip():
        raise InvalidArgument(f"{field} must not be empty", field=field)
    if len(value) > max_length:
        raise InvalidArgument(f"{field} is longer than {max_length} characters", field=field)
    if _has_control_characters(value):
        raise InvalidArgument(f"{field} must not contain control characters", field=field)
    return value


def optional_name(value: str, field: str, max_length: int) -> str | None:
    return require_name(value, field, max_length) if value else None


def check_text(value: str, field: str, max_length: int) -> str:
    if len(value) > max_length:
        raise InvalidArgument(f"{field} is longer than {max_length} characters", field=field)
    reject_nul(value, field)
    return value


def reject_nul(value: str, field: str) -> None:
    # PostgreSQL text and JSONB cannot hold NUL; refuse it on every backend alike.
    if "\x00" in value:
        raise InvalidArgument(f"{field} must not contain NUL characters", field=field)


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


def check_document(document: dict[str, Any] | None, field: str, max_bytes: int) -> dict[str, Any]:
    """A JSON object within the size limit, with no NaN, infinity or NUL (PostgreSQL's JSONB rejects them)."""
    document = document or {}
    checked_json(document, field, max_bytes)
    return document


def checked_json(document: dict[str, Any], field: str, max_bytes: int) -> str:
    """`document` as JSON_TEXT, once `check_document` would accept it."""
    try:
        encoded = JSON_TEXT.encode(document)
    except ValueError:
        raise InvalidArgument(f"{field} must not contain NaN or infinite numbers", field=field) from None
    except RecursionError:
        raise InvalidArgument(f"{field} is nested too deeply", field=field) from None
    # The text is ASCII (non-ASCII characters are escaped), so its length is its size in bytes.
    if len(encoded) > max_bytes:
        raise ResourceExhausted(f"{field} is larger than {max_bytes} bytes", field=field)
    if "\\u0000" in encoded and _contains_nul(document):
        raise InvalidArgument(f"{field} must not contain NUL characters", field=field)
    return encoded


# No duration a request gives may be longer, whatever the field: arithmetic with the clock then
# stays within the dates Python and both stores can hold.
LONGEST_DURATION = timedelta(days=3650)


def describe_duration(value: timedelta) -> str:
    """ "3650 days", "24 hours", "5 minutes", "1.5 seconds": the largest unit that divides it."""
    for unit, size in (("day", timedelta(days=1)), ("hour", timedelta(hours=1)), ("minute", timedelta(minutes=1))):
        if value >= size and not value % size:
            count = value // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    seconds = value.total_seconds()
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def check_duration(
    value: timedelta | None,
    field: str,
    *,
    default: timedelta | None = None,
    maximum: timedelta = LONGEST_DURATION,
    allow_zero: bool = True,
) -> timedelta | None:
    if value is None:
        return default
    seconds = value.total_seconds()
    if math.isnan(seconds) or seconds < 0:
        raise InvalidArgument(f"{field} must not be negative", field=field)
    if not allow_zero and seconds == 0:
        return default
    if value > min(maximum, LONGEST_DURATION):
        raise InvalidArgument(
            f"{field} must be at most {describe_duration(min(maximum, LONGEST_DURATION))}", field=field
        )
    return value


def check_range(value: int, field: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidArgument(f"{field} must be between {low} and {high}", field=field)
    return value
