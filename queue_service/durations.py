"""Durations as people read them, the same in queue-admin and the dashboard: 5s, 2m15s, 1h, 1d4h."""

from __future__ import annotations

from datetime import timedelta


def human_duration(value: timedelta | None, missing: str = "-") -> str:
    """5s, 1m30s, 2h, 1d4h; milliseconds below a second; `missing` for no value."""
    if value is None:
        return missing
    seconds = value.total_seconds()
    if seconds == 0:
        return "0s"
    if seconds < 0:
        return "-" + human_duration(-value)
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts = []
    remaining = round(seconds, 3)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if remaining:
        parts.append(f"{remaining:g}s")
    return "".join(parts) or "0s"
