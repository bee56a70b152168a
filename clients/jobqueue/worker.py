"""Worker: leases jobs, runs a handler per job, heartbeats while it runs, reports the outcome."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from types import FrameType
from typing import Any

from jobqueue.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    JobQueueError,
    NotFound,
    Unavailable,
)
from jobqueue.job_client import JobClient
from jobqueue.models import Job

logger = logging.getLogger(__name__)

Handler = Callable[[Job], Mapping[str, Any] | None]

# Lease errors worth waiting out; any other error stops the worker (bad token, bad queue name...).
TRANSIENT_ERRORS = (Unavailable, DeadlineExceeded)
# The run is no longer ours: the lease expired and the job moved on, or an operator moved it.
LOST_RUN_ERRORS = (FailedPrecondition, NotFound)


class Heartbeat:
    """Extends a job's lease every `interval` while its handler runs."""

    def __init__(self, client: JobClient, job: Job, interval: timedelta, lease_duration: timedelta) -> None:
        self.client = client
        self.job = job
        self.interval = interval.total_seconds()
        self.lease_duration = lease_duration
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.client.heartbeat(self.job.job_id, self.job.attempt_number, lease_duration=self.lease_duration)
            except LOST_RUN_ERRORS as error:
                self.lost = True
                logger.warning("job %s lost its lease: %s", self.job.job_id, error)
                return
            except JobQueueError as error:
                # The next beat may get through; the lease outlasts a few missed ones.
                logger.warning("heartbeat for job %s failed: %r", self.job.job_id, error)


class Worker:
    """Runs `handler(job)` for each job leased from `queues`, `concurrency` jobs at a time.

    The handler's return value (a dict, or None) is reported as the job's result. An exception
    is reported as a failure with its type, message and traceback, and the service decides
    whether to retry: NonRetryableError sends the job straight to the dead-letter queue,
    RetryAfterError asks for a given delay. `stop()` (or SIGINT/SIGTERM during `run()`) lets
    running handlers finish and report, then returns; a long-poll in progress ends within
    `poll_wait`.
    """

    def __init__(
        self,
        client: JobClient,
        queues: str | Sequence[str],
        handler: Handler,
        *,
        worker_id: str | None = None,
        concurrency: int = 1,
        lease_duration: timedelta = timedelta(seconds=60),
        heartbeat_interval: timedelta | None = None,
        poll_wait: timedelta = timedelta(seconds=5),
        error_backoff: timedelta = timedelta(seconds=1),
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease_duration <= timedelta(0):
            raise ValueError("lease_duration must be positive")
        self.client = client
        self.queues = [queues] if isinstance(queues, str) else list(queues)
        self.handler = handler
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.concurrency = concurrency
        self.lease_duration = lease_duration
        self.heartbeat_interval = heartbeat_interval or lease_duration / 3
        if self.heartbeat_interval >= lease_duration:
            raise ValueError("heartbeat_interval must be shorter than lease_duration")
        self.poll_wait = poll_wait
        self.error_backoff = error_backoff
        self.completed = 0
        self.failed = 0
        self._counts_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fatal: BaseException | None = None

    # Lifecycle

    def start(self) -> Worker:
        """Start the worker threads in the background; see `stop()` and `join()`."""
        if self._threads:
            raise RuntimeError("worker already started")
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._loop, name=f"worker-{index}", daemon=True)
            for index in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop leasing, let running handlers finish and report, and wait for that."""
        self._stopping.set()
        self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._fatal is not None:
            raise self._fatal

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self, *, handle_signals: bool = True) -> None:
        """Work until `stop()`, SIGINT or SIGTERM (signals only from the main thread), or a fatal error."""
        previous: dict[signal.Signals, Any] = {}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            logger.info("received %s: finishing running jobs, then stopping", signal.Signals(signum).name)
            self._stopping.set()
            for sig, handler in previous.items():  # a second signal acts as usual
                signal.signal(sig, handler)

        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            self.start()
            while any(thread.is_alive() for thread in self._threads):
                for thread in self._threads:
                    thread.join(0.2)
            self.join()
        finally:
            for sig, handler in previous.items():
                if signal.getsignal(sig) is on_signal:
                    signal.signal(sig, handler)
            self._threads = []

    # One thread's work

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                jobs = self.client.lease(
                    self.queues,
                    worker_id=self.worker_id,
                    max_jobs=1,
                    lease_duration=self.lease_duration,
                    wait=self.poll_wait,
                )
            except TRANSIENT_ERRORS as error:
                logger.warning("leasing from %s failed, retrying: %r", ", ".join(self.queues), error)
                self._stopping.wait(self.error_backoff.total_seconds())
                continue
            except BaseException as error:  # noqa: BLE001 - stop every thread and surface it from run()
                logger.error("worker stopping: leasing from %s failed: %r", ", ".join(self.queues), error)
                self._fatal = error
                self._stopping.set()
                return
            for job in jobs:  # leased jobs are run even while stopping: they are ours now
                self.process(job)

    def process(self, job: Job) -> bool:
        """Run the handler for one leased job and report the outcome; True if it completed."""
        began = time.monotonic()
        with Heartbeat(self.client, job, self.heartbeat_interval, self.lease_duration) as heartbeat:
            try:
                result = self.handler(job)
                if result is not None and not isinstance(result, Mapping):
                    raise TypeError(f"the job handler returned {type(result).__name__}; return a dict or None")
            except Exception as error:  # noqa: BLE001 - every handler failure is reported to the service
                outcome: BaseException | None = error
            else:
                outcome = None
        if outcome is None:
            reported = self._report(
                job,
                heartbeat.lost,
                lambda: self.client.track_completion(
                    job.job_id,
                    job.attempt_number,
                    result=result,
                    processing_duration=timedelta(seconds=time.monotonic() - began),
                ),
            )
            self._count(completed=reported)
            return reported
        logger.info("job %s (attempt %d) failed: %r", job.job_id, job.attempt_number, outcome)
        self._report(job, heartbeat.lost, lambda: self.client.track_failure(job.job_id, job.attempt_number, outcome))
        self._count(completed=False)
        return False

    def _report(self, job: Job, lost: bool, report: Callable[[], object]) -> bool:
        try:
            report()
            return True
        except LOST_RUN_ERRORS as error:
            logger.warning(
                "job %s attempt %d%s: the service rejected the report: %s",
                job.job_id,
                job.attempt_number,
                " lost its lease" if lost else "",
                error,
            )
        except JobQueueError as error:
            # The lease will expire and the service will count the run as failed.
            logger.error("reporting job %s attempt %d failed: %r", job.job_id, job.attempt_number, error)
        return False

    def _count(self, *, completed: bool) -> None:
        with self._counts_lock:
            if completed:
                self.completed += 1
            else:
                self.failed += 1
