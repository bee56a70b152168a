"""The README's "Run on PostgreSQL" walk-through, run as one script, as written, on the local PostgreSQL.

Only the ports and the database name change, so that parallel runs do not collide: the bash blocks
run in order in one shell (the replicas in its background), each Python block at its place through
`python3 -`, with this environment's console scripts first on PATH.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import postgres_admin_url, skip_or_fail_without_postgres
from tests.e2e.server_process import venv_tool
from tests.integration.test_metrics import free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "Run on PostgreSQL"
# What the walk-through names, and what this run uses instead.
DATABASE = "jobsdb"
PORTS = ("50051", "50052", "9464", "9465")


def walkthrough() -> str:
    """The section's code blocks as one bash script, in order."""
    body = README.read_text().split(f"\n## {SECTION}\n", 1)[1].split("\n## ", 1)[0]
    parts = []
    for language, code in re.findall(r"```(bash|python)\n(.*?)```", body, flags=re.S):
        parts.append(code if language == "bash" else f"python3 - <<'PYTHON'\n{code}PYTHON\n")
    return "".join(parts)


def test_the_walkthrough_names_each_step():
    script = walkthrough()
    for step in (
        "createdb",
        "queue-service migrate",
        "--workers 2",
        "queue-service health",
        "JobClient(",
        "Worker(",
        "queue-admin recovery status",
        "/metrics",
        "pg_stat_activity",
        "kill %1 %2",
    ):
        assert step in script, step


def test_the_walkthrough_runs_as_written(tmp_path):
    admin_url = postgres_admin_url()
    if not admin_url:
        skip_or_fail_without_postgres()
    url = make_url(admin_url)
    if (url.host, url.port or 5432, url.username) != ("127.0.0.1", 5432, "postgres"):
        pytest.skip("the walk-through addresses postgres@127.0.0.1:5432")
    database = f"jobqueue_walkthrough_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    script = walkthrough().replace(DATABASE, database)
    for port in PORTS:
        script = re.sub(rf"\b{port}\b", str(free_port()), script)

    env = {key: value for key, value in os.environ.items() if not key.startswith(("QUEUE_", "PROMETHEUS_"))}
    env["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), str(Path(venv_tool("grpcurl")).parent), env["PATH"]]
    )
    process = subprocess.Popen(
        ["bash", "-c", "set -euo pipefail\n" + script],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the replicas run in its background: one group to clean up
    )
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the walk-through did not finish within 300 s:\n{stdout}\n{stderr}")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()

    assert process.returncode == 0, f"{stdout}\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert "20 jobs done" in stdout
    assert len(re.findall(r"jobqueue\.worker: job \S+ \(send\) attempt 1 completed in ", stderr)) == 20, stderr
    assert re.search(r"^emails\s+running\s+0\s+0\s+0\s+20\b", stdout, flags=re.M), stdout  # queue-admin stats
    assert re.search(r"^leader:\s+replica-[ab]/sweeper$", stdout, flags=re.M), stdout  # queue-admin recovery status
    assert re.search(r"^queue_service_queue_gauges_up 1\.0$", stdout, flags=re.M), stdout  # the metrics
    assert "database at revision" in stdout
