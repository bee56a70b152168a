"""The client library installed alone (`pip install ./clients`) into a fresh virtual environment."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import venv
from pathlib import Path

import pytest

from tests.conftest import WORKER_TOKEN

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# What grpcio, protobuf and grpcio-status bring themselves (typing-extensions for grpcio,
# googleapis-common-protos for google.rpc) and the installer; nothing else may come along.
ALLOWED_DISTRIBUTIONS = {
    "jobqueue-client",
    "grpcio",
    "protobuf",
    "grpcio-status",
    "googleapis-common-protos",
    "typing-extensions",
    "pip",
    "setuptools",
    "wheel",
}


@pytest.fixture(scope="module")
def client_python(tmp_path_factory) -> Path:
    """The Python of a new virtual environment holding only the client distribution."""
    base = tmp_path_factory.mktemp("client-alone")
    source = base / "clients"
    shutil.copytree(
        ROOT / "clients", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "node_modules")
    )
    environment = base / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)], capture_output=True, text=True, timeout=600
    )
    assert installed.returncode == 0, installed.stderr
    return python


def run(python: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=120, cwd="/"
    )


def test_only_grpc_and_protobuf_come_along(client_python):
    listing = run(
        client_python,
        """
        import json, re, importlib.metadata as metadata
        names = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() for d in metadata.distributions()}
        print(json.dumps(sorted(names)))
        """,
    )
    assert listing.returncode == 0, listing.stderr
    names = set(json.loads(listing.stdout))
    assert "jobqueue-client" in names
    assert names <= ALLOWED_DISTRIBUTIONS, names - ALLOWED_DISTRIBUTIONS
    probe = run(
        client_python,
        """
        import importlib.util, sys
        for name in ("sqlalchemy", "queue_service", "alembic", "psycopg2"):
            assert importlib.util.find_spec(name) is None, name
        import jobqueue, jobqueue.v1.job_service_pb2, jobqueue.aio
        assert importlib.util.find_spec("celery") is None  # only with the [celery] extra
        from pathlib import Path
        package = Path(jobqueue.__file__).parent
        assert (package / "py.typed").exists()
        assert (package / "v1" / "job_service_pb2.pyi").exists()
        assert (package / "v1" / "admin_service_pb2.pyi").exists()
        print(sorted(jobqueue.__all__))
        """,
    )
    assert probe.returncode == 0, probe.stderr
    assert "'JobClient'" in probe.stdout and "'Worker'" in probe.stdout


def test_the_installed_client_calls_a_running_server(client_python, secured_service):
    result = run(
        client_python,
        """
        import sys
        from jobqueue import JobClient, NotFound
        target, token = sys.argv[1:3]
        with JobClient(target, token=token, timeout=10) as client:
            created = client.enqueue("emails", "send", {"to": "a@example.com"}, job_id="from-another-service")
            (job,) = client.lease("emails", worker_id="alone")
            client.track_completion(job.job_id, job.attempt_number, result={"sent": 1})
            details = client.get_job("from-another-service")
            try:
                client.get_job("absent")
            except NotFound as error:
                print("not found:", error.reason)
        print(created.created, details.job.state.value, details.job.result)
        """,
        secured_service.target,
        WORKER_TOKEN,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["not found: NOT_FOUND", "True completed {'sent': 1}"]
    # The server saw it too.
    from jobqueue.v1 import job_service_pb2 as pb

    job = secured_service.jobs.GetJob(
        pb.GetJobRequest(job_id="from-another-service"), metadata=(("authorization", f"Bearer {WORKER_TOKEN}"),)
    ).job
    assert job.worker_id == "alone"
