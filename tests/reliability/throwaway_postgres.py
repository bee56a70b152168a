"""A PostgreSQL server of a test's own: `initdb` into a temporary folder, a free loopback port,
its own socket folder, so that stopping it never touches the machine's shared server.

PostgreSQL refuses to run as root; as root the cluster belongs to the `postgres` user and every
command runs through `runuser -u postgres`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

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


class ThrowawayPostgres:
    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="jobqueue-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
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
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; "immediate" is a crash: no checkpoint, recovery from the WAL on the next start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def is_running(self) -> bool:
        command = [*self.as_user, str(self.binaries / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0

    def destroy(self) -> None:
        """Stop it if it runs and delete its folder; safe to call at any point."""
        try:
            if self.data.exists() and self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
