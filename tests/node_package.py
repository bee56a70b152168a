"""The Node.js client package under clients/node: installed from its lock file and built, for the tests that need it.

Node tests skip when node or npm is missing, unless CI=true or QUEUE_TEST_REQUIRE_NODE=1,
where that is a failure. The same goes for Redis and QUEUE_TEST_REQUIRE_REDIS.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE_PACKAGE = ROOT / "clients" / "node"
REQUIRE_NODE_ENV = "QUEUE_TEST_REQUIRE_NODE"
REQUIRE_REDIS_ENV = "QUEUE_TEST_REQUIRE_REDIS"
# Written into node_modules after `npm ci`: the lock file it was installed from.
INSTALLED_LOCK_STAMP = ".installed-lock-sha256"
_install_lock = threading.Lock()


def node_required() -> bool:
    return os.environ.get(REQUIRE_NODE_ENV) == "1" or os.environ.get("CI") == "true"


def npm_path() -> str:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        reason = "the Node.js tests need node and npm on PATH"
        if node_required():
            pytest.fail(f"{reason}; CI / {REQUIRE_NODE_ENV}=1 makes them mandatory")
        pytest.skip(reason)
    return npm


def require_redis(host: str = "127.0.0.1", port: int = 6379) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as error:
        reason = f"the BullMQ tests need Redis at {host}:{port} ({error})"
        if node_required() or os.environ.get(REQUIRE_REDIS_ENV) == "1":
            pytest.fail(f"{reason}; CI / {REQUIRE_REDIS_ENV}=1 makes them mandatory")
        pytest.skip(reason)


def npm_ci(package: Path) -> None:
    """`npm ci` in `package` unless its node_modules was installed from this very lock file."""
    npm = npm_path()
    lock = hashlib.sha256((package / "package-lock.json").read_bytes()).hexdigest()
    stamp = package / "node_modules" / INSTALLED_LOCK_STAMP
    with _install_lock:
        if stamp.exists() and stamp.read_text() == lock:
            return
        run([npm, "ci", "--no-audit", "--no-fund"], package, timeout=600)
        stamp.write_text(lock)


def run(command: list[str], cwd: Path, *, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a command; on failure, fail the test with its output."""
    completed = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        pytest.fail(f"{' '.join(command)} in {cwd} exited with {completed.returncode}:\n{output[-20000:]}")
    return output


def installed_node_package() -> Path:
    """clients/node with its dependencies installed from package-lock.json."""
    npm_ci(NODE_PACKAGE)
    return NODE_PACKAGE


def built_node_package() -> Path:
    """clients/node installed and built (dist/ and the compiled tests in build/test/)."""
    package = installed_node_package()
    npm = npm_path()
    run([npm, "run", "build"], package, timeout=300)
    run([npm, "run", "build:test"], package, timeout=300)
    return package
