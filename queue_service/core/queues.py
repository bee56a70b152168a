"""Queue administration: statistics, policies, pause and resume, cleaning, and admin views of jobs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from queue_service.core import audit, lease_limits, paging
from queue_service.core.breaker import WindowCounts, validate_policy, window_start
from queue_service.core.errors import FailedPrecondition, InvalidArgument, NotFound
from queue_service.core.jobs import JobManager, JobView
from queue_service.core.retry import (
    PolicyOverride,
    RetryPolicy,
    policy_from_json,
    policy_to_json,
    validate_override,
)
from queue_service.core.validation import check_duration, check_text, require_name
from queue_service.domain import (
    ACTIVITY_BUCKET_SECONDS,
    HISTORY_HEAD,
    HISTORY_TAIL,
    BreakerPolicy,
    BreakerRecord,
    BreakerState,
    DeadLetterRecord,
    Decision,
    JobState,
    LeaseLimits,
    QueueRecord,
    RecoveryStatus,
    RetryLogRecord,
)
from queue_service.store.breakers import breakers_of
from queue_service.store.lease_limits import lease_limits_of
from queue_service.store.repository import Repository

# Policy fields UpdateQueuePolicy's update_mask may name.
POLICY_FIELDS = ("max_retries", "retry_delays", "max_delay", "jitter", "rules", "max_retry_duration")
# Circuit breaker fields it may name, as circuit_breaker.<field>; "circuit_breaker" names them all.
BREAKER_MASK = "circuit_breaker"
BREAKER_FIELDS = ("enabled", "failure_ratio", "min_runs", "window", "cooldown", "ramp")
# Jobs CleanQueue deletes per transaction, so a big clean never holds long locks.
CLEAN_BATCH = 1000
# A delay schedule preview lists at most this many retries.
MAX_SCHEDULE_PREVIEW = 100
# GetQueueActivity: buckets are whole multiples of the stored five-minute buckets; a call covers
# at most this many buckets and this long a period, so it reads a bounded number of rows.
ACTIVITY_RESOLUTIONS = [timedelta(seconds=seconds) for seconds in ACTIVITY_BUCKET_SECONDS]
ACTIVITY_RESOLUTION = min(ACTIVITY_RESOLUTIONS)
DEFAULT_ACTIVITY_BUCKET = timedelta(hours=1)
DEFAULT_ACTIVITY_PERIOD = timedelta(hours=24)
MAX_ACTIVITY_BUCKETS = 1000
MAX_ACTIVITY_PERIOD = timedelta(days=35)
# Queues one statistics or activity reply lists at most (by default, and whatever a caller asks):
# the busiest ones; totals always cover every queue, so that a reply stays bounded however many there are.
DEFAULT_STATISTICS_QUEUES = 100
MAX_STATISTICS_QUEUES = 1000
DEFAULT_ACTIVITY_QUEUES = 20
MAX_ACTIVITY_QUEUES = 50
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class QueueStatistics:
    queue_name: str
    paused: bool = False
    waiting: int = 0
    delayed: int = 0
    active: int = 0
    completed: int = 0
    failed: int = 0
    retryable: int = 0
    dead_letter: int = 0
    cancelled: int = 0
    dead_letters_pending: int = 0
    dead_letters_recovered: int = 0
    dead_letters_permanently_failed: int = 0

    @property
    def dead_letters_total(self) -> int:
        return self.dead_letters_pending + self.dead_letters_recovered + self.dead_letters_permanently_failed

    def __add__(self, other: QueueStatistics) -> QueueStatistics:
        sums = {
            name: getattr(self, name) + getattr(other, name)
            for name in self.__dataclass_fields__
            if name not in ("queue_name", "paused")
        }
        return QueueStatistics(queue_name="", paused=False, **sums)


@dataclass(frozen=True)
class Statistics:
    queues: list[QueueStatistics]
    totals: QueueStatistics
    computed_at: datetime
    # Queues counted in totals but not listed.
    omitted: int = 0


@dataclass(frozen=True)
class ActivityCounts:
    start: datetime
    completed: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class QueueActivity:
    queue_name: str
    buckets: list[ActivityCounts]


@dataclass(frozen=True)
class Activity:
    queues: list[QueueActivity]
    totals: QueueActivity
    start: datetime
    end: datetime
    bucket_width: timedelta
    # Queues counted in totals but not listed.
    omitted: int = 0


def _listed_queues(max_queues: int, default: int, maximum: int) -> int:
    if max_queues < 0:
        raise InvalidArgument("max_queues must not be negative", field="max_queues")
    return min(max_queues or default, maximum)


def _floor(moment: datetime, width: timedelta) -> datetime:
    return EPOCH + ((moment - EPOCH) // width) * width


@dataclass(frozen=True)
class QueueView:
    record: QueueRecord
    effective_policy: RetryPolicy
    delay_schedule: list[timedelta]
    limits: LeaseLimits = LeaseLimits()
    # The queue's circuit breaker (None: never set, off); its window's counts when read singly.
    breaker: BreakerRecord | None = None
    breaker_counts: WindowCounts | None = None


@dataclass(frozen=True)
class JobAdminDetails:
    job: JobView
    # The first and last retry decisions, and how many lie between.
    retry_log: list[RetryLogRecord]
    dead_letter: DeadLetterRecord | None
    retry_log_omitted: int = 0


@dataclass(frozen=True)
class RetryLogQuery:
    job_id: str = ""
    queue_name: str = ""
    decision: Decision | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class QueueManager:
    def __init__(self, jobs: JobManager) -> None:
        self.jobs = jobs
        self.database = jobs.database
        self.clock = jobs.clock

    @property
    def limits(self):
        return self.jobs.limits

    # Statistics

    def oldest_waiting(self) -> dict[str, timedelta]:
        """Per queue with jobs ready to run: how long the one ready the longest has been waiting."""
        with self.database.snapshot() as repo:
            now = self.clock.now()
            oldest = repo.oldest_ready_run_at(now)
        return {queue: max(now - run_at, timedelta(0)) for queue, run_at in oldest.items()}

    def statistics(self, queue_names: Sequence[str] = (), *, max_queues: int = 0) -> Statistics:
        """Exact counts from the trigger-maintained queue_counters (a few rows per queue) instead of
        counting queue_jobs; only the time-dependent split (ready now or delayed) reads queue_jobs,
        as an index range scan over jobs whose run time is still ahead. Lists the `max_queues`
        queues with the most unfinished jobs and pending dead letters, by name."""
        listed = _listed_queues(max_queues, DEFAULT_STATISTICS_QUEUES, MAX_STATISTICS_QUEUES)
        names = sorted({self._name(name, "queue_names") for name in queue_names}) or None
        with self.database.snapshot() as repo:
            now = self.clock.now()
            queues = repo.list_queues(after=None, limit=2**31 - 1, names=names)
            if names is not None:
                missing = sorted(set(names) - {queue.name for queue in queues})
                if missing:
                    raise NotFound(f"queue {missing[0]!r} not found", field="queue_names")
            counts = repo.counter_totals(names)
            scheduled = repo.scheduled_counts(now, names)

        def count(queue: str, counter: str) -> int:
            return counts.get((queue, counter), 0)

        result = []
        for queue in queues:
            name = queue.name
            delayed = scheduled.get((name, JobState.WAITING.value), 0)
            backing_off = scheduled.get((name, JobState.FAILED.value), 0)
            result.append(
                QueueStatistics(
                    queue_name=name,
                    paused=queue.paused,
                    waiting=count(name, "jobs.waiting") - delayed,
                    delayed=delayed,
                    active=count(name, "jobs.active"),
                    completed=count(name, "jobs.completed"),
                    failed=count(name, "jobs.failed"),
                    retryable=count(name, "jobs.failed") - backing_off,
                    dead_letter=count(name, "jobs.dead_letter"),
                    cancelled=count(name, "jobs.cancelled"),
                    dead_letters_pending=count(name, "dead_letters.pending"),
                    dead_letters_recovered=count(name, "dead_letters.recovered"),
                    dead_letters_permanently_failed=count(name, "dead_letters.permanently_failed"),
                )
            )
        totals = QueueStatistics(queue_name="")
        for item in result:
            totals = totals + item
        busiest = sorted(
            result,
            key=lambda item: (
                -(item.waiting + item.delayed + item.active + item.failed + item.dead_letters_pending),
                item.queue_name,
            ),
        )[:listed]
        shown = sorted(busiest, key=lambda item: item.queue_name)
        return Statistics(shown, totals, now, omitted=len(result) - len(shown))

    def activity(
        self,
        queue_names: Sequence[str] = (),
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        bucket_width: timedelta | None = None,
        period: timedelta | None = None,
        max_queues: int = 0,
    ) -> Activity:
        """Completed, failed, retried, dead-lettered and cancelled jobs per queue and bucket, every bucket of
        the period included. Sums the trigger-kept rows (queue_activity) of the period, hourly where
        the bucket width allows, else five-minute; their number does not depend on how many jobs there are.
        Lists the `max_queues` queues with the most activity in the period, by name; totals cover all."""
        listed = _listed_queues(max_queues, DEFAULT_ACTIVITY_QUEUES, MAX_ACTIVITY_QUEUES)
        names = sorted({self._name(name, "queue_names") for name in queue_names}) or None
        width = DEFAULT_ACTIVITY_BUCKET if bucket_width is None else bucket_width
        if width <= timedelta(0) or width % ACTIVITY_RESOLUTION:
            raise InvalidArgument("bucket_width must be a positive whole multiple of 5 minutes", field="bucket_width")
        end = self.clock.now() if end is None else end
        if start is None:
            if period is not None and period <= timedelta(0):
                raise InvalidArgument("period must be positive", field="period")
            try:
                start = end - (DEFAULT_ACTIVITY_PERIOD if period is None else period)
            except OverflowError:
                raise InvalidArgument("end_time is too early for the period", field="end_time") from None
        if start >= end:
            raise InvalidArgument("start_time must be before end_time", field="start_time")
        if end - start > MAX_ACTIVITY_PERIOD:
            raise InvalidArgument(f"the period is longer than {MAX_ACTIVITY_PERIOD.days} days", field="start_time")
        try:
            first = _floor(start, width)
            # The bucket holding the last instant of the half-open period [start, end).
            last = _floor(end - timedelta(microseconds=1), width)
            period_end = last + width
        except OverflowError:
            raise InvalidArgument("the period reaches beyond the supported dates", field="start_time") from None
        count = (last - first) // width + 1
        if count > MAX_ACTIVITY_BUCKETS:
            raise InvalidArgument(
                f"the period holds {count} buckets; at most {MAX_ACTIVITY_BUCKETS}", field="bucket_width"
            )
        with self.database.snapshot() as repo:
            queues = repo.list_queues(after=None, limit=2**31 - 1, names=names)
            if names is not None:
                missing = sorted(set(names) - {queue.name for queue in queues})
                if missing:
                    raise NotFound(f"queue {missing[0]!r} not found", field="queue_names")
            # The widest stored buckets that tile the requested ones: hourly rows for a week's chart.
            resolution = max(stored for stored in ACTIVITY_RESOLUTIONS if not width % stored)
            rows = repo.activity_totals(
                start=first,
                end=period_end,
                stored_seconds=int(resolution.total_seconds()),
                width_seconds=int(width.total_seconds()),
                queue_names=names,
            )

        known = {queue.name for queue in queues}
        sums: dict[tuple[str, int], dict[str, int]] = {}
        totals: dict[int, dict[str, int]] = {}
        volume: dict[str, int] = {}
        for queue_name, index, activity, amount in rows:
            if queue_name not in known:
                continue
            counts = sums.setdefault((queue_name, index), {})
            counts[activity] = counts.get(activity, 0) + amount
            total = totals.setdefault(index, {})
            total[activity] = total.get(activity, 0) + amount
            volume[queue_name] = volume.get(queue_name, 0) + amount

        def series(found: Callable[[int], dict[str, int]]) -> list[ActivityCounts]:
            return [ActivityCounts(first + index * width, **found(index)) for index in range(count)]

        busiest = sorted(queues, key=lambda queue: (-volume.get(queue.name, 0), queue.name))[:listed]
        shown = sorted(queue.name for queue in busiest)
        return Activity(
            queues=[
                QueueActivity(name, series(lambda index, name=name: sums.get((name, index), {}))) for name in shown
            ],
            totals=QueueActivity("", series(lambda index: totals.get(index, {}))),
            start=first,
            end=period_end,
            bucket_width=width,
            omitted=len(queues) - len(shown),
        )

    # Queues

    def list_queues(self, *, page_size: int = 0, page_token: str = "") -> paging.Page[QueueView]:
        limit = paging.page_size(page_size)
        key = self.jobs.page_tokens.decode(page_token, {}, shape=(str,))
        with self.database.snapshot() as repo:
            records = repo.list_queues(after=key[0] if key else None, limit=limit + 1)
            names = [record.name for record in records[:limit]]
            limits = self._limits(repo, names)
            breakers = breakers_of(repo).get_many(names)
        token = self.jobs.page_tokens.next(records, limit, lambda queue: (queue.name,), {})
        views = [self.view(record, limits.get(record.name), breakers.get(record.name)) for record in records[:limit]]
        return paging.Page(views, token)

    def get_queue(self, name: str) -> QueueView:
        name = self._name(name)
        with self.database.snapshot() as repo:
            queue = self._queue(repo, name)
            store = breakers_of(repo)
            breaker = store.get(name)
            counts = None
            if breaker is not None and breaker.policy.enabled and breaker.state == BreakerState.CLOSED:
                now = self.clock.now()
                counts = WindowCounts(*store.window_counts(name, since=window_start(breaker, now), now=now))
            return replace(self.view(queue, self._limits(repo, [name]).get(name), breaker), breaker_counts=counts)

    def update_policy(
        self,
        name: str,
        policy: PolicyOverride,
        *,
        limits: LeaseLimits = LeaseLimits(),
        mask: Sequence[str] = (),
        allow_missing: bool = False,
        validate_only: bool = False,
        actor: str,
        breaker: BreakerPolicy | None = None,
    ) -> QueueView:
        """`breaker` is the circuit breaker policy the request brings (None: none); with an empty
        mask it replaces the queue's when given, else the mask's circuit_breaker paths say what."""
        name = self._name(name)
        fields, limit_fields = self._policy_mask(mask)
        breaker_fields = self._breaker_mask(mask)
        with self.database.transaction() as repo:
            limit_store = lease_limits_of(repo)
            now = self.clock.now()
            queue = repo.get_queue(name)
            if queue is None and not allow_missing:
                raise NotFound(f"queue {name!r} not found; set allow_missing to create it", field="queue_name")
            current = policy_from_json(queue.retry_policy if queue else None)
            merged = policy if fields is None else replace(current, **{f: getattr(policy, f) for f in fields})
            validate_override(merged, "retry_policy")
            stored = policy_to_json(merged)
            current_limits = limit_store.get([name]).get(name)
            new_limits = lease_limits.validate(
                lease_limits.merge(current_limits.limits if current_limits else LeaseLimits(), limits, limit_fields)
            )
            current_breaker = breakers_of(repo).get(name)
            new_breaker = self._merged_breaker(current_breaker, breaker, breaker_fields)
            if validate_only:
                preview = queue or QueueRecord(name, False, None, now, now)
                shown = current_breaker
                if new_breaker is not None:
                    shown = replace(
                        current_breaker
                        or BreakerRecord(name, new_breaker, BreakerState.CLOSED, 0, now, None, None, "", 0, now),
                        policy=new_breaker,
                    )
                return self.view(replace(preview, retry_policy=stored, updated_at=now), new_limits, shown)
            if queue is None:
                self.jobs.create_missing_queues(repo, {name: "queue_name"}, now)
            updated = repo.set_queue_policy(name, stored, now=now)
            limit_row = lease_limits.stored(current_limits, name, new_limits, now)
            if limit_row is not None:
                limit_store.put(limit_row)
            elif current_limits is not None:
                limit_store.remove(name)
            parameters = {
                "retry_policy": stored,
                "max_active": new_limits.max_active,
                "max_starts_per_second": new_limits.max_starts_per_second,
                "update_mask": list(mask),
                "created": queue is None,
            }
            if new_breaker is not None:
                parameters["circuit_breaker"] = breaker_parameters(new_breaker)
                current_breaker = breakers_of(repo).put_policy(name, new_breaker, now=now)
            audit.record(
                repo,
                actor=actor,
                action="UpdateQueuePolicy",
                target=audit.queue_target(name),
                parameters=parameters,
                now=now,
            )
            if current_limits is not None and new_limits != current_limits.limits:
                # Waiting leases may take what a raised or removed limit held back.
                repo.after_commit(self.jobs.notifier.notify)
            if new_breaker is not None and not new_breaker.enabled:
                self.jobs.breakers.reset(repo, current_breaker, now, actor=actor)
                current_breaker = breakers_of(repo).get(name)
            return self.view(updated, new_limits, current_breaker)

    def set_paused(self, name: str, paused: bool, *, allow_missing: bool = False, actor: str) -> QueueView:
        """Pausing stops leasing only; enqueueing and tracking go on."""
        name = self._name(name)
        with self.database.transaction() as repo:
            now = self.clock.now()
            queue = repo.get_queue(name)
            if queue is None:
                if not allow_missing:
                    raise NotFound(f"queue {name!r} not found", field="queue_name")
                self.jobs.create_missing_queues(repo, {name: "queue_name"}, now)
            updated = repo.set_queue_paused(name, paused, now=now)
            limits = self._limits(repo, [name]).get(name)
            audit.record(
                repo,
                actor=actor,
                action="PauseQueue" if paused else "ResumeQueue",
                target=audit.queue_target(name),
                parameters={"created": queue is None} if queue is None else {},
                now=now,
            )
        if not paused:
            self.jobs.notifier.notify()
        return self.view(updated, limits)

    def clean(
        self,
        name: str,
        state: JobState | None,
        *,
        grace: timedelta | None = None,
        recovery_status: RecoveryStatus | None = None,
        actor: str,
    ) -> int:
        """Delete the queue's jobs that entered `state` at least `grace` ago, CLEAN_BATCH per transaction."""
        name = self._name(name)
        if state is None:
            raise InvalidArgument("state is required", field="state")
        if state == JobState.ACTIVE:
            raise FailedPrecondition(
                "ACTIVE jobs are running and cannot be cleaned; wait for them to finish or fail", field="state"
            )
        if state == JobState.DEAD_LETTER:
            recovery_status = recovery_status or RecoveryStatus.PERMANENTLY_FAILED
            if recovery_status == RecoveryStatus.PENDING:
                raise FailedPrecondition(
                    "PENDING dead-letter entries are awaiting triage and cannot be cleaned; "
                    "retry them or mark them permanently failed first",
                    field="recovery_status",
                )
            if recovery_status != RecoveryStatus.PERMANENTLY_FAILED:
                raise InvalidArgument(
                    "DEAD_LETTER jobs can only be cleaned with PERMANENTLY_FAILED entries", field="recovery_status"
                )
        elif recovery_status is not None:
            raise InvalidArgument("recovery_status applies only to state DEAD_LETTER", field="recovery_status")
        grace = check_duration(grace, "grace", default=timedelta(0))
        now = self.clock.now()
        cutoff = now - grace
        deleted = 0
        first = True
        while True:
            with self.database.transaction() as repo:
                if first:
                    self._queue(repo, name)
                    audit.record(
                        repo,
                        actor=actor,
                        action="CleanQueue",
                        target=audit.queue_target(name),
                        parameters={
                            "state": state.value,
                            "grace_seconds": grace.total_seconds(),
                            "recovery_status": recovery_status.value if recovery_status else None,
                            "cutoff": cutoff.isoformat(),
                        },
                        now=now,
                    )
                    first = False
                rows = repo.cleanable_job_ids(
                    queue_name=name,
                    state=state,
                    updated_before=cutoff,
                    recovery_status=recovery_status,
                    limit=CLEAN_BATCH,
                )
                if not rows:
                    return deleted
                deleted += repo.delete_jobs([row_id for row_id, _ in rows], state=state)
                if recovery_status is not None:
                    repo.delete_dead_letters_for_jobs([job_id for _, job_id in rows], recovery_status=recovery_status)
            if len(rows) < CLEAN_BATCH:
                return deleted

    # Jobs

    def list_jobs(
        self,
        *,
        queue_name: str = "",
        state: JobState | None = None,
        job_name: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> paging.Page[JobView]:
        check_text(queue_name, "queue_name", self.limits.max_name_length)
        check_text(job_name, "job_name", self.limits.max_name_length)
        limit = paging.page_size(page_size)
        filters = {"queue_name": queue_name, "state": state.value if state else ""}
        if job_name:  # only when given, so tokens issued before the filter existed stay valid
            filters["job_name"] = job_name
        key = self.jobs.page_tokens.decode(page_token, filters, shape=(datetime, int))
        with self.database.snapshot() as repo:
            records = repo.list_jobs(
                queue_name=queue_name or None,
                state=state,
                job_name=job_name or None,
                after=tuple(key) if key else None,
                limit=limit + 1,
            )
            views = self.jobs.views(repo, records[:limit])
            if job_name:
                # The counters are kept per queue and state only; a name needs a count of its own.
                total = repo.count_jobs(queue_name=queue_name or None, state=state, job_name=job_name)
            else:
                total = self._counted_jobs(repo.counter_totals([queue_name] if queue_name else None), state)
        token = self.jobs.page_tokens.next(records, limit, lambda job: (job.updated_at, job.id), filters)
        return paging.Page([views[record.job_id] for record in records[:limit]], token, total)

    @staticmethod
    def _counted_jobs(counts: dict[tuple[str, str], int], state: JobState | None) -> int:
        wanted = f"jobs.{state.value}" if state else None
        return sum(
            amount
            for (_, counter), amount in counts.items()
            if counter.startswith("jobs.") and (wanted is None or counter == wanted)
        )

    def job_details(self, job_id: str) -> JobAdminDetails:
        require_name(job_id, "job_id", self.limits.max_job_id_length)
        with self.database.snapshot() as repo:
            job = repo.get_job(job_id)
            if job is None:
                raise NotFound(f"job {job_id!r} not found", field="job_id")
            retry_log, omitted = repo.retry_log_excerpt(job_id, head=HISTORY_HEAD, tail=HISTORY_TAIL)
            return JobAdminDetails(
                self.jobs.views(repo, [job])[job_id], retry_log, repo.get_dead_letter_for_job(job_id), omitted
            )

    def retry_log(
        self, query: RetryLogQuery, *, page_size: int = 0, page_token: str = ""
    ) -> paging.Page[RetryLogRecord]:
        check_text(query.job_id, "job_id", self.limits.max_job_id_length)
        check_text(query.queue_name, "queue_name", self.limits.max_name_length)
        if query.created_after and query.created_before and query.created_after >= query.created_before:
            raise InvalidArgument("created_after must be before created_before", field="created_after")
        limit = paging.page_size(page_size)
        filters = {
            "job_id": query.job_id,
            "queue_name": query.queue_name,
            "decision": query.decision.value if query.decision else "",
            "created_after": query.created_after,
            "created_before": query.created_before,
        }
        key = self.jobs.page_tokens.decode(page_token, filters, shape=(int,))
        with self.database.snapshot() as repo:
            rows = repo.list_retry_log(
                job_id=query.job_id or None,
                queue_name=query.queue_name or None,
                decision=query.decision,
                created_after=query.created_after,
                created_before=query.created_before,
                before_id=key[0] if key else None,
                limit=limit + 1,
            )
        token = self.jobs.page_tokens.next(rows, limit, lambda row: (row.id,), filters)
        return paging.Page(rows[:limit], token)

    # Helpers

    def view(
        self, record: QueueRecord, limits: LeaseLimits | None = None, breaker: BreakerRecord | None = None
    ) -> QueueView:
        policy = self.jobs.settings.default_policy.with_overrides(record.retry_policy)
        preview = replace(policy, jitter=0.0)
        schedule = [preview.delay_for_retry(n) for n in range(1, min(policy.max_retries, MAX_SCHEDULE_PREVIEW) + 1)]
        return QueueView(record, policy, schedule, limits or LeaseLimits(), breaker)

    @staticmethod
    def _limits(repo: Repository, names: Sequence[str]) -> dict[str, LeaseLimits]:
        return {name: row.limits for name, row in lease_limits_of(repo).get(names).items()}

    def _name(self, name: str, field: str = "queue_name") -> str:
        return require_name(name, field, self.limits.max_name_length)

    @staticmethod
    def _queue(repo: Repository, name: str) -> QueueRecord:
        queue = repo.get_queue(name)
        if queue is None:
            raise NotFound(f"queue {name!r} not found", field="queue_name")
        return queue

    @staticmethod
    def _policy_mask(mask: Sequence[str]) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        """The retry policy fields and the limits to take from the request. No mask: None for both,
        which replaces the whole policy and sets the limits the request holds."""
        if not mask:
            return None, None
        if list(mask) == ["*"]:
            return POLICY_FIELDS, lease_limits.LIMIT_FIELDS
        fields: list[str] = []
        limits: list[str] = []
        for index, path in enumerate(mask):
            if path == BREAKER_MASK or path.startswith(f"{BREAKER_MASK}."):
                continue  # the circuit breaker's, checked by _breaker_mask
            name = path.removeprefix("retry_policy.")
            if name in POLICY_FIELDS:
                fields.append(name)
            elif path in lease_limits.LIMIT_FIELDS:
                limits.append(path)
            else:
                known = ", ".join(POLICY_FIELDS + lease_limits.LIMIT_FIELDS)
                raise InvalidArgument(
                    f"update_mask.paths[{index}] {path!r} is not a policy field or limit; use {known}, "
                    f"{BREAKER_MASK}[.<field>] or *",
                    field="update_mask",
                )
        return tuple(dict.fromkeys(fields)), tuple(dict.fromkeys(limits))

    @staticmethod
    def _breaker_mask(mask: Sequence[str]) -> tuple[str, ...] | None:
        """The circuit breaker fields to take from the request; None: all of them, if it brings a breaker."""
        if not mask:
            return None
        if list(mask) == ["*"]:
            return BREAKER_FIELDS
        fields: list[str] = []
        for index, path in enumerate(mask):
            if path == BREAKER_MASK:
                fields.extend(BREAKER_FIELDS)
            elif path.startswith(f"{BREAKER_MASK}."):
                name = path.removeprefix(f"{BREAKER_MASK}.")
                if name not in BREAKER_FIELDS:
                    raise InvalidArgument(
                        f"update_mask.paths[{index}] {path!r} is not a circuit breaker field; "
                        f"use {', '.join(BREAKER_FIELDS)}",
                        field="update_mask",
                    )
                fields.append(name)
        return tuple(dict.fromkeys(fields))

    @staticmethod
    def _merged_breaker(
        current: BreakerRecord | None, given: BreakerPolicy | None, fields: tuple[str, ...] | None
    ) -> BreakerPolicy | None:
        """The breaker policy to store, checked; None leaves the queue's as it is."""
        if fields is None:
            merged = given
        elif not fields:
            merged = None
        else:
            base = current.policy if current else BreakerPolicy()
            source = given or BreakerPolicy()
            merged = replace(base, **{field: getattr(source, field) for field in fields})
        return validate_policy(merged) if merged is not None else None


def breaker_parameters(policy: BreakerPolicy) -> dict[str, object]:
    """A breaker policy as the audit log keeps it."""
    return {
        "enabled": policy.enabled,
        "failure_ratio": policy.failure_ratio,
        "min_runs": policy.min_runs,
        "window_seconds": policy.window.total_seconds(),
        "cooldown_seconds": policy.cooldown.total_seconds(),
        "ramp_seconds": policy.ramp.total_seconds(),
    }
