"""Worker: leases jobs, runs a handler per job, heartbeats while it runs, reports the outcome.

It logs through the standard `logging` module, on the `jobqueue.worker` logger: one INFO line
per finished run and one per retry decision, a WARNING when leasing starts failing because the
service is unavailable, and an INFO line when it works again. Started from a script whose logging nobody set up, it adds a
stderr handler to the `jobqueue` logger so that those lines show; see `log_to_stderr`.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from types import FrameType
from typing import Any

from jobqueue.cancellation import JobCancelled, run_flag
from jobqueue.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    JobQueueError,
    NotFound,
    Unavailable,
)
from jobqueue.job_client import JobClient
from jobqueue.models import FailureResult, Job, JobState
from jobqueue.tracing import RunSpan, run_span

logger = logging.getLogger(__name__)
# The library's top logger, where the worker's own stderr handler goes when nothing else is set up.
LIBRARY_LOGGER = "jobqueue"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

Handler = Callable[[Job], Mapping[str, Any] | None]

# Lease errors worth waiting out; any other error stops the worker (bad token, bad queue name...).
TRANSIENT_ERRORS = (Unavailable, DeadlineExceeded)
# The run is no longer ours: the lease expired and the job moved on, or an operator moved it.
LOST_RUN_ERRORS = (FailedPrecondition, NotFound)
# First pause after a long-poll that came back empty long before its wait was over.
EARLY_ANSWER_BACKOFF = 0.25


class Heartbeat:
    """Extends a job's lease every `interval` while its handler runs, and sets `cancel_requested`
    once the service answers that a cancellation asked the run to stop.

    The beats come from a thread of `beaters` (a worker's pool, or one of its own), which outlives
    the run: a run neither starts nor joins a thread, so its handler starts and its report goes out
    without waiting for another thread to get the GIL."""

    def __init__(
        self,
        client: JobClient,
        job: Job,
        interval: timedelta,
        lease_duration: timedelta,
        beaters: Beaters | None = None,
    ) -> None:
        self.client = client
        self.job = job
        self.interval = interval.total_seconds()
        self.lease_duration = lease_duration
        self.lost = False
        self.cancel_requested = threading.Event()
        # When the next beat is due (time.monotonic()); None once the run is no longer ours.
        self.next_beat: float | None = None
        self._beaters = beaters or Beaters(self.interval)
        self._beater: Beater | None = None

    def __enter__(self) -> Heartbeat:
        self.next_beat = time.monotonic() + self.interval
        self._beater = self._beaters.take(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._beater is not None:
            self._beater.release()
            self._beaters.give_back(self._beater)
            self._beater = None

    def beat(self) -> bool:
        """One beat; False once the run is no longer ours."""
        try:
            beat = self.client.heartbeat_status(
                self.job.job_id, self.job.attempt_number, lease_duration=self.lease_duration
            )
        except LOST_RUN_ERRORS as error:
            self.lost = True
            logger.warning("job %s lost its lease: %s", self.job.job_id, error)
            return False
        except JobQueueError as error:
            # The next beat may get through; the lease outlasts a few missed ones.
            logger.warning("heartbeat for job %s failed: %r", self.job.job_id, error)
            return True
        if beat.cancel_requested and not self.cancel_requested.is_set():
            logger.info("job %s attempt %d: cancel requested", self.job.job_id, self.job.attempt_number)
            self.cancel_requested.set()
        return True


class Beater:
    """A thread that beats for one run at a time and waits between runs; it ends once it has had
    no run for a whole `interval`. Handing it a run and taking it back only take its lock."""

    def __init__(self, interval: float, run: Heartbeat) -> None:
        self.interval = interval
        self.ended = False
        self._changed = threading.Condition()
        self._run: Heartbeat | None = run
        self._handed = 1  # runs handed over so far: an idle wait that saw one come and go is not idle
        self._beating = False
        threading.Thread(target=self._work, name="heartbeat", daemon=True).start()

    def assign(self, run: Heartbeat) -> bool:
        """Beat for `run` from now on; False if this beater has ended."""
        with self._changed:
            if self.ended:
                return False
            self._run = run
            self._handed += 1
            return True

    def release(self) -> None:
        """Stop beating for the run, once a beat in flight has its answer: then the run's `lost` and
        `cancel_requested` are final, and no beat follows its report."""
        with self._changed:
            while self._beating:
                self._changed.wait()
            self._run = None

    def _work(self) -> None:
        with self._changed:
            while True:
                run = self._run
                due = None if run is None else run.next_beat
                if run is None or due is None:
                    # Waits at most one interval, so it is awake again before a run handed over
                    # meanwhile is due: no one needs to wake it.
                    handed = self._handed
                    self._changed.wait(self.interval)
                    if self._run is None and self._handed == handed:
                        self.ended = True
                        return
                    continue
                remaining = due - time.monotonic()
                if remaining > 0:
                    self._changed.wait(remaining)
                    continue
                self._beating = True
                self._changed.release()
                try:
                    keep = run.beat()
                except Exception:  # noqa: BLE001 - a bug in a beat ends that run's beats, not this beater
                    logger.exception("heartbeat for job %s failed; no more beats for this run", run.job.job_id)
                    keep = False
                finally:
                    self._changed.acquire()
                    self._beating = False
                    self._changed.notify_all()
                run.next_beat = time.monotonic() + run.interval if keep else None


class Beaters:
    """A worker's idle Beater threads, lent to its runs in turn (one per run at a time)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._idle: list[Beater] = []

    def take(self, run: Heartbeat) -> Beater:
        with self._lock:
            while self._idle:
                beater = self._idle.pop()
                if beater.assign(run):
                    return beater
        return Beater(self.interval, run)

    def give_back(self, beater: Beater) -> None:
        with self._lock:
            self._idle.append(beater)


def backoff_delay(failures: int, initial: timedelta, cap: timedelta, rng: random.Random | None = None) -> float:
    """Seconds to wait after `failures` lease failures in a row: doubling from `initial` up to
    `cap`, then a random half of it taken off, so that a fleet of workers does not retry in step."""
    ceiling = min(cap.total_seconds(), initial.total_seconds() * float(2 ** min(max(failures - 1, 0), 32)))
    fraction: float = (rng or random).random()
    return ceiling * (0.5 + 0.5 * fraction)


class Outage:
    """Whether the server is unreachable, shared by a worker's threads: the outage is logged
    once when it begins and once when it ends, however many threads see it."""

    def __init__(self, initial: timedelta, cap: timedelta) -> None:
        self.initial = initial
        self.cap = cap
        self._lock = threading.Lock()
        self._failures = 0
        self._since: float | None = None

    def failed(self, queues: str, error: BaseException) -> float:
        """Record a failed lease; returns the seconds to wait before the next one."""
        with self._lock:
            self._failures += 1
            failures = self._failures
            if self._since is None:
                self._since = time.monotonic()
                logger.warning(
                    "cannot lease from %s: %s; retrying with backoff up to %gs",
                    queues,
                    describe_error(error),
                    self.cap.total_seconds(),
                )
        return backoff_delay(failures, self.initial, self.cap)

    def succeeded(self, queues: str) -> None:
        with self._lock:
            since, self._since, self._failures = self._since, None, 0
        if since is not None:
            logger.info("leasing from %s works again, after %.1fs", queues, time.monotonic() - since)


def describe_error(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def log_to_stderr_unless_configured(force: bool = False) -> None:
    """Add a stderr handler at INFO to the `jobqueue` logger, unless logging is already set up
    (the root logger or the `jobqueue` logger has a handler) and `force` is False. Adds at most
    one, and never touches the root logger or a level someone set."""
    library = logging.getLogger(LIBRARY_LOGGER)
    if any(getattr(handler, "_jobqueue_default", False) for handler in library.handlers):
        return
    if not force and (logging.getLogger().handlers or library.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler._jobqueue_default = True  # type: ignore[attr-defined]
    library.addHandler(handler)
    if library.level == logging.NOTSET:
        library.setLevel(logging.INFO)


class Worker:
    """Runs `handler(job)` for each job leased from `queues`, `concurrency` jobs at a time.

    The handler's return value (a dict, or None) is reported as the job's result. An exception
    is reported as a failure with its type, message and traceback, and the service decides
    whether to retry: NonRetryableError sends the job straight to the dead-letter queue,
    RetryAfterError asks for a given delay. `stop()` (or SIGINT/SIGTERM during `run()`) lets
    running handlers finish and report, then returns; a long-poll in progress ends within
    `poll_wait`.

    Logging: each finished run is logged at INFO on `jobqueue.worker` (job, attempt, outcome,
    duration), and so is each retry decision (retry in N s, or dead-lettered). `log_to_stderr`
    decides where those lines go: None (the default) adds a stderr handler to the `jobqueue`
    logger when the worker starts, but only if logging is not set up yet (neither the root
    logger nor `jobqueue` has a handler): a script shows them, an application's own logging
    configuration is left alone. True adds it anyway; False never does. To silence the worker,
    pass False or set `logging.getLogger("jobqueue").setLevel(logging.WARNING)`.

    While leasing fails because the service is unavailable (UNAVAILABLE: the server is down or
    unreachable, or its database is; DEADLINE_EXCEEDED), the threads wait `error_backoff`,
    doubling up to `max_error_backoff`, with jitter; the outage is logged once when it begins
    and once when it ends.

    Cancellation: when a heartbeat learns that an operator cancelled the running job, the run's
    `jobqueue.cancel_requested()` becomes True; the handler may stop by raising `JobCancelled`
    (or any exception), or run on. Whatever the run then reports, the job ends CANCELLED and is
    not retried; such runs are counted in `cancelled`.

    Tracing: with the OpenTelemetry API installed (the `tracing` extra), each run is a span, child
    of the trace that enqueued the job; `tracer_provider` defaults to the global one.
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
        max_error_backoff: timedelta = timedelta(seconds=30),
        log_to_stderr: bool | None = None,
        tracer_provider: Any = None,
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
        self._beaters = Beaters(self.heartbeat_interval.total_seconds())
        if error_backoff <= timedelta(0) or max_error_backoff < error_backoff:
            raise ValueError("error_backoff must be positive and max_error_backoff at least error_backoff")
        self.poll_wait = poll_wait
        self.error_backoff = error_backoff
        self.max_error_backoff = max_error_backoff
        self.log_to_stderr = log_to_stderr
        self.tracer_provider = tracer_provider
        self.outage = Outage(error_backoff, max_error_backoff)
        self.completed = 0
        self.failed = 0
        # Runs that ended with their job CANCELLED (counted neither completed nor failed).
        self.cancelled = 0
        self._counts_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fatal: BaseException | None = None

    # Lifecycle

    def start(self) -> Worker:
        """Start the worker threads in the background; see `stop()` and `join()`."""
        if self._threads:
            raise RuntimeError("worker already started")
        if self.log_to_stderr is not False:
            log_to_stderr_unless_configured(force=bool(self.log_to_stderr))
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
        backoff = 0.0
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                jobs = self.client.lease(
                    self.queues,
                    worker_id=self.worker_id,
                    max_jobs=1,
                    lease_duration=self.lease_duration,
                    wait=self.poll_wait,
                )
            except TRANSIENT_ERRORS as error:
                self._stopping.wait(self.outage.failed(", ".join(self.queues), error))
                continue
            except BaseException as error:  # noqa: BLE001 - stop every thread and surface it from run()
                logger.error("worker stopping: leasing from %s failed: %r", ", ".join(self.queues), error)
                self._fatal = error
                self._stopping.set()
                return
            self.outage.succeeded(", ".join(self.queues))
            backoff = self._early_answer_backoff(backoff, bool(jobs), time.monotonic() - began)
            if backoff:
                # A server with no room for another waiting long-poll answers at once; come back
                # later, after a growing, jittered pause, instead of asking again and again.
                self._stopping.wait(random.uniform(backoff / 2, backoff))
            for job in jobs:  # leased jobs are run even while stopping: they are ours now
                self.process(job)

    def _early_answer_backoff(self, previous: float, got_jobs: bool, elapsed: float) -> float:
        """The pause before the next lease: none unless the answer was empty and came early."""
        wait = self.poll_wait.total_seconds()
        if got_jobs or elapsed >= wait / 2 or self._stopping.is_set():
            return 0.0
        return min(wait, max(EARLY_ANSWER_BACKOFF, previous * 2))

    def process(self, job: Job) -> bool:
        """Run the handler for one leased job and report the outcome; True if it completed."""
        with run_span(job, self.tracer_provider) as span:
            return self._process(job, span)

    def _process(self, job: Job, span: RunSpan) -> bool:
        began = time.monotonic()
        with (
            Heartbeat(self.client, job, self.heartbeat_interval, self.lease_duration, self._beaters) as heartbeat,
            run_flag(heartbeat.cancel_requested),
        ):
            try:
                result = self.handler(job)
                if result is not None and not isinstance(result, Mapping):
                    raise TypeError(f"the job handler returned {type(result).__name__}; return a dict or None")
            except Exception as error:  # noqa: BLE001 - every handler failure is reported to the service
                outcome: BaseException | None = error
            else:
                outcome = None
        duration = time.monotonic() - began
        run = f"job {job.job_id} ({job.job_name}) attempt {job.attempt_number}"
        if outcome is None:
            completions: list[Job] = []
            reported = self._report(
                job,
                heartbeat.lost,
                lambda: completions.append(
                    self.client.track_completion(
                        job.job_id,
                        job.attempt_number,
                        result=result,
                        processing_duration=timedelta(seconds=duration),
                    )
                ),
            )
            if completions and completions[0].state == JobState.CANCELLED:
                # The run was asked to stop but finished anyway: the service keeps the cancellation.
                logger.info("%s finished in %.3fs, after its job was cancelled", run, duration)
                self._count(cancelled=True)
                return False
            logger.info("%s completed in %.3fs", run, duration)
            self._count(completed=reported)
            return reported
        if isinstance(outcome, JobCancelled) or heartbeat.cancel_requested.is_set():
            logger.info("%s stopped in %.3fs: the job was cancelled", run, duration)
        else:
            logger.info("%s failed in %.3fs: %s", run, duration, describe_error(outcome))
            span.failed(outcome)
        decisions: list[FailureResult] = []
        self._report(
            job,
            heartbeat.lost,
            lambda: decisions.append(self.client.track_failure(job.job_id, job.attempt_number, outcome)),
        )
        if decisions:
            log_decision(job, decisions[0])
        self._count(
            cancelled=bool(decisions) and decisions[0].job is not None and decisions[0].job.state == JobState.CANCELLED
        )
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

    def _count(self, *, completed: bool = False, cancelled: bool = False) -> None:
        with self._counts_lock:
            if completed:
                self.completed += 1
            elif cancelled:
                self.cancelled += 1
            else:
                self.failed += 1


def log_decision(job: Job, decision: FailureResult) -> None:
    if decision.job is not None and decision.job.state == JobState.CANCELLED:
        logger.info("job %s (%s): cancelled after attempt %d", job.job_id, job.job_name, job.attempt_number)
    elif decision.moved_to_dead_letter:
        logger.warning(
            "job %s (%s): dead-lettered after attempt %d (entry %s)",
            job.job_id,
            job.job_name,
            job.attempt_number,
            decision.dead_letter_id,
        )
    elif decision.should_retry:
        delay = decision.retry_delay.total_seconds() if decision.retry_delay is not None else 0.0
        logger.info(
            "job %s (%s): retry in %gs, %d retries left", job.job_id, job.job_name, delay, decision.remaining_retries
        )
