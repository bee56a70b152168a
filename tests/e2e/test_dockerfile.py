"""The Dockerfile without a Docker engine: its COPY and pip install steps in a fresh venv, then its CMD and HEALTHCHECK.

The steps are read from the Dockerfile itself, so the test and the image cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.integration.test_metrics import free_port
from tests.lock_files import canonical, locked_versions

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments)


def test_dockerfile_basics():
    steps = instructions()
    keywords = [keyword for keyword, _ in steps]
    # A patch release: the same Dockerfile builds the same interpreter next year.
    assert steps[0][0] == "FROM" and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", steps[0][1])
    assert "USER" in keywords and dict(steps)["USER"] not in ("root", "0")
    assert "50051" in dict(steps)["EXPOSE"].split()
    assert dict(steps)["VOLUME"]
    assert exec_form(dict(steps)["HEALTHCHECK"].split("CMD", 1)[1])[:2] == ["queue-service", "health"]
    assert (ROOT / ".dockerignore").exists()
    # CMD adds nothing the ENV settings already say (QUEUE_HOST, QUEUE_PORT, ...).
    command = exec_form(dict(steps)["CMD"])
    assert command == ["queue-service", "serve"], command


def test_dockerfile_installs_the_locked_dependencies_then_the_local_packages_alone():
    installs = [
        arguments.split("&&")[0].strip()
        for keyword, arguments in instructions()
        if keyword == "RUN" and "pip install" in arguments
    ]
    assert installs[0] == "pip install --require-hashes -r requirements.lock", installs
    assert installs[1] == "pip install --no-deps ./clients .", installs
    copied = [shlex.split(arguments)[0] for keyword, arguments in instructions() if keyword == "COPY"]
    assert copied.index("requirements.lock") < copied.index("clients")


@pytest.mark.slow
def test_image_steps_install_and_serve_in_a_fresh_venv(tmp_path):
    steps = instructions()
    source = tmp_path / "src"
    source.mkdir()
    workdir = None
    env = {key: value for key, value in os.environ.items() if not key.startswith(("QUEUE_", "VIRTUAL_ENV"))}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    installed = False
    for keyword, arguments in steps:
        if keyword == "WORKDIR":
            workdir = arguments
        elif keyword == "COPY" and workdir == "/src":
            *sources, destination = shlex.split(arguments)
            target = source / destination
            for name in sources:
                origin = ROOT / name
                if origin.is_dir():
                    shutil.copytree(
                        origin,
                        target,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "node_modules"),
                    )
                elif destination.endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(origin, target / origin.name)
                else:
                    shutil.copy(origin, target)
        elif keyword == "RUN" and "pip install" in arguments:
            install = arguments.split("&&")[0].strip()
            result = subprocess.run(
                install, shell=True, cwd=source, env=env, capture_output=True, text=True, timeout=600
            )
            assert result.returncode == 0, result.stderr[-3000:]
            installed = True
        elif keyword == "ENV":
            for assignment in shlex.split(arguments):
                key, _, value = assignment.partition("=")
                env[key] = value
    assert installed, "the Dockerfile has no pip install step"
    # Exactly the locked versions, and nothing missing from the lock.
    frozen = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed_versions = {
        canonical(name): version
        for name, _, version in (line.partition("==") for line in frozen.splitlines() if "==" in line)
    }
    locked = locked_versions(ROOT / "requirements.lock")
    assert {name: installed_versions.get(name) for name in locked} == locked
    assert set(installed_versions) == set(locked)  # the local packages show as "name @ file://..."
    assert subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "check"], env=env).returncode == 0

    # The image's own settings, pointed at this test's directory and loopback ports.
    port = free_port()
    env.update(
        QUEUE_DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'jobqueue.sqlite3'}",
        QUEUE_PORT=str(port),
        QUEUE_METRICS_PORT=str(free_port()),
        QUEUE_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    healthcheck = exec_form(dict(steps)["HEALTHCHECK"].split("CMD", 1)[1])
    command = exec_form(dict(steps)["CMD"])
    env["QUEUE_HOST"] = "127.0.0.1"  # the image's 0.0.0.0, on loopback here

    before = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=30)
    assert before.returncode != 0
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in server.stdout.readline()
        during = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=30)
        assert during.returncode == 0, during.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert server.returncode == 0
    assert (tmp_path / "data" / "jobqueue.sqlite3").exists()
