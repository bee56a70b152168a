"""jobqueue.aio.Worker against a real server on SQLite and PostgreSQL: results, failures, retries,
heartbeats, a graceful stop, fatal errors and SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import pytest_asyncio
from jobqueue import DeathReason, InvalidArgument, JobState, NonRetryableError, Unauthenticated
from jobqueue.aio import JobClient, Worker

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def client(service):
    async with JobClient(service.target, timeout=10) as client:
        yield client


def make_worker(client, handler, **options):
    settings = {"poll_wait": timedelta(seconds=0.2), "heartbeat_interval": timedelta(seconds=0.05)}
    settings.update(options)
    return Worker(client, ["emails"], handler, worker_id="aio-worker", **settings)


async def state_of(client, job_id):
    return (await client.get_job(job_id)).job.state


async def eventually(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_worker_completes_jobs_with_their_results(client):
    for n in range(3):
        await client.enqueue("emails", "send", {"n": n}, job_id=f"job-{n}")
    seen = []

    async def handler(job):
        seen.append(job.job_id)
        await asyncio.sleep(0.01)
        return {"doubled": job.job_data["n"] * 2}

    worker = make_worker(client, handler, concurrency=2)
    running = asyncio.create_task(worker.run(handle_signals=False))

    async def all_done():
        return all([await state_of(client, f"job-{n}") is JobState.COMPLETED for n in range(3)])

    await eventually(all_done)
    worker.stop()
    await asyncio.wait_for(running, 10)
    assert sorted(seen) == ["job-0", "job-1", "job-2"]
    assert (worker.completed, worker.failed) == (3, 0)
    for n in range(3):
        job = (await client.get_job(f"job-{n}")).job
        assert job.result == {"doubled": n * 2} and job.worker_id == "aio-worker" and job.processing_duration


async def test_failures_are_reported_and_retried_after_the_backoff(client, service):
    await client.enqueue("emails", "send", job_id="second-time-lucky")
    await client.enqueue("emails", "send", job_id="hopeless")
    runs = []

    class SmtpError(Exception):
        pass

    async def handler(job):
        if job.job_id == "hopeless":
            raise NonRetryableError("recipient address rejected")
        runs.append(job.attempt_number)
        if job.attempt_number == 1:
            raise SmtpError("451 try again later")
        return None

    worker = make_worker(client, handler)
    running = asyncio.create_task(worker.run(handle_signals=False))
    try:

        async def first_round():
            return (
                await state_of(client, "second-time-lucky") is JobState.FAILED
                and await state_of(client, "hopeless") is JobState.DEAD_LETTER
            )

        await eventually(first_round)
        details = await client.get_job("second-time-lucky")
        (error,) = details.error_history
        assert error.type.endswith("SmtpError") and error.message == "451 try again later"
        assert "Traceback (most recent call last)" in error.details and "in handler" in error.details
        assert details.job.next_retry_at == service.clock.now() + timedelta(seconds=5)
        hopeless = await client.get_job("hopeless")
        assert hopeless.retry_log[-1].death_reason is DeathReason.NON_RETRYABLE

        await asyncio.sleep(0.5)  # a few polls: not leasable before the retry time
        assert runs == [1]
        service.clock.advance(5)

        async def completed():
            return await state_of(client, "second-time-lucky") is JobState.COMPLETED

        await eventually(completed)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)
    assert runs == [1, 2]
    assert (worker.completed, worker.failed) == (1, 2)


async def test_heartbeats_while_the_handler_runs_and_stop_waits_for_it(client, service):
    await client.enqueue("emails", "send", job_id="slow")
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(job):
        started.set()
        await release.wait()
        return {"done": True}

    worker = make_worker(client, handler, lease_duration=timedelta(seconds=60))
    running = asyncio.create_task(worker.run(handle_signals=False))
    await asyncio.wait_for(started.wait(), 10)
    first_expiry = (await client.get_job("slow")).job.lease_expires_at
    service.clock.advance(45)

    async def extended():
        return (await client.get_job("slow")).job.lease_expires_at == service.clock.now() + timedelta(seconds=60)

    await eventually(extended)
    assert (await client.get_job("slow")).job.lease_expires_at > first_expiry

    await client.enqueue("emails", "send", job_id="later")
    worker.stop()
    await asyncio.sleep(0.3)
    assert not running.done(), "run() waits for the running handler"
    release.set()
    await asyncio.wait_for(running, 10)
    assert (await client.get_job("slow")).job.result == {"done": True}
    assert await state_of(client, "later") is JobState.WAITING


async def test_fatal_errors_end_run_and_a_non_dict_result_is_a_failure(client, secured_service):
    bad_queue = Worker(client, [""], lambda job: None, poll_wait=timedelta(seconds=0.1))
    with pytest.raises(InvalidArgument):
        await asyncio.wait_for(bad_queue.run(handle_signals=False), 10)
    async with JobClient(secured_service.target, timeout=10) as anonymous:
        with pytest.raises(Unauthenticated):
            await asyncio.wait_for(make_worker(anonymous, lambda job: None).run(handle_signals=False), 10)

    async def odd(job):
        return 42

    await client.enqueue("emails", "send", job_id="odd")
    (job,) = await client.lease("emails", worker_id="aio-worker")
    assert await make_worker(client, odd).process(job) is False
    error = (await client.get_job("odd")).job.last_error
    assert error.type == "TypeError" and "returned int" in error.message


WORKER_SCRIPT = """
import asyncio, sys
from datetime import timedelta
from jobqueue.aio import JobClient, Worker

async def handler(job):
    print("started", job.job_id, flush=True)
    await asyncio.sleep(1.0)
    return {"finished": True}

async def main():
    async with JobClient(sys.argv[1], timeout=10) as client:
        await Worker(client, ["emails"], handler, poll_wait=timedelta(seconds=0.2)).run()
    print("stopped", flush=True)

asyncio.run(main())
"""


async def test_sigterm_stops_a_worker_process_after_its_running_job(client):
    await client.enqueue("emails", "send", job_id="running")
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, client.connection.target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.to_thread(process.stdout.readline)
        assert line.split() == ["started", "running"]
        await client.enqueue("emails", "send", job_id="queued-after")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert stdout.strip() == "stopped"
    assert (await client.get_job("running")).job.result == {"finished": True}
    assert await state_of(client, "queued-after") is JobState.WAITING
