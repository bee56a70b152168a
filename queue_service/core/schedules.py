"""Cron schedules: slot arithmetic (pure), the admin operations, and the leader's tick that enqueues due slots.

A slot is an instant at which the schedule's cron expression matches the wall clock of its time
zone. Around daylight-saving changes each wall-clock time fires once: a time that occurs twice
(clocks go back) fires at its first occurrence, and times the clocks skip (clocks go forward)
fire together once, at the instant the gap ends.

Each slot's job gets the id `schedule:<name>:<slot in UTC>`, and the tick moves the schedule past
the slot in the same transaction, comparing the slot it read. Two leaders for a moment, a leader
that dies mid-tick or a restart therefore never make a slot's job twice: the second attempt finds
the schedule moved on, and even a stale one would only repeat an existing job id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from queue_service.clock import Clock
from queue_service.core import audit, paging
from queue_service.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    QueueError,
    ResourceExhausted,
)
from queue_service.core.jobs import JobManager, JobSpec
from queue_service.core.retry import PolicyOverride, policy_from_json, policy_to_json, validate_override
from queue_service.core.validation import check_document, check_text, require_name
from queue_service.domain import MisfirePolicy, ScheduleDefinition, ScheduleRecord
from queue_service.store.repository import Repository
from queue_service.store.schedules import ScheduleStore

logger = logging.getLogger(__name__)

MAX_CRON_LENGTH = 255
MAX_TIME_ZONE_LENGTH = 64
JOB_ID_PREFIX = "schedule:"
# No slot is computed beyond this: well inside the dates Python and both stores hold.
LAST_SLOT = datetime(9000, 1, 1, tzinfo=UTC)
# Wall-clock candidates examined for one slot: enough to cross a repeated hour minute by minute.
_MAX_CANDIDATES = 10_000
# Missed slots are counted (for the log) up to this many.
MAX_COUNTED_SLOTS = 1000
UPDATABLE_FIELDS = ("cron", "time_zone", "queue_name", "job_name", "job_data", "retry_policy", "misfire_policy")
_TIMING_FIELDS = frozenset({"cron", "time_zone"})


# Slot arithmetic: pure functions of an expression, a zone and instants.


# Crontab weekday numbers: 0 and 7 are Sunday. APScheduler 3 counts from Monday, so numbers are
# turned into names before it reads them.
_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NUMERIC_WEEKDAYS = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")


def _weekday_names(field: str) -> str:
    """A crontab weekday field with its numbers as names ("1-5" -> "mon,tue,wed,thu,fri"); names
    pass unchanged; anything else is left for the parser to refuse."""
    if field == "*":
        return field
    names: list[str] = []
    for part in field.split(","):
        match = _NUMERIC_WEEKDAYS.match(part)
        if not match:
            names.append(part)
            continue
        span, step = match.group(1), int(match.group(2) or 1)
        if span == "*":
            first, last = 0, 6
        else:
            first, _, end = span.partition("-")
            first, last = int(first), int(end or first)
            if match.group(2) and not end:  # "1/2": from 1 to the end of the week
                last = 6
        if not 0 <= first <= last <= 7 or not 1 <= step <= 7:
            raise ValueError(f"weekday {part!r} is not within 0-7 (0 and 7 are Sunday)")
        names.extend(_WEEKDAY_NAMES[day] for day in range(first, last + 1, step))
    return ",".join(dict.fromkeys(names))


def _wall_triggers(expression: str) -> tuple[CronTrigger, ...]:
    """Triggers over naive wall-clock times (read as UTC, which has no daylight saving). As in cron,
    when both day of month and weekday are restricted a day matching either one fires."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"it has {len(fields)} fields, not 5")
    minute, hour, day, month, weekday = fields
    weekday = _weekday_names(weekday)

    def trigger(day: str, weekday: str) -> CronTrigger:
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=weekday, timezone=UTC)

    if day.startswith("*") or weekday.startswith("*"):
        return (trigger(day, weekday),)
    return trigger(day, "*"), trigger("*", weekday)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression in a time zone."""

    expression: str
    zone: ZoneInfo
    wall_triggers: tuple[CronTrigger, ...]

    @classmethod
    def parse(cls, expression: str, time_zone: str, *, cron_field: str = "cron", zone_field: str = "time_zone"):
        zone = parse_time_zone(time_zone, zone_field)
        check_text(expression, cron_field, MAX_CRON_LENGTH)
        if not expression.strip():
            raise InvalidArgument(f"{cron_field} must not be empty", field=cron_field)
        try:
            triggers = _wall_triggers(expression)
        except (ValueError, TypeError, KeyError, IndexError) as error:
            raise InvalidArgument(
                f"{cron_field} {expression!r} is not a five-field cron expression (minute hour day month weekday): {error}",
                field=cron_field,
            ) from None
        schedule = cls(expression, zone, triggers)
        if schedule.next_slot(datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise InvalidArgument(f"{cron_field} {expression!r} never fires", field=cron_field)
        return schedule

    def _next_wall(self, wall: datetime) -> datetime | None:
        start = wall.replace(tzinfo=UTC) + timedelta(microseconds=1)
        found = [moment for trigger in self.wall_triggers if (moment := trigger.get_next_fire_time(None, start))]
        return min(found).replace(tzinfo=None) if found else None

    def _instant(self, wall: datetime) -> datetime:
        """The instant a wall-clock time names: its first occurrence, or the end of a gap it falls in."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        instant = first.astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) == wall:
            return instant
        # Skipped by a forward change: the gap ends at the earliest instant whose wall time is past
        # `wall`. Zone transitions fall on whole seconds, so bisect over whole seconds.
        bounds = sorted((instant, wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)))
        low, high = (int(bound.timestamp()) for bound in bounds)
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, self.zone).replace(tzinfo=None) > wall:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC)

    def next_slot(self, after: datetime) -> datetime | None:
        """The first slot strictly after `after` (UTC), or None if there is none before LAST_SLOT."""
        wall = after.astimezone(self.zone).replace(tzinfo=None)
        for _ in range(_MAX_CANDIDATES):
            wall = self._next_wall(wall)
            if wall is None:
                return None
            instant = self._instant(wall)
            if instant >= LAST_SLOT:
                return None
            if instant > after:
                return instant
        return None

    def slots(self, after: datetime, count: int) -> list[datetime]:
        found: list[datetime] = []
        moment = after
        while len(found) < count:
            slot = self.next_slot(moment)
            if slot is None:
                break
            found.append(slot)
            moment = slot
        return found

    def count_slots(self, first: datetime, now: datetime, *, cap: int) -> int:
        """Slots in [first, now], `first` being a slot; at most `cap`."""
        count, slot = 0, first
        while slot is not None and slot <= now and count < cap:
            count += 1
            slot = self.next_slot(slot)
        return count

    def latest_slot(self, first: datetime, now: datetime) -> datetime:
        """The latest slot in [first, now], `first` being a slot at or before now; by bisection, so a
        year of missed minutes costs a few dozen steps, not half a million."""
        low, high = first, now
        while high - low > timedelta(seconds=1):
            middle = low + max(timedelta(seconds=1), timedelta(seconds=int((high - low).total_seconds() // 2)))
            slot = self.next_slot(middle - timedelta(microseconds=1))
            if slot is not None and slot <= now:
                low = slot
            else:
                high = middle
        return low


def parse_time_zone(name: str, field: str = "time_zone") -> ZoneInfo:
    check_text(name, field, MAX_TIME_ZONE_LENGTH)
    if not name.strip():
        raise InvalidArgument(
            f"{field} must not be empty; use an IANA name such as 'UTC' or 'Europe/Berlin'", field=field
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidArgument(f"{field} {name!r} is not an IANA time zone name", field=field) from None


@dataclass(frozen=True)
class SlotPlan:
    """What one tick does with a schedule whose next slot has come."""

    # The slot to enqueue a job for; None when every due slot is skipped.
    enqueue: datetime | None
    # Due slots passed over without a job.
    skipped: int
    # The first slot after now; None when the expression fires no more.
    next_run_at: datetime | None


def plan_due_slots(
    schedule: CronSchedule, next_run_at: datetime, now: datetime, misfire: MisfirePolicy, grace: timedelta
) -> SlotPlan | None:
    """None while `next_run_at` lies ahead. Otherwise the latest due slot is enqueued if it is at most
    `grace` late, or under RUN_ONCE however late; every earlier due slot counts as missed."""
    if next_run_at > now:
        return None
    latest = schedule.latest_slot(next_run_at, now)
    on_time = now - latest <= grace
    enqueue = latest if on_time or misfire is MisfirePolicy.RUN_ONCE else None
    due = schedule.count_slots(next_run_at, now, cap=MAX_COUNTED_SLOTS)
    return SlotPlan(enqueue, due - (1 if enqueue else 0), schedule.next_slot(now))


def slot_job_id(schedule_name: str, slot: datetime) -> str:
    return f"{JOB_ID_PREFIX}{schedule_name}:{slot.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


# Admin operations.


@dataclass(frozen=True)
class ScheduleSettings:
    # How often the leader looks for due slots.
    tick_interval: timedelta = timedelta(seconds=1)
    # A slot later than this when the tick sees it counts as missed (see MisfirePolicy).
    misfire_grace: timedelta = timedelta(minutes=1)
    max_schedules: int = 10_000
    # Schedules fired per transaction-bounded pass of one tick.
    batch_size: int = 100
    # Next run times shown per schedule.
    preview_count: int = 5


@dataclass(frozen=True)
class ScheduleView:
    record: ScheduleRecord
    # The next few slots from now (none while paused).
    upcoming: list[datetime] = field(default_factory=list)


@dataclass(frozen=True)
class ScheduleInput:
    """A schedule as a request gives it; retry_policy is the override, not yet stored form."""

    cron: str = ""
    time_zone: str = ""
    queue_name: str = ""
    job_name: str = ""
    job_data: dict | None = None
    retry_policy: PolicyOverride | None = None
    misfire_policy: MisfirePolicy | None = None


class ScheduleManager:
    def __init__(self, jobs: JobManager, settings: ScheduleSettings | None = None) -> None:
        self.jobs = jobs
        self.database = jobs.database
        self.clock: Clock = jobs.clock
        self.settings = settings or ScheduleSettings()

    def _name(self, name: str, field: str = "name") -> str:
        return require_name(name, field, self.jobs.limits.max_name_length)

    def _definition(self, given: ScheduleInput, prefix: str = "schedule.") -> tuple[ScheduleDefinition, CronSchedule]:
        limits = self.jobs.limits
        schedule = CronSchedule.parse(
            given.cron, given.time_zone, cron_field=f"{prefix}cron", zone_field=f"{prefix}time_zone"
        )
        require_name(given.queue_name, f"{prefix}queue_name", limits.max_name_length)
        require_name(given.job_name, f"{prefix}job_name", limits.max_name_length)
        data = check_document(given.job_data, f"{prefix}job_data", limits.max_payload_bytes)
        override = given.retry_policy or PolicyOverride()
        validate_override(override, f"{prefix}retry_policy")
        definition = ScheduleDefinition(
            cron=given.cron,
            time_zone=given.time_zone,
            queue_name=given.queue_name,
            job_name=given.job_name,
            job_data=data or None,
            retry_policy=policy_to_json(override),
            misfire_policy=given.misfire_policy or MisfirePolicy.SKIP,
        )
        return definition, schedule

    def view(self, record: ScheduleRecord) -> ScheduleView:
        if record.paused or record.next_run_at is None:
            return ScheduleView(record)
        schedule = CronSchedule.parse(record.definition.cron, record.definition.time_zone)
        upcoming = [record.next_run_at, *schedule.slots(record.next_run_at, self.settings.preview_count - 1)]
        return ScheduleView(record, upcoming[: self.settings.preview_count])

    def create(self, name: str, given: ScheduleInput, *, actor: str, name_field: str = "name") -> ScheduleView:
        name = self._name(name, name_field)
        definition, schedule = self._definition(given)
        with self.database.transaction() as repo:
            store = ScheduleStore.of(repo)
            now = self.clock.now()
            if store.get(name) is not None:
                raise AlreadyExists(f"schedule {name!r} already exists", field=name_field)
            if store.count() >= self.settings.max_schedules:
                raise ResourceExhausted(
                    f"this server already holds {self.settings.max_schedules} schedules", field=name_field
                )
            store.insert(name, definition, next_run_at=schedule.next_slot(now), now=now)
            self._audit(
                repo, actor, "CreateSchedule", name, {"cron": definition.cron, "time_zone": definition.time_zone}, now
            )
            record = store.get(name)
        return self.view(record)

    def get(self, name: str) -> ScheduleView:
        name = self._name(name)
        with self.database.snapshot() as repo:
            return self.view(self._existing(ScheduleStore.of(repo), name))

    def list(self, *, page_size: int = 0, page_token: str = "") -> paging.Page[ScheduleView]:
        limit = paging.page_size(page_size)
        key = self.jobs.page_tokens.decode(page_token, {"list": "schedules"}, shape=(str,))
        with self.database.snapshot() as repo:
            records = ScheduleStore.of(repo).list(after=key[0] if key else None, limit=limit + 1)
        token = self.jobs.page_tokens.next(records, limit, lambda record: (record.name,), {"list": "schedules"})
        return paging.Page([self.view(record) for record in records[:limit]], token)

    def update(
        self, name: str, given: ScheduleInput, *, mask: Sequence[str], actor: str, name_field: str = "name"
    ) -> ScheduleView:
        """AIP-134: `mask` names the fields to take from `given`; empty or "*" takes them all."""
        name = self._name(name, name_field)
        fields = self._mask(mask)
        with self.database.transaction() as repo:
            store = ScheduleStore.of(repo)
            now = self.clock.now()
            current = self._existing(store, name, for_update=True, field=name_field)
            merged = self._as_input(current.definition)
            merged = replace(merged, **{f: getattr(given, f) for f in fields})
            definition, schedule = self._definition(merged)
            next_run_at = current.next_run_at
            if not current.paused and (fields & _TIMING_FIELDS or next_run_at is None):
                next_run_at = schedule.next_slot(now)
            updated = store.update_definition(current, definition, next_run_at=next_run_at, now=now)
            if updated is None:
                raise FailedPrecondition(f"schedule {name!r} changed meanwhile; read it again", field=name_field)
            self._audit(repo, actor, "UpdateSchedule", name, {"update_mask": sorted(fields)}, now)
        return self.view(updated)

    def set_paused(self, name: str, paused: bool, *, actor: str) -> ScheduleView:
        """Pausing drops the pending slot; resuming starts at the first slot after now, so slots that
        passed while paused never run."""
        name = self._name(name)
        with self.database.transaction() as repo:
            store = ScheduleStore.of(repo)
            now = self.clock.now()
            current = self._existing(store, name, for_update=True)
            if current.paused == paused:
                return self.view(current)
            next_run_at = None
            if not paused:
                next_run_at = CronSchedule.parse(current.definition.cron, current.definition.time_zone).next_slot(now)
            updated = store.set_paused(name, paused=paused, next_run_at=next_run_at, now=now)
            if updated is None:
                raise FailedPrecondition(f"schedule {name!r} changed meanwhile; try again", field="name")
            self._audit(repo, actor, "PauseSchedule" if paused else "ResumeSchedule", name, {}, now)
        return self.view(updated)

    def delete(self, name: str, *, actor: str) -> None:
        """Jobs already enqueued stay."""
        name = self._name(name)
        with self.database.transaction() as repo:
            store = ScheduleStore.of(repo)
            if not store.delete(name):
                raise NotFound(f"schedule {name!r} not found", field="name")
            self._audit(repo, actor, "DeleteSchedule", name, {}, self.clock.now())

    @staticmethod
    def _existing(store: ScheduleStore, name: str, *, for_update: bool = False, field: str = "name") -> ScheduleRecord:
        record = store.get(name, for_update=for_update)
        if record is None:
            raise NotFound(f"schedule {name!r} not found", field=field)
        return record

    @staticmethod
    def _as_input(definition: ScheduleDefinition) -> ScheduleInput:
        return ScheduleInput(
            cron=definition.cron,
            time_zone=definition.time_zone,
            queue_name=definition.queue_name,
            job_name=definition.job_name,
            job_data=definition.job_data,
            retry_policy=policy_from_json(definition.retry_policy),
            misfire_policy=definition.misfire_policy,
        )

    @staticmethod
    def _mask(mask: Sequence[str]) -> frozenset[str]:
        paths = [path.removeprefix("schedule.") for path in mask]
        if not paths or paths == ["*"]:
            return frozenset(UPDATABLE_FIELDS)
        unknown = sorted(set(paths) - set(UPDATABLE_FIELDS))
        if unknown:
            raise InvalidArgument(
                f"update_mask names {unknown[0]!r}; updatable fields are {', '.join(UPDATABLE_FIELDS)} or '*'",
                field="update_mask",
            )
        return frozenset(paths)

    @staticmethod
    def _audit(repo: Repository, actor: str, action: str, name: str, parameters: dict, now: datetime) -> None:
        audit.record(
            repo,
            actor=actor,
            action=action,
            target=f"schedule/{name}",
            parameters=parameters,
            now=now,
        )


# The leader's tick.


@dataclass(frozen=True)
class TickCounts:
    enqueued: int = 0
    skipped: int = 0
    # Schedules another leader moved on first, or that changed while this tick ran.
    lost: int = 0
    # Slots whose job the server refused (a limit lowered since the schedule was saved); passed over.
    refused: int = 0


class ScheduleTick:
    """One sweep task: enqueues a job for each due slot of each unpaused schedule, each schedule in
    its own transaction. Runs on the leader; safe to run anywhere at once."""

    name = "schedules"

    def __init__(self, jobs: JobManager, settings: ScheduleSettings | None = None) -> None:
        self.jobs = jobs
        self.settings = settings or ScheduleSettings()

    def run_once(self) -> TickCounts:
        now = self.jobs.clock.now()
        with self.jobs.database.transaction() as repo:
            due = ScheduleStore.of(repo).due(now=now, limit=self.settings.batch_size)
        enqueued = skipped = lost = refused = 0
        for record in due:
            try:
                outcome = self.fire(record, now)
            except QueueError as error:
                # One schedule the server can no longer honour must not hold up the others, nor
                # be retried every tick: its slot is passed over, loudly.
                logger.error("schedule %s: its job for %s was refused: %s", record.name, record.next_run_at, error)
                refused += 1
                self.pass_over(record, now)
                continue
            if outcome is None:
                lost += 1
            else:
                enqueued += outcome.enqueue is not None
                skipped += outcome.skipped
        return TickCounts(enqueued, skipped, lost, refused)

    def pass_over(self, record: ScheduleRecord, now: datetime) -> None:
        """Moves the schedule to its first slot after now without a job."""
        try:
            schedule = CronSchedule.parse(record.definition.cron, record.definition.time_zone)
        except QueueError:
            next_run_at = None  # its time zone left the system's zone data: it stays until updated
        else:
            next_run_at = schedule.next_slot(now)
        with self.jobs.database.transaction() as repo:
            ScheduleStore.of(repo).advance(
                record.name, expected_next_run_at=record.next_run_at, next_run_at=next_run_at, last_run_at=None
            )

    def fire(self, record: ScheduleRecord, now: datetime) -> SlotPlan | None:
        """Enqueues the schedule's due slot and moves it on, in one transaction; None if another
        leader did so first."""
        definition = record.definition
        schedule = CronSchedule.parse(definition.cron, definition.time_zone)
        plan = plan_due_slots(schedule, record.next_run_at, now, definition.misfire_policy, self.settings.misfire_grace)
        if plan is None:
            return None
        with self.jobs.database.transaction() as repo:
            moved = ScheduleStore.of(repo).advance(
                record.name,
                expected_next_run_at=record.next_run_at,
                next_run_at=plan.next_run_at,
                last_run_at=plan.enqueue,
            )
            if not moved:
                return None
            if plan.enqueue is not None:
                self.jobs.enqueue_in(repo, self._job(record, plan.enqueue), now)
        if plan.skipped:
            logger.info("schedule %s skipped %d missed slot(s)", record.name, plan.skipped)
        return plan

    @staticmethod
    def _job(record: ScheduleRecord, slot: datetime) -> JobSpec:
        definition = record.definition
        return JobSpec(
            queue_name=definition.queue_name,
            job_name=definition.job_name,
            job_data=definition.job_data,
            job_id=slot_job_id(record.name, slot),
            retry_policy=policy_from_json(definition.retry_policy),
        )
