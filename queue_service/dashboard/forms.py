"""Form values of the dashboard's pages: each refusal is a FieldError naming the form field, shown
next to it with status 400."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from queue_service.dashboard.pages import FieldError

# Form numbers go into int32 fields; durations no further than the service accepts.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
LONGEST_DURATION = timedelta(days=3650)


def parse_int(value: Any, label: str, field: str, *, minimum: int = INT32_MIN, maximum: int = INT32_MAX) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise FieldError(f"{label} must be a whole number", field) from None
    if number < minimum:
        raise FieldError(f"{label} must be at least {minimum}", field)
    if number > maximum:
        raise FieldError(f"{label} must be at most {maximum}", field)
    return number


def parse_float(value: Any, label: str, field: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        raise FieldError(f"{label} must be a number", field) from None
    if not math.isfinite(number):
        raise FieldError(f"{label} must be a finite number", field)
    return number


def parse_seconds(value: Any, label: str, field: str) -> timedelta | None:
    """Seconds, or a number with a unit: 30s, 5m, 2h, 7d; finite, not negative, at most 3650 days."""
    if value in (None, ""):
        return None
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    scale = units.get(text[-1:], None)
    number = text[:-1] if scale else text
    try:
        amount = float(number)
    except ValueError:
        raise FieldError(f"{label} must be seconds or a duration such as 30s, 5m, 2h, 7d", field) from None
    if not math.isfinite(amount):
        raise FieldError(f"{label} must be a finite duration", field)
    if amount < 0:
        raise FieldError(f"{label} must not be negative", field)
    seconds = amount * (scale or 1)
    if seconds > LONGEST_DURATION.total_seconds():
        raise FieldError(f"{label} must be at most {LONGEST_DURATION.days} days", field)
    if 0 < seconds < 0.001:
        # Otherwise 0.0000001s would silently become 0.
        raise FieldError(f"{label} is below the resolution of 1 millisecond (0.001s)", field)
    return timedelta(milliseconds=round(seconds * 1000))


def query_string(**values: Any) -> str:
    return urlencode({key: value for key, value in values.items() if value not in (None, "")})
