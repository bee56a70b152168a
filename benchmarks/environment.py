"""Databases made for one benchmark run, and the `queue-service serve` subprocess under test."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from queue_service.store import migrate
from queue_service.store.database import SQLITE_BUSY_TIMEOUT_MS, normalise_url

QUEUE_SERVICE = str(Path(sys.executable).parent / "queue-service")


class BenchDatabase:
    """One migrated database; `connect()` gives a raw DB-API connection for the floor and the set-up."""

    def __init__(self, backend: str, url: str, *, path: Path | None = None, name: str | None = None) -> None:
        self.backend = backend
        self.url = url
        self.path = path
        self.name = name

    def connect(self):
        if self.backend == "sqlite":
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            connection.execute("PRAGMA journal_mode=WAL")
            # The service's durability (queue_service/store/database.py): the floor's commits sync the WAL too.
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA foreign_keys=ON")
            return connection
        url = make_url(self.url)
        connection = psycopg2.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            dbname=url.database,
            options="-c timezone=UTC",
        )
        return connection


class Databases:
    """Creates fresh migrated databases from one template per backend and drops them all at the end."""

    def __init__(self, postgres_url: str, workdir: Path) -> None:
        self.admin_url = normalise_url(postgres_url)
        self.workdir = workdir
        self.prefix = f"bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.created: list[str] = []
        self.templates: dict[str, object] = {}
        self.counter = 0

    def _admin(self):
        return create_engine(self.admin_url, isolation_level="AUTOCOMMIT")

    def _template(self, backend: str):
        if backend in self.templates:
            return self.templates[backend]
        if backend == "sqlite":
            path = self.workdir / "template.sqlite3"
            engine = create_engine(f"sqlite:///{path}")
            migrate.upgrade(engine)
            engine.dispose()
            self.templates[backend] = path
            return path
        name = f"{self.prefix}_template"
        admin = self._admin()
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.created.append(name)
        engine = create_engine(self.admin_url.set(database=name))
        migrate.upgrade(engine)
        engine.dispose()
        self.templates[backend] = name
        return name

    def create(self, backend: str, label: str) -> BenchDatabase:
        template = self._template(backend)
        self.counter += 1
        if backend == "sqlite":
            path = self.workdir / f"{label}_{self.counter}.sqlite3"
            shutil.copy(template, path)
            return BenchDatabase(backend, f"sqlite:///{path}", path=path)
        name = f"{self.prefix}_{label}_{self.counter}"
        admin = self._admin()
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        admin.dispose()
        self.created.append(name)
        url = self.admin_url.set(database=name).render_as_string(hide_password=False)
        return BenchDatabase(backend, url, name=name)

    def drop(self, database: BenchDatabase) -> None:
        if database.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{database.path}{suffix}").unlink(missing_ok=True)
            return
        admin = self._admin()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)'))
        admin.dispose()
        self.created.remove(database.name)

    def close(self) -> None:
        if self.created:
            admin = self._admin()
            with admin.connect() as connection:
                for name in reversed(self.created):
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
            self.created.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`queue-service serve` on a free loopback port, stopped with SIGTERM."""

    def __init__(self, database: BenchDatabase, *, workers: int | None, extra_args: list[str], log_dir: Path) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        args = [
            QUEUE_SERVICE,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database-url",
            database.url,
            "--no-migrate",
            "--metrics-port",
            "0",
            "--log-level",
            "WARNING",
            *extra_args,
        ]
        if workers:
            args += ["--workers", str(workers)]
        env = {key: value for key, value in os.environ.items() if not key.startswith("QUEUE_")}
        self.log_path = log_dir / f"server-{self.port}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(120)
        if not lines or "listening on" not in lines[0]:
            self.stop()
            raise RuntimeError(f"queue-service did not start: {lines!r}\n{self.log_path.read_text()}")

    def pids(self) -> list[int]:
        """The server process and its children (the server processes of --workers N)."""
        found = [self.process.pid]
        index = 0
        while index < len(found):
            pid = found[index]
            index += 1
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    children = (task / "children").read_text().split()
                    found.extend(int(child) for child in children)
            except OSError:
                continue
        return found

    def rss_bytes(self) -> int:
        """Resident memory of every server process, summed."""
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="queue-bench-"))


def wait_quiet(seconds: float) -> None:
    """Let background work (autovacuum, WAL writer) settle between phases."""
    time.sleep(seconds)
