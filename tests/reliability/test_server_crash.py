"""The server is killed with SIGKILL twice under load and restarted on the same database and port.

Four worker processes (tests/reliability/crash_worker.py) work through 5,000 jobs, failing some
and walking away from a few at random (seeded); each writes down every delivery and report it saw. The server runs its recovery
sweep every half second with four-second leases. At the end every job is COMPLETED or
DEAD_LETTER, none is missing, the statistics match a recount, every acknowledged report is in
the database, and a run the crash cut off (or a worker walked away from) was ended by the sweep
and handed out again only after its lease expired (at-least-once). A late report of such a run is FAILED_PRECONDITION and changes nothing.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jobqueue import AdminClient, FailedPrecondition, JobClient
from jobqueue.models import JobRequest, RetryPolicy
from sqlalchemy import Engine, func, select

from queue_service.store import migrate
from queue_service.store.schema import dead_letter_queue, queue_jobs, queue_retry_log
from tests.databases import empty_database
from tests.reliability.crash_worker import QUEUE
from tests.reliability.processes import ServerProcess, clean_env, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
JOBS = 5000
WORKERS = 4
SEED = 20261128
LEASE_SECONDS = 4.0
FAIL_RATE = 0.2
# Runs a worker walks away from while the server is up: their leases run out with no crash involved.
ABANDON_RATE = 0.005
# A job runs at most three times; a crash-cut run counts as a failed one.
POLICY = RetryPolicy(max_retries=2, retry_delays=(timedelta(milliseconds=100),))
# The server is killed once this many jobs are finished, and again at the second mark.
KILL_AT = (1500, 3000)
TERMINAL = ("completed", "dead_letter")
DRAIN_TIMEOUT = 90
SERVER_ARGS = (
    "--recovery-interval",
    "0.5",
    "--leader-lease-term",
    "1",
    "--health-check-interval",
    "0.2",
    "--shutdown-grace",
    "0",
)


@dataclass(frozen=True)
class Delivery:
    job_id: str
    attempt: int
    worker: str
    leased_at: float
    lease_expires_at: float
    report_kind: str | None = None
    report_code: str | None = None


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_deliveries(record_files: dict[str, Path]) -> list[Delivery]:
    """One Delivery per run a worker was handed, with the answer its report got (None if it never sent one)."""
    deliveries: dict[tuple[str, int], Delivery] = {}
    duplicates = []
    for worker, path in record_files.items():
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "leased":
                key = (event["job"], event["attempt"])
                if key in deliveries:
                    duplicates.append((key, deliveries[key].worker, worker))
                deliveries[key] = Delivery(event["job"], event["attempt"], worker, event["at"], event["expires"])
            elif event["event"] == "report":
                key = (event["job"], event["attempt"])
                leased = deliveries[key]
                deliveries[key] = replace(leased, report_kind=event["kind"], report_code=event["code"])
    assert not duplicates, f"a run was handed to two workers: {duplicates[:5]}"
    return list(deliveries.values())


def finished_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(queue_jobs).where(queue_jobs.c.state.in_(TERMINAL))
        ).scalar_one()


def job_snapshot(engine: Engine, job_id: str) -> tuple:
    """Everything stored about one job: its row, its retry log and its dead-letter entry."""
    with engine.connect() as connection:
        row = connection.execute(select(queue_jobs).where(queue_jobs.c.job_id == job_id)).one()
        log = connection.execute(
            select(queue_retry_log).where(queue_retry_log.c.job_id == job_id).order_by(queue_retry_log.c.id)
        ).all()
        dead = connection.execute(select(dead_letter_queue).where(dead_letter_queue.c.job_id == job_id)).all()
    return tuple(row), [tuple(entry) for entry in log], [tuple(entry) for entry in dead]


def start_worker(target: str, name: str, records: Path, stop_file: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "tests.reliability.crash_worker",
        "--target",
        target,
        "--name",
        name,
        "--records",
        str(records),
        "--stop-file",
        str(stop_file),
        "--seed",
        str(SEED),
        "--fail-rate",
        str(FAIL_RATE),
        "--abandon-rate",
        str(ABANDON_RATE),
        "--lease-seconds",
        str(LEASE_SECONDS),
        "--max-seconds",
        "150",
    ]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=clean_env(), stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_kill_9_twice_under_load_loses_no_job_and_redelivers_cut_runs(backend, tmp_path):
    rng = random.Random(SEED)
    with empty_database(backend, tmp_path) as engine:
        migrate.upgrade(engine)
        url = engine.url.render_as_string(hide_password=False)
        server = ServerProcess(url, tmp_path / "server.log", args=SERVER_ARGS).start()
        stop_file = tmp_path / "stop"
        record_files = {f"worker{n}": tmp_path / f"worker{n}.jsonl" for n in range(WORKERS)}
        workers: list[subprocess.Popen] = []
        kills: list[tuple[float, float]] = []  # (killed at, serving again at), unix time
        began = time.monotonic()
        try:
            job_ids = [f"job-{index:05d}" for index in range(JOBS)]
            with JobClient(server.target, timeout=30) as producer:
                for start in range(0, JOBS, 500):
                    producer.enqueue_many(
                        JobRequest(QUEUE, "work", {"n": index}, job_id=job_ids[index], retry_policy=POLICY)
                        for index in range(start, min(start + 500, JOBS))
                    )
            workers = [start_worker(server.target, name, path, stop_file) for name, path in record_files.items()]

            for mark in KILL_AT:
                wait_for(lambda: finished_count(engine) >= mark, timeout=60, interval=0.2, message=f"{mark} jobs done")
                server.kill()
                killed_at = time.time()
                time.sleep(rng.uniform(0.2, 1.0))
                server.start()
                kills.append((killed_at, time.time()))

            wait_for(
                lambda: finished_count(engine) == JOBS,
                timeout=DRAIN_TIMEOUT,
                interval=0.2,
                message="every job COMPLETED or DEAD_LETTER",
            )
            drained = time.monotonic() - began
            stop_file.touch()
            for process in workers:
                _, errors = process.communicate(timeout=30)
                assert process.returncode == 0, errors

            deliveries = read_deliveries(record_files)
            with engine.connect() as connection:
                jobs = {row.job_id: row for row in connection.execute(select(queue_jobs))}
                log = defaultdict(dict)
                for entry in connection.execute(select(queue_retry_log).order_by(queue_retry_log.c.id)):
                    assert entry.attempt_number not in log[entry.job_id], f"two decisions for one run: {entry}"
                    log[entry.job_id][entry.attempt_number] = entry
                dead_letters = {row.job_id: row for row in connection.execute(select(dead_letter_queue))}

            # Every job is there, once, in a final state, and holds no lease.
            assert sorted(jobs) == job_ids
            states = Counter(job.state for job in jobs.values())
            assert set(states) <= set(TERMINAL), states
            assert all(job.lease_expires_at is None for job in jobs.values())
            assert set(dead_letters) == {job_id for job_id, job in jobs.items() if job.state == "dead_letter"}

            # The statistics (kept by triggers) agree with a recount.
            with AdminClient(server.target, timeout=30) as admin:
                totals = admin.get_statistics([QUEUE]).totals
            assert (totals.completed_count, totals.dead_letter_count) == (states["completed"], states["dead_letter"])
            assert (totals.waiting_count, totals.delayed_count, totals.active_count, totals.failed_count) == (
                0,
                0,
                0,
                0,
            )
            assert (
                totals.dead_letter_summary.total_count == totals.dead_letter_summary.pending_count == len(dead_letters)
            )

            # Each run of a job ended in exactly one way: the last one COMPLETED or dead-lettered it, every
            # earlier one has a retry decision, whether a worker reported it or its lease expired.
            for job_id, job in jobs.items():
                decided = log[job_id]
                earlier = set(range(1, job.attempt_number))
                if job.state == "completed":
                    assert set(decided) == earlier, (job_id, job.attempt_number, sorted(decided))
                else:
                    assert set(decided) == earlier | {job.attempt_number}, (job_id, job.attempt_number, sorted(decided))
                    assert decided[job.attempt_number].decision == "dead_letter"

            by_job: dict[str, dict[int, Delivery]] = defaultdict(dict)
            for delivery in deliveries:
                by_job[delivery.job_id][delivery.attempt] = delivery
            for job_id, job in jobs.items():
                assert max(by_job[job_id], default=0) <= job.attempt_number, job_id
                if job.state == "completed":
                    assert job.attempt_number in by_job[job_id], f"{job_id} completed by a run no worker had"

            # Every acknowledged report is what the database says about that run.
            for delivery in deliveries:
                job = jobs[delivery.job_id]
                if delivery.report_code == "OK" and delivery.report_kind == "complete":
                    assert (job.state, job.attempt_number) == ("completed", delivery.attempt), delivery
                elif delivery.report_code == "OK":
                    error_type = log[delivery.job_id][delivery.attempt].error["type"]
                    assert error_type == "Simulated", (delivery, error_type)

            # Runs the crash cut off: handed out, but the report never arrived. Their leases expired and
            # the sweep failed them, and the job was handed out again no sooner than its lease ended.
            cut = [
                delivery
                for delivery in deliveries
                if delivery.report_code != "OK"
                and log[delivery.job_id].get(delivery.attempt) is not None
                and log[delivery.job_id][delivery.attempt].error["type"] == "LeaseExpired"
            ]
            redelivered = [
                (delivery, by_job[delivery.job_id][delivery.attempt + 1])
                for delivery in cut
                if delivery.attempt + 1 in by_job[delivery.job_id]
            ]
            crash_cut = [
                (delivery, again)
                for delivery, again in redelivered
                if delivery.report_code == "UNAVAILABLE"
                and any(killed_at - LEASE_SECONDS <= delivery.leased_at <= killed_at for killed_at, _ in kills)
            ]
            assert crash_cut, f"no run cut by a crash was handed out again (cut: {len(cut)})"
            for delivery in cut:
                # Ended by the sweep, and handed out again, only once its lease had run out (the service's
                # clock, which is the workers' clock too: one machine).
                ended_at = aware(log[delivery.job_id][delivery.attempt].created_at).timestamp()
                assert ended_at >= delivery.lease_expires_at, (delivery, ended_at)
            for delivery, again in redelivered:
                assert again.leased_at >= delivery.lease_expires_at, (delivery, again)
            unreported = [d for d in deliveries if d.report_code not in ("OK", None)]
            assert all(d.report_code in ("UNAVAILABLE", "FAILED_PRECONDITION") for d in unreported), Counter(
                d.report_code for d in unreported
            )

            # A late report of a run the sweep ended is refused and changes nothing.
            with JobClient(server.target, timeout=30) as late:
                for delivery, _ in crash_cut[:20]:
                    before = job_snapshot(engine, delivery.job_id)
                    with pytest.raises(FailedPrecondition):
                        late.track_completion(delivery.job_id, delivery.attempt)
                    with pytest.raises(FailedPrecondition):
                        late.track_failure(delivery.job_id, delivery.attempt, "late failure")
                    assert job_snapshot(engine, delivery.job_id) == before
        finally:
            stop_file.touch()
            for process in workers:
                if process.poll() is None:
                    process.kill()
                    process.wait(30)
            server.stop()

    assert server.starts == 3
    assert "Traceback" not in server.log_text(), server.log_tail()
    print(
        f"{backend}: {JOBS} jobs drained in {drained:.1f}s through {len(kills)} kills; states {dict(states)}; "
        f"{len(deliveries)} deliveries, {len(cut)} runs cut off and expired, {len(crash_cut)} of them by a crash "
        f"and handed out again; report codes {dict(Counter(d.report_code for d in deliveries))}"
    )
