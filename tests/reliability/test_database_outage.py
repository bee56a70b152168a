"""The database goes away under load and comes back: the service says so, then heals by itself.

The test runs its own PostgreSQL (never the machine's shared one), puts producers and workers on
a `queue-service serve` process over it, and crashes PostgreSQL (`pg_ctl stop -m immediate`) in
the middle. While it is down every RPC gets UNAVAILABLE and health says NOT_SERVING; once it is
back the same server process serves again within seconds, and every write a client saw
acknowledged is in the database.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from grpc_health.v1 import health_pb2
from jobqueue import JobClient, JobQueueError
from sqlalchemy import create_engine, func, select

from queue_service.store.schema import queue_jobs
from tests.conftest import REQUIRE_POSTGRES_ENV
from tests.reliability.processes import ServerProcess, clean_env, health_status, wait_for
from tests.reliability.throwaway_postgres import ThrowawayPostgres, server_binaries

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
QUEUE = "outage"
# Bounds on the load, whatever happens.
MAX_JOBS_PER_PRODUCER = 3000
MAX_LOAD_SECONDS = 60
RECOVERY_LIMIT_SECONDS = 5.0


@pytest.fixture
def throwaway_postgres():
    binaries = server_binaries()
    if binaries is None:
        message = "no PostgreSQL server binaries (initdb) installed"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)
    postgres = ThrowawayPostgres(binaries)
    try:
        postgres.start()
        yield postgres
    finally:
        postgres.destroy()  # even when the test failed half-way, with the server stopped or not


@dataclass
class Ledger:
    """What the clients saw: acknowledged writes, and every status by the phase its call started in."""

    phase: str = "before"
    enqueued: set[str] = field(default_factory=set)
    completed: dict[str, int] = field(default_factory=dict)
    codes: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, phase: str, code: str) -> None:
        """Count `code` under the phase the call started in."""
        with self.lock:
            self.codes[(phase, code)] += 1

    def codes_in(self, phase: str) -> dict[str, int]:
        return {code: count for (seen, code), count in self.codes.items() if seen == phase}


def produce(target: str, name: str, ledger: Ledger, stop: threading.Event) -> None:
    with JobClient(target, timeout=5, retry=False) as client:
        for index in range(MAX_JOBS_PER_PRODUCER):
            if stop.is_set():
                return
            job_id = f"{name}-{index}"
            phase = ledger.phase
            try:
                client.enqueue(QUEUE, "work", {"index": index}, job_id=job_id)
            except JobQueueError as error:
                ledger.record(phase, error.code.name)
                stop.wait(0.05)
                continue
            ledger.record(phase, "OK")
            with ledger.lock:
                ledger.enqueued.add(job_id)


def work(target: str, name: str, ledger: Ledger, stop: threading.Event) -> None:
    with JobClient(target, timeout=5, retry=False) as client:
        while not stop.is_set():
            phase = ledger.phase
            try:
                jobs = client.lease(QUEUE, worker_id=name, max_jobs=10, wait=timedelta(seconds=0.2))
            except JobQueueError as error:
                ledger.record(phase, error.code.name)
                stop.wait(0.05)
                continue
            ledger.record(phase, "OK")
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


@pytest.mark.slow
def test_a_database_outage_is_reported_and_healed_without_a_restart(throwaway_postgres, tmp_path):
    postgres = throwaway_postgres
    server = ServerProcess(
        postgres.url,
        tmp_path / "server.log",
        args=("--migrate", "--health-check-interval", "0.2"),
        env=clean_env(),
    ).start()
    ledger = Ledger()
    stop = threading.Event()
    threads = [
        threading.Thread(target=produce, args=(server.target, f"producer{n}", ledger, stop), daemon=True)
        for n in range(2)
    ] + [threading.Thread(target=work, args=(server.target, f"worker{n}", ledger, stop), daemon=True) for n in range(2)]
    began = time.monotonic()
    try:
        assert health_status(server.target) == SERVING
        for thread in threads:
            thread.start()
        wait_for(lambda: len(ledger.completed) >= 50, timeout=30, message="jobs flowing before the outage")

        postgres.stop("immediate")
        ledger.phase = "outage"
        wait_for(lambda: health_status(server.target) == NOT_SERVING, timeout=5, message="health NOT_SERVING")
        with JobClient(server.target, timeout=5, retry=False) as probe:
            with pytest.raises(JobQueueError) as raised:
                probe.get_job(next(iter(ledger.enqueued)))
        assert (raised.value.code.name, raised.value.reason) == ("UNAVAILABLE", "DATABASE_UNAVAILABLE")
        time.sleep(1.5)  # the load keeps calling through the outage

        # Calls from here on may find PostgreSQL back before pg_ctl says so.
        ledger.phase = "recovery"
        postgres.start()
        restarted = time.monotonic()

        def healed() -> bool:
            if health_status(server.target) != SERVING:
                return False
            with JobClient(server.target, timeout=2, retry=False) as client:
                try:
                    client.enqueue(QUEUE, "work", job_id="after-the-outage")
                except JobQueueError:
                    return False
            return True

        wait_for(healed, timeout=RECOVERY_LIMIT_SECONDS, interval=0.05, message="the service to heal by itself")
        healed_after = time.monotonic() - restarted
        ledger.phase = "after"
        completed_before = len(ledger.completed)
        wait_for(lambda: len(ledger.completed) >= completed_before + 50, timeout=30, message="jobs flowing again")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        elapsed = time.monotonic() - began
        pid_alive = server.alive()
        server.stop()
    assert elapsed < MAX_LOAD_SECONDS + 60
    assert pid_alive and server.starts == 1, "the same server process served throughout, never restarted"

    outage = ledger.codes_in("outage")
    assert outage.get("UNAVAILABLE", 0) > 0, ledger.codes
    assert set(outage) <= {"UNAVAILABLE"}, f"during the outage only UNAVAILABLE: {outage}"
    for phase in ("before", "recovery", "after"):
        assert set(ledger.codes_in(phase)) <= {"OK", "UNAVAILABLE"}, (phase, ledger.codes)
    assert ledger.codes_in("after").get("UNAVAILABLE", 0) == 0, "healed means no more UNAVAILABLE"

    # No acknowledged write is lost: every acknowledged enqueue and completion is in the database.
    engine = create_engine(postgres.url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(queue_jobs.c.job_id, queue_jobs.c.state, queue_jobs.c.attempt_number)).all()
            total = connection.execute(select(func.count()).select_from(queue_jobs)).scalar_one()
    finally:
        engine.dispose()
    stored = {row.job_id: row for row in rows}
    missing = ledger.enqueued - stored.keys()
    assert not missing, f"{len(missing)} acknowledged enqueues lost, e.g. {sorted(missing)[:5]}"
    not_completed = [
        job_id
        for job_id, attempt in ledger.completed.items()
        if (stored[job_id].state, stored[job_id].attempt_number) != ("completed", attempt)
    ]
    assert not not_completed, f"acknowledged completions lost: {not_completed[:5]}"
    assert total >= len(ledger.enqueued) and len(ledger.completed) >= 100
    assert "Traceback" not in server.log_text()
    print(
        f"outage: {len(ledger.enqueued)} enqueues and {len(ledger.completed)} completions acknowledged, "
        f"healed {healed_after:.2f}s after PostgreSQL was back, codes {dict(ledger.codes)}"
    )
