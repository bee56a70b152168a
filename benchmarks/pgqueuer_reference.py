"""pgqueuer's drain on the same PostgreSQL: a reference for the batched drain.

One QueueManager, as `pgq run` runs one, dequeues with the benchmark's batch size in drain mode
and marks each job successful, with a handler that does nothing. pgqueuer comes from the `bench`
extra (`pip install -e .[bench]`); it is never a dependency of the service.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from datetime import timedelta

from sqlalchemy.engine import make_url

from benchmarks.environment import BenchDatabase

ENTRYPOINT = "send"


def available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("asyncpg", "pgqueuer"))


def _dsn(database: BenchDatabase) -> str:
    return make_url(database.url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgqueuerDrain:
    """pgqueuer's schema in `database`; each `drain(jobs, batch)` enqueues `jobs` untimed, then times their drain."""

    def __init__(self, database: BenchDatabase) -> None:
        self.dsn = _dsn(database)
        asyncio.run(self._install())

    async def _install(self) -> None:
        import asyncpg
        from pgqueuer import AsyncpgDriver, Queries

        connection = await asyncpg.connect(self.dsn)
        try:
            await Queries(AsyncpgDriver(connection)).install()
        finally:
            await connection.close()

    def drain(self, jobs: int, batch: int) -> float:
        """Seconds to drain `jobs` jobs, all of which are completed (logged successful) on return."""
        return asyncio.run(self._drain(jobs, batch))

    async def _drain(self, jobs: int, batch: int) -> float:
        import asyncpg
        from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager
        from pgqueuer.types import QueueExecutionMode

        connection = await asyncpg.connect(self.dsn)
        try:
            queries = Queries(AsyncpgDriver(connection))
            for start in range(0, jobs, batch):
                count = min(batch, jobs - start)
                payloads = [f'{{"n": {start + offset}}}'.encode() for offset in range(count)]
                await queries.enqueue([ENTRYPOINT] * count, payloads, [0] * count)
        finally:
            await connection.close()

        connection = await asyncpg.connect(self.dsn)
        try:
            manager = QueueManager(Queries(AsyncpgDriver(connection)))
            done = 0

            @manager.entrypoint(ENTRYPOINT)
            async def send(job: Job) -> None:
                nonlocal done
                done += 1

            began = time.perf_counter()
            await manager.run(
                batch_size=batch,
                mode=QueueExecutionMode.drain,
                dequeue_timeout=timedelta(seconds=1),
                log_aggregation_interval=timedelta(0),
            )
            seconds = time.perf_counter() - began
            (left,) = await connection.fetchrow("SELECT count(*) FROM pgqueuer")
        finally:
            await connection.close()
        if done != jobs or left:
            raise RuntimeError(f"pgqueuer ran {done} of {jobs} jobs and left {left} in its table")
        return seconds
