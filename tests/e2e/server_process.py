"""Runs `queue-service serve` as a real subprocess on a free port, and always stops it."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

LISTENING = "queue-service listening on "
DASHBOARD_LISTENING = "queue-service dashboard listening on "


def venv_tool(name: str) -> str:
    """A console script of this environment, else one on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found next to {sys.executable} or on PATH; install the test extra")
    return found


@dataclass
class ServerProcess:
    process: subprocess.Popen
    address: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@contextmanager
def serve(
    database_url: str, tmp_path: Path, *args: str, startup_timeout: float = 60, executable: str | None = None
) -> Iterator[ServerProcess]:
    """Start `queue-service serve --port 0`, wait until it listens, and kill it whatever happens.

    `executable` is another installation's `queue-service`; the default is this environment's.
    """
    log_path = tmp_path / f"serve-{os.getpid()}-{len(list(tmp_path.glob('serve-*')))}.log"
    env = {**os.environ, "QUEUE_DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    env.pop("QUEUE_PORT", None)
    command = [executable or venv_tool("queue-service"), "serve", "--host", "127.0.0.1", "--port", "0", *args]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            # Its own process group, so that server processes it spawns are killed with it.
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
        address = None
        while address is None:
            try:
                line = lines.get(timeout=startup_timeout)
            except queue.Empty:
                pytest.fail(f"queue-service did not start within {startup_timeout} s:\n{log_path.read_text()}")
            if line is None:
                process.wait(timeout=10)
                pytest.fail(f"queue-service exited with {process.returncode}:\n{log_path.read_text()}")
            if line.startswith(LISTENING):
                # "listening on HOST:PORT", perhaps followed by " with N processes (...)".
                address = line[len(LISTENING) :].split()[0]
        yield ServerProcess(process, address, log_path)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group has already exited
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()


@contextmanager
def dashboard_process(target: str, tmp_path: Path, *args: str, executable: str | None = None) -> Iterator[str]:
    """`queue-service dashboard --port 0` in its own process group; yields its base URL."""
    log_path = tmp_path / "dashboard.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "QUEUE_DASHBOARD_SECRET": "a-session-secret-for-end-to-end-tests"}
    command = [executable or venv_tool("queue-service"), "dashboard", "--port", "0", "--target", target, *args]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=tmp_path, start_new_session=True
        )
    try:
        lines: queue.Queue = queue.Queue()

        def read() -> None:
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                pytest.fail(f"the dashboard did not start within 60 s:\n{log_path.read_text()}")
            if line is None:
                process.wait(timeout=10)
                pytest.fail(f"the dashboard exited with {process.returncode}:\n{log_path.read_text()}")
            if line.startswith(DASHBOARD_LISTENING):
                yield line[len(DASHBOARD_LISTENING) :].split()[0]
                return
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)
        if process.stdout:
            process.stdout.close()
