"""Logging set-up: plain text or one JSON object per line, with credentials scrubbed.

Structured values travel as `extra={"fields": {...}}`: JSON lines carry them as keys,
text lines append them as key=value.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from queue_service.config import ConfigError

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Defence in depth: the service never logs metadata, but a credential must not leak through a message either.
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)\s+[^\s,;'\"]+")


def scrub(text: str) -> str:
    return _CREDENTIAL.sub(lambda match: f"{match.group(1)} [redacted]", text)


def _fields(record: logging.LogRecord) -> dict:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{key}={value}" for key, value in _fields(record).items() if value not in (None, ""))
        return scrub(f"{line} {extras}" if extras else line)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": scrub(record.getMessage()),
        }
        for key, value in _fields(record).items():
            entry.setdefault(key, scrub(value) if isinstance(value, str) else value)
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def check_logging_options(level: str, log_format: str) -> tuple[str, str]:
    level, log_format = level.upper(), log_format.lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"--log-level / QUEUE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    if log_format not in LOG_FORMATS:
        raise ConfigError(
            f"--log-format / QUEUE_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}"
        )
    return level, log_format


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Send every log record to stderr in the chosen format; replaces earlier handlers."""
    level, log_format = check_logging_options(level, log_format)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # At DEBUG SQLAlchemy would log result rows, i.e. job data; APScheduler logs every timer tick
    # at INFO. Their warnings and errors still come through.
    for noisy in ("sqlalchemy", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
