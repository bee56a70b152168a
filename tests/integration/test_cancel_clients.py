"""cancel_job and cancel_jobs of both Python clients against a real server on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from jobqueue import AdminClient, FailedPrecondition, JobClient, JobState, aio


def test_sync_clients_cancel_one_job_and_in_bulk(service):
    with JobClient(service.target, timeout=10) as client, AdminClient(service.target, timeout=10) as admin:
        for n in range(3):
            client.enqueue("emails", "send", {}, job_id=f"w{n}")
        client.enqueue("other", "send", {}, job_id="keep")
        assert client.cancel_job("w0", reason="duplicate").state == JobState.CANCELLED
        (dry,) = admin.cancel_jobs(queue_name="emails", dry_run=True)
        assert dry.done and dry.matched_count == 2 and {job.job_id for job in dry.sample} == {"w1", "w2"}
        progress = list(admin.cancel_jobs(queue_name="emails", states=[JobState.WAITING], reason="cleanup"))
        assert progress[-1].done and progress[-1].cancelled_count == 2
        assert client.get_job("keep").job.state == JobState.WAITING
        with pytest.raises(ValueError):
            list(admin.cancel_jobs(states=["nonsense"]))
        (by_id,) = [p for p in admin.cancel_jobs(ids=["keep", "w0"]) if p.done]
        assert by_id.cancelled_count == 1 and [skip.job_id for skip in by_id.skipped] == ["w0"]
        assert admin.get_statistics(["emails"]).queues[0].cancelled_count == 3


@pytest.mark.asyncio
async def test_async_clients_cancel_one_job_and_in_bulk(service):
    async with (
        aio.JobClient(service.target, timeout=10) as client,
        aio.AdminClient(service.target, timeout=10) as admin,
    ):
        await client.enqueue("emails", "send", {}, job_id="a")
        await client.enqueue("emails", "send", {}, job_id="b")
        (leased,) = await client.lease(["emails"], max_jobs=1)
        marked = await client.cancel_job(leased.job_id)
        assert marked.state == JobState.ACTIVE and marked.cancel_requested_at is not None
        beat = await client.heartbeat_status(leased.job_id, leased.attempt_number)
        assert beat.cancel_requested
        progress = [item async for item in admin.cancel_jobs(queue_name="emails")]
        assert progress[-1].cancelled_count == 1 and progress[-1].matched_count == 1
        await client.track_completion(leased.job_id, leased.attempt_number)
        assert (await client.get_job(leased.job_id)).job.state == JobState.CANCELLED
        with pytest.raises(FailedPrecondition):
            await client.heartbeat(leased.job_id, leased.attempt_number)
