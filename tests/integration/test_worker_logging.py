"""The Worker says what it does: a line per finished run and per decision, the outage once and the recovery once.

Against a real server; the default stderr handler is checked in a separate Python process,
since pytest itself puts handlers on the root logger.
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest
from jobqueue import JobClient, JobState, NonRetryableError, Worker
from jobqueue.worker import backoff_delay

from queue_service.api.server import QueueServer
from tests.conftest import make_config
from tests.integration.test_metrics import free_port
from tests.integration.test_worker import eventually, make_worker

# Reconnect quickly once the server is back, so that the test need not wait out gRPC's own backoff.
FAST_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 300),
)


def messages(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("jobqueue")]


def test_a_worker_logs_each_finished_run_and_each_decision(service, caplog):
    with JobClient(service.target, timeout=10) as client:
        client.enqueue("emails", "send", {"to": "a@example.com"}, job_id="good")
        client.enqueue("emails", "send", {"to": "b@example.com"}, job_id="flaky")
        client.enqueue("emails", "send", {}, job_id="bad")

        def handler(job):
            if job.job_id == "flaky":
                raise ConnectionError("SMTP server went away")
            if job.job_id == "bad":
                raise NonRetryableError("job_data has no 'to'")
            return {"sent": True}

        worker = make_worker(client, handler)
        with caplog.at_level(logging.INFO, logger="jobqueue"):
            worker.start()
            try:
                eventually(lambda: worker.completed + worker.failed == 3)
            finally:
                worker.stop(timeout=10)
        assert client.get_job("bad").job.state is JobState.DEAD_LETTER

    lines = messages(caplog)
    assert any(line.startswith("job good (send) attempt 1 completed in ") for line in lines), lines
    assert any(
        line.startswith("job flaky (send) attempt 1 failed in ") and "ConnectionError: SMTP server went away" in line
        for line in lines
    ), lines
    assert "job flaky (send): retry in 5s, 3 retries left" in lines
    assert any(line.startswith("job bad (send): dead-lettered after attempt 1 (entry ") for line in lines), lines
    assert len(lines) == 5, lines  # one per run, one per decision, nothing else


SCRIPT = """
import logging, sys
from datetime import timedelta
from jobqueue import JobClient, Worker
{setup}
client = JobClient(sys.argv[1], timeout=10)
client.enqueue("emails", "send", {{"to": "a@example.com"}}, job_id="ok-" + sys.argv[2])
client.enqueue("emails", "send", {{}}, job_id="fails-" + sys.argv[2])

def handler(job):
    if "to" not in job.job_data:
        raise KeyError("to")
    return None

worker = Worker(client, "emails", handler, poll_wait=timedelta(seconds=0.2){options}).start()
while worker.completed + worker.failed < 2:
    worker.join(0.05)
    if worker.stopping:
        break
worker.stop()
"""


@pytest.mark.parametrize(
    ("setup", "options", "shown"),
    [
        ("", "", True),  # a script that set nothing up sees the worker's lines
        ("logging.basicConfig(level=logging.INFO, format='root: %(message)s')", "", True),  # through the root handler
        ("logging.basicConfig(level=logging.WARNING)", "", False),  # the application's choice stands
        ("", ", log_to_stderr=False", False),
    ],
    ids=["nothing-set-up", "root-at-info", "root-at-warning", "silenced"],
)
def test_a_script_shows_the_worker_lines_unless_its_logging_says_otherwise(service, setup, options, shown):
    script = textwrap.dedent(SCRIPT.format(setup=setup, options=options))
    result = subprocess.run(
        [sys.executable, "-c", script, service.target, str(time.monotonic_ns())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    completed = [line for line in result.stderr.splitlines() if " completed in " in line]
    retries = [line for line in result.stderr.splitlines() if ": retry in 5s, 3 retries left" in line]
    if shown:
        assert len(completed) == 1 and len(retries) == 1, result.stderr  # once each, never twice
    else:
        assert not completed and not retries, result.stderr


def test_the_outage_is_logged_once_with_backoff_and_the_recovery_once(database_url, caplog):
    port = free_port()
    attempts = []

    class CountingClient(JobClient):
        def lease(self, *args, **kwargs):
            attempts.append(time.monotonic())
            return super().lease(*args, **kwargs)

    client = CountingClient(f"127.0.0.1:{port}", timeout=2, options=FAST_RECONNECT)
    worker = Worker(
        client,
        "emails",
        lambda job: None,
        concurrency=4,
        poll_wait=timedelta(seconds=0.2),
        error_backoff=timedelta(seconds=0.05),
        max_error_backoff=timedelta(seconds=0.4),
    )
    server = None
    with caplog.at_level(logging.INFO, logger="jobqueue"):
        began = time.monotonic()
        worker.start()
        try:
            time.sleep(1.5)  # the server is down: the worker backs off
            down_for = time.monotonic() - began
            failed_attempts = len(attempts)
            server = QueueServer(make_config(database_url, port=port)).start()
            client.enqueue("emails", "send", {}, job_id="after-the-outage")
            eventually(lambda: worker.completed == 1, timeout=30)
        finally:
            worker.stop(timeout=10)
            client.close()
            if server is not None:
                server.stop(0)

    lines = messages(caplog)
    outages = [line for line in lines if line.startswith("cannot lease from emails: Unavailable")]
    recoveries = [line for line in lines if line.startswith("leasing from emails works again, after ")]
    assert len(outages) == 1 and len(recoveries) == 1, lines
    assert "retrying with backoff up to 0.4s" in outages[0]
    # Each thread waits at least half of 0.05, 0.1, 0.2, then 0.4 s after each failure; a fixed
    # 0.05 s wait would have made about 4 * 1.5 / 0.05 = 120 attempts.
    per_thread = 4 + (down_for - 0.175) / 0.2 + 1
    assert failed_attempts <= 4 * per_thread, (failed_attempts, down_for)


def test_the_backoff_doubles_up_to_the_cap_with_jitter():
    initial, cap = timedelta(seconds=1), timedelta(seconds=30)
    rng = random.Random(7)
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (5, 16), (6, 30), (60, 30), (10_000, 30)]:
        delays = [backoff_delay(failures, initial, cap, rng) for _ in range(200)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays), (failures, min(delays), max(delays))
        assert max(delays) - min(delays) > ceiling / 4  # spread out, so that workers do not retry in step
