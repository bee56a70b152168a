"""A cancelled job's running handler is stopped by both Python workers, through a real server on
SQLite and PostgreSQL: the heartbeat learns of the cancellation, the handler stops (a flag in the
sync Worker, asyncio.CancelledError in the async one), and the job ends CANCELLED, not retried."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from jobqueue import AdminClient, JobCancelled, JobClient, JobState, Worker, aio, cancel_requested

SETTINGS = {"poll_wait": timedelta(seconds=0.2), "heartbeat_interval": timedelta(seconds=0.05)}


def eventually(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def assert_cancelled_for_good(service, client):
    """CANCELLED after its one run, and still so once retries would have come due."""
    service.clock.advance(timedelta(hours=1))
    with AdminClient(service.target, timeout=10) as admin:
        admin.trigger_recovery()
        stats = admin.get_statistics(["emails"]).queues[0]
    job = client.get_job("long").job
    assert (job.state, job.attempt_number) == (JobState.CANCELLED, 1)
    assert (stats.cancelled_count, stats.failed_count, stats.dead_letter_count) == (1, 0, 0)


def test_the_sync_worker_lets_the_handler_see_the_cancellation_and_stop(service):
    with JobClient(service.target, timeout=10) as client:
        client.enqueue("emails", "send", {}, job_id="long")
        started = threading.Event()
        stopped = []

        def handler(job):
            started.set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if cancel_requested():
                    stopped.append(job.job_id)
                    raise JobCancelled()
                time.sleep(0.01)
            return {"ran": "to its end"}

        worker = Worker(client, ["emails"], handler, worker_id="w", **SETTINGS).start()
        try:
            assert started.wait(10)
            marked = client.cancel_job("long", reason="not needed any more")
            assert marked.state == JobState.ACTIVE and marked.cancel_requested_at is not None
            eventually(lambda: client.get_job("long").job.state == JobState.CANCELLED)
        finally:
            worker.stop(10)
        assert stopped == ["long"]
        assert (worker.cancelled, worker.failed, worker.completed) == (1, 0, 0)
        assert_cancelled_for_good(service, client)


def test_a_sync_handler_that_ignores_the_cancellation_still_ends_cancelled(service):
    with JobClient(service.target, timeout=10) as client:
        client.enqueue("emails", "send", {}, job_id="long")
        started, release = threading.Event(), threading.Event()

        def handler(job):
            started.set()
            release.wait(20)
            return {"done": True}

        worker = Worker(client, ["emails"], handler, worker_id="w", **SETTINGS).start()
        try:
            assert started.wait(10)
            client.cancel_job("long")
            time.sleep(0.3)  # a few heartbeats
            release.set()
            eventually(lambda: client.get_job("long").job.state == JobState.CANCELLED)
        finally:
            release.set()
            worker.stop(10)
        assert worker.cancelled == 1
        assert_cancelled_for_good(service, client)


@pytest.mark.asyncio
async def test_the_async_worker_cancels_the_handler_task(service):
    async with aio.JobClient(service.target, timeout=10) as client:
        await client.enqueue("emails", "send", {}, job_id="long")
        started = asyncio.Event()
        seen = []

        async def handler(job):
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                seen.append(cancel_requested())
                raise
            return {"ran": "to its end"}

        worker = aio.Worker(client, ["emails"], handler, worker_id="aio", **SETTINGS)
        running = asyncio.create_task(worker.run(handle_signals=False))
        try:
            await asyncio.wait_for(started.wait(), 10)
            marked = await client.cancel_job("long")
            assert marked.cancel_requested_at is not None
            deadline = time.monotonic() + 15
            while (await client.get_job("long")).job.state != JobState.CANCELLED:
                assert time.monotonic() < deadline, "the job was not cancelled in time"
                await asyncio.sleep(0.02)
        finally:
            worker.stop()
            await asyncio.wait_for(running, 10)
        assert seen == [True]
        assert (worker.cancelled, worker.failed, worker.completed) == (1, 0, 0)
    with JobClient(service.target, timeout=10) as sync_client:
        assert_cancelled_for_good(service, sync_client)
