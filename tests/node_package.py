"""The Node.js client package under clients/node: installed from its lock file and built, for the tests that need it.

Node tests skip when node or npm is missing, unless CI=true or QUEUE_TEST_REQUIRE_NODE=1,
where that is a failure. The same goes for Redis and QUEUE_TEST_REQUIRE_REDIS.
"""

from __future__ import annotations

import json
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


def _packages(lock_file: Path) -> dict[str, dict]:
    packages = json.loads(lock_file.read_text())["packages"]
    return {path: entry for path, entry in packages.items() if path.startswith("node_modules/")}


def installed_from_lock(package: Path) -> bool:
    """True when node_modules holds what package-lock.json names, by npm's own record of the install."""
    record = package / "node_modules" / ".package-lock.json"
    if not record.exists():
        return False
    locked, present = _packages(package / "package-lock.json"), _packages(record)
    for path, entry in locked.items():
        if path not in present:
            if entry.get("optional"):
                continue  # an optional package for another platform
            return False
        if present[path].get("version") != entry.get("version"):
            return False
    return set(present) <= set(locked)


def npm_ci(package: Path) -> None:
    """`npm ci` in `package`, unless its node_modules already holds what the lock file names."""
    npm = npm_path()
    with _install_lock:
        if installed_from_lock(package):
            return
        run([npm, "ci", "--no-audit", "--no-fund"], package, timeout=600)


def run(command: list[str], cwd: Path, *, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a command; on failure, fail the test with its output."""
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
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
