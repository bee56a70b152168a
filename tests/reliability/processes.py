"""`queue-service serve` as a subprocess the tests can start, kill -9 and restart on the same port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

QUEUE_SERVICE = str(Path(sys.executable).parent / "queue-service")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any QUEUE_* setting, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUEUE_")}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """One `queue-service serve` process; its log (stderr) goes to `log_path`, appended across restarts."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        port: int = 0,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        start_timeout: float = 60,
    ) -> None:
        self.database_url = database_url
        self.log_path = log_path
        self.port = port
        self.args = args
        self.env = env or clean_env()
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> ServerProcess:
        """Start, and wait for the "listening on" line; later starts reuse the first one's port."""
        command = [
            QUEUE_SERVICE,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
            *self.args,
        ]
        if "--workers" not in self.args:
            command += ["--workers", "1"]
        with self.log_path.open("a") as log:
            log.write(f"--- start {self.starts + 1}: {' '.join(command)}\n")
            log.flush()
            # Its own process group, so that kill() also reaches the children of `--workers N`.
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, text=True, env=self.env, start_new_session=True
            )
        self.starts += 1
        banner = self._read_banner()
        found = re.search(r"listening on [\d.]+:(\d+)", banner)
        if not found:
            self.kill()
            raise RuntimeError(f"server did not start ({banner!r}); log:\n{self.log_tail()}")
        self.port = int(found.group(1))
        return self

    def _read_banner(self) -> str:
        lines: list[str] = []
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        return lines[0].strip() if lines else ""

    def _kill_group(self) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL to the server and any children: no shutdown code runs, as in a crash or an OOM kill."""
        if self.process is not None:
            self._kill_group()
            self.process.wait(30)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL if it has not stopped within `timeout`; no child outlives it."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group()
        self.process.wait(30)
        return self.process.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def health_status(target: str, timeout: float = 2.0) -> int | None:
    """The grpc.health.v1 status of the whole server, or None if it does not answer."""
    with grpc.insecure_channel(target) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout).status
        except grpc.RpcError:
            return None


def wait_for(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
