"""Three `queue-service serve` replicas on one PostgreSQL database; callers of the synchronous and the
asyncio client, given all three targets, keep working while one replica is killed with SIGKILL.

The clients balance with gRPC's own round_robin policy and client-side health checking, and
retry the calls that are safe to repeat on UNAVAILABLE: no caller sees an error.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request
from collections import Counter

import pytest
from jobqueue import JobClient, JobQueueError, aio

from queue_service.store import migrate
from tests.databases import empty_database
from tests.reliability.processes import ServerProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPLICAS = 3
SYNC_CALLERS = 4
ASYNC_CALLERS = 4
BEFORE_KILL_SECONDS = 1.5
AFTER_KILL_SECONDS = 3.0


def handled_calls(metrics_port: int) -> int:
    """How many JobService calls the replica has answered, from its Prometheus endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = r'^grpc_server_handled_total\{[^}]*grpc_service="jobqueue\.v1\.JobService"[^}]*\} ([0-9.e+]+)$'
    return int(sum(float(value) for value in re.findall(pattern, text, re.MULTILINE)))


class Load:
    """Callers that enqueue a job and read it back, over and over, and note what they saw."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.job_ids: list[str] = []
        self.done = Counter[str]()
        self.lock = threading.Lock()

    def note(self, phase: str, job_id: str) -> None:
        with self.lock:
            self.job_ids.append(job_id)
            self.done[phase] += 1

    def sync_caller(self, targets: list[str], phase: dict[str, str]) -> None:
        with JobClient(targets, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    job = client.enqueue("failover", "ping", {"n": 1}).job
                    assert client.get_job(job.job_id).job.job_id == job.job_id
                except JobQueueError as error:
                    with self.lock:
                        self.errors.append(f"sync: {error!r}")
                    continue
                self.note(phase["now"], job.job_id)

    def async_callers(self, targets: list[str], phase: dict[str, str]) -> None:
        async def caller(client: aio.JobClient) -> None:
            while not self.stop.is_set():
                try:
                    job = (await client.enqueue("failover", "ping", {"n": 2})).job
                    assert (await client.get_job(job.job_id)).job.job_id == job.job_id
                except JobQueueError as error:
                    with self.lock:
                        self.errors.append(f"asyncio: {error!r}")
                    continue
                self.note(phase["now"], job.job_id)

        async def main() -> None:
            async with aio.JobClient(targets, timeout=10) as client:
                await asyncio.gather(*(caller(client) for _ in range(ASYNC_CALLERS)))

        asyncio.run(main())


def test_callers_see_no_error_when_a_replica_is_killed_under_load(tmp_path):
    with empty_database("postgresql", tmp_path) as engine:
        migrate.upgrade(engine)
        url = engine.url.render_as_string(hide_password=False)
        metrics_ports = [free_port() for _ in range(REPLICAS)]
        replicas = [
            ServerProcess(
                url,
                tmp_path / f"replica{n}.log",
                args=("--node-id", f"replica{n}", "--metrics-port", str(metrics_ports[n])),
            )
            for n in range(REPLICAS)
        ]
        load = Load()
        phase = {"now": "before"}
        threads: list[threading.Thread] = []
        try:
            for replica in replicas:
                replica.start()
            targets = [replica.target for replica in replicas]
            threads = [
                threading.Thread(target=load.sync_caller, args=(targets, phase), daemon=True)
                for _ in range(SYNC_CALLERS)
            ]
            threads.append(threading.Thread(target=load.async_callers, args=(targets, phase), daemon=True))
            for thread in threads:
                thread.start()
            time.sleep(BEFORE_KILL_SECONDS)
            served_before_kill = [handled_calls(port) for port in metrics_ports]
            assert all(count > 0 for count in served_before_kill), served_before_kill  # every replica took calls

            replicas[0].kill()
            phase["now"] = "after"
            time.sleep(AFTER_KILL_SECONDS)
            load.stop.set()
            for thread in threads:
                thread.join(30)
            assert not any(thread.is_alive() for thread in threads)

            assert load.errors == []
            assert load.done["before"] > 0 and load.done["after"] > 0, load.done
            # The survivors took the killed replica's share.
            assert all(handled_calls(port) > before for port, before in zip(metrics_ports[1:], served_before_kill[1:]))
            # Every job a caller saw enqueued is there.
            with JobClient(targets[1:], timeout=10) as client:
                for job_id in load.job_ids:
                    client.get_job(job_id)
        finally:
            load.stop.set()
            for replica in replicas:
                replica.stop()
