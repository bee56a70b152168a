"""`queue-service recover` as a subprocess against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from queue_service.clock import FakeClock, SystemClock
from queue_service.core.jobs import JobManager, JobSpec
from queue_service.core.leadership import Lease
from queue_service.core.sweep.runner import SWEEP_LOCK
from queue_service.domain import JobState
from queue_service.store.schema import queue_jobs

QUEUE_SERVICE = Path(sys.executable).parent / "queue-service"


def recover(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUEUE_")}
    return subprocess.run(
        [str(QUEUE_SERVICE), "recover", "--database-url", database_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def seed(database) -> JobManager:
    """A job whose lease ran out an hour ago and one that completed eight days ago, in real time."""
    now = datetime.now(UTC)
    past = JobManager(database, FakeClock(now - timedelta(days=8)))
    past.enqueue([JobSpec("emails", "send", job_id="done")])
    past.track_start("done")
    past.complete("done", 1)
    hour_ago = JobManager(database, FakeClock(now - timedelta(hours=1)))
    hour_ago.enqueue([JobSpec("emails", "send", job_id="stalled")])
    hour_ago.track_start("stalled")
    return JobManager(database, SystemClock())


def test_recover_runs_one_sweep_and_prints_its_summary(database, database_url):
    jobs = seed(database)

    result = recover(database_url, "--node-id", "cli-test")

    assert result.returncode == 0, result.stderr
    first_line, *lines = result.stdout.splitlines()
    assert first_line.startswith("recovery run 1 succeeded in ")
    assert "(node cli-test, trigger cli)" in first_line
    counts = dict(line.split() for line in lines)
    assert counts["stalled_jobs"] == "1"
    assert counts["deleted_completed_jobs"] == "1"
    assert counts["due_retries"] == "0"
    assert jobs.get_job("stalled").job.record.state == JobState.FAILED
    with database.transaction() as repo:
        assert repo.get_jobs(["done", "stalled"]).keys() == {"stalled"}


def test_recover_prints_json_and_honours_retention_flags(database, database_url):
    seed(database)

    result = recover(database_url, "--json", "--completed-retention", "9d")

    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["status"] == "succeeded"
    assert run["trigger"] == "cli"
    assert run["error"] is None
    assert run["counts"]["deleted_completed_jobs"] == 0  # eight days old, kept for nine
    assert run["counts"]["stalled_jobs"] == 1
    assert run["duration_seconds"] >= 0


def test_recover_exits_non_zero_when_the_run_fails(database, database_url):
    seed(database)
    with database.transaction() as repo:
        repo.connection.execute(
            update(queue_jobs).where(queue_jobs.c.job_id == "stalled").values(retry_policy={"max_retries": "x"})
        )

    result = recover(database_url)

    assert result.returncode == 1
    assert " failed in " in result.stdout
    assert "error: stalled_jobs: ValueError" in result.stdout


def test_recover_refuses_while_another_sweep_runs(database, database_url):
    holder = Lease(database, SystemClock(), SWEEP_LOCK, "busy-node", timedelta(minutes=5))
    assert holder.elect()

    result = recover(database_url)

    assert result.returncode == 3
    assert "already running on node 'busy-node'" in result.stderr
    holder.resign()
    assert recover(database_url).returncode == 0


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--completed-retention", "a week", "--completed-retention / QUEUE_COMPLETED_RETENTION"),
        ("--dlq-alert-threshold", "many", "--dlq-alert-threshold / QUEUE_DLQ_ALERT_THRESHOLD"),
        ("--dlq-alert-webhook", "ftp://example.com", "--dlq-alert-webhook / QUEUE_DLQ_ALERT_WEBHOOK"),
    ],
)
def test_recover_rejects_bad_configuration(tmp_path, flag, value, message):
    result = recover(f"sqlite:///{tmp_path / 'jobs.sqlite3'}", flag, value)

    assert result.returncode == 2
    assert message in result.stderr
