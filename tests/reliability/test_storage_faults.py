"""SQLite storage faults on real files: a full disk, a read-only file, a damaged file, and files that
cannot be served at start.

The full disk is a small tmpfs filled up for real, the read-only file carries the immutable
attribute (which stops root too), damage is garbage written over pages. Mounting needs root;
without it those tests skip and say so.
"""

from __future__ import annotations

import array
import fcntl
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from jobqueue.v1 import job_service_pb2 as pb

from queue_service.api.server import QueueServer
from queue_service.clock import FakeClock
from queue_service.config import ConfigError
from tests.conftest import make_config
from tests.integration.test_health import NOT_SERVING, SERVING, Client

pytestmark = pytest.mark.slow

QUEUE_SERVICE = str(Path(sys.executable).parent / "queue-service")
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x10


def run_mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"needs root to mount file systems: mount {' '.join(args)}: {result.stderr.strip()}")


@contextmanager
def mounted(*args: str, target: Path) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    run_mount(*args, str(target))
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 4 MiB tmpfs of its own, so that filling it up touches nothing else."""
    with mounted("-t", "tmpfs", "-o", "size=4m", "tmpfs", target=tmp_path / "disk") as disk:
        yield disk


def set_immutable(path: Path, on: bool) -> None:
    with open(path, "rb") as file:
        flags = array.array("l", [0])
        fcntl.ioctl(file.fileno(), FS_IOC_GETFLAGS, flags, True)
        flags[0] = flags[0] | FS_IMMUTABLE_FL if on else flags[0] & ~FS_IMMUTABLE_FL
        fcntl.ioctl(file.fileno(), FS_IOC_SETFLAGS, flags, True)


def fill(disk: Path) -> Path:
    """Write a file until the file system is full; return it (delete it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\1" * 4096)
        except OSError:
            pass
    return filler


def enqueue_code(client: Client, job_id: str, payload_bytes: int = 0) -> grpc.StatusCode:
    request = pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id=job_id)
    if payload_bytes:
        request.job_data.update({"blob": "x" * payload_bytes})
    try:
        client.jobs.EnqueueJob(request, timeout=30)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@contextmanager
def serving(path: Path) -> Iterator[Client]:
    server = QueueServer(make_config(f"sqlite:///{path}"), clock=FakeClock()).start()
    client = Client(server)
    try:
        yield client
    finally:
        client.channel.close()
        server.stop(0)


def messages(caplog, level: int) -> str:
    return "\n".join(record.getMessage() for record in caplog.records if record.levelno >= level)


def test_a_full_disk_is_not_serving_until_space_returns(small_disk, sqlite_template, caplog):
    path = small_disk / "jobs.sqlite3"
    shutil.copy(sqlite_template, path)
    with caplog.at_level(logging.INFO), serving(path) as client:
        client.wait_for(SERVING)
        assert enqueue_code(client, "before") == grpc.StatusCode.OK
        filler = fill(small_disk)
        client.wait_for(NOT_SERVING)
        assert "disk full" in messages(caplog, logging.ERROR)
        # A write that needs new space fails, and fails as retryable.
        assert enqueue_code(client, "while-full", payload_bytes=200_000) == grpc.StatusCode.UNAVAILABLE
        filler.unlink()
        client.wait_for(SERVING)
        assert enqueue_code(client, "after", payload_bytes=200_000) == grpc.StatusCode.OK


def test_a_read_only_file_is_not_serving_until_writable_again(small_disk, sqlite_template, caplog):
    path = small_disk / "jobs.sqlite3"
    shutil.copy(sqlite_template, path)
    with caplog.at_level(logging.INFO), serving(path) as client:
        client.wait_for(SERVING)
        set_immutable(path, True)
        try:
            client.wait_for(NOT_SERVING)
            assert f"{path} is read-only" in messages(caplog, logging.ERROR)
        finally:
            set_immutable(path, False)
        client.wait_for(SERVING)
        assert enqueue_code(client, "after") == grpc.StatusCode.OK


def table_root_pages(path: Path, table: str) -> tuple[int, list[int]]:
    """(page size, root pages of the table and its indexes)."""
    with sqlite3.connect(path) as connection:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        rows = connection.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = ? AND rootpage > 0", (table,))
        roots = [row[0] for row in rows]
    return page_size, roots


def full_database(directory: Path, sqlite_template: Path) -> Path:
    """A migrated database with enough rows to span many pages, all checkpointed into the main file."""
    path = directory / "jobs.sqlite3"
    shutil.copy(sqlite_template, path)
    with serving(path) as client:
        for index in range(40):
            assert enqueue_code(client, f"job-{index}", payload_bytes=4000) == grpc.StatusCode.OK
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def test_a_damaged_file_answers_data_loss_and_is_not_serving(tmp_path, sqlite_template, caplog):
    path = full_database(tmp_path, sqlite_template)
    page_size, roots = table_root_pages(path, "queue_jobs")
    with open(path, "r+b") as file:
        for root in roots:
            file.seek((root - 1) * page_size)
            file.write(uuid.uuid4().bytes * (page_size // 16))
    with caplog.at_level(logging.INFO), serving(path) as client:
        with pytest.raises(grpc.RpcError) as raised:
            client.jobs.GetJob(pb.GetJobRequest(job_id="job-1"), timeout=10)
        assert raised.value.code() == grpc.StatusCode.DATA_LOSS
        assert "damaged" in raised.value.details()
        client.wait_for(NOT_SERVING)
        critical = [record for record in caplog.records if record.levelno == logging.CRITICAL]
        assert critical and "database file damaged" in critical[0].getMessage()


def bad_header(path: Path) -> None:
    with open(path, "r+b") as file:
        file.write(b"definitely not SQLite")


def truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize(("damage", "said"), [(bad_header, "bad header"), (truncated, "truncated")])
def test_serve_refuses_a_damaged_file_with_one_line(tmp_path, sqlite_template, damage, said):
    path = full_database(tmp_path, sqlite_template)
    damage(path)
    with pytest.raises(ConfigError, match=said):
        QueueServer(make_config(f"sqlite:///{path}"))
    result = subprocess.run(
        [QUEUE_SERVICE, "serve", "--port", "0", "--database-url", f"sqlite:///{path}"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and str(path) in lines[0], result.stderr


def test_serve_refuses_a_read_only_directory_with_one_line(tmp_path, sqlite_template):
    source = tmp_path / "data"
    source.mkdir()
    shutil.copy(sqlite_template, source / "jobs.sqlite3")
    with mounted("--bind", "-o", "ro", str(source), target=tmp_path / "read-only") as read_only:
        path = read_only / "jobs.sqlite3"
        result = subprocess.run(
            [QUEUE_SERVICE, "serve", "--port", "0", "--database-url", f"sqlite:///{path}"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], result.stderr
