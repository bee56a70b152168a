"""Output for people (aligned tables, key-value blocks, a progress bar) and for scripts (JSON)."""

from __future__ import annotations

import dataclasses
import enum
import json
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from jobqueue.models import Queue, RetryPolicy, RetryRule

from queue_service.durations import human_duration

MAX_CELL = 48


# JSON


def jsonable(value: Any) -> Any:
    """Dataclasses as objects, enums as their values, times as RFC 3339, durations as "1.5s" (as grpcurl shows them)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: jsonable(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def print_json(value: Any, out: TextIO) -> None:
    json.dump(jsonable(value), out, indent=2, ensure_ascii=False)
    out.write("\n")


# Cells


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def span(value: timedelta | None) -> str:
    """5s, 1m30s, 2h, 1d4h; milliseconds below a second (the dashboard writes them alike)."""
    return human_duration(value)


def backoff_parts(policy: RetryPolicy | RetryRule) -> list[str]:
    parts = []
    if policy.max_retries is not None:
        parts.append(f"max_retries={policy.max_retries}")
    if policy.retry_delays:
        parts.append("retry_delays=" + ",".join(span(delay) for delay in policy.retry_delays))
    if policy.max_delay is not None:
        parts.append(f"max_delay={span(policy.max_delay)}")
    if policy.jitter is not None:
        parts.append(f"jitter={policy.jitter:g}")
    return parts


def rule_text(rule: RetryRule) -> str:
    """A rule as --rule takes it: "TimeoutError max_retries=6 retry_delays=2s,4s"."""
    return " ".join([rule.error_type, *backoff_parts(rule), *([] if rule.retryable else ["retryable=false"])])


def shorten(text: str, width: int = MAX_CELL) -> str:
    text = " ".join(str(text).split())  # one line per row
    return text if len(text) <= width else text[: width - 1] + "…"


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, timedelta):
        return span(value)
    if isinstance(value, list | tuple):
        return shorten(", ".join(cell(item) for item in value))
    if isinstance(value, dict):
        return shorten(json.dumps(jsonable(value), separators=(",", ":"), sort_keys=True))
    return shorten(str(value))


# Blocks


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO) -> None:
    cells = [[cell(value) for value in row] for row in rows]
    widths = [max([len(header), *(len(row[index]) for row in cells)]) for index, header in enumerate(headers)]
    lines = [headers, *cells]
    for number, line in enumerate(lines):
        out.write("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip() + "\n")
        if number == 0:
            out.write("  ".join("-" * width for width in widths) + "\n")


def fields(pairs: Iterable[tuple[str, Any]], out: TextIO) -> None:
    """Aligned "name: value" lines; values keep their line breaks, indented."""
    pairs = list(pairs)
    width = max((len(name) for name, _ in pairs), default=0)
    for name, value in pairs:
        text = (value or "-") if isinstance(value, str) else cell(value)  # strings keep their line breaks
        lines = text.splitlines() or ["-"]
        out.write(f"{name + ':':<{width + 1}} {lines[0]}\n")
        for line in lines[1:]:
            out.write(f"{'':<{width + 1}} {line}\n")


def heading(title: str, out: TextIO) -> None:
    out.write(f"\n{title}\n")


class ProgressBar:
    """A one-line bar, redrawn in place on a terminal; elsewhere a line at most every `interval` seconds."""

    def __init__(self, out: TextIO, width: int = 30, interval: float = 1.0) -> None:
        self.out = out
        self.width = width
        self.interval = interval
        self.interactive = out.isatty()
        self._last_line: float | None = None
        self._drawn = ""

    def render(self, done: int, total: int, note: str) -> str:
        fraction = 1.0 if total <= 0 else min(1.0, done / total)
        filled = round(self.width * fraction)
        return f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {note}".rstrip()

    def update(self, done: int, total: int, note: str = "", *, final: bool = False) -> None:
        line = self.render(done, total, note)
        if self.interactive:
            self.out.write("\r" + line.ljust(len(self._drawn)))
            if final:
                self.out.write("\n")
            self.out.flush()
        elif final or self._last_line is None or time.monotonic() - self._last_line >= self.interval:
            self.out.write(line + "\n")
            self.out.flush()
            self._last_line = time.monotonic()
        self._drawn = line


def breaker_text(queue: Queue) -> str:
    """One line: the breaker's state and policy, or "off"."""
    policy = queue.circuit_breaker
    state = breaker_state(queue)
    if policy is None or state == "off":
        return "off"
    ratio = f"{policy.failure_ratio:g}" if policy.failure_ratio is not None else "?"
    return (
        f"{state} (opens at {ratio} of >= {policy.min_runs} runs in {span(policy.window)}, "
        f"cool-down {span(policy.cooldown)}, ramp {span(policy.ramp)})"
    )


def breaker_state(queue: Queue) -> str:
    """The breaker's state in a word, or "off"."""
    policy, status = queue.circuit_breaker, queue.circuit_breaker_status
    if policy is None or not policy.enabled:
        return "off"
    return status.state.value.replace("_", "-") if status else "closed"
