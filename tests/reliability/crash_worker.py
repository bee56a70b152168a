"""A worker process for the crash test: lease, "work", complete or fail (seeded), and write down everything.

    python -m tests.reliability.crash_worker --target HOST:PORT --name w0 --records w0.jsonl --stop-file STOP

One JSON line per event, flushed at once so that the test reads what happened up to any moment:
  {"event": "leased", "job": ..., "attempt": n, "at": unix time, "expires": its lease's end, unix time}
  {"event": "report", "job": ..., "attempt": n, "kind": "complete"|"fail", "code": "OK"|<gRPC code>, "at": ...}
  {"event": "abandoned", "job": ..., "attempt": n, "at": ...}: a run walked away from without a report
  {"event": "lease_error", "code": <gRPC code>, "at": ...}
A report that gets an error is not retried: the worker walks away from the job, as one that lost
its server would, and the service must hand it out again once its lease has expired.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

from jobqueue import JobClient, JobQueueError

QUEUE = "crash"
# Reconnect quickly after the server comes back; gRPC's default backoff waits up to minutes.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)


def outcome(seed: int, job_id: str, attempt: int, fail_rate: float, abandon_rate: float) -> str:
    """How this run ends, "complete", "fail" or "abandon": fixed by the seed, the job and the attempt,
    whichever worker runs it."""
    roll = random.Random(f"{seed}:{job_id}:{attempt}").random()
    if roll < abandon_rate:
        return "abandon"
    return "fail" if roll < abandon_rate + fail_rate else "complete"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--records", required=True, type=Path)
    parser.add_argument("--stop-file", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fail-rate", type=float, default=0.2)
    parser.add_argument("--abandon-rate", type=float, default=0.0)
    parser.add_argument("--lease-seconds", type=float, default=3.0)
    parser.add_argument("--work-seconds", type=float, default=0.002)
    parser.add_argument("--max-seconds", type=float, default=180.0)
    args = parser.parse_args(argv)

    deadline = time.monotonic() + args.max_seconds
    lease_duration = timedelta(seconds=args.lease_seconds)
    with (
        args.records.open("a") as records,
        JobClient(args.target, timeout=5, retry=False, options=CHANNEL_OPTIONS) as client,
    ):

        def record(**fields) -> None:
            records.write(json.dumps({"at": time.time(), **fields}) + "\n")
            records.flush()

        while not args.stop_file.exists() and time.monotonic() < deadline:
            try:
                jobs = client.lease(
                    QUEUE, worker_id=args.name, max_jobs=5, lease_duration=lease_duration, wait=timedelta(seconds=0.5)
                )
            except JobQueueError as error:
                record(event="lease_error", code=error.code.name)
                time.sleep(0.1)
                continue
            # The whole batch is noted at once: a lease is the moment the answer arrived, not when work begins.
            leased_at = time.time()
            for job in jobs:
                expires_at = job.lease_expires_at.timestamp() if job.lease_expires_at else None
                record(event="leased", job=job.job_id, attempt=job.attempt_number, at=leased_at, expires=expires_at)
            for job in jobs:
                time.sleep(args.work_seconds)
                kind = outcome(args.seed, job.job_id, job.attempt_number, args.fail_rate, args.abandon_rate)
                if kind == "abandon":
                    record(event="abandoned", job=job.job_id, attempt=job.attempt_number)
                    continue
                try:
                    if kind == "fail":
                        client.track_failure(
                            job.job_id, job.attempt_number, "simulated failure", error_type="Simulated"
                        )
                    else:
                        client.track_completion(job.job_id, job.attempt_number)
                    code = "OK"
                except JobQueueError as error:
                    code = error.code.name
                record(
                    event="report",
                    job=job.job_id,
                    attempt=job.attempt_number,
                    kind=kind,
                    code=code,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
