"""`queue-admin cancel` run as a subprocess against a real server: one job by id, a dry run, a bulk
cancel by filter with its progress, refused usage, and the cancelled count in `stats`."""

from __future__ import annotations

import json

import pytest
from jobqueue import JobClient, JobState

from tests.conftest import WORKER_TOKEN
from tests.e2e.test_admin_cli import queue_admin

pytestmark = pytest.mark.slow


def test_cancel_by_id_dry_run_and_bulk_with_progress(secured_service):
    target = secured_service.target
    with JobClient(target, token=WORKER_TOKEN, timeout=10) as jobs:
        for n in range(4):
            jobs.enqueue("emails", "send", {}, job_id=f"job-{n}")
        jobs.enqueue("sms", "send", {}, job_id="keep")
        (running,) = jobs.lease("emails")

        one = queue_admin(target, "cancel", "job-3", "--reason", "duplicate")
        assert one.returncode == 0, one.stderr
        assert "1 cancelled, 0 running and asked to stop, 0 skipped of 1 matched" in one.stdout
        assert jobs.get_job("job-3").job.state == JobState.CANCELLED

        dry = queue_admin(target, "cancel", "--queue", "emails", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "dry run: 3 jobs would be cancelled; nothing changed" in dry.stdout
        assert "job-0" in dry.stdout

        bulk = queue_admin(target, "cancel", "--queue", "emails", "--json")
        assert bulk.returncode == 0, bulk.stderr
        summary = json.loads(bulk.stdout)
        assert (summary["cancelled_count"], summary["cancel_requested_count"], summary["done"]) == (2, 1, True)
        assert jobs.get_job(running.job_id).job.cancel_requested_at is not None
        assert jobs.get_job("keep").job.state == JobState.WAITING

    stats = json.loads(queue_admin(target, "stats", "emails", "--json").stdout)
    assert stats["queues"][0]["cancelled_count"] == 3
    assert "CANCELLED" in queue_admin(target, "stats").stdout


def test_cancel_usage_is_refused(secured_service):
    nothing = queue_admin(secured_service.target, "cancel")
    assert nothing.returncode == 2 and "say which jobs to cancel" in nothing.stderr
    both = queue_admin(secured_service.target, "cancel", "job-1", "--queue", "emails")
    assert both.returncode == 2 and "not both" in both.stderr
    unknown = queue_admin(secured_service.target, "cancel", "--state", "completed", "--queue", "emails")
    assert unknown.returncode == 2
