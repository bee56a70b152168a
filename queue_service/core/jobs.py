"""JobManager: every job operation, each in one transaction, with the retry and dead-letter rules."""

from __future__ import annotations

import collections
import dataclasses
import functools
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from queue_service.clock import Clock
from queue_service.core import failures, lease_limits, states, unique
from queue_service.core.breakers import CircuitBreakers
from queue_service.core.cancelled_runs import asked_to_stop, cancelled_outcome, end_cancelled_run, ended_by_cancellation
from queue_service.core.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    QueueError,
    ResourceExhausted,
)
from queue_service.core.events import TRANSITION_EVENTS, JobEvent, NoEvents, ServiceEvents
from queue_service.core.failures import FailureOutcome, RunFailure, history_with
from queue_service.core.group_commit import GroupCommitter, RunAlone, shares_transaction
from queue_service.core.notify import ReadyNotifier
from queue_service.core.paging import PageTokens
from queue_service.core.retry import (
    PolicyOverride,
    RetryDecision,
    RetryPolicy,
    effective_policy,
    policy_to_json,
    remaining_retries,
    validate_override,
)
from queue_service.core.states import Transition
from queue_service.core.unique import UniqueOptions
from queue_service.core.validation import (
    Limits,
    check_document,
    check_duration,
    check_range,
    check_text,
    checked_json,
    optional_name,
    reject_nul,
    require_name,
)
from queue_service.domain import (
    FINISHED_STATES,
    HISTORY_HEAD,
    HISTORY_TAIL,
    DeadLetterRecord,
    DeathReason,
    Decision,
    ErrorInfo,
    JobRecord,
    JobState,
    JobView,
    NewJob,
    QueueRecord,
    RetryLogRecord,
)
from queue_service.store.database import Database
from queue_service.store.lease_limits import lease_limits_of
from queue_service.store.repository import Repository

T = TypeVar("T")

# Error types of the failures the service records itself, not a worker: a run whose lease ran out
# (the recovery sweep), a job moved to the DLQ, retries a lowered policy no longer allows.
LEASE_EXPIRED_TYPE = "LeaseExpired"
MOVED_EXPLICITLY_TYPE = "MovedExplicitly"
RETRIES_EXHAUSTED_TYPE = "RetriesExhausted"
SERVICE_ERROR_TYPES = frozenset({LEASE_EXPIRED_TYPE, MOVED_EXPLICITLY_TYPE, RETRIES_EXHAUSTED_TYPE})
# Group-committed transactions in flight at once per process on PostgreSQL.
GROUP_COMMIT_LANES = 4
# A long-poll returns this long before the caller's deadline so that its answer still arrives.
LEASE_DEADLINE_MARGIN_SECONDS = 0.25
# What gRPC clients accept by default: a lease reply stays within this unless the caller says more.
DEFAULT_RESPONSE_BYTES = 4 * 1024 * 1024
# Inserts a unique enqueue tries when the job holding its slot keeps finishing in between.
UNIQUE_INSERT_ATTEMPTS = 3


@dataclass(frozen=True)
class LifecycleSettings:
    default_policy: RetryPolicy = field(default_factory=RetryPolicy)
    default_lease: timedelta = timedelta(seconds=60)
    # How long a job started through TrackStart may stay silent before it counts as stalled.
    stall_timeout: timedelta = timedelta(minutes=5)
    limits: Limits = field(default_factory=Limits)
    # Long-polls re-check this often for jobs made ready by another replica or by time passing.
    lease_poll_interval: float = 0.5
    # When True, only admins create queues: a worker's job for an unknown queue is refused.
    admin_creates_queues: bool = False
    # Reports and leases that arrive while one is being written share the next transaction. None
    # chooses by backend: on for SQLite, whose single writer makes it a gain; off for PostgreSQL,
    # which already flushes concurrent commits together, where it measured no gain but holds row
    # locks for a whole group.
    group_commit: bool | None = None


@dataclass(frozen=True)
class JobSpec:
    queue_name: str
    job_name: str
    job_data: dict[str, Any] | None = None
    job_id: str = ""
    priority: int = 0
    run_at: datetime | None = None
    delay: timedelta | None = None
    retry_policy: PolicyOverride | None = None
    # The producer's W3C traceparent, kept with the job for its runs to join that trace.
    trace_parent: str = ""
    # Makes the job unique: a duplicate that counts is returned instead of a new job.
    unique: UniqueOptions | None = None


@dataclass(frozen=True)
class EnqueueResult:
    job: JobView
    created: bool


@dataclass(frozen=True)
class Completion:
    """One successful run, as TrackCompletion reports it."""

    job_id: str
    attempt_number: int
    result: dict[str, Any] | None = None
    processing_duration: timedelta | None = None


@dataclass(frozen=True)
class CompletionOutcome:
    """A batched completion: error is None when the job is COMPLETED by this run, else why it was refused."""

    job_id: str
    error: QueueError | None = None


class _RepliesTooLarge(Exception):
    """A lease made in one statement holds jobs whose replies do not all fit; its transaction is undone."""


@dataclass(frozen=True)
class ReportedError:
    message: str
    type: str = ""
    details: str = ""


@dataclass(frozen=True)
class JobDetails:
    job: JobView
    # The first and last retry decisions (domain.HISTORY_HEAD and HISTORY_TAIL), and how many lie between.
    retry_log: list[RetryLogRecord]
    retry_log_omitted: int = 0


def _decided_by_the_service(decision: RetryLogRecord) -> bool:
    return decision.error is not None and decision.error.type in SERVICE_ERROR_TYPES


def _prefixed(error: QueueError, prefix: str) -> QueueError:
    """The same error, its field named as an entry of a batch request."""
    return type(error)(error.message, field=f"{prefix}{error.field}" if error.field else None, reason=error.reason)


class JobManager:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        settings: LifecycleSettings | None = None,
        notifier: ReadyNotifier | None = None,
        rng: random.Random | None = None,
        events: ServiceEvents | None = None,
        page_tokens: PageTokens | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings or LifecycleSettings()
        self.notifier = notifier or ReadyNotifier()
        self.rng = rng or random.Random()
        self.events = events or NoEvents()
        # Every list of every manager over this JobManager signs its page tokens with this.
        self.page_tokens = page_tokens or PageTokens.ephemeral()
        # Circuit breakers against retry storms (core/breakers.py): hooked into lease, complete and fail.
        self.breakers = CircuitBreakers()
        self.breakers.on_release = self.notifier.notify_ready
        # SQLite takes one writer at a time: one lane. PostgreSQL overlaps transactions, and a
        # few in flight at once keep its round trips overlapping while each carries a group.
        lanes = 1 if database.dialect == "sqlite" else GROUP_COMMIT_LANES
        group_commit = self.settings.group_commit
        if group_commit is None:
            group_commit = database.dialect == "sqlite"
        self.committer = GroupCommitter(database, lanes=lanes) if group_commit else None

    @property
    def limits(self) -> Limits:
        return self.settings.limits

    @property
    def _statements_commit_alone(self) -> bool:
        """Whether a report whose write is one statement may run it alone, committing by itself
        (PostgreSQL, group commit off): BEGIN and COMMIT are round trips it does not need."""
        return self.committer is None and self.database.dialect == "postgresql"

    def write(self, work: Callable[[Repository], T]) -> T:
        """`work(repo)` in a transaction, shared with concurrent callers' when group commit is on;
        returns once it has committed."""
        if self.committer is not None:
            return self.committer.run(work)
        with self.database.transaction() as repo:
            return work(repo)

    # Producers

    def enqueue(self, specs: Sequence[JobSpec], *, batch: bool = False, by_admin: bool = True) -> list[EnqueueResult]:
        """`by_admin` says whether the caller may create queues where only admins may."""
        limits = self.limits
        if batch:
            if not specs:
                raise InvalidArgument("jobs must not be empty", field="jobs")
            if len(specs) > limits.max_batch_size:
                raise InvalidArgument(f"jobs has more than {limits.max_batch_size} entries", field="jobs")
        now = self.clock.now()
        new_jobs = [self._new_job(spec, now, f"jobs[{index}]." if batch else "") for index, spec in enumerate(specs)]

        def work(repo: Repository) -> tuple[list[JobRecord], set[int], dict[str, JobView]]:
            fields: dict[str, str] = {}
            for index, job in enumerate(new_jobs):
                fields.setdefault(job.queue_name, f"jobs[{index}].queue_name" if batch else "queue_name")
            queues = self.create_missing_queues(repo, fields, now, by_admin=by_admin)
            stored, inserted = self._insert_or_find(repo, new_jobs, now)
            # One event per stored job: a batch naming one job id five times stores it once.
            self._emit_per_queue(repo, JobEvent.ENQUEUED, [stored[index].queue_name for index in inserted])
            return stored, inserted, self._views(repo, stored, queues=queues)

        # Shares a commit with concurrent reports and leases where group commit is on.
        stored, inserted, views = self.write(work)
        results = [EnqueueResult(views[job.job_id], index in inserted) for index, job in enumerate(stored)]
        self.notify_when_ready(((stored[index].queue_name, stored[index].run_at) for index in inserted), now)
        return results

    def _insert_or_find(
        self, repo: Repository, new_jobs: Sequence[NewJob], now: datetime
    ) -> tuple[list[JobRecord], set[int]]:
        """The job stored for each of `new_jobs`, and the positions of those this call inserted.

        A job is not inserted when its job_id exists (idempotent enqueue), or when its unique slot
        is held; then the job holding either is returned. A holder that left its counted states
        between the insert and the read frees the slot, and the insert is tried again.
        """
        stored: dict[int, JobRecord] = {}
        inserted: set[int] = set()
        pending = list(range(len(new_jobs)))
        for _ in range(UNIQUE_INSERT_ATTEMPTS):
            added = repo.insert_jobs_returning([new_jobs[index] for index in pending], now)
            claimed: set[str] = set()
            for index in pending:
                job_id = new_jobs[index].job_id
                if job_id in added and job_id not in claimed:
                    stored[index] = added[job_id]
                    inserted.add(index)
                    claimed.add(job_id)
            rest = [index for index in pending if index not in stored]
            by_job_id = repo.get_jobs([new_jobs[index].job_id for index in rest]) if rest else {}
            holders = repo.unique_slot_holders(
                new_jobs[index].unique.slot for index in rest if new_jobs[index].unique is not None
            )
            pending = []
            for index in rest:
                job = new_jobs[index]
                found = by_job_id.get(job.job_id) or (holders.get(job.unique.slot) if job.unique else None)
                if found is None:
                    pending.append(index)
                else:
                    stored[index] = found
            if not pending:
                return [stored[index] for index in range(len(new_jobs))], inserted
        raise Aborted(
            "the job holding this unique key changed state concurrently; retry the call", field="unique.unique_key"
        )

    def enqueue_in(self, repo: Repository, spec: JobSpec, now: datetime) -> bool:
        """Enqueues one job inside the caller's transaction (a schedule's tick); False if its id exists."""
        job = self._new_job(spec, now, "")
        self.create_missing_queues(repo, {job.queue_name: "queue_name"}, now)
        inserted = repo.insert_jobs_returning([job], now)
        self._emit_per_queue(repo, JobEvent.ENQUEUED, [stored.queue_name for stored in inserted.values()])
        if inserted:
            repo.after_commit(lambda: self.notify_when_ready([(job.queue_name, job.run_at)], now))
        return bool(inserted)

    def notify_when_ready(self, ready: Iterable[tuple[str, datetime]], now: datetime) -> None:
        """Wake waiting leases for jobs of these queues that run from these times on: at once for
        those due by `now`, when their time comes for the others (a retry's delay, a later start)."""
        at_once: list[str] = []
        later: list[tuple[str, float]] = []
        for queue_name, run_at in ready:
            if run_at <= now:
                at_once.append(queue_name)
            else:
                later.append((queue_name, (run_at - now).total_seconds()))
        self.notifier.notify_ready(at_once)
        if later:
            self.notifier.notify_ready_later(later)

    def create_missing_queues(
        self, repo: Repository, fields: dict[str, str], now: datetime, *, by_admin: bool = True
    ) -> dict[str, QueueRecord]:
        """The queues named by `fields` (queue name -> the request field naming it), creating those
        that do not exist yet, within the server's queue rules; one read when all exist."""
        queues = repo.get_queues(fields)
        missing = sorted(fields.keys() - queues.keys())
        if missing:
            first = missing[0]
            if self.settings.admin_creates_queues and not by_admin:
                raise NotFound(
                    f"{fields[first]} {first!r} names no existing queue, and on this server only admins "
                    "create queues (by enqueueing, or UpdateQueuePolicy or PauseQueue with allow_missing)",
                    field=fields[first],
                    reason="UNKNOWN_QUEUE",
                )
            existing = repo.count_queues()
            if existing + len(missing) > self.limits.max_queues:
                raise ResourceExhausted(
                    f"{fields[first]} {first!r} names a new queue, but this server already holds {existing} "
                    f"of at most {self.limits.max_queues} queues (--max-queues)",
                    field=fields[first],
                    reason="TOO_MANY_QUEUES",
                )
            repo.ensure_queues(missing, now)
            queues.update(repo.get_queues(missing))
        return queues

    def _new_job(self, spec: JobSpec, now: datetime, prefix: str) -> NewJob:
        limits = self.limits
        require_name(spec.queue_name, f"{prefix}queue_name", limits.max_name_length)
        require_name(spec.job_name, f"{prefix}job_name", limits.max_name_length)
        job_id = optional_name(spec.job_id, f"{prefix}job_id", limits.max_job_id_length) or str(uuid.uuid4())
        data = spec.job_data or {}
        data_json = checked_json(data, f"{prefix}job_data", limits.max_payload_bytes)
        check_range(spec.priority, f"{prefix}priority", -limits.max_priority, limits.max_priority)
        delay = check_duration(spec.delay, f"{prefix}delay", maximum=limits.max_schedule_ahead)
        run_at = spec.run_at or (now + delay if delay else now)
        if run_at > now + limits.max_schedule_ahead:
            raise InvalidArgument(f"{prefix}run_at is more than 10 years ahead", field=f"{prefix}run_at")
        # Most jobs carry no override: nothing to check, and stored as none.
        if spec.retry_policy is not None:
            validate_override(spec.retry_policy, f"{prefix}retry_policy")
        unique_claim = unique.claim(spec.unique, spec.queue_name, now, prefix) if spec.unique is not None else None
        return NewJob(
            job_id=job_id,
            queue_name=spec.queue_name,
            job_name=spec.job_name,
            job_data=data,
            priority=spec.priority,
            run_at=run_at,
            retry_policy=None if spec.retry_policy is None else policy_to_json(spec.retry_policy),
            trace_parent=spec.trace_parent,
            unique=unique_claim,
            job_data_json=data_json,
        )

    # Workers that lease

    def lease(
        self,
        queue_names: Sequence[str],
        *,
        worker_id: str = "",
        max_jobs: int = 1,
        lease_duration: timedelta | None = None,
        wait: timedelta | None = None,
        is_active: Callable[[], bool] = lambda: True,
        time_remaining: Callable[[], float | None] = lambda: None,
        max_response_bytes: int = 0,
        reply_size: Callable[[JobView], int] | None = None,
        may_wait: bool = True,
    ) -> list[JobView]:
        """Lease up to `max_jobs` ready jobs, waiting up to `wait` for one. With `reply_size` (the bytes
        a job adds to the caller's reply), only the jobs whose reply fits `max_response_bytes` are
        leased, so that no lease is committed that the caller cannot receive. A queue with lease
        limits gives no more jobs than its max_active and start-rate bucket allow.

        `may_wait` False means the server has no room for another waiting long-poll: the call
        takes what is ready and answers at once, perhaps with nothing, before its wait is over.
        It does not even look when its queues were found empty within one poll interval (as
        waiting long-polls look), so that a flood of such calls costs little.
        """
        limits = self.limits
        if not queue_names:
            raise InvalidArgument("queue_names must name at least one queue", field="queue_names")
        names = list(dict.fromkeys(require_name(name, "queue_names", limits.max_name_length) for name in queue_names))
        check_text(worker_id, "worker_id", limits.max_worker_id_length)
        max_jobs = check_range(max_jobs or 1, "max_jobs", 1, limits.max_lease_jobs)
        duration = check_duration(
            lease_duration,
            "lease_duration",
            default=self.settings.default_lease,
            maximum=limits.max_lease_duration,
            allow_zero=False,
        )
        wait = check_duration(wait, "wait", default=timedelta(0), maximum=limits.max_wait)
        if max_response_bytes < 0:
            raise InvalidArgument("max_response_bytes must not be negative (0 means 4 MiB)", field="max_response_bytes")
        # A caller may accept more than the server sends; the server's own limit then applies.
        response_limit = min(max_response_bytes or DEFAULT_RESPONSE_BYTES, limits.max_response_bytes)
        if not may_wait and wait > timedelta(0):
            if self.notifier.recently_empty(names, self.settings.lease_poll_interval):
                return []
        budget = wait.total_seconds() if may_wait else 0.0
        caller_time = time_remaining()
        if caller_time is not None:
            # Answer before the caller's deadline: a job leased after it gives up would sit ACTIVE, unseen.
            budget = min(budget, caller_time - LEASE_DEADLINE_MARGIN_SECONDS)
        deadline = time.monotonic() + budget
        if budget <= 0:
            return self._lease_once(names, worker_id, max_jobs, duration, response_limit, reply_size)
        with self.notifier.waiting(names) as woken:
            while True:
                woken.clear()
                jobs = self._lease_once(names, worker_id, max_jobs, duration, response_limit, reply_size)
                remaining = deadline - time.monotonic()
                if jobs or remaining <= 0 or not is_active():
                    return jobs
                woken.wait(min(remaining, self.settings.lease_poll_interval))
                if not is_active():
                    return []

    def _lease_once(
        self,
        names: list[str],
        worker_id: str,
        max_jobs: int,
        duration: timedelta,
        response_limit: int,
        reply_size: Callable[[JobView], int] | None,
    ) -> list[JobView]:
        versions, looked_at = self.notifier.versions(names), time.monotonic()
        views = self._lease_in_transaction(names, worker_id, max_jobs, duration, response_limit, reply_size)
        if not views:
            self.notifier.found_empty(versions, looked_at)
        return views

    def _lease_in_transaction(
        self,
        names: list[str],
        worker_id: str,
        max_jobs: int,
        duration: timedelta,
        response_limit: int,
        reply_size: Callable[[JobView], int] | None,
    ) -> list[JobView]:
        def work(repo: Repository, *, in_one_statement: bool = True) -> list[JobView]:
            if in_one_statement:
                views = self._lease_from_plain_queues(
                    repo, names, worker_id, max_jobs, duration, response_limit, reply_size
                )
                if views is not None:
                    return views
            # One read serves the paused check, the policies of the views, the limits and the breakers.
            controls = repo.lease_controls(names)
            queues = controls.queues
            leasable = [name for name in names if not (name in queues and queues[name].paused)]
            if not leasable:
                return []
            limit_store = lease_limits_of(repo)
            with_limits = [name for name in leasable if name in controls.limited]
            if not with_limits:
                limited = {}
            elif repo.dialect == "postgresql" and shares_transaction():
                # The limits' row locks, each lease's in name order, would interleave with its
                # neighbours' in a shared transaction and could deadlock with another lane's.
                raise RunAlone
            else:
                # Held until commit: leases of a limited queue take turns on every replica.
                limited = limit_store.lock(with_limits)
            now = self.clock.now()
            active = limit_store.active_counts(list(limited)) if limited else {}
            allowed = {
                name: lease_limits.allowance(record, active.get(name, 0), now) for name, record in limited.items()
            }
            # Circuit breakers: an open queue leases nothing, a half-open one a single probe job.
            leasable, probing = self.breakers.gate(repo, leasable, now, controls.breakers)
            ready = self._ready_jobs(repo, leasable, allowed, max_jobs, now) if leasable else []
            if probing:
                ready += self.breakers.take_probes(repo, probing, room=max_jobs - len(ready), now=now)
            lease_expires_at = now + duration
            # The jobs as the lease leaves them, so that the reply can be measured before anything changes.
            leased = [
                dataclasses.replace(
                    job,
                    state=JobState.ACTIVE,
                    attempt_number=job.attempt_number + 1,
                    worker_id=worker_id or None,
                    lease_expires_at=lease_expires_at,
                    started_at=now,
                    updated_at=now,
                )
                for job in ready
            ]
            views = self._views(repo, leased, queues=queues)
            if reply_size is not None:
                leased = self._fitting(leased, views, reply_size, response_limit)
            claimed = repo.claim_leases(
                [job.id for job in leased], now=now, worker_id=worker_id or None, lease_expires_at=lease_expires_at
            )
            if claimed != len(leased):
                raise Aborted("ready jobs changed concurrently during the lease; retry the call", field="queue_names")
            started = collections.Counter(job.queue_name for job in leased)
            for name, record in limited.items():
                if started[name] and record.limits.max_starts_per_second is not None:
                    tokens, refilled_at = lease_limits.after_starts(record, started[name], now)
                    limit_store.save_bucket(name, tokens=tokens, refilled_at=refilled_at)
            self._emit_per_queue(repo, JobEvent.STARTED, [job.queue_name for job in leased])
            return [views[job.job_id] for job in leased]

        try:
            return self.write(work)
        except _RepliesTooLarge:
            # Leased in one statement, some replies did not fit: undone; now only what fits is leased.
            return self.write(functools.partial(work, in_one_statement=False))

    def _lease_from_plain_queues(
        self,
        repo: Repository,
        names: list[str],
        worker_id: str,
        max_jobs: int,
        duration: timedelta,
        response_limit: int,
        reply_size: Callable[[JobView], int] | None,
    ) -> list[JobView] | None:
        """The lease in one statement when no queue of `names` is paused, limited or behind a
        breaker on; None, with nothing leased, when one is (on SQLite, also when none was ready).
        Raises _RepliesTooLarge when some leased jobs' replies do not fit, so that the caller's
        transaction undoes the lease."""
        now = self.clock.now()
        found = repo.lease_from_plain_queues(
            names, limit=max_jobs, now=now, worker_id=worker_id or None, lease_expires_at=now + duration
        )
        if found is None:
            return None
        leased = [job for job, _ in found]
        views = self._views(repo, leased, queues={queue.name: queue for _, queue in found if queue is not None})
        # Refuses (undoing the lease) when not even the first job fits, as the careful path does.
        if reply_size is not None and len(self._fitting(leased, views, reply_size, response_limit)) < len(leased):
            raise _RepliesTooLarge
        self._emit_per_queue(repo, JobEvent.STARTED, [job.queue_name for job in leased])
        return [views[job.job_id] for job in leased]

    @staticmethod
    def _ready_jobs(
        repo: Repository, names: list[str], allowed: dict[str, int], max_jobs: int, now: datetime
    ) -> list[JobRecord]:
        """Up to `max_jobs` ready jobs in lease order, at most `allowed[name]` of a limited queue."""
        if not allowed:
            return repo.ready_jobs_for_lease(names, limit=max_jobs, now=now)
        unlimited = [name for name in names if name not in allowed]
        ready = repo.ready_jobs_for_lease(unlimited, limit=max_jobs, now=now) if unlimited else []
        for name, room in allowed.items():
            if room > 0:
                ready += repo.ready_jobs_for_lease([name], limit=min(room, max_jobs), now=now)
        ready.sort(key=lambda job: (-job.priority, job.run_at, job.id))
        return ready[:max_jobs]

    @staticmethod
    def _fitting(
        jobs: list[JobRecord], views: dict[str, JobView], reply_size: Callable[[JobView], int], limit: int
    ) -> list[JobRecord]:
        """The longest head of `jobs` whose reply fits `limit` bytes; refuses when not even the first fits."""
        total = 0
        for index, job in enumerate(jobs):
            size = reply_size(views[job.job_id])
            if total + size > limit:
                if index == 0:
                    raise ResourceExhausted(
                        f"job {job.job_id!r} needs a {size}-byte reply, more than max_response_bytes allows "
                        f"({limit}); it stays ready for a caller that accepts more",
                        field="max_response_bytes",
                        reason="JOB_LARGER_THAN_RESPONSE_LIMIT",
                    )
                return jobs[:index]
            total += size
        return jobs

    def heartbeat(self, job_id: str, attempt_number: int, lease_duration: timedelta | None = None) -> JobRecord:
        duration = check_duration(
            lease_duration,
            "lease_duration",
            default=self.settings.default_lease,
            maximum=self.limits.max_lease_duration,
            allow_zero=False,
        )

        def work(repo: Repository) -> JobRecord:
            job = self._current_attempt(repo, job_id, attempt_number)
            states.check(Transition.HEARTBEAT, job.state, job_id=job_id)
            now = self.clock.now()
            updated = repo.extend_lease(
                job, expected_states=states.sources(Transition.HEARTBEAT), lease_expires_at=now + duration, now=now
            )
            return self.record_transition(repo, job, Transition.HEARTBEAT, updated)

        return self.write(work)

    # Workers of an external queue

    def track_start(
        self,
        job_id: str,
        *,
        queue_name: str = "",
        job_name: str = "",
        job_data: dict[str, Any] | None = None,
        worker_id: str = "",
        by_admin: bool = True,
        trace_parent: str = "",
    ) -> tuple[JobView, bool]:
        limits = self.limits
        require_name(job_id, "job_id", limits.max_job_id_length)
        optional_name(queue_name, "queue_name", limits.max_name_length)
        optional_name(job_name, "job_name", limits.max_name_length)
        check_text(worker_id, "worker_id", limits.max_worker_id_length)
        data = check_document(job_data, "job_data", limits.max_payload_bytes)

        def work(repo: Repository) -> tuple[JobView, bool]:
            now = self.clock.now()
            lease_expires_at = now + self.settings.stall_timeout
            job = repo.get_job(job_id, for_update=True)
            if job is None:
                if not queue_name:
                    raise InvalidArgument("queue_name is required to start an unknown job", field="queue_name")
                if not job_name:
                    raise InvalidArgument("job_name is required to start an unknown job", field="job_name")
                self.create_missing_queues(repo, {queue_name: "queue_name"}, now, by_admin=by_admin)
                new_job = NewJob(
                    job_id=job_id,
                    queue_name=queue_name,
                    job_name=job_name,
                    job_data=data,
                    priority=0,
                    run_at=now,
                    retry_policy=None,
                    state=JobState.ACTIVE,
                    attempt_number=1,
                    worker_id=worker_id or None,
                    lease_expires_at=lease_expires_at,
                    started_at=now,
                    trace_parent=trace_parent,
                )
                if repo.insert_jobs([new_job], now):
                    self._emit_per_queue(repo, JobEvent.ENQUEUED, [queue_name])
                    self._emit_per_queue(repo, JobEvent.STARTED, [queue_name])
                    created = repo.get_job(job_id)
                    return self._views(repo, [created])[job_id], True
                job = repo.get_job(job_id, for_update=True)
            if queue_name and queue_name != job.queue_name:
                raise FailedPrecondition(
                    f"queue_name {queue_name!r} does not match job {job_id!r}, "
                    f"which belongs to queue {job.queue_name!r}",
                    field="queue_name",
                )
            states.check(Transition.START, job.state, job_id=job_id)
            started = repo.start_run(
                job,
                expected_states=states.sources(Transition.START),
                worker_id=worker_id or None,
                lease_expires_at=lease_expires_at,
                now=now,
            )
            updated = self.record_transition(repo, job, Transition.START, started)
            return self._views(repo, [updated])[job_id], False

        return self.write(work)

    # Reports

    def complete(
        self,
        job_id: str,
        attempt_number: int,
        *,
        result: dict[str, Any] | None = None,
        processing_duration: timedelta | None = None,
    ) -> JobView:
        limits = self.limits
        require_name(job_id, "job_id", limits.max_job_id_length)
        result = check_document(result, "result", limits.max_payload_bytes)
        duration = check_duration(processing_duration, "processing_duration")

        duration_ms = round(duration.total_seconds() * 1000) if duration else None

        def completed_view(repo: Repository, updated: JobRecord) -> JobView:
            self.emit_transition(repo, Transition.COMPLETE, updated.queue_name)
            self._emit_processed(repo, updated.queue_name, duration)
            return self._views(repo, [updated])[job_id]

        if self._statements_commit_alone:
            # The usual report, for the current run of a queue without a breaker, is one statement:
            # it commits alone, without BEGIN and COMMIT round trips. Anything else takes the
            # transaction below.
            with self.database.statements_alone() as repo:
                now = self.clock.now()
                updated = repo.complete_run_without_breaker(
                    job_id,
                    attempt_number,
                    expected_states=states.sources(Transition.COMPLETE),
                    result=result,
                    processing_duration_ms=duration_ms,
                    now=now,
                )
                if updated is not None:
                    return completed_view(repo, updated)

        def work(repo: Repository) -> JobView:
            now = self.clock.now()
            # Compare-and-set first: the usual report is for the current run, and then needs no read.
            completed = repo.complete_current_run(
                job_id,
                attempt_number,
                expected_states=states.sources(Transition.COMPLETE),
                result=result,
                processing_duration_ms=duration_ms,
                now=now,
            )
            if completed is not None:
                updated = completed.job
                if completed.breaker_on:  # the queue's circuit breaker counts the run
                    self.breakers.on_completions(repo, [(updated.queue_name, job_id, updated.attempt_number)], now)
                return completed_view(repo, updated)
            job = repo.get_job(job_id, for_update=True)
            if job is not None and asked_to_stop(job, attempt_number):
                # The run finished although asked to stop: the cancellation stands.
                return self._views(repo, [end_cancelled_run(self, repo, job, now=now)])[job_id]
            error = self._completion_refusal(job, job_id, attempt_number)
            if error is not None:
                raise error
            return self._views(repo, [job])[job_id]  # a repeated report of the same completion

        return self.write(work)

    def complete_many(self, completions: Sequence[Completion]) -> list[CompletionOutcome]:
        """Record several completions in one transaction, one CAS statement for all of them.

        Bad input rejects the whole batch. A completion that `complete` would refuse (unknown job,
        stale attempt, wrong state) is refused alone, with the error `complete` would raise; a
        repeated report of the same completion succeeds, as it does there.
        """
        limits = self.limits
        if not completions:
            raise InvalidArgument("completions must not be empty", field="completions")
        if len(completions) > limits.max_batch_size:
            raise InvalidArgument(f"completions has more than {limits.max_batch_size} entries", field="completions")
        rows: list[tuple[str, int, str, int | None]] = []  # the result as the JSON text its check measured
        positions: dict[str, int] = {}
        for index, item in enumerate(completions):
            prefix = f"completions[{index}]."
            require_name(item.job_id, f"{prefix}job_id", limits.max_job_id_length)
            if item.job_id in positions:
                raise InvalidArgument(
                    f"{prefix}job_id {item.job_id!r} repeats completions[{positions[item.job_id]}]",
                    field=f"{prefix}job_id",
                )
            positions[item.job_id] = index
            result = checked_json(item.result or {}, f"{prefix}result", limits.max_payload_bytes)
            duration = check_duration(item.processing_duration, f"{prefix}processing_duration")
            rows.append(
                (item.job_id, item.attempt_number, result, round(duration.total_seconds() * 1000) if duration else None)
            )

        def work(repo: Repository) -> dict[str, QueueError]:
            errors: dict[str, QueueError] = {}
            now = self.clock.now()
            completed = repo.complete_jobs(rows, expected_states=states.sources(Transition.COMPLETE), now=now)
            for event in TRANSITION_EVENTS.get(Transition.COMPLETE, ()):
                self._emit_per_queue(repo, event, [job.queue_name for job in completed.values()])
            # Circuit breakers count the runs; the statement said which queues have one on.
            runs = [
                (completed[job_id].queue_name, job_id, attempt)
                for job_id, attempt, *_ in rows
                if job_id in completed and completed[job_id].breaker_on
            ]
            self.breakers.on_completions(repo, runs, now)
            for job_id, _attempt, _result, duration_ms in rows:
                if job_id in completed and duration_ms is not None:
                    self._emit_processed(repo, completed[job_id].queue_name, timedelta(milliseconds=duration_ms))
            refused = [job_id for job_id, *_ in rows if job_id not in completed]
            current = repo.get_jobs(refused) if refused else {}
            for job_id, attempt_number, *_ in rows:
                if job_id in completed:
                    continue
                job = current.get(job_id)
                if job is not None and asked_to_stop(job, attempt_number):
                    job = repo.get_job(job_id, for_update=True)
                    if job is not None and asked_to_stop(job, attempt_number):
                        current[job_id] = end_cancelled_run(self, repo, job, now=now)
                        continue
                error = self._completion_refusal(current.get(job_id), job_id, attempt_number)
                if error is not None:
                    errors[job_id] = _prefixed(error, f"completions[{positions[job_id]}].")
            return errors

        errors = self.write(work)
        return [CompletionOutcome(item.job_id, errors.get(item.job_id)) for item in completions]

    def _completion_refusal(self, job: JobRecord | None, job_id: str, attempt_number: int) -> QueueError | None:
        """Why `complete` refuses this report, or None for a repeat of the completion that happened."""
        try:
            if job is None:
                raise NotFound(f"job {job_id!r} not found", field="job_id")
            if job.state == JobState.COMPLETED and job.attempt_number == attempt_number:
                return None
            if ended_by_cancellation(job, attempt_number):
                return None  # a repeated report of a run that a cancellation ended
            self._require_current_attempt(job, attempt_number)
            states.check(Transition.COMPLETE, job.state, job_id=job_id)
        except QueueError as error:
            return error
        # The compare-and-set missed, yet the job now looks completable: another writer was in between.
        return Aborted(f"job {job_id!r} changed concurrently; retry the call", field="job_id")

    def fail(
        self,
        job_id: str,
        attempt_number: int,
        error: ReportedError,
        *,
        non_retryable: bool = False,
        retry_after: timedelta | None = None,
    ) -> FailureOutcome:
        limits = self.limits
        require_name(job_id, "job_id", limits.max_job_id_length)
        self._check_error(error)
        retry_after = check_duration(retry_after, "retry_after", allow_zero=True)

        def decide(
            repo: Repository, job: JobRecord, queue_policy: dict[str, Any] | None, breaker_on: bool
        ) -> FailureOutcome:
            now = self.clock.now()
            return self.apply_failure(
                repo,
                job,
                ErrorInfo(error.message, error.type, error.details, job.attempt_number, now),
                non_retryable=non_retryable,
                retry_after=retry_after,
                now=now,
                policy=effective_policy(self.settings.default_policy, queue_policy, job.retry_policy),
                breaker_on=breaker_on,
            )

        def work(repo: Repository) -> FailureOutcome:
            found = repo.get_job_for_failure(job_id)
            if found is None:
                raise NotFound(f"job {job_id!r} not found", field="job_id")
            job, queue_policy, breaker_on = found
            if asked_to_stop(job, attempt_number):
                # The run stopped because it was asked to, or failed meanwhile: a cancellation either way.
                return cancelled_outcome(end_cancelled_run(self, repo, job, now=self.clock.now()))
            if ended_by_cancellation(job, attempt_number):
                return cancelled_outcome(job)
            if job.state != JobState.ACTIVE or job.attempt_number != attempt_number:
                # A repeated report gets the decision its first copy got. A late report of a run the
                # service ended itself (lease expired, moved to the DLQ) is refused like any stale one.
                previous = repo.find_decision(job_id, attempt_number)
                if previous is not None and not _decided_by_the_service(previous):
                    return self._replayed_outcome(repo, job, previous)
                self._require_current_attempt(job, attempt_number)
                states.check(Transition.RETRY, job.state, job_id=job_id)
            return decide(repo, job, queue_policy, breaker_on)

        outcome = None
        if self._statements_commit_alone:
            outcome = self._fail_without_lock(job_id, attempt_number, decide)
        if outcome is None:
            outcome = self.write(work)
        decision = outcome.decision
        if decision.should_retry and decision.next_retry_at is not None:
            self.notify_when_ready([(outcome.job.record.queue_name, decision.next_retry_at)], self.clock.now())
        return outcome

    def _fail_without_lock(
        self,
        job_id: str,
        attempt_number: int,
        decide: Callable[[Repository, JobRecord, dict[str, Any] | None, bool], FailureOutcome],
    ) -> FailureOutcome | None:
        """The usual report, of the current run of a job whose queue has no breaker on, is decided on
        a read without a row lock and written by one statement that commits alone, a compare-and-set
        on the version of the row read: two round trips fewer than BEGIN and COMMIT around a locked
        read. None, with nothing written, for any other report, or when the job was written since
        the read; the locked transaction decides those."""
        try:
            with self.database.statements_alone() as repo:
                found = repo.get_job_for_failure(job_id, locked=False)
                if found is None:
                    return None
                job, queue_policy, breaker_on = found
                if (
                    breaker_on
                    or job.state != JobState.ACTIVE
                    or job.attempt_number != attempt_number
                    or job.cancel_requested_at is not None
                ):
                    return None
                return decide(repo, job, queue_policy, breaker_on)
        except Aborted:
            return None  # written since the read: its one statement changed nothing

    def _check_error(self, error: ReportedError) -> None:
        limits = self.limits
        if not error.message or not error.message.strip():
            raise InvalidArgument("error.message must not be empty", field="error.message")
        check_text(error.message, "error.message", limits.max_text_length)
        check_text(error.type, "error.type", 255)
        if len(error.details.encode()) > limits.max_error_bytes:
            raise ResourceExhausted(
                f"error.details is larger than {limits.max_error_bytes} bytes", field="error.details"
            )
        reject_nul(error.details, "error.details")

    def apply_failure(
        self,
        repo: Repository,
        job: JobRecord,
        error: ErrorInfo,
        *,
        non_retryable: bool = False,
        retry_after: timedelta | None = None,
        lease_expired: bool = False,
        now: datetime,
        policy: RetryPolicy | None = None,
        breaker_on: bool | None = None,
    ) -> FailureOutcome:
        """Decide and record the outcome of the job's current run failing, inside the caller's transaction.

        `policy` is the job's effective policy, and `breaker_on` whether its queue has a circuit
        breaker on, if the caller already read them in this transaction.
        """
        failure = RunFailure(
            job, error, non_retryable=non_retryable, retry_after=retry_after, policy=policy, breaker_on=breaker_on
        )
        [outcome] = failures.apply_failures(self, repo, [failure], lease_expired=lease_expired, now=now)
        return outcome

    def exhausted_jobs(self, repo: Repository, jobs: Sequence[JobRecord]) -> list[JobRecord]:
        """The jobs among `jobs` that have used more runs than their current policy allows."""
        queues = repo.get_queues({job.queue_name for job in jobs}) if jobs else {}
        exhausted = []
        for job in jobs:
            if job.runs_in_budget > self._deciding_policy(job, queues.get(job.queue_name)).max_retries:
                exhausted.append(job)
        return exhausted

    def fewest_retries_allowed(self, repo: Repository) -> int:
        """The lowest max_retries of the default and every queue policy and rule; only a job's own policy
        goes lower."""
        policies = [self.settings.default_policy.with_overrides(stored) for stored in repo.queue_retry_policies()]
        policies.append(self.settings.default_policy)
        # for_error("") is the policy itself; every other error type is one of its rules.
        error_types = [("", *(scoped.rule.error_type for scoped in policy.rules)) for policy in policies]
        return min(
            policy.for_error(error_type)[0].max_retries
            for policy, types in zip(policies, error_types, strict=True)
            for error_type in types
        )

    def dead_letter_exhausted(
        self, repo: Repository, locked: Sequence[JobRecord], *, now: datetime
    ) -> list[DeadLetterRecord]:
        """Move the jobs among `locked` (row-locked by the caller) that wait for a retry their policy
        no longer allows (say, after the policy was lowered) to the DLQ, set-wise, inside the
        caller's transaction. Returns their entries; jobs that still have retries stay."""
        deaths = []
        for job in self.exhausted_jobs(repo, locked):
            states.check(Transition.MOVE_TO_DEAD_LETTER, job.state, job_id=job.job_id)
            # The last real error stays the failure reason, so that the entry groups with its siblings.
            error = job.last_error or ErrorInfo(
                "retries exhausted", RETRIES_EXHAUSTED_TYPE, "", job.attempt_number, now
            )
            deaths.append(
                failures.scheduled_death(job, error, job.error_history, DeathReason.RETRIES_EXHAUSTED, failed_at=None)
            )
        moved = failures.dead_letter_all(self, repo, deaths, Transition.MOVE_TO_DEAD_LETTER, now)
        return [entry for _, entry in moved]

    def apply_failures(
        self,
        repo: Repository,
        failed_runs: Sequence[tuple[JobRecord, ErrorInfo]],
        *,
        lease_expired: bool = False,
        now: datetime,
    ) -> list[FailureOutcome]:
        """`apply_failure` for many jobs in the caller's transaction, which holds the jobs' row locks."""
        batch = [RunFailure(job, error) for job, error in failed_runs]
        return failures.apply_failures(self, repo, batch, lease_expired=lease_expired, now=now)

    def _replayed_outcome(self, repo: Repository, job: JobRecord, previous: RetryLogRecord) -> FailureOutcome:
        retried = previous.decision == Decision.RETRY
        decision = RetryDecision(
            should_retry=retried,
            retry_delay=timedelta(milliseconds=previous.retry_delay_ms),
            next_retry_at=previous.next_retry_at,
            remaining_retries=previous.remaining_retries,
            death_reason=previous.death_reason,
            retry_rule=previous.error.retry_rule if previous.error else "",
        )
        entry = None if retried else repo.get_dead_letter_for_job(job.job_id)
        return FailureOutcome.of(decision, self._views(repo, [job])[job.job_id], entry)

    def move_to_dead_letter(self, job_id: str, reason: str) -> DeadLetterRecord:
        limits = self.limits
        require_name(job_id, "job_id", limits.max_job_id_length)
        if not reason or not reason.strip():
            raise InvalidArgument("reason must not be empty", field="reason")
        check_text(reason, "reason", limits.max_text_length)
        with self.database.transaction() as repo:
            job = self._get(repo, job_id, for_update=True)
            states.check(Transition.MOVE_TO_DEAD_LETTER, job.state, job_id=job_id)
            now = self.clock.now()
            error = ErrorInfo(reason, MOVED_EXPLICITLY_TYPE, "", job.attempt_number, now)
            entry = failures.dead_letter(
                self,
                repo,
                job,
                error,
                history_with(job, error),
                DeathReason.MOVED_EXPLICITLY,
                Transition.MOVE_TO_DEAD_LETTER,
                now,
            )
            return entry

    # Reads

    def get_job(self, job_id: str) -> JobDetails:
        require_name(job_id, "job_id", self.limits.max_job_id_length)
        with self.database.snapshot() as repo:
            job = self._get(repo, job_id)
            retry_log, omitted = repo.retry_log_excerpt(job_id, head=HISTORY_HEAD, tail=HISTORY_TAIL)
            return JobDetails(self._views(repo, [job])[job_id], retry_log, omitted)

    # Helpers

    def _get(self, repo: Repository, job_id: str, *, for_update: bool = False) -> JobRecord:
        job = repo.get_job(job_id, for_update=for_update)
        if job is None:
            raise NotFound(f"job {job_id!r} not found", field="job_id")
        return job

    def _current_attempt(self, repo: Repository, job_id: str, attempt_number: int) -> JobRecord:
        require_name(job_id, "job_id", self.limits.max_job_id_length)
        job = self._get(repo, job_id, for_update=True)
        self._require_current_attempt(job, attempt_number)
        return job

    @staticmethod
    def _require_current_attempt(job: JobRecord, attempt_number: int) -> None:
        if attempt_number != job.attempt_number:
            raise FailedPrecondition(
                f"attempt_number {attempt_number} is not the current attempt of job {job.job_id!r} "
                f"(current: {job.attempt_number}, state {job.state.value.upper()})",
                field="attempt_number",
                reason="STALE_ATTEMPT",
            )

    def record_transition(
        self, repo: Repository, job: JobRecord, transition: Transition, updated: JobRecord | None
    ) -> JobRecord:
        """`updated`, the job after its compare-and-set write, with the transition reported; Aborted
        when the write found the job changed (None)."""
        if updated is None:
            raise Aborted(f"job {job.job_id!r} changed concurrently; retry the call", field="job_id")
        self.emit_transition(repo, transition, job.queue_name)
        return updated

    def emit_transition(self, repo: Repository, transition: Transition, *queue_names: str) -> None:
        """Report `transition` of one job per name in `queue_names`, counted by queue."""
        for event in TRANSITION_EVENTS.get(transition, ()):
            self._emit_per_queue(repo, event, queue_names)

    def _emit_per_queue(self, repo: Repository, event: JobEvent, queue_names: Sequence[str]) -> None:
        """Report `event` once per job (counted by queue) after the transaction commits."""
        counts: dict[str, int] = {}
        for name in queue_names:
            counts[name] = counts.get(name, 0) + 1
        for name, count in counts.items():
            repo.after_commit(functools.partial(self.events.job_event, event, name, count))

    def _emit_processed(self, repo: Repository, queue_name: str, duration: timedelta | None) -> None:
        """A reported processing time, observed once the transaction commits."""
        if duration is not None:
            repo.after_commit(functools.partial(self.events.job_processed, queue_name, duration.total_seconds()))

    def _deciding_policy(self, job: JobRecord, queue: QueueRecord | None) -> RetryPolicy:
        """The policy that decided (or would decide) about the job's last error: its rule, if one matches."""
        error_type = job.last_error.type if job.last_error else ""
        return self.policy_for(job, queue).for_error(error_type)[0]

    def policy_for(self, job: JobRecord, queue: QueueRecord | None) -> RetryPolicy:
        """The job's effective policy: its own overrides on its queue's, on the service default."""
        return effective_policy(self.settings.default_policy, queue.retry_policy if queue else None, job.retry_policy)

    def views(self, repo: Repository, jobs: Sequence[JobRecord]) -> dict[str, JobView]:
        """Each job with what its effective policy says about it, keyed by job_id."""
        return self._views(repo, jobs)

    def _views(
        self, repo: Repository, jobs: Sequence[JobRecord], *, queues: dict[str, QueueRecord] | None = None
    ) -> dict[str, JobView]:
        """`queues`, when the caller already read them in this transaction, saves reading them again."""
        views = {}
        unfinished = [job for job in jobs if job.state not in FINISHED_STATES]
        if queues is None:
            # Finished jobs have no retries left whatever the policy: only unfinished ones need their queue.
            queues = repo.get_queues({job.queue_name for job in unfinished}) if unfinished else {}
        # Most jobs carry no override and no error: their queue's policy decides, built once per queue.
        plain_policies: dict[str, RetryPolicy] = {}
        for job in jobs:
            if job.state in FINISHED_STATES:
                views[job.job_id] = JobView(job, 0)
                continue
            if job.retry_policy is None and job.last_error is None:
                policy = plain_policies.get(job.queue_name)
                if policy is None:
                    policy = plain_policies[job.queue_name] = self._deciding_policy(job, queues.get(job.queue_name))
            else:
                policy = self._deciding_policy(job, queues.get(job.queue_name))
            views[job.job_id] = JobView(job, remaining_retries(policy, job.runs_in_budget))
        return views
