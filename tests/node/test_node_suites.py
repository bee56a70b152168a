"""Runs the Node.js client's own test files (node --test) against real `queue-service serve` processes.

The package is installed with `npm ci` from its lock file and built first. Each Node test file
is one test here, so a failure names the file and shows node's report.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import POSTGRES_URL_ENV, REQUIRE_POSTGRES_ENV, postgres_admin_url
from tests.e2e.server_process import venv_tool
from tests.node_package import REQUIRE_REDIS_ENV, built_node_package, node_required, require_redis, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node_package():
    return built_node_package()


def node_test_env() -> dict[str, str]:
    env = {**os.environ, "QUEUE_SERVICE_BIN": venv_tool("queue-service")}
    if postgres_admin_url():
        env[POSTGRES_URL_ENV] = postgres_admin_url()
    if node_required():
        env[REQUIRE_REDIS_ENV] = "1"
    return env


def run_node_tests(package, test_file: str) -> str:
    output = run(
        ["node", "--test", "--test-concurrency=1", f"build/test/{test_file}"],
        package,
        timeout=540,
        env=node_test_env(),
    )
    passed = int(re.search(r"^# pass (\d+)$", output, re.MULTILINE).group(1))
    failed = int(re.search(r"^# fail (\d+)$", output, re.MULTILINE).group(1))
    assert failed == 0, output
    assert passed > 0, f"node ran no test:\n{output}"
    return output


@pytest.mark.timeout(600)
def test_node_clients_on_sqlite_and_postgresql(node_package):
    if not postgres_admin_url() and os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"{POSTGRES_URL_ENV} is not set, and {REQUIRE_POSTGRES_ENV}=1 makes PostgreSQL mandatory")
    output = run_node_tests(node_package, "client.test.js")
    if postgres_admin_url():
        assert re.search(r"^ok \d+ - clients on postgresql$", output, re.MULTILINE), output


@pytest.mark.timeout(600)
def test_node_transport_retries_and_tls(node_package):
    run_node_tests(node_package, "transport.test.js")


@pytest.mark.timeout(600)
def test_bullmq_tracking_on_redis(node_package):
    require_redis()
    output = run_node_tests(node_package, "bullmq.test.js")
    assert "# SKIP" not in output, output


@pytest.mark.timeout(600)
def test_node_client_fails_over_between_replicas(node_package):
    if not postgres_admin_url():
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{POSTGRES_URL_ENV} is not set, and {REQUIRE_POSTGRES_ENV}=1 makes PostgreSQL mandatory")
        pytest.skip(f"three replicas share one PostgreSQL database: set {POSTGRES_URL_ENV}")
    output = run_node_tests(node_package, "failover.test.js")
    assert "# SKIP" not in output, output
