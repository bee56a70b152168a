"""The asyncio client: JobClient, AdminClient and Worker over grpc.aio.

    from jobqueue.aio import AdminClient, JobClient, Worker

    async with JobClient("localhost:50051", token=token) as client:
        await client.enqueue("emails", "send", {"to": "a@example.com"})

Same method names, arguments, models (jobqueue.models) and typed errors (jobqueue.errors)
as the synchronous client; every call is awaited, list calls return an AsyncPager.
"""

from jobqueue.aio.admin_client import AdminClient, AsyncPager
from jobqueue.aio.job_client import JobClient, TrackedRun
from jobqueue.aio.worker import AsyncHandler, Worker

__all__ = ["AdminClient", "AsyncHandler", "AsyncPager", "JobClient", "TrackedRun", "Worker"]
