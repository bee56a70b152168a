"""A fresh, non-editable install (the README's first command, from the lock file) migrates and serves, with its packaged migrations."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jobqueue.v1 import job_service_pb2 as pb
from jobqueue.v1 import job_service_pb2_grpc
from sqlalchemy import create_engine

from queue_service.store import migrate
from tests.e2e.server_process import dashboard_process, serve
from tests.lock_files import canonical, locked_versions

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", "*.sqlite3*", "node_modules"
)


def run(command: list, **options) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **options)
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def test_pip_install_without_editable_mode_migrates_and_serves(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python, tool = venv / "bin" / "python", venv / "bin" / "queue-service"
    # The README's quick start: the locked, hash-checked dependencies, then the local packages alone.
    run([str(python), "-m", "pip", "install", "-q", "--require-hashes", "-r", "requirements.lock"], cwd=source)
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "./clients", "."], cwd=source)
    run([str(python), "-m", "pip", "check"])
    frozen = run([str(python), "-m", "pip", "freeze", "--exclude-editable"]).stdout.splitlines()
    installed = {canonical(name): version for name, _, version in (line.partition("==") for line in frozen)}
    assert {name: installed.get(name) for name in locked_versions(ROOT / "requirements.lock")} == locked_versions(
        ROOT / "requirements.lock"
    )
    # The source copy is gone: whatever runs now comes from the installed packages alone.
    shutil.rmtree(source)
    work = tmp_path / "work"
    work.mkdir()

    located = run(
        [
            str(python),
            "-c",
            "import queue_service.migrations as m, pathlib; "
            "print(pathlib.Path(m.__file__).parent); print(*sorted(p.name for p in pathlib.Path(m.__file__).parent.glob('versions/0*.py')))",
        ],
        cwd=work,
    ).stdout.split("\n")
    assert located[0].startswith(str(venv)), located
    shipped = located[1].split()
    expected = sorted(path.name for path in (ROOT / "migrations" / "versions").glob("0*.py"))
    assert shipped == expected

    url = f"sqlite:///{work / 'jobs.sqlite3'}"
    output = run([str(tool), "migrate", "--database-url", url], cwd=work).stdout
    engine = create_engine(url)
    try:
        head = migrate.head_revision(engine)
        assert migrate.current_revision(engine) == head
    finally:
        engine.dispose()
    assert f"database at revision {head}" in output

    with serve(url, work, executable=str(tool)) as server, grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        response = jobs.EnqueueJob(pb.EnqueueJobRequest(queue_name="q", job_name="n", job_id="installed"), timeout=10)
        assert response.created
        # The dashboard's templates and static files are package data of the installed copy.
        with dashboard_process(server.address, work, executable=str(tool)) as base_url:
            for path, expected_text in (
                ("/login", "Admin token"),
                ("/static/style.css", "--accent"),
                ("/static/app.js", "select-all"),
            ):
                with urllib.request.urlopen(f"{base_url}{path}", timeout=30) as page:
                    assert page.status == 200 and expected_text in page.read().decode(), path
        assert server.terminate() == 0
