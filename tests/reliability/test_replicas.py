"""Three `queue-service serve` replicas on one PostgreSQL database, sixteen workers leasing through all of them.

No job is ever held by two workers at once: each run's lease window (from the lease to its report,
or to its lease's expiry when the worker walked away) ends before the next run of that job begins,
by the service's own timestamps. Exactly one replica sweeps at a time, the elected leader: recovery
runs never overlap and each comes from the leader of its moment. When the leader is killed with
SIGKILL another replica is elected and sweeps within a few seconds.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from jobqueue import JobClient, JobQueueError
from jobqueue.models import Job, JobRequest, RetryPolicy
from sqlalchemy import Engine, func, select

from queue_service.store import migrate
from queue_service.store.schema import queue_jobs, queue_leases, queue_recovery_runs
from tests.databases import empty_database
from tests.reliability.crash_worker import CHANNEL_OPTIONS
from tests.reliability.processes import ServerProcess, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPLICAS = 3
WORKERS = 16
JOBS = 2000
QUEUE = "replicated"
SEED = 1128
LEASE = timedelta(seconds=2)
LEADER_TERM_SECONDS = 2
# A worker walks away from this share of its runs without a report, and fails this share.
ABANDON_RATE = 0.03
FAIL_RATE = 0.1
POLICY = RetryPolicy(max_retries=5, retry_delays=(timedelta(milliseconds=100),))
# A new leader sweeps within this many seconds of the old one's death (its lease term is 2 s).
TAKEOVER_LIMIT = 15
DRAIN_TIMEOUT = 90
TERMINAL = ("completed", "dead_letter")


@dataclass(frozen=True)
class Run:
    """One run as the service stamped it: leased at `started_at`, over at `ended_at`."""

    job_id: str
    attempt: int
    worker: str
    started_at: datetime
    ended_at: datetime
    how: str  # completed, failed or abandoned (then ended_at is its lease's expiry)


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: list[Run] = []
        self.codes: Counter = Counter()

    def add(self, run: Run) -> None:
        with self.lock:
            self.runs.append(run)

    def count(self, code: str) -> None:
        with self.lock:
            self.codes[code] += 1


def work(name: str, targets: list[str], ledger: Ledger, stop: threading.Event) -> None:
    """Lease from the replicas in turn; report through any live one; now and then walk away from a run."""
    rng = random.Random(f"{SEED}:{name}")
    clients = [JobClient(target, timeout=5, retry=False, options=CHANNEL_OPTIONS) for target in targets]
    turn = itertools.cycle(range(len(clients)))

    def call(method: str, *args, **kwargs):
        """The call through the next replica, moving on past ones that are down; None if all are."""
        for _ in range(len(clients)):
            client = clients[next(turn)]
            try:
                return getattr(client, method)(*args, **kwargs)
            except JobQueueError as error:
                ledger.count(error.code.name)
                if error.code.name != "UNAVAILABLE":
                    raise
        return None

    try:
        while not stop.is_set():
            jobs: list[Job] = (
                call("lease", QUEUE, worker_id=name, max_jobs=4, lease_duration=LEASE, wait=timedelta(seconds=0.5))
                or []
            )
            for job in jobs:
                roll = rng.random()
                if roll < ABANDON_RATE:
                    ledger.add(
                        Run(job.job_id, job.attempt_number, name, job.started_at, job.lease_expires_at, "abandoned")
                    )
                    continue
                try:
                    if roll < ABANDON_RATE + FAIL_RATE:
                        result = call("track_failure", job.job_id, job.attempt_number, "simulated failure")
                        ended, how = (result.job.updated_at if result and result.job else None), "failed"
                    else:
                        done = call("track_completion", job.job_id, job.attempt_number)
                        ended, how = (done.completed_at if done else None), "completed"
                except JobQueueError:
                    ended = None  # refused: the lease ran out first (a slow worker); the sweep ended the run
                if ended is None:
                    ledger.add(
                        Run(job.job_id, job.attempt_number, name, job.started_at, job.lease_expires_at, "abandoned")
                    )
                else:
                    ledger.add(Run(job.job_id, job.attempt_number, name, job.started_at, ended, how))
    finally:
        for client in clients:
            client.close()


def watch_leadership(engine: Engine, history: dict[int, tuple[str, datetime]], stop: threading.Event) -> None:
    """Note every term of the recovery-leader lease: term -> (holder, elected_at)."""
    while not stop.is_set():
        with engine.connect() as connection:
            row = connection.execute(select(queue_leases).where(queue_leases.c.name == "recovery-leader")).first()
        if row is not None:
            history.setdefault(row.term, (row.holder, aware(row.elected_at)))
        stop.wait(0.05)


def leader_at(history: dict[int, tuple[str, datetime]], moment: datetime) -> str | None:
    elected = [(elected_at, holder) for holder, elected_at in history.values() if elected_at <= moment]
    return max(elected)[1] if elected else None


def finished_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(queue_jobs).where(queue_jobs.c.state.in_(TERMINAL))
        ).scalar_one()


def recovery_runs(engine: Engine) -> list:
    with engine.connect() as connection:
        return connection.execute(select(queue_recovery_runs).order_by(queue_recovery_runs.c.started_at)).all()


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_replicas_share_the_work_one_sweeper_at_a_time_and_a_new_leader_follows_a_killed_one(tmp_path):
    with empty_database("postgresql", tmp_path) as engine:
        migrate.upgrade(engine)
        url = engine.url.render_as_string(hide_password=False)
        replicas = {
            f"replica{n}": ServerProcess(
                url,
                tmp_path / f"replica{n}.log",
                args=(
                    "--node-id",
                    f"replica{n}",
                    "--recovery-interval",
                    "0.5",
                    "--leader-lease-term",
                    str(LEADER_TERM_SECONDS),
                    "--health-check-interval",
                    "0.2",
                    "--shutdown-grace",
                    "0",
                ),
            )
            for n in range(REPLICAS)
        }
        ledger = Ledger()
        history: dict[int, tuple[str, datetime]] = {}
        stop_workers, stop_watch = threading.Event(), threading.Event()
        threads: list[threading.Thread] = []
        try:
            for replica in replicas.values():
                replica.start()
            targets = [replica.target for replica in replicas.values()]
            watcher = threading.Thread(target=watch_leadership, args=(engine, history, stop_watch), daemon=True)
            watcher.start()
            with JobClient(targets[0], timeout=30) as producer:
                for start in range(0, JOBS, 500):
                    producer.enqueue_many(
                        JobRequest(QUEUE, "work", {"n": index}, job_id=f"job-{index:05d}", retry_policy=POLICY)
                        for index in range(start, min(start + 500, JOBS))
                    )
            threads = [
                threading.Thread(target=work, args=(f"worker{n}", targets, ledger, stop_workers), daemon=True)
                for n in range(WORKERS)
            ]
            for thread in threads:
                thread.start()

            # The first leader sweeps a few times while the work flows; then it dies.
            wait_for(lambda: finished_count(engine) >= JOBS // 3, timeout=60, interval=0.2, message="work flowing")
            wait_for(
                lambda: len([run for run in recovery_runs(engine) if run.finished_at]) >= 3,
                timeout=30,
                message="the leader's first sweeps",
            )
            old_leader = history[max(history)][0]
            replicas[old_leader].kill()
            killed_at = datetime.now(UTC)
            wait_for(
                lambda: history[max(history)][0] != old_leader,
                timeout=TAKEOVER_LIMIT,
                interval=0.05,
                message="a new leader",
            )
            new_leader = history[max(history)][0]
            wait_for(
                lambda: any(
                    run.node_id == new_leader and run.finished_at and aware(run.started_at) > killed_at
                    for run in recovery_runs(engine)
                ),
                timeout=TAKEOVER_LIMIT,
                interval=0.1,
                message="the new leader's first sweep",
            )
            took_over = (datetime.now(UTC) - killed_at).total_seconds()

            wait_for(
                lambda: finished_count(engine) == JOBS, timeout=DRAIN_TIMEOUT, interval=0.2, message="all jobs done"
            )
        finally:
            stop_workers.set()
            for thread in threads:
                thread.join(30)
            stop_watch.set()
            for replica in replicas.values():
                replica.stop()
        runs = recovery_runs(engine)

    assert not any(thread.is_alive() for thread in threads)
    assert set(ledger.codes) <= {"UNAVAILABLE", "FAILED_PRECONDITION"}, ledger.codes

    # No run of a job began before the previous one ended, nor was one run handed out twice.
    by_job: dict[str, list[Run]] = defaultdict(list)
    for run in ledger.runs:
        by_job[run.job_id].append(run)
    overlaps, repeated = [], []
    for job_runs in by_job.values():
        job_runs.sort(key=lambda run: run.attempt)
        attempts = [run.attempt for run in job_runs]
        if len(set(attempts)) != len(attempts):
            repeated.append(job_runs)
        for earlier, later in itertools.pairwise(job_runs):
            if later.started_at < earlier.ended_at or earlier.how == "completed":
                overlaps.append((earlier, later))
    assert not repeated, repeated[:3]
    assert not overlaps, overlaps[:3]
    abandoned = [run for run in ledger.runs if run.how == "abandoned"]
    handed_out_again = [run for run in abandoned if any(other.attempt > run.attempt for other in by_job[run.job_id])]
    assert handed_out_again, "no abandoned run was handed out again after its lease expired"

    # One sweeper at a time, and always the leader of the moment.
    assert runs, "no recovery runs"
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None and earlier.finished_at <= later.started_at, (earlier, later)
    wrong_node = []
    for run in runs:
        started = aware(run.started_at)
        # A leader checks its lease just before it sweeps: a term that changed within the last second
        # may still see the previous leader's run begin.
        candidates = {leader_at(history, started), leader_at(history, started - timedelta(seconds=1))}
        if run.node_id not in candidates:
            wrong_node.append((run.id, run.node_id, run.started_at, candidates))
    assert not wrong_node, (wrong_node[:5], history)
    assert {run.node_id for run in runs if aware(run.started_at) > killed_at} <= set(replicas) - {old_leader}
    assert any(run.node_id == old_leader for run in runs)
    assert took_over < TAKEOVER_LIMIT
    print(
        f"replicas: {JOBS} jobs, {len(ledger.runs)} runs ({Counter(run.how for run in ledger.runs)}), "
        f"{len(handed_out_again)} abandoned runs handed out again; {len(runs)} recovery runs by "
        f"{dict(Counter(run.node_id for run in runs))}; leader {old_leader} killed, {new_leader} swept "
        f"{took_over:.1f}s later; terms {sorted(history)}; worker errors {dict(ledger.codes)}"
    )
