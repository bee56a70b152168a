"""Producers and workers that keep a server busy through a database fault, and the ledger of what they saw.

The ledger keeps what the clients were acknowledged (enqueues, leases, completions) and every
status code by the phase its call started in, so a test can check afterwards that nothing
acknowledged is missing from the database and which codes each phase of the fault produced.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from grpc_health.v1 import health_pb2
from jobqueue import JobClient, JobQueueError
from sqlalchemy import create_engine, select

from queue_service.store.schema import queue_jobs
from tests.reliability.processes import health_status

# Bounds on the load, whatever happens.
MAX_JOBS_PER_PRODUCER = 3000


@dataclass
class Ledger:
    """What the clients saw: acknowledged writes, and every status by the phase its call started in."""

    phase: str = "before"
    enqueued: set[str] = field(default_factory=set)
    # Every run handed out, as (job_id, attempt_number), counted: a count of 2 is a run delivered twice.
    leased: Counter = field(default_factory=Counter)
    completed: dict[str, int] = field(default_factory=dict)
    codes: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, phase: str, code: str) -> None:
        """Count `code` under the phase the call started in."""
        with self.lock:
            self.codes[(phase, code)] += 1

    def codes_in(self, phase: str) -> dict[str, int]:
        return {code: count for (seen, code), count in self.codes.items() if seen == phase}


def produce(target: str, queue: str, name: str, ledger: Ledger, stop: threading.Event) -> None:
    with JobClient(target, timeout=5, retry=False) as client:
        for index in range(MAX_JOBS_PER_PRODUCER):
            if stop.is_set():
                return
            job_id = f"{name}-{index}"
            phase = ledger.phase
            try:
                client.enqueue(queue, "work", {"index": index}, job_id=job_id)
            except JobQueueError as error:
                ledger.record(phase, error.code.name)
                stop.wait(0.05)
                continue
            ledger.record(phase, "OK")
            with ledger.lock:
                ledger.enqueued.add(job_id)


def work(target: str, queue: str, name: str, ledger: Ledger, stop: threading.Event) -> None:
    with JobClient(target, timeout=5, retry=False) as client:
        while not stop.is_set():
            phase = ledger.phase
            try:
                jobs = client.lease(queue, worker_id=name, max_jobs=10, wait=timedelta(seconds=0.2))
            except JobQueueError as error:
                ledger.record(phase, error.code.name)
                stop.wait(0.05)
                continue
            ledger.record(phase, "OK")
            with ledger.lock:
                ledger.leased.update((job.job_id, job.attempt_number) for job in jobs)
            for job in jobs:
                phase = ledger.phase
                try:
                    client.track_completion(job.job_id, job.attempt_number)
                except JobQueueError as error:
                    ledger.record(phase, error.code.name)
                    continue  # its lease runs out; a later sweep hands it out again
                ledger.record(phase, "OK")
                with ledger.lock:
                    ledger.completed[job.job_id] = job.attempt_number


def start_load(target: str, queue: str, ledger: Ledger, stop: threading.Event, *, producers: int, workers: int):
    """Start the producer and worker threads; they run until `stop` is set."""
    threads = [
        threading.Thread(target=produce, args=(target, queue, f"producer{n}", ledger, stop), daemon=True)
        for n in range(producers)
    ] + [
        threading.Thread(target=work, args=(target, queue, f"worker{n}", ledger, stop), daemon=True)
        for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    return threads


def stop_load(stop: threading.Event, threads: list[threading.Thread]) -> None:
    stop.set()
    for thread in threads:
        thread.join(30)


def serves_again(target: str, queue: str, job_id: str) -> bool:
    """Health says SERVING and an enqueue of `job_id` is acknowledged."""
    if health_status(target) != health_pb2.HealthCheckResponse.SERVING:
        return False
    with JobClient(target, timeout=2, retry=False) as client:
        try:
            client.enqueue(queue, "work", job_id=job_id)
        except JobQueueError:
            return False
    return True


def assert_nothing_acknowledged_is_lost(ledger: Ledger, database_url: str) -> dict:
    """Every acknowledged enqueue, lease and completion is in the database; returns its jobs by id."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(queue_jobs.c.job_id, queue_jobs.c.state, queue_jobs.c.attempt_number)
            ).all()
    finally:
        engine.dispose()
    stored = {row.job_id: row for row in rows}
    missing = ledger.enqueued - stored.keys()
    assert not missing, f"{len(missing)} acknowledged enqueues lost, e.g. {sorted(missing)[:5]}"
    leases_lost = [
        (job_id, attempt)
        for job_id, attempt in ledger.leased
        if job_id not in stored or stored[job_id].attempt_number < attempt
    ]
    assert not leases_lost, f"acknowledged leases lost (the run is not in the database): {leases_lost[:5]}"
    not_completed = [
        job_id
        for job_id, attempt in ledger.completed.items()
        if (stored[job_id].state, stored[job_id].attempt_number) != ("completed", attempt)
    ]
    assert not not_completed, f"acknowledged completions lost: {not_completed[:5]}"
    return stored
