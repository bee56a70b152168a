"""All SQL for cron schedules, bound to one transaction's connection."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select, update

from queue_service.domain import MisfirePolicy, ScheduleDefinition, ScheduleRecord
from queue_service.store.repository import Repository
from queue_service.store.schema import queue_schedules

_c = queue_schedules.c


def schedule_from_row(row) -> ScheduleRecord:
    return ScheduleRecord(
        name=row.name,
        definition=ScheduleDefinition(
            cron=row.cron,
            time_zone=row.time_zone,
            queue_name=row.queue_name,
            job_name=row.job_name,
            job_data=row.job_data,
            retry_policy=row.retry_policy,
            misfire_policy=MisfirePolicy(row.misfire_policy),
        ),
        paused=bool(row.paused),
        next_run_at=row.next_run_at,
        last_run_at=row.last_run_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _definition_values(definition: ScheduleDefinition) -> dict:
    return {
        "cron": definition.cron,
        "time_zone": definition.time_zone,
        "queue_name": definition.queue_name,
        "job_name": definition.job_name,
        "job_data": definition.job_data,
        "retry_policy": definition.retry_policy,
        "misfire_policy": definition.misfire_policy.value,
    }


class ScheduleStore:
    """Statements over the schedules table; every update compares the state it expects and says whether it matched."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @classmethod
    def of(cls, repo: Repository) -> ScheduleStore:
        return cls(repo.connection)

    def insert(self, name: str, definition: ScheduleDefinition, *, next_run_at: datetime, now: datetime) -> None:
        self.connection.execute(
            insert(queue_schedules).values(
                name=name,
                **_definition_values(definition),
                paused=False,
                next_run_at=next_run_at,
                last_run_at=None,
                created_at=now,
                updated_at=now,
            )
        )

    def get(self, name: str, *, for_update: bool = False) -> ScheduleRecord | None:
        statement = select(queue_schedules).where(_c.name == name)
        if for_update:
            statement = statement.with_for_update()
        row = self.connection.execute(statement).first()
        return schedule_from_row(row) if row else None

    def list(self, *, after: str | None, limit: int) -> list[ScheduleRecord]:
        statement = select(queue_schedules).order_by(_c.name).limit(limit)
        if after is not None:
            statement = statement.where(_c.name > after)
        return [schedule_from_row(row) for row in self.connection.execute(statement)]

    def count(self) -> int:
        return self.connection.execute(select(func.count()).select_from(queue_schedules)).scalar_one()

    def update_definition(
        self, current: ScheduleRecord, definition: ScheduleDefinition, *, next_run_at: datetime | None, now: datetime
    ) -> ScheduleRecord | None:
        """None when the row changed since `current` was read."""
        row = self.connection.execute(
            update(queue_schedules)
            .where(_c.name == current.name, _c.updated_at == current.updated_at)
            .values(**_definition_values(definition), next_run_at=next_run_at, updated_at=now)
            .returning(*queue_schedules.c)
        ).first()
        return schedule_from_row(row) if row else None

    def set_paused(
        self, name: str, *, paused: bool, next_run_at: datetime | None, now: datetime
    ) -> ScheduleRecord | None:
        """Flips `paused` from its opposite; None when the schedule is missing or already so."""
        row = self.connection.execute(
            update(queue_schedules)
            .where(_c.name == name, _c.paused.is_(not paused))
            .values(paused=paused, next_run_at=next_run_at, updated_at=now)
            .returning(*queue_schedules.c)
        ).first()
        return schedule_from_row(row) if row else None

    def delete(self, name: str) -> bool:
        return self.connection.execute(delete(queue_schedules).where(_c.name == name)).rowcount == 1

    def due(self, *, now: datetime, limit: int) -> list[ScheduleRecord]:
        """Unpaused schedules whose next slot has come, earliest first."""
        statement = (
            select(queue_schedules)
            .where(_c.paused.is_(False), _c.next_run_at.is_not(None), _c.next_run_at <= now)
            .order_by(_c.next_run_at, _c.name)
            .limit(limit)
        )
        return [schedule_from_row(row) for row in self.connection.execute(statement)]

    def advance(
        self, name: str, *, expected_next_run_at: datetime, next_run_at: datetime | None, last_run_at: datetime | None
    ) -> bool:
        """Moves the schedule past a slot, only if no other leader did so first."""
        values: dict = {"next_run_at": next_run_at}
        if last_run_at is not None:
            values["last_run_at"] = last_run_at
        result = self.connection.execute(
            update(queue_schedules)
            .where(_c.name == name, _c.paused.is_(False), _c.next_run_at == expected_next_run_at)
            .values(**values)
        )
        return result.rowcount == 1
