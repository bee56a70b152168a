"""Celery tracking with a real `celery worker` process on the machine's RabbitMQ, reporting to a real
`queue-service serve` on SQLite and PostgreSQL.

Each run of this module uses its own Celery queue and worker node name, and deletes the queue afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from jobqueue import (
    AdminClient,
    DeathReason,
    JobClient,
    JobState,
    NotFound,
    RetryDecision,
    RetryPolicy,
    Unavailable,
)

from queue_service.store import migrate
from tests.brokers import delete_queues, rabbitmq_url
from tests.conftest import BACKENDS
from tests.databases import empty_database
from tests.integration.test_worker_logging import FAST_RECONNECT
from tests.reliability.processes import ServerProcess, clean_env

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DELAY = timedelta(seconds=1)
POLICY = RetryPolicy(max_retries=2, retry_delays=(DELAY,), jitter=0.0)
# The service's clock and Celery's countdown may differ by this much.
CLOCK_SLACK = timedelta(milliseconds=100)


@dataclass
class CeleryRig:
    server: ServerProcess
    client: JobClient
    queue: str
    marks: Path
    worker: subprocess.Popen
    worker_log: Path
    producer: Celery

    def send(self, task: str, *args) -> str:
        return self.producer.send_task(f"tests.integration.celery_tasks.{task}", args=args, queue=self.queue).id

    def final(self, job_id: str, timeout: float = 30.0):
        """The job once COMPLETED or DEAD_LETTER. The service may not know it for a moment, and a
        restarted one may not be reachable yet: this client's channel reconnects on its own backoff."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                details = self.client.get_job(job_id)
            except (NotFound, Unavailable):
                details = None
            if details is not None and details.job.state in (JobState.COMPLETED, JobState.DEAD_LETTER):
                return details
            time.sleep(0.1)
        raise AssertionError(
            f"job {job_id} not final in {timeout}s; worker log:\n{self.worker_log.read_text()[-4000:]}"
        )

    def wait_for(self, path: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"{path.name} never appeared; worker log:\n{self.worker_log.read_text()[-4000:]}")
            time.sleep(0.05)

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.worker_log.read_text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged; worker log:\n{self.worker_log.read_text()[-4000:]}")
            time.sleep(0.05)


@pytest.fixture(scope="module", params=BACKENDS)
def rig(request, tmp_path_factory) -> Iterator[CeleryRig]:
    """One server, one Celery worker and one Celery queue per backend for this module's tests,
    which tell their jobs apart by the task ids Celery gives them."""
    broker = rabbitmq_url()
    directory = tmp_path_factory.mktemp(f"celery-{request.param}")
    with empty_database(request.param, directory) as engine:
        migrate.upgrade(engine)
        yield from running_rig(engine.url.render_as_string(hide_password=False), broker, directory)


def running_rig(database_url: str, broker: str, directory: Path) -> Iterator[CeleryRig]:
    queue = f"jobqueue-test-{uuid.uuid4().hex[:12]}"
    server = ServerProcess(database_url, directory / "server.log").start()
    marks = directory / "marks"
    marks.mkdir()
    environment = clean_env(
        TEST_CELERY_BROKER=broker,
        TEST_CELERY_QUEUE=queue,
        TEST_JOBQUEUE_TARGET=server.target,
        TEST_CELERY_MARKS=str(marks),
    )
    worker_log = directory / "worker.log"
    with worker_log.open("w") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.integration.celery_tasks",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                "4",
                "--queues",
                queue,
                "--hostname",
                f"{queue}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = JobClient(server.target, timeout=10, options=FAST_RECONNECT)
    producer = Celery("producer", broker=broker)
    rig = CeleryRig(server, client, queue, marks, worker, worker_log, producer)
    try:
        with AdminClient(server.target, timeout=10) as admin:
            admin.update_queue_policy(queue, POLICY, allow_missing=True)
        rig.wait_for_log("ready.")
        yield rig
    finally:
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        client.close()
        server.stop()
        producer.close()
        delete_queues(broker, [queue])


def test_a_success_is_reported_with_its_result(rig):
    job_id = rig.send("double", 21)
    details = rig.final(job_id)
    job = details.job
    assert (job.state, job.queue_name, job.job_name) == (
        JobState.COMPLETED,
        rig.queue,
        "tests.integration.celery_tasks.double",
    )
    assert job.result == {"doubled": 42, "attempt": 1}
    assert job.attempt_number == 1 and job.job_data == {"args": [21], "kwargs": {}}
    assert job.worker_id.startswith(rig.queue) and job.processing_duration is not None
    assert details.error_history == ()
    # A second delivery of a finished job does not run: the service refuses to start it.
    rig.producer.send_task("tests.integration.celery_tasks.double", args=(5,), queue=rig.queue, task_id=job_id)
    rig.wait_for_log(f"Task tests.integration.celery_tasks.double[{job_id}] raised unexpected: FailedPrecondition")
    again = rig.client.get_job(job_id).job
    assert (again.state, again.attempt_number, again.result) == (JobState.COMPLETED, 1, {"doubled": 42, "attempt": 1})


def test_failures_retry_after_the_service_delay_then_succeed(rig):
    job_id = rig.send("flaky", 2)
    details = rig.final(job_id)
    assert details.job.state is JobState.COMPLETED and details.job.attempt_number == 3
    assert details.job.result == {"result": "done"}
    assert [error.message for error in details.error_history] == ["upstream refused run 1", "upstream refused run 2"]
    assert all(error.type == "ConnectionError" and "Traceback" in error.details for error in details.error_history)
    assert [entry.decision for entry in details.retry_log] == [RetryDecision.RETRY, RetryDecision.RETRY]
    assert all(entry.retry_delay == DELAY for entry in details.retry_log)
    # Celery ran the last attempt no sooner than the service said.
    assert details.job.started_at >= details.retry_log[-1].next_retry_at - CLOCK_SLACK


def test_the_last_failure_ends_in_the_dead_letter_queue_and_celery_stops(rig):
    job_id = rig.send("always_fails")
    details = rig.final(job_id)
    assert details.job.state is JobState.DEAD_LETTER and details.job.attempt_number == 3
    assert [error.type for error in details.error_history] == ["TimeoutError"] * 3
    assert details.retry_log[-1].decision is RetryDecision.DEAD_LETTER
    assert details.retry_log[-1].death_reason is DeathReason.RETRIES_EXHAUSTED
    time.sleep(2 * DELAY.total_seconds())  # no run after the dead-letter decision
    again = rig.client.get_job(job_id)
    assert again.job.attempt_number == 3 and len(again.error_history) == 3
    log = rig.worker_log.read_text()
    assert log.count(f"Task tests.integration.celery_tasks.always_fails[{job_id}] received") == 3
    assert log.count(f"Task tests.integration.celery_tasks.always_fails[{job_id}] raised") == 1


def test_non_retryable_errors_go_straight_to_the_dead_letter_queue(rig):
    mapped = rig.send("validate", "A-17")
    raised = rig.send("refuse")
    for job_id, error_type in (
        (mapped, "tests.integration.celery_tasks.InvalidOrder"),
        (raised, "jobqueue.errors.NonRetryableError"),
    ):
        details = rig.final(job_id)
        assert details.job.state is JobState.DEAD_LETTER and details.job.attempt_number == 1
        assert details.error_history[0].type == error_type
        assert details.retry_log[-1].death_reason is DeathReason.NON_RETRYABLE


def test_long_runs_heartbeat_and_a_refused_report_does_not_stop_the_worker(rig):
    job_id = rig.send("wait_for_mark", "long")
    rig.wait_for(rig.marks / "long.started.0")
    started = rig.client.get_job(job_id).job.lease_expires_at  # the service's stall timeout, 5 minutes
    time.sleep(0.6)
    beaten = rig.client.get_job(job_id).job.lease_expires_at  # a heartbeat's lease, 10 seconds
    time.sleep(1.0)
    assert beaten < started and rig.client.get_job(job_id).job.lease_expires_at > beaten  # and on they go
    rig.client.move_to_dead_letter(job_id, "an operator stopped it")
    (rig.marks / "long.go").touch()
    rig.wait_for_log("the service refused the completion")
    assert rig.client.get_job(job_id).job.state is JobState.DEAD_LETTER
    assert rig.final(rig.send("double", 1)).job.result == {"doubled": 2, "attempt": 1}  # still working


def test_an_unreachable_service_hands_the_run_back_to_celery(rig):
    job_id = rig.send("wait_for_mark", "outage")
    rig.wait_for(rig.marks / "outage.started.0")
    rig.server.kill()
    (rig.marks / "outage.go").touch()
    # The completion cannot be reported: nothing is dropped, the run goes back to Celery ...
    rig.wait_for_log("report could not reach the job service; running it again")
    rig.server.start()  # same port, same database
    # ... which runs it again once the service is back, and that run is reported.
    details = rig.final(job_id)
    assert details.job.state is JobState.COMPLETED and details.job.attempt_number == 2
    assert details.job.result["runs"] >= 2
