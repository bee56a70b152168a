"""Worker and JobClient.track() against a real server on SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from jobqueue import (
    DeathReason,
    InvalidArgument,
    JobClient,
    JobState,
    NonRetryableError,
    Unauthenticated,
    Worker,
)

from tests.conftest import WORKER_TOKEN


def eventually(check, timeout: float = 15.0):
    """Poll `check` until it returns something truthy; the worker runs in other threads."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def client(service):
    with JobClient(service.target, timeout=10) as client:
        yield client


def make_worker(client, handler, **options):
    settings = {"poll_wait": timedelta(seconds=0.2), "heartbeat_interval": timedelta(seconds=0.05)}
    settings.update(options)
    return Worker(client, ["emails"], handler, worker_id="test-worker", **settings)


def state_of(client, job_id):
    return client.get_job(job_id).job.state


# Worker


def test_worker_completes_jobs_with_their_results(client):
    for n in range(3):
        client.enqueue("emails", "send", {"n": n}, job_id=f"job-{n}")
    seen = []

    def handler(job):
        seen.append(job.job_id)
        return {"doubled": job.job_data["n"] * 2}

    worker = make_worker(client, handler, concurrency=2).start()
    try:
        eventually(lambda: all(state_of(client, f"job-{n}") is JobState.COMPLETED for n in range(3)))
    finally:
        worker.stop(timeout=10)
    assert sorted(seen) == ["job-0", "job-1", "job-2"]
    assert worker.completed == 3 and worker.failed == 0
    for n in range(3):
        job = client.get_job(f"job-{n}").job
        assert job.result == {"doubled": n * 2}
        assert job.worker_id == "test-worker"
        assert job.processing_duration is not None


def test_worker_reports_failures_with_type_message_and_traceback(client, service):
    client.enqueue("emails", "send", job_id="flaky")
    client.enqueue("emails", "send", job_id="hopeless")

    class SmtpError(Exception):
        pass

    def handler(job):
        if job.job_id == "hopeless":
            raise NonRetryableError("recipient address rejected")
        raise SmtpError("451 try again later")

    worker = make_worker(client, handler).start()
    try:
        eventually(
            lambda: (
                state_of(client, "flaky") is JobState.FAILED and state_of(client, "hopeless") is JobState.DEAD_LETTER
            )
        )
    finally:
        worker.stop(timeout=10)
    flaky = client.get_job("flaky")
    (error,) = flaky.error_history
    assert error.type.endswith("test_worker_reports_failures_with_type_message_and_traceback.<locals>.SmtpError")
    assert error.message == "451 try again later"
    assert "Traceback (most recent call last)" in error.details and "in handler" in error.details
    assert flaky.job.next_retry_at == service.clock.now() + timedelta(seconds=5)
    hopeless = client.get_job("hopeless")
    assert hopeless.retry_log[-1].death_reason is DeathReason.NON_RETRYABLE
    assert hopeless.error_history[0].type == "jobqueue.errors.NonRetryableError"
    assert worker.failed == 2


def test_worker_retries_after_the_backoff(client, service):
    client.enqueue("emails", "send", job_id="second-time-lucky")
    runs = []

    def handler(job):
        runs.append(job.attempt_number)
        if job.attempt_number == 1:
            raise TimeoutError("upstream timed out")
        return None

    worker = make_worker(client, handler).start()
    try:
        eventually(lambda: state_of(client, "second-time-lucky") is JobState.FAILED)
        time.sleep(0.5)  # a few polls: not leasable before the retry time
        assert runs == [1]
        service.clock.advance(5)
        eventually(lambda: state_of(client, "second-time-lucky") is JobState.COMPLETED)
    finally:
        worker.stop(timeout=10)
    assert runs == [1, 2]


def test_worker_heartbeats_while_the_handler_runs(client, service):
    client.enqueue("emails", "send", job_id="slow")
    started, release = threading.Event(), threading.Event()

    def handler(job):
        started.set()
        release.wait(20)
        return {"done": True}

    worker = make_worker(client, handler, lease_duration=timedelta(seconds=60)).start()
    try:
        assert started.wait(10)
        first_expiry = client.get_job("slow").job.lease_expires_at
        service.clock.advance(45)
        # The next beat moves the lease to 60 s after the new time; without it the lease would lapse 15 s later.
        eventually(lambda: client.get_job("slow").job.lease_expires_at == service.clock.now() + timedelta(seconds=60))
        assert client.get_job("slow").job.lease_expires_at > first_expiry
        release.set()
        eventually(lambda: state_of(client, "slow") is JobState.COMPLETED)
    finally:
        release.set()
        worker.stop(timeout=10)


def test_stop_lets_the_running_job_finish_and_leases_no_more(client):
    client.enqueue("emails", "send", job_id="in-flight")
    started, release = threading.Event(), threading.Event()

    def handler(job):
        started.set()
        release.wait(20)
        return {"finished": job.job_id}

    worker = make_worker(client, handler).start()
    assert started.wait(10)
    client.enqueue("emails", "send", job_id="later")
    stopper = threading.Thread(target=worker.stop, kwargs={"timeout": 20})
    stopper.start()
    eventually(lambda: worker.stopping)
    time.sleep(0.3)
    assert stopper.is_alive(), "stop() waits for the running handler"
    release.set()
    stopper.join(20)
    assert not stopper.is_alive()
    assert client.get_job("in-flight").job.result == {"finished": "in-flight"}
    assert state_of(client, "later") is JobState.WAITING


def test_run_returns_on_stop_and_surfaces_fatal_errors(client, secured_service):
    worker = make_worker(client, lambda job: None)
    threading.Timer(0.3, worker.stop).start()
    worker.run(handle_signals=False)
    assert worker.completed == 0

    bad_queue = Worker(client, [""], lambda job: None, poll_wait=timedelta(seconds=0.1))
    with pytest.raises(InvalidArgument):
        bad_queue.run(handle_signals=False)

    with JobClient(secured_service.target, timeout=10) as anonymous:
        with pytest.raises(Unauthenticated):
            make_worker(anonymous, lambda job: None).run(handle_signals=False)
    with JobClient(secured_service.target, token=WORKER_TOKEN, timeout=10) as authorised:
        authorised.enqueue("emails", "send", job_id="authorised")
        worker = make_worker(authorised, lambda job: {"ok": 1}).start()
        try:
            eventually(lambda: state_of(authorised, "authorised") is JobState.COMPLETED)
        finally:
            worker.stop(timeout=10)


def test_a_handler_returning_a_non_dict_is_a_failure(client):
    client.enqueue("emails", "send", job_id="odd")
    worker = make_worker(client, lambda job: 42)
    (job,) = client.lease("emails", worker_id="test-worker")
    assert worker.process(job) is False
    error = client.get_job("odd").job.last_error
    assert error.type == "TypeError" and "returned int" in error.message


# track()


def test_track_reports_start_and_completion(client):
    with client.track("ext-1", queue_name="imports", job_name="csv", job_data={"rows": 3}, worker_id="bull") as run:
        assert run.created and run.attempt_number == 1
        assert state_of(client, "ext-1") is JobState.ACTIVE
        assert run.heartbeat() is not None
        run.result = {"imported": 3}
    job = client.get_job("ext-1").job
    assert job.state is JobState.COMPLETED
    assert job.result == {"imported": 3}
    assert job.job_data == {"rows": 3} and job.worker_id == "bull"
    assert job.processing_duration is not None


def test_track_reports_failure_and_reraises(client, service):
    with pytest.raises(KeyError):
        with client.track("ext-2", queue_name="imports", job_name="csv"):
            {}["missing column"]
    details = client.get_job("ext-2")
    assert details.job.state is JobState.FAILED
    (error,) = details.error_history
    assert error.type == "KeyError" and error.message == "'missing column'"
    assert "Traceback" in error.details

    # The other queue system retries: the next run is attempt 2 of the same job.
    service.clock.advance(5)
    with client.track("ext-2", queue_name="imports", job_name="csv") as run:
        assert not run.created and run.attempt_number == 2
    assert state_of(client, "ext-2") is JobState.COMPLETED


def test_track_with_non_retryable_error_dead_letters(client):
    with pytest.raises(NonRetryableError):
        with client.track("ext-3", queue_name="imports", job_name="csv"):
            raise NonRetryableError("file is not CSV")
    details = client.get_job("ext-3")
    assert details.job.state is JobState.DEAD_LETTER
    assert details.retry_log[-1].death_reason is DeathReason.NON_RETRYABLE


def test_track_does_not_run_the_block_when_start_is_refused(client):
    ran = []
    with pytest.raises(InvalidArgument) as raised:
        with client.track("ext-4", queue_name="", job_name="csv"):
            ran.append(True)
    assert raised.value.field == "queue_name"
    assert ran == []


def test_track_keeps_the_original_error_when_the_report_fails(service):
    with JobClient(service.target, timeout=5, retry=False) as client:
        with pytest.raises(ValueError) as raised:
            with client.track("ext-5", queue_name="imports", job_name="csv"):
                service.server.stop(0)  # the service goes away mid-run
                raise ValueError("handler bug")
    assert str(raised.value) == "handler bug"
    (note,) = raised.value.__notes__
    assert "reporting this failure to the job service failed too" in note and "Unavailable" in note


WORKER_SCRIPT = """
import sys, time
from datetime import timedelta
from jobqueue import JobClient, Worker

def handler(job):
    print("started", job.job_id, flush=True)
    time.sleep(1.0)
    return {"finished": True}

client = JobClient(sys.argv[1], timeout=10)
Worker(client, ["emails"], handler, poll_wait=timedelta(seconds=0.2)).run()
print("stopped", flush=True)
"""


def test_sigterm_stops_a_worker_process_after_its_running_job(client):
    client.enqueue("emails", "send", job_id="running")
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, client.connection.target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().split() == ["started", "running"]
        client.enqueue("emails", "send", job_id="queued-after")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert stdout.strip() == "stopped"
    assert client.get_job("running").job.result == {"finished": True}
    assert state_of(client, "queued-after") is JobState.WAITING


def test_a_worker_answered_early_backs_off_instead_of_polling_in_a_loop(database_url):
    """A server with its waiting slots full answers long-polls at once and empty; the Worker comes back
    after a growing pause, and still gets the job once there is one."""
    from jobqueue.v1 import job_service_pb2 as pb

    from queue_service.api.server import QueueServer
    from tests.conftest import make_config

    server = QueueServer(make_config(database_url, grpc_threads=4, max_waiting_leases=1)).start()
    target = f"127.0.0.1:{server.port}"
    try:
        with JobClient(target, timeout=30) as holder, JobClient(target, timeout=30) as client:
            # Takes the only waiting slot for the rest of the test.
            slot_taken = holder.stub.LeaseJobs.future(
                pb.LeaseJobsRequest(queue_names=["elsewhere"], wait=timedelta(seconds=20)), timeout=30
            )
            time.sleep(0.3)
            calls = []
            lease = client.lease

            def counted_lease(*args, **kwargs):
                calls.append(time.monotonic())
                return lease(*args, **kwargs)

            client.lease = counted_lease
            done = []
            worker = make_worker(client, lambda job: done.append(job.job_id), poll_wait=timedelta(seconds=2)).start()
            try:
                time.sleep(3)
                assert 2 <= len(calls) <= 10, f"{len(calls)} lease calls in 3 s"
                client.enqueue("emails", "send", {}, job_id="found")
                eventually(lambda: done == ["found"], timeout=10)
            finally:
                worker.stop(timeout=10)
            slot_taken.cancel()
    finally:
        server.stop(0)
