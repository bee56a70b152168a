"""`queue-admin schedules ...` run as a subprocess against a real server."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.e2e.test_admin_cli import queue_admin

pytestmark = pytest.mark.slow


def test_schedule_commands(secured_service):
    target = secured_service.target
    secured_service.clock.set(datetime(2026, 3, 27, 12, tzinfo=UTC))
    created = queue_admin(
        target,
        "schedules",
        "create",
        "nightly",
        "--cron",
        "30 2 * * *",
        "--time-zone",
        "Europe/Berlin",
        "--queue",
        "reports",
        "--job-name",
        "build",
        "--data",
        '{"report": "daily"}',
        "--misfire",
        "run_once",
        "--max-retries",
        "2",
    )
    assert created.returncode == 0, created.stderr
    assert "schedule nightly created; next runs: 2026-03-28" in created.stdout

    listed = queue_admin(target, "schedules", "list")
    header, _, row = listed.stdout.splitlines()
    assert header.split() == ["SCHEDULE", "CRON", "TIME", "ZONE", "QUEUE", "JOB", "STATUS", "NEXT", "RUNS"]
    assert row.split()[:7] == ["nightly", "30", "2", "*", "*", "*", "Europe/Berlin"]

    shown = json.loads(queue_admin(target, "schedules", "show", "nightly", "--json").stdout)
    assert shown["misfire_policy"] == "run_once" and shown["job_data"] == {"report": "daily"}
    assert shown["retry_policy"]["max_retries"] == 2
    # 02:30 does not exist on 29 March in Berlin: that night's job runs at 03:00 CEST.
    assert shown["next_run_times"][:2] == ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z"]

    updated = json.loads(queue_admin(target, "schedules", "update", "nightly", "--cron", "0 * * * *", "--json").stdout)
    assert (updated["cron"], updated["job_name"]) == ("0 * * * *", "build")
    assert "paused" in queue_admin(target, "schedules", "pause", "nightly").stdout
    assert json.loads(queue_admin(target, "schedules", "show", "nightly", "--json").stdout)["paused"] is True
    assert "resumed" in queue_admin(target, "schedules", "resume", "nightly").stdout

    bad = queue_admin(target, "schedules", "create", "bad", "--cron", "99 * * * *", "--queue", "q", "--job-name", "j")
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "schedule.cron" in bad.stderr
    usage = queue_admin(target, "schedules", "update", "nightly")
    assert usage.returncode == 2 and "--cron" in usage.stderr

    assert queue_admin(target, "schedules", "delete", "nightly").returncode == 0
    missing = queue_admin(target, "schedules", "show", "nightly")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
