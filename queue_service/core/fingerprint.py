"""Error fingerprints: messages that differ only in ids, numbers or quoted values group together."""

from __future__ import annotations

import hashlib
import re

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.I), "<url>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<address>"),
    (re.compile(r"(?<![\w:])\[?(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{1,4}\]?(?::\d+)?(?![\w:])", re.I), "<address>"),
    (re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`"), "<value>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]


def normalise_message(message: str) -> str:
    normalised = message.strip()
    for pattern, replacement in _PATTERNS:
        normalised = pattern.sub(replacement, normalised)
    return normalised.strip()


def fingerprint(error_type: str, message: str) -> str:
    """A short stable hash of the error type and the normalised message."""
    digest = hashlib.sha256(f"{error_type.strip()}\n{normalise_message(message)}".encode()).hexdigest()
    return digest[:16]
