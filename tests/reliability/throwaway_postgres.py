"""A PostgreSQL server of a test's own: `initdb` into a temporary folder, a free loopback port,
its own socket folder, so that stopping it never touches the machine's shared server.

PostgreSQL refuses to run as root; as root the cluster belongs to the `postgres` user and every
command runs through `runuser -u postgres`.

A cluster can also be a streaming-replication standby of another (`pg_basebackup -R`), which
`promote()` turns into a primary; `kill()` is the `kill -9` of a lost machine.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_POSTGRES_ENV
from tests.reliability.processes import free_port


def server_binaries() -> Path | None:
    """The bin folder of the newest installed PostgreSQL server, if any."""
    found = sorted(
        (Path(path).parent for path in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not found and shutil.which("initdb"):
        return Path(shutil.which("initdb")).parent
    return found[-1] if found else None


def required_server_binaries() -> Path:
    """The server binaries; without them the test fails where PostgreSQL is required (CI), else skips."""
    binaries = server_binaries()
    if binaries is None:
        message = "no PostgreSQL server binaries (initdb) installed"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return binaries


class ThrowawayPostgres:
    def __init__(
        self,
        binaries: Path,
        *,
        settings: dict[str, str] | None = None,
        standby_of: ThrowawayPostgres | None = None,
    ) -> None:
        """`settings` are passed as `-c name=value` at every start, so a base backup does not copy them."""
        self.binaries = binaries
        self.settings = settings or {}
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="jobqueue-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.as_user: list[str] = []
        self.killed = False
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        if standby_of is not None:
            # -R writes standby.signal and primary_conninfo: it starts as a standby streaming from there.
            self._run(
                "pg_basebackup",
                "-D",
                str(self.data),
                "-h",
                "127.0.0.1",
                "-p",
                str(standby_of.port),
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            )
            return
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        command = [*self.as_user, str(self.binaries / program), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr}\n{self.log_tail()}")

    def start(self) -> None:
        # fsync off: the tests stop the server process, they do not cut the machine's power.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        for name, value in self.settings.items():
            options += f" -c {name}={value}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; "immediate" is a crash: no checkpoint, recovery from the WAL on the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def kill(self) -> None:
        """SIGKILL to the postmaster and every process it started at once, as when its machine dies."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = [pid for pid in _all_pids() if _parent_of(pid) == postmaster]
        for pid in (postmaster, *children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.killed = True

    def promote(self) -> None:
        """End recovery on a standby (`pg_ctl promote`) and wait until it takes writes."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")

    def is_running(self) -> bool:
        command = [*self.as_user, str(self.binaries / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0

    def destroy(self) -> None:
        """Stop it if it runs and delete its folder; safe to call at any point."""
        try:
            if self.data.exists() and not self.killed and self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces; the parent id is the second field after it.
    return int(stat.rpartition(")")[2].split()[1])
