"""Reads the hashed lock files (requirements.lock, requirements-test.lock) that scripts/lock_dependencies.sh writes."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.utils import canonicalize_name

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def canonical(name: str) -> str:
    return str(canonicalize_name(name))


def locked_entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """{canonical name: (version, its sha256 hashes)}, continuation lines joined."""
    text = path.read_text().replace("\\\n", " ")
    entries = {}
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            entries[canonical(match.group(1))] = (match.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
    return entries


def locked_versions(path: Path) -> dict[str, str]:
    return {name: version for name, (version, _) in locked_entries(path).items()}
