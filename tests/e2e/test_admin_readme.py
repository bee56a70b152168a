"""Every grpcurl and queue-admin command of the README's Admin section, run against a real server with a token."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from jobqueue import AdminClient, JobClient

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN, grpcurl_path

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
QUEUE = "emails"  # the one queue of every README example


def admin_commands() -> list[str]:
    """The commands in the bash blocks of the README's "## Admin" section, continuation lines joined."""
    text = README.read_text()
    section = text.split("\n## Admin\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.strip()
            if command.startswith(("grpcurl ", "queue-admin ")):
                commands.append(command)
    return commands


def test_the_admin_section_covers_the_seed():
    commands = admin_commands()
    grpcurl_methods = {command.rsplit("/", 1)[1] for command in commands if command.startswith("grpcurl")}
    assert {
        "GetStatistics",
        "ListDeadLetterJobs",
        "RetryDeadLetterJob",
        "MarkPermanentlyFailed",
        "UpdateDeadLetterJob",
        "PauseQueue",
        "ResumeQueue",
        "CleanQueue",
        "TriggerRecovery",
        "GetRecoveryStatus",
        "CreateSchedule",
        "ListSchedules",
        "GetSchedule",
        "UpdateSchedule",
        "PauseSchedule",
        "ResumeSchedule",
        "DeleteSchedule",
    } <= grpcurl_methods
    assert all("authorization: Bearer $QUEUE_TOKEN" in command for command in commands if command.startswith("grpcurl"))
    assert sum(command.startswith("queue-admin") for command in commands) >= 12


def seed_dead_letters(target: str, count: int, message: str, error_type: str) -> None:
    with JobClient(target, token=WORKER_TOKEN, timeout=10) as jobs:
        for n in range(count):
            job_id = f"{error_type}-{n}"
            jobs.enqueue(QUEUE, "send", {"to": f"+3361234{n:04d}"}, job_id=job_id)
            (job,) = jobs.lease(QUEUE)
            jobs.track_failure(
                job_id, job.attempt_number, message.format(n=n), error_type=error_type, non_retryable=True
            )


def test_every_admin_example_runs(secured_service):
    commands = admin_commands()
    # One group of entries for the commands about one entry, another for the bulk redrive.
    seed_dead_letters(secured_service.target, len(commands), "Connection timeout after {n}ms", "TimeoutError")
    seed_dead_letters(secured_service.target, 3, "401 Unauthorized for account {n}", "HttpError")
    admin = AdminClient(secured_service.target, token=ADMIN_TOKEN, timeout=10)
    used: set[str] = set()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{Path(grpcurl_path()).parent}{os.pathsep}{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "QUEUE_TARGET": secured_service.target,
        "QUEUE_TOKEN": ADMIN_TOKEN,
    }
    fingerprint = next(p for p in admin.list_failure_patterns() if p.error_type == "HttpError").fingerprint
    for command in commands:
        # A fresh PENDING entry for each command, so that retry and mark-failed both have one.
        pending = admin.list_dead_letter_jobs(recovery_status="pending", error_type="TimeoutError")
        entry = next(e for e in pending if e.id not in used)
        used.add(entry.id)
        command_env = {**env, "DLQ_ID": entry.id, "FINGERPRINT": fingerprint}
        result = subprocess.run(
            ["bash", "-c", command.replace("localhost:50051", secured_service.target)],
            env=command_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert result.stdout.strip(), command
        if command.startswith("grpcurl"):
            json.loads(result.stdout)  # grpcurl printed the response message
    admin.close()

    # The examples did what they say.
    with AdminClient(secured_service.target, token=ADMIN_TOKEN, timeout=10) as admin:
        entries = list(admin.list_dead_letter_jobs())
        statuses = {entry.recovery_status.value for entry in entries}
        assert {"recovered", "permanently_failed", "pending"} <= statuses
        assert any(entry.admin_notes == "Critical customer order" and entry.priority == 10 for entry in entries)
        assert any(entry.assigned_to == "john@example.com" for entry in entries)
        assert all(e.recovery_status.value == "recovered" for e in admin.list_dead_letter_jobs(error_type="HttpError"))
        assert not admin.get_queue(QUEUE).paused
        assert admin.get_queue(QUEUE).retry_policy.max_retries == 5
        actions = {event.action for event in admin.list_audit_events(actor="admin")}
        assert {"PauseQueue", "ResumeQueue", "RetryDeadLetterJob", "MarkPermanentlyFailed"} <= actions
        assert {"CreateSchedule", "UpdateSchedule", "PauseSchedule", "ResumeSchedule", "DeleteSchedule"} <= actions
        assert list(admin.list_schedules()) == []


@pytest.mark.parametrize(
    ("token", "expected"),
    [(None, "Unauthenticated"), (WORKER_TOKEN, "PermissionDenied"), ("x" * 32, "Unauthenticated")],
)
def test_grpcurl_admin_calls_need_an_admin_token(secured_service, token, expected):
    headers = ["-H", f"authorization: Bearer {token}"] if token else []
    result = subprocess.run(
        [grpcurl_path(), "-plaintext", *headers, secured_service.target, "jobqueue.v1.AdminService/GetStatistics"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"Code: {expected}" in result.stderr
