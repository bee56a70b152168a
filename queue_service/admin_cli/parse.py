"""Command-line values: durations such as 1h30m, times such as 2026-02-14T10:00:00Z or 2h (ago)."""

from __future__ import annotations

import argparse
import math
import re
from datetime import UTC, datetime, timedelta

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
