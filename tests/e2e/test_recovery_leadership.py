"""Recovery status and the last-sweep metric agree across every process of every replica.

Two `queue-service serve --workers 2` replicas on one PostgreSQL database. Each call opens a new
connection, which the kernel hands to either process of the replica (SO_REUSEPORT): whichever
answers, the leader, its next sweep and the last run are the database's, and only the leading
replica says it leads. Both replicas' /metrics export the cluster's last successful sweep.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from jobqueue import AdminClient

from tests.conftest import _truncate_postgres
from tests.e2e.server_process import serve, venv_tool
from tests.integration.test_metrics import free_port, scrape
from tests.reliability.processes import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CALLS_PER_REPLICA = 16
LAST_SWEEP = ("queue_service_sweep_last_success_timestamp_seconds", ())
# Sweeps on the timer are far apart, so the next sweep's time stands still while the test reads it.
REPLICA_OPTIONS = ("--workers", "2", "--recovery-interval", "600", "--leader-lease-term", "4")


def status(target: str):
    # A new client is a new connection, so consecutive calls reach different processes.
    with AdminClient(target, timeout=10) as admin:
        return admin.get_recovery_status(page_size=1)


def answers(target: str) -> set[tuple]:
    return {
        (report.leader_node_id, report.is_leader, report.next_run_at, report.last_run_at, report.total_runs)
        for report in (status(target) for _ in range(CALLS_PER_REPLICA))
    }


def test_every_process_of_every_replica_gives_the_same_true_answer(postgres_session_url, tmp_path):
    _truncate_postgres(postgres_session_url)
    metrics_a, metrics_b = free_port(), free_port()
    with serve(
        postgres_session_url, tmp_path, *REPLICA_OPTIONS, "--node-id", "replica-a", "--metrics-port", str(metrics_a)
    ) as a:
        wait_for(
            lambda: status(a.address).leader_node_id == "replica-a/sweeper", timeout=30, message="replica a to lead"
        )
        with serve(
            postgres_session_url, tmp_path, *REPLICA_OPTIONS, "--node-id", "replica-b", "--metrics-port", str(metrics_b)
        ) as b:
            # Before any successful sweep, no replica claims one.
            assert LAST_SWEEP not in scrape(metrics_a) and LAST_SWEEP not in scrape(metrics_b)

            leading, following = answers(a.address), answers(b.address)
            assert len(leading) == 1 and len(following) == 1, (leading, following)
            ((leader, a_leads, next_run, last_run, runs),) = leading
            assert (leader, a_leads, last_run, runs) == ("replica-a/sweeper", True, None, 0)
            assert next_run is not None
            assert following == {("replica-a/sweeper", False, next_run, None, 0)}

            # A sweep run by any process of the follower: both replicas report it, and export it.
            with AdminClient(b.address, timeout=30) as admin:
                run = admin.trigger_recovery()
            # Handed over by whichever server process took the call to the replica's sweeper process.
            assert run.node_id == "replica-b/sweeper"
            for target in (a.address, b.address):
                assert {(report.last_run_at, report.total_runs) for report in map(status, [target] * 8)} == {
                    (run.started_at, 1)
                }
            expected = run.finished_at.timestamp()
            for port in (metrics_a, metrics_b):
                value = wait_for(lambda port=port: scrape(port).get(LAST_SWEEP), timeout=15, message="the metric")
                assert value == pytest.approx(expected, abs=1e-3)

            # queue-admin says the same from either replica.
            env = {key: value for key, value in os.environ.items() if not key.startswith("QUEUE_")}
            for target, leads in ((a.address, "yes"), (b.address, "no")):
                for _ in range(4):
                    shown = subprocess.run(
                        [venv_tool("queue-admin"), "--target", target, "recovery", "status"],
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=60,
                    )
                    assert shown.returncode == 0, shown.stderr
                    lines = {
                        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
                        for line in shown.stdout.splitlines()
                        if ":" in line
                    }
                    assert lines["leader"] == "replica-a/sweeper" and lines["this replica leads"] == leads, shown.stdout
                    assert lines["next run"] not in ("", "-"), shown.stdout
