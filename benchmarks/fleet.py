"""A fleet of `jobqueue.Worker`s doing scenario 2's work: producers enqueue one job per EnqueueJob,
each Worker leases, runs and acknowledges one job at a time.

The client library's own Worker is measured, not a loop written for the benchmark: its rate is
set beside the bare EnqueueJob → LeaseJobs → TrackCompletion loop of the same run, and each
acknowledgement's delay (the handler's return to TrackCompletion's answer) is timed inside the
worker process by wrapping the client the Worker reports through.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
from jobqueue import JobClient, Worker
from jobqueue.models import Job

# A Worker's fleet stops at the end of each round; an idle long-poll ends within this.
POLL_WAIT = timedelta(seconds=1)
# Each Worker on its own connection, as separate worker processes would be, so that SO_REUSEPORT spreads them.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


@dataclass
class Acks:
    """Per acknowledged run, seconds from the handler's return to the TrackCompletion call being
    made (the Worker's own share) and to its answer (what the job's producer would wait for)."""

    until_sent: list[float] = field(default_factory=list)
    until_acked: list[float] = field(default_factory=list)


class TimedJobClient(JobClient):
    """A JobClient whose TrackCompletion records its delay after the handler returned on this thread."""

    def __init__(self, target: str, acks: Acks, on_ack: Callable[[], None]) -> None:
        super().__init__(target, options=OWN_CONNECTION)
        self.acks = acks
        self.on_ack = on_ack
        self.returned = threading.local()
        self.lock = threading.Lock()

    def handler_returned(self) -> None:
        self.returned.at = time.perf_counter()

    def track_completion(self, *args: Any, **kwargs: Any) -> Job:
        sent = time.perf_counter()
        job = super().track_completion(*args, **kwargs)
        acked = time.perf_counter()
        returned = self.returned.at
        with self.lock:
            self.acks.until_sent.append(sent - returned)
            self.acks.until_acked.append(acked - returned)
        self.on_ack()
        return job


class Fleet:
    """`size` Workers, one job at a time each, on `queue`; `run_round` times one round of `jobs` jobs."""

    def __init__(self, target: str, queue: str, size: int, result: Mapping[str, Any]) -> None:
        self.queue = queue
        self.size = size
        self.result = dict(result)
        self.acks = Acks()
        self._lock = threading.Lock()
        self._acked = 0
        self._expected = 0
        self._last_ack = 0.0
        self._done = threading.Event()
        self.clients = [TimedJobClient(target, self.acks, self._count_ack) for _ in range(size)]
        for client in self.clients:
            grpc.channel_ready_future(client.connection.channel).result(timeout=30)

    def _count_ack(self) -> None:
        with self._lock:
            self._acked += 1
            if self._acked == self._expected:
                self._last_ack = time.perf_counter()
                self._done.set()

    def _handler(self, client: TimedJobClient) -> Callable[[Job], Mapping[str, Any]]:
        def handle(_job: Job) -> Mapping[str, Any]:
            client.handler_returned()
            return self.result

        return handle

    def run_round(self, jobs: int, produce: Callable[[], None], timeout: float = 600.0) -> float:
        """Start the fleet, call `produce` (which enqueues `jobs` jobs), and return the seconds from
        its start to the last acknowledgement; the fleet is stopped again before returning."""
        with self._lock:
            self._acked, self._expected = 0, jobs
            self._done.clear()
        workers = [
            Worker(
                client,
                self.queue,
                self._handler(client),
                worker_id=f"fleet-{index}",
                poll_wait=POLL_WAIT,
                log_to_stderr=False,
            ).start()
            for index, client in enumerate(self.clients)
        ]
        try:
            began = time.perf_counter()
            produce()
            if not self._done.wait(timeout):
                raise RuntimeError(f"the Worker fleet acknowledged {self._acked} of {jobs} jobs")
            return self._last_ack - began
        finally:
            for worker in workers:
                worker.stop(timeout=0)  # all at once: each long-poll ends within POLL_WAIT
            for worker in workers:
                worker.join(timeout=30)
            if any(worker.failed for worker in workers):
                raise RuntimeError(f"the Worker fleet failed {sum(worker.failed for worker in workers)} runs")

    def close(self) -> None:
        for client in self.clients:
            client.close()
