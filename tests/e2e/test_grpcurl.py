"""The README's grpcurl walk-through against a real `queue-service serve` subprocess, on both backends."""

import json
import os
import re
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jobqueue import AdminClient
from jobqueue.models import RetryPolicy

from tests.e2e.server_process import serve, venv_tool

pytestmark = pytest.mark.slow


def grpcurl(server, *args, data=None, check=True):
    command = [venv_tool("grpcurl"), "-plaintext", "-max-time", "30"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    command += [server.address, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, f"{command} failed:\n{result.stderr}\nserver log:\n{server.log()}"
    return result


def call(server, method, data):
    return json.loads(grpcurl(server, f"jobqueue.v1.JobService/{method}", data=data).stdout)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture
def server(database_url, tmp_path):
    with serve(database_url, tmp_path) as process:
        yield process


def test_list_and_describe_through_reflection(server):
    services = grpcurl(server, "list").stdout.split()
    assert {"jobqueue.v1.JobService", "grpc.health.v1.Health"} <= set(services)
    description = grpcurl(server, "describe", "jobqueue.v1.JobService").stdout
    for rpc in (
        "EnqueueJob",
        "EnqueueJobs",
        "LeaseJobs",
        "HeartbeatJob",
        "TrackStart",
        "TrackCompletion",
        "TrackFailure",
        "MoveToDeadLetter",
        "GetJob",
    ):
        assert f"rpc {rpc} (" in description
    job = grpcurl(server, "describe", "jobqueue.v1.Job").stdout
    assert "STATE_DEAD_LETTER" in job and "google.protobuf.Struct job_data" in job


def test_enqueue_lease_fail_and_read_the_decision(server):
    enqueued = call(
        server,
        "EnqueueJob",
        {"queue_name": "emails", "job_name": "send", "job_id": "cli-1", "job_data": {"to": "a@example.com"}},
    )
    assert enqueued["created"] is True
    assert enqueued["job"]["job_id"] == "cli-1"
    assert enqueued["job"]["state"] == "STATE_WAITING"
    assert enqueued["job"]["job_data"] == {"to": "a@example.com"}

    leased = call(server, "LeaseJobs", {"queue_names": ["emails"], "worker_id": "w1"})
    (job,) = leased["jobs"]
    assert (job["job_id"], job["state"], job["attempt_number"], job["worker_id"]) == ("cli-1", "STATE_ACTIVE", 1, "w1")

    decision = call(
        server,
        "TrackFailure",
        {"job_id": "cli-1", "attempt_number": 1, "error": {"message": "Connection timeout", "type": "Timeout"}},
    )
    assert decision["should_retry"] is True
    assert decision["retry_delay"] == "5s"
    assert decision["remaining_retries"] == 3
    assert "moved_to_dead_letter" not in decision
    next_retry = parse_time(decision["next_retry_at"])
    assert timedelta(seconds=3) < next_retry - datetime.now(UTC) <= timedelta(seconds=5)
    assert decision["job"]["state"] == "STATE_FAILED"

    details = call(server, "GetJob", {"job_id": "cli-1"})
    assert [entry["decision"] for entry in details["retry_log"]] == ["RETRY_DECISION_RETRY"]
    assert details["error_history"][0]["message"] == "Connection timeout"

    dead = call(server, "MoveToDeadLetter", {"job_id": "cli-1", "reason": "bad address"})
    assert dead["entry"]["death_reason"] == "DEATH_REASON_MOVED_EXPLICITLY"
    assert dead["entry"]["total_attempts"] == 1


def test_bad_input_names_the_field(server):
    result = grpcurl(
        server, "jobqueue.v1.JobService/EnqueueJob", data={"queue_name": "", "job_name": "send"}, check=False
    )
    assert result.returncode != 0
    assert "Code: InvalidArgument" in result.stderr
    assert "queue_name must not be empty" in result.stderr


def test_health_check(server):
    for service in ("", "jobqueue.v1.JobService"):
        result = json.loads(grpcurl(server, "grpc.health.v1.Health/Check", data={"service": service}).stdout)
        assert result == {"status": "SERVING"}


def test_health_check_reports_an_unreachable_database(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{closed_port}/jobqueue"
    with serve(url, tmp_path) as server:
        result = json.loads(grpcurl(server, "grpc.health.v1.Health/Check", data={"service": ""}).stdout)
        assert result == {"status": "NOT_SERVING"}
        enqueue = grpcurl(
            server, "jobqueue.v1.JobService/EnqueueJob", data={"queue_name": "q", "job_name": "n"}, check=False
        )
        assert "Code: Unavailable" in enqueue.stderr
        assert server.terminate() == 0


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_blocks(section: str, language: str = "bash") -> list[str]:
    """The code blocks of one `## ` section of the README, in order."""
    text = README.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.S)


def test_the_readme_walkthrough_runs_as_written_and_finishes_the_job(server):
    first, second = readme_blocks("Try it with grpcurl")
    # The same commands, with a shorter first retry delay so that the test need not wait 5 s.
    with AdminClient(server.address, timeout=10) as admin:
        admin.update_queue_policy(
            "emails", RetryPolicy(max_retries=3, retry_delays=(timedelta(milliseconds=200),)), allow_missing=True
        )
    env = {**os.environ, "PATH": f"{Path(venv_tool('grpcurl')).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for block in (first, second):
        script = "set -euo pipefail\n" + block.replace("localhost:50051", server.address)
        result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{block}\n{result.stderr}\nserver log:\n{server.log()}"
        outputs.append(result.stdout)
        time.sleep(0.3)  # the retry comes due
    assert '"shouldRetry": true' in outputs[0] or '"should_retry": true' in outputs[0], outputs[0]
    job = call(server, "GetJob", {"job_id": "welcome-1"})["job"]
    assert (job["state"], job["attempt_number"], job["result"]) == ("STATE_COMPLETED", 2, {"message_id": "m-1"})
    assert "TrackCompletion" in second


def test_the_readme_unique_job_example_makes_one_job(server):
    (block,) = readme_blocks("Unique jobs")
    env = {**os.environ, "PATH": f"{Path(venv_tool('grpcurl')).parent}{os.pathsep}{os.environ['PATH']}"}
    script = "set -euo pipefail\n" + block.replace("localhost:50051", server.address)
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{block}\n{result.stderr}\nserver log:\n{server.log()}"
    first, second = (json.loads(part) for part in re.split(r"(?<=\})\n(?=\{)", result.stdout.strip()))
    assert first["created"] is True and "created" not in second
    assert second["job"]["job_id"] == first["job"]["job_id"]
    assert second["job"]["unique_key"] == "digest-user-42"
    # A bad key names its field through grpcurl too.
    bad = grpcurl(
        server,
        "jobqueue.v1.JobService/EnqueueJob",
        data={"queue_name": "emails", "job_name": "digest", "unique": {"unique_key": ""}},
        check=False,
    )
    assert "Code: InvalidArgument" in bad.stderr and "unique.unique_key" in bad.stderr


def test_the_readme_retry_policies_block_sets_the_rules_a_failure_then_follows(server):
    (block,) = readme_blocks("Retry policies")
    bin_dir = Path(venv_tool("grpcurl")).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "QUEUE_TARGET": server.address}
    env.pop("QUEUE_TOKEN", None)
    for command in block.replace("\\\n", " ").splitlines():
        if not command.strip():
            continue
        result = subprocess.run(
            ["bash", "-c", command.replace("localhost:50051", server.address)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}\nserver log:\n{server.log()}"
    with AdminClient(server.address, timeout=10) as admin:
        policy = admin.get_queue("emails").retry_policy
    assert [rule.error_type for rule in policy.rules] == ["TimeoutError", "ValidationError"]
    assert policy.max_retry_duration == timedelta(days=1)
    call(server, "EnqueueJob", {"queue_name": "emails", "job_name": "send", "job_id": "rule-1"})
    call(server, "LeaseJobs", {"queue_names": ["emails"], "worker_id": "w"})
    decision = call(
        server,
        "TrackFailure",
        {"job_id": "rule-1", "attempt_number": 1, "error": {"message": "slow", "type": "TimeoutError"}},
    )
    assert decision["retry_delay"] == "2s"
    job = call(server, "GetJob", {"job_id": "rule-1"})
    assert job["job"]["retry_rule"] == "queue:TimeoutError"
    assert job["error_history"][-1]["retry_rule"] == "queue:TimeoutError"
