"""Command-line values: durations such as 1h30m, times such as 2026-02-14T10:00:00Z or 2h (ago)."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobqueue.models import RetryRule

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def duration(text: str) -> timedelta:
    """ "90" (seconds), "500ms", "15s", "1h30m", "7d"."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return _bounded(seconds, text)
    position, seconds = 0, 0.0
    for match in DURATION_PART.finditer(value):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * UNITS[match.group(2)]
        position = match.end()
    if position != len(value) or not value:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90, 500ms, 15s, 1h30m, 7d)")
    return _bounded(seconds, text)


def _bounded(seconds: float, text: str) -> timedelta:
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 90, 500ms, 15s, 1h30m, 7d)")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} is too long") from None


def durations(text: str) -> tuple[timedelta, ...]:
    """A comma-separated list: "5s,15s,45s"; empty for ""."""
    return tuple(duration(part) for part in text.split(",") if part.strip())


def point_in_time(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when it has no offset), or a duration meaning that long ago."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return (now or datetime.now(UTC)) - duration(text)
        except (argparse.ArgumentTypeError, OverflowError):
            raise argparse.ArgumentTypeError(
                f"not a time: {text!r} (use ISO 8601 such as 2026-02-14T10:00:00Z, or a duration ago such as 2h)"
            ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


RULE_KEYS = ("max_retries", "retry_delays", "max_delay", "jitter", "retryable")
RULE_USAGE = (
    "use e.g. 'TimeoutError max_retries=6 retry_delays=2s,4s max_delay=2m' or 'ValidationError retryable=false'"
)


def retry_rule(text: str) -> RetryRule:
    """ "TimeoutError max_retries=6 retry_delays=2s,4s max_delay=2m", "ValidationError retryable=false"."""
    words = text.split()
    if not words or "=" in words[0]:
        raise argparse.ArgumentTypeError(f"not a rule: {text!r}: it starts with the error type; {RULE_USAGE}")
    error_type, *settings = words
    values: dict[str, Any] = {}
    for setting in settings:
        key, equals, value = setting.partition("=")
        if key not in RULE_KEYS or not equals:
            raise argparse.ArgumentTypeError(
                f"not a rule setting: {setting!r} in {text!r}; use {', '.join(RULE_KEYS)} as key=value"
            )
        if key in values:
            raise argparse.ArgumentTypeError(f"{key} is given twice in rule {text!r}")
        values[key] = _rule_value(key, value, text)
    return RetryRule(error_type=error_type, **values)


def _rule_value(key: str, value: str, text: str) -> Any:
    if key == "max_retries":
        return non_negative_int(value)
    if key == "retry_delays":
        return durations(value)
    if key == "max_delay":
        return duration(value)
    if key == "jitter":
        try:
            return float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"jitter is not a number in rule {text!r}: {value!r}") from None
    if value.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"retryable is true or false in rule {text!r}, not {value!r}")
    return value.lower() == "true"


def json_object(text: str, source: str = "--data") -> dict[str, Any]:
    """A JSON object, as a job's payload."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{source} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{source} must be a JSON object, not {type(value).__name__}")
    return value


def json_object_file(path: str) -> dict[str, Any]:
    """A JSON object read from a file ("-" reads standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {error.strerror}") from None
    return json_object(text, path)
