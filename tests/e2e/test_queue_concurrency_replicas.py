"""Lease limits hold across server processes: 16 workers spread over three `queue-service serve`
replicas on one PostgreSQL database (one server on SQLite) never run more than max_active jobs of a
queue at once, and start no more than the rate allows plus one burst in any 10 s.

Both are measured, not assumed: ACTIVE jobs by sampling the database and by the overlap of the
workers' own run intervals; starts by the jobs' started_at. The same harness with the limits unset
must break both bounds, or the measurements could not catch a broken limit.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from jobqueue import AdminClient, JobClient, JobRequest
from sqlalchemy import create_engine, func, select

from queue_service.store.schema import queue_jobs
from tests.e2e.server_process import serve

pytestmark = pytest.mark.slow

WORKERS = 16
MAX_ACTIVE = 4
STARTS_PER_SECOND = 5.0
BURST = max(1.0, STARTS_PER_SECOND)
WINDOW_SECONDS = 10.0
# Most starts any WINDOW_SECONDS may see: a full bucket plus its refill.
MAX_STARTS_IN_WINDOW = int(BURST + STARTS_PER_SECOND * WINDOW_SECONDS)
CAPPED_JOB_SECONDS = 0.5
METERED_JOB_SECONDS = 0.05


@dataclass
class Observed:
    intervals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    sampled_active: dict[str, int] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that share an instant (an end before a start at the same time)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def most_starts_in_window(starts: list[float], window: float) -> int:
    starts = sorted(starts)
    peak = 0
    last = 0
    for first, moment in enumerate(starts):
        last = max(last, first)
        while last < len(starts) and starts[last] < moment + window:
            last += 1
        peak = max(peak, last - first)
    return peak


def run_workers(targets: list[str], database_url: str, queues: list[str], seconds: float) -> Observed:
    """WORKERS threads lease from `queues` (each job sleeps its job_data seconds) for `seconds`,
    round-robin over `targets`, while another samples the ACTIVE count of each queue."""
    observed = Observed(intervals={queue: [] for queue in queues}, sampled_active=dict.fromkeys(queues, 0))
    stop = threading.Event()
    lock = threading.Lock()

    def work(index: int) -> None:
        try:
            with JobClient(targets[index % len(targets)], timeout=30) as client:
                while not stop.is_set():
                    jobs = client.lease(queues, worker_id=f"w{index}", max_jobs=2, wait=timedelta(seconds=0.5))
                    leased_at = time.monotonic()
                    for job in jobs:
                        time.sleep(job.job_data["seconds"])
                        finished_at = time.monotonic()
                        client.track_completion(job.job_id, job.attempt_number)
                        with lock:
                            observed.intervals[job.queue_name].append((leased_at, finished_at))
                        leased_at = finished_at
        except BaseException as error:  # noqa: BLE001 - reported by the test
            observed.errors.append(error)

    def sample() -> None:
        engine = create_engine(database_url)
        try:
            with engine.connect() as connection:
                while not stop.is_set():
                    rows = connection.execute(
                        select(queue_jobs.c.queue_name, func.count())
                        .where(queue_jobs.c.state == "active", queue_jobs.c.queue_name.in_(queues))
                        .group_by(queue_jobs.c.queue_name)
                    ).all()
                    connection.rollback()
                    for queue, count in rows:
                        observed.sampled_active[queue] = max(observed.sampled_active[queue], count)
                    time.sleep(0.01)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            observed.errors.append(error)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(WORKERS)]
    threads.append(threading.Thread(target=sample))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not observed.errors, observed.errors
    return observed


def start_times(database_url: str, queue: str) -> list[float]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(queue_jobs.c.started_at).where(
                    queue_jobs.c.queue_name == queue, queue_jobs.c.started_at.is_not(None)
                )
            ).all()
    finally:
        engine.dispose()
    return [started_at.timestamp() for (started_at,) in rows]


def fill(target: str, capped: str, metered: str, count: int) -> None:
    with JobClient(target, timeout=60) as client:
        for offset in range(0, count, 100):
            batch = []
            for _ in range(min(100, count - offset)):
                batch.append(JobRequest(capped, "work", {"seconds": CAPPED_JOB_SECONDS}))
                batch.append(JobRequest(metered, "work", {"seconds": METERED_JOB_SECONDS}))
            client.enqueue_many(batch)


def test_limits_hold_across_replicas(database_url, backend, tmp_path):
    replicas = 3 if backend == "postgresql" else 1
    with ExitStack() as stack:
        targets = [
            stack.enter_context(serve(database_url, tmp_path, "--recovery-interval", "600")).address
            for _ in range(replicas)
        ]
        fill(targets[0], "capped", "metered", 200)
        fill(targets[0], "capped-free", "metered-free", 200)
        with AdminClient(targets[-1], timeout=30) as admin:
            admin.update_queue_policy("capped", max_active=MAX_ACTIVE)
            admin.update_queue_policy("metered", max_starts_per_second=STARTS_PER_SECOND)
            shown = admin.get_queue("capped"), admin.get_queue("metered")
        assert (shown[0].max_active, shown[1].max_starts_per_second) == (MAX_ACTIVE, STARTS_PER_SECOND)

        # Without limits the same harness exceeds both bounds: the measurements can see a breach.
        free = run_workers(targets, database_url, ["capped-free", "metered-free"], seconds=5)
        assert max_overlap(free.intervals["capped-free"]) > MAX_ACTIVE
        assert free.sampled_active["capped-free"] > MAX_ACTIVE
        assert most_starts_in_window(start_times(database_url, "metered-free"), WINDOW_SECONDS) > MAX_STARTS_IN_WINDOW

        limited = run_workers(targets, database_url, ["capped", "metered"], seconds=WINDOW_SECONDS + 1)
        overlap = max_overlap(limited.intervals["capped"])
        assert overlap <= MAX_ACTIVE and limited.sampled_active["capped"] <= MAX_ACTIVE, (
            overlap,
            limited.sampled_active,
        )
        # The limit was reached, so it is what held the count down.
        assert overlap == MAX_ACTIVE, overlap
        starts = most_starts_in_window(start_times(database_url, "metered"), WINDOW_SECONDS)
        assert starts <= MAX_STARTS_IN_WINDOW
        assert starts >= 0.8 * MAX_STARTS_IN_WINDOW, starts
