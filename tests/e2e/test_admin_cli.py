"""`queue-admin` run as a subprocess against a real server: tables, JSON, progress, errors and exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jobqueue import AdminClient, JobClient

from queue_service.api.server import QueueServer
from queue_service.clock import FakeClock
from queue_service.config import TlsFiles
from tests.certificates import CertificateAuthority
from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN, auth_tokens, make_config

pytestmark = pytest.mark.slow


def queue_admin_path() -> str:
    found = shutil.which("queue-admin", path=str(Path(sys.executable).parent)) or shutil.which("queue-admin")
    if not found:
        pytest.fail("queue-admin is not installed; pip install -e .")
    return found


def queue_admin(target: str, *args: str, token: str | None = ADMIN_TOKEN) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUEUE_")}
    env["QUEUE_TARGET"] = target
    if token:
        env["QUEUE_TOKEN"] = token
    return subprocess.run([queue_admin_path(), *args], env=env, capture_output=True, text=True, timeout=120)


def dead_letter(target: str, job_id: str, message: str, error_type: str = "TimeoutError", queue: str = "emails") -> str:
    with JobClient(target, token=WORKER_TOKEN, timeout=10) as jobs:
        jobs.enqueue(queue, "send", {"to": job_id}, job_id=job_id)
        (job,) = jobs.lease(queue)
        return jobs.track_failure(
            job_id, job.attempt_number, message, error_type=error_type, non_retryable=True
        ).dead_letter_id


def test_tables_and_json(secured_service):
    target = secured_service.target
    ids = [dead_letter(target, f"job-{n}", f"connection to 10.0.0.{n} refused") for n in range(3)]

    table = queue_admin(target, "stats")
    assert table.returncode == 0, table.stderr
    header, rule, row = table.stdout.splitlines()
    assert header.split()[:3] == ["QUEUE", "STATUS", "WAITING"] and set(rule) <= {"-", " "}
    # A queue's state in the dashboard's words: running or paused, never a bare "-".
    assert row.split()[:2] == ["emails", "running"]
    stats = json.loads(queue_admin(target, "stats", "--json").stdout)
    assert stats["queues"][0]["dead_letter_summary"]["pending_count"] == 3
    assert json.loads(queue_admin(target, "--json", "stats").stdout) == stats  # --json before or after

    listed = queue_admin(target, "dlq", "list", "--limit", "2")
    assert listed.returncode == 0
    assert "2 of 3 shown" in listed.stdout
    entries = json.loads(queue_admin(target, "dlq", "list", "--json", "--limit", "0").stdout)
    assert sorted(entry["id"] for entry in entries) == sorted(ids)
    assert entries[0]["dead_lettered_at"].endswith("Z") and entries[0]["recovery_status"] == "pending"

    shown = queue_admin(target, "dlq", "show", ids[0])
    assert "connection to 10.0.0.0 refused" in shown.stdout and "Retry log (1)" in shown.stdout

    patterns = json.loads(queue_admin(target, "patterns", "--json").stdout)
    (pattern,) = patterns
    assert pattern["count"] == 3 and pattern["error_type"] == "TimeoutError"
    assert "<address>" in queue_admin(target, "patterns").stdout

    policy = queue_admin(target, "queues", "policy", "emails", "--max-retries", "5", "--retry-delays", "1s,2s")
    assert policy.returncode == 0, policy.stderr
    assert "max_retries=5 retry_delays=1s,2s" in policy.stdout
    assert "1s 2s 4s 8s 16s" in policy.stdout  # the delay schedule under the new policy

    audit = json.loads(queue_admin(target, "audit", "--json", "--on", "queue/emails").stdout)
    assert [event["action"] for event in audit] == ["UpdateQueuePolicy"]
    assert audit[0]["actor"] == "admin"

    with AdminClient(target, token=ADMIN_TOKEN) as admin:
        admin.pause_queue("emails")
    assert queue_admin(target, "stats").stdout.splitlines()[2].split()[:2] == ["emails", "paused"]


def test_redrive_dry_run_then_with_a_progress_bar(secured_service):
    target = secured_service.target
    for n in range(4):
        dead_letter(target, f"job-{n}", "401 Unauthorized", error_type="HttpError")
    dead_letter(target, "unrelated", "disk full", error_type="OSError")
    with AdminClient(target, token=ADMIN_TOKEN) as admin:
        fingerprint = next(p.fingerprint for p in admin.list_failure_patterns() if p.error_type == "HttpError")

    dry = queue_admin(target, "redrive", "--fingerprint", fingerprint, "--dry-run", "--sample", "2")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 4 pending entries would be retried; nothing changed" in dry.stdout
    assert dry.stdout.count("HttpError") == 2
    with AdminClient(target, token=ADMIN_TOKEN) as admin:
        assert admin.list_dead_letter_jobs(recovery_status="pending").total_size == 5

    done = queue_admin(target, "redrive", "--fingerprint", fingerprint, "--max-retries", "1")
    assert done.returncode == 0, done.stderr
    assert "4 retried, 0 skipped of 4 matched" in done.stdout
    assert "[" + "#" * 30 + "] 4/4 4 retried, 0 skipped" in done.stderr
    with AdminClient(target, token=ADMIN_TOKEN) as admin:
        remaining = list(admin.list_dead_letter_jobs(recovery_status="pending"))
        assert [entry.job_id for entry in remaining] == ["unrelated"]
        assert admin.get_job_details("job-0").job.retry_policy.max_retries == 1

    again = json.loads(queue_admin(target, "redrive", "--json", "--id", "missing-id", "--id", remaining[0].id).stdout)
    assert again["retried_count"] == 1 and again["skipped_count"] == 1
    assert again["skipped"][0]["id"] == "missing-id"


def test_errors_print_the_server_message_and_exit_non_zero(secured_service):
    target = secured_service.target
    entry = dead_letter(target, "job-1", "boom")
    assert queue_admin(target, "dlq", "mark-failed", entry, "--reason", "bad payload").returncode == 0

    retry = queue_admin(target, "dlq", "retry", entry)
    assert retry.returncode == 1
    assert retry.stderr.startswith("queue-admin: FAILED_PRECONDITION: ")
    assert "PERMANENTLY_FAILED" in retry.stderr and retry.stdout == ""

    missing = queue_admin(target, "queues", "pause", "no-such-queue")
    assert missing.returncode == 1 and "NOT_FOUND: queue 'no-such-queue' not found" in missing.stderr
    assert queue_admin(target, "queues", "pause", "no-such-queue", "--create").returncode == 0

    anonymous = queue_admin(target, "stats", token=None)
    assert anonymous.returncode == 1 and "UNAUTHENTICATED" in anonymous.stderr
    worker = queue_admin(target, "stats", token=WORKER_TOKEN)
    assert worker.returncode == 1 and "PERMISSION_DENIED" in worker.stderr and "'worker'" in worker.stderr
    flag = queue_admin(target, "--token", ADMIN_TOKEN, "stats", token=None)
    assert flag.returncode == 0

    unreachable = queue_admin("127.0.0.1:1", "--timeout", "2", "stats")
    assert unreachable.returncode == 1 and "is the server running at 127.0.0.1:1?" in unreachable.stderr

    for usage in (
        ["dlq", "update", entry],
        ["queues", "clean", "emails", "--state", "active"],
        ["redrive", "--rate", "x"],
        ["audit", "--since", "yesterday-ish"],
        ["--tls-cert", "c.pem", "stats"],
    ):
        result = queue_admin(target, *usage)
        assert result.returncode == 2, (usage, result.stderr)
        assert "usage:" in result.stderr


def test_tls_options(database_url, tmp_path):
    ca = CertificateAuthority(tmp_path)
    server_pair = ca.issue("queue server", server=True)
    server = QueueServer(
        make_config(
            database_url, tokens=auth_tokens(), tls=TlsFiles(str(server_pair.certificate), str(server_pair.key))
        ),
        clock=FakeClock(),
    ).start()
    try:
        target = f"localhost:{server.port}"
        secure = queue_admin(target, "--tls-ca", str(ca.pair.certificate), "stats", "--json")
        assert secure.returncode == 0, secure.stderr
        assert json.loads(secure.stdout)["queues"] == []
        plaintext = queue_admin(target, "--timeout", "3", "stats")
        assert plaintext.returncode == 1
    finally:
        server.stop(0)


def test_queue_alert_policy(secured_service):
    target = secured_service.target
    dead_letter(target, "a-1", "refused")

    shown = queue_admin(target, "queues", "alerts", "emails")
    assert shown.returncode == 0, shown.stderr
    assert "dlq threshold: server's" in shown.stdout

    changed = queue_admin(
        target, "queues", "alerts", "emails", "--dlq-threshold", "3", "--email", "ops@example.com, oncall@example.com"
    )
    assert changed.returncode == 0, changed.stderr
    assert "dlq threshold: 3" in changed.stdout
    assert "email to:      ops@example.com, oncall@example.com" in changed.stdout

    # Only the parts given change.
    policy = json.loads(queue_admin(target, "queues", "alerts", "emails", "--server-threshold", "--json").stdout)
    assert policy["dlq_alert_threshold"] is None
    assert policy["email_recipients"] == ["ops@example.com", "oncall@example.com"]

    refused = queue_admin(target, "queues", "alerts", "emails", "--email", "not-an-address")
    assert refused.returncode != 0
    assert "alert_policy.email_recipients[0]" in refused.stderr


def test_queue_lease_limits(secured_service):
    target = secured_service.target
    with JobClient(target, token=WORKER_TOKEN, timeout=10) as jobs:
        jobs.enqueue("emails", "send", {})
    limited = queue_admin(target, "queues", "policy", "emails", "--max-active", "3", "--max-starts-per-second", "2.5")
    assert limited.returncode == 0, limited.stderr
    fields = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in limited.stdout.splitlines()}
    assert fields["max active"] == "3" and fields["max starts per second"] == "2.5"
    header, _, row = queue_admin(target, "queues", "list").stdout.splitlines()
    assert header.split()[:3] == ["QUEUE", "STATUS", "LIMITS"]
    assert "max_active=3 starts/s=2.5" in row
    # Retry policy changes leave the limits alone; --no-... removes one.
    assert (
        json.loads(queue_admin(target, "queues", "policy", "emails", "--max-retries", "2", "--json").stdout)[
            "max_active"
        ]
        == 3
    )
    removed = json.loads(queue_admin(target, "queues", "policy", "emails", "--no-max-active", "--json").stdout)
    assert (removed["max_active"], removed["max_starts_per_second"]) == (None, 2.5)
    refused = queue_admin(target, "queues", "policy", "emails", "--max-starts-per-second", "nan")
    assert (
        refused.returncode == 1 and "INVALID_ARGUMENT" in refused.stderr and "max_starts_per_second" in refused.stderr
    )
    clash = queue_admin(target, "queues", "policy", "emails", "--max-active", "2", "--no-max-active")
    assert clash.returncode == 2 and "exclude each other" in clash.stderr


def test_retry_rules_deadline_and_redrive_with_new_data(secured_service, tmp_path):
    target = secured_service.target
    set_policy = queue_admin(
        target,
        "queues",
        "policy",
        "emails",
        "--create",
        "--rule",
        "TimeoutError max_retries=6 retry_delays=2s,4s max_delay=2m",
        "--rule",
        "ValidationError retryable=false",
        "--max-retry-duration",
        "1d",
    )
    assert set_policy.returncode == 0, set_policy.stderr
    assert "max_retry_duration=1d" in set_policy.stdout
    assert "TimeoutError max_retries=6 retry_delays=2s,4s max_delay=2m" in set_policy.stdout
    assert "ValidationError retryable=false" in set_policy.stdout
    shown = json.loads(queue_admin(target, "--json", "queues", "policy", "emails").stdout)
    assert [rule["error_type"] for rule in shown["retry_policy"]["rules"]] == ["TimeoutError", "ValidationError"]
    # --no-rules removes the rules and keeps the deadline.
    cleared = json.loads(queue_admin(target, "--json", "queues", "policy", "emails", "--no-rules").stdout)
    assert cleared["retry_policy"]["rules"] == [] and cleared["retry_policy"]["max_retry_duration"] is not None

    duplicate = queue_admin(target, "queues", "policy", "emails", "--rule", "A", "--rule", "A")
    assert duplicate.returncode == 1 and "retry_policy.rules[1].error_type" in duplicate.stderr
    unknown = queue_admin(target, "queues", "policy", "emails", "--rule", "A retries=3")
    assert unknown.returncode == 2 and "retries=3" in unknown.stderr

    entry = dead_letter(target, "bad-record", "bad address", error_type="ValidationError")
    shown = queue_admin(target, "dlq", "show", entry)
    assert "ValidationError" in shown.stdout
    not_json = queue_admin(target, "dlq", "retry", entry, "--data", "{not json")
    assert not_json.returncode == 2 and "--data is not JSON" in not_json.stderr
    payload = tmp_path / "fixed.json"
    payload.write_text(json.dumps({"to": "fixed@example.com"}))
    retried = queue_admin(target, "dlq", "retry", entry, "--data-file", str(payload))
    assert retried.returncode == 0, retried.stderr
    assert "with the new job_data" in retried.stdout
    with AdminClient(target, token=ADMIN_TOKEN, timeout=10) as admin:
        assert admin.get_job_details("bad-record").job.job_data == {"to": "fixed@example.com"}
        (event, *_) = admin.list_audit_events(action="RetryDeadLetterJob").items
    assert event.parameters["old_job_data"] == {"to": "bad-record"}
    # A worker token may not redrive, with or without new data.
    refused = queue_admin(target, "dlq", "retry", entry, "--data", "{}", token=WORKER_TOKEN)
    assert refused.returncode == 1 and "PERMISSION_DENIED" in refused.stderr


def test_queue_circuit_breaker(secured_service):
    target = secured_service.target
    missing = queue_admin(target, "queues", "breaker", "emails", "--on")
    assert missing.returncode != 0 and "allow_missing" in missing.stderr

    turned_on = queue_admin(
        target, "queues", "breaker", "emails", "--on", "--min-runs", "1", "--ratio", "1", "--create"
    )
    assert turned_on.returncode == 0, turned_on.stderr
    assert "breaker:   closed (opens at 1 of >= 1 runs in 1m" in turned_on.stdout
    dead_letter(target, "a-1", "refused")  # non-retryable: counted, and opens the breaker
    shown = queue_admin(target, "queues", "breaker", "emails")
    assert "breaker:   open" in shown.stdout, shown.stdout
    listed = queue_admin(target, "queues", "list")
    assert "BREAKER" in listed.stdout and "open" in listed.stdout

    # Only the options given change; --off turns it off and keeps the rest.
    state = json.loads(queue_admin(target, "queues", "breaker", "emails", "--off", "--ramp", "5s", "--json").stdout)
    assert state["policy"]["enabled"] is False and state["policy"]["min_runs"] == 1
    assert state["policy"]["ramp"] == "5s" and state["status"]["state"] == "closed"

    refused = queue_admin(target, "queues", "breaker", "emails", "--ratio", "1.5")
    assert refused.returncode != 0
    assert "circuit_breaker.failure_ratio" in refused.stderr
