"""Recognises SQLite storage faults: a damaged file, a full disk, a file or directory it cannot write."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

SQLITE_BUSY = 5
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26
HEADER_MAGIC = b"SQLite format 3\x00"
HEADER_BYTES = 100
# Below this much free space a commit may fail at any moment (WAL frames, checkpoints).
MIN_FREE_BYTES = 1024 * 1024


def sqlite_error(error: BaseException) -> sqlite3.Error | None:
    """The sqlite3 error behind `error` (a SQLAlchemy wrapper or the error itself)."""
    original = getattr(error, "orig", error)
    return original if isinstance(original, sqlite3.Error) else None


def _primary_code(error: BaseException) -> int | None:
    original = sqlite_error(error)
    code = getattr(original, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_corruption(error: BaseException) -> bool:
    """SQLITE_CORRUPT or SQLITE_NOTADB: the file's contents are damaged, retrying will not help."""
    return _primary_code(error) in (SQLITE_CORRUPT, SQLITE_NOTADB)


def describe(error: BaseException) -> str:
    """SQLite's own words for a failure ("database or disk is full"), without statement or parameters."""
    original = sqlite_error(error)
    return str(original) if original is not None else type(error).__name__


def header_problem(path: Path) -> str | None:
    """What is wrong with the file's header, or None for a sound, empty or missing file.

    SQLite opens a truncated file without complaint and fails only when a query reaches a
    missing page; the header's page count (valid while its change counter matches) tells.
    """
    try:
        size = path.stat().st_size
        if size == 0 or path.is_dir():
            return None
        with path.open("rb") as file:
            header = file.read(HEADER_BYTES)
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"unreadable ({error.strerror})"
    if len(header) < HEADER_BYTES or not header.startswith(HEADER_MAGIC):
        return "not an SQLite database (bad header)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"not an SQLite database (bad page size {page_size} in its header)"
    page_count = int.from_bytes(header[28:32], "big")
    counts_valid = header[24:28] == header[92:96]
    if counts_valid and size < page_count * page_size:
        return f"truncated ({size} bytes, its header says {page_count * page_size})"
    return None


def free_space_problem(path: Path) -> str | None:
    """A full (or all but full) file system under the database file."""
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return None
    # root may also use the blocks reserved for it, which f_bavail leaves out.
    blocks = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail
    free = blocks * stats.f_frsize
    if free < MIN_FREE_BYTES:
        return f"disk full: {free} bytes free on the file system of {path}"
    return None


def read_only_problem(path: Path) -> str | None:
    """A database file, journal or directory this process may not write (mode, immutable, read-only mount).

    Asked of the kernel without opening the file: closing a descriptor of a file SQLite holds
    would drop SQLite's locks on it.
    """
    journals = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    for candidate in [path, *[journal for journal in journals if journal.exists()], path.parent]:
        if not os.access(candidate, os.W_OK, effective_ids=os.access in os.supports_effective_ids):
            return f"{candidate} is read-only"
    return None


def write_probe(path: Path, timeout: float) -> None:
    """Commit a change that changes nothing, on a new connection; raise sqlite3.Error if that fails.

    A database busy with another writer is not a fault.
    """
    # mode=rw: never create the file (a missing one is a fault, not a fresh database).
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=timeout, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("UPDATE alembic_version SET version_num = version_num")
        connection.execute("COMMIT")
    except sqlite3.OperationalError as error:
        if (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF != SQLITE_BUSY:
            raise
    finally:
        connection.close()
