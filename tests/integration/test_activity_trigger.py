"""The activity counts of one statement that changes many jobs at once, on both backends: each kind
is counted in the five-minute and hourly buckets of each job's own update time, whatever else the
statement changes beside it, and a statement that only leases counts nothing (PostgreSQL's trigger
returns at once for it, 0016_activity_trigger_by_groups)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import case, func, select, update

from queue_service.store.schema import queue_activity, queue_jobs

pytestmark = pytest.mark.slow

HOUR = datetime(2026, 1, 1, 10, tzinfo=UTC)
# (job_id, queue, state before, state after, update time): several queues, kinds and buckets in one statement.
CHANGES = [
    ("a1", "alpha", "active", "completed", HOUR + timedelta(minutes=4, seconds=59)),
    ("a2", "alpha", "active", "completed", HOUR + timedelta(minutes=5)),  # the next five-minute bucket
    ("a3", "alpha", "active", "completed", HOUR + timedelta(minutes=5, seconds=1)),
    ("a4", "alpha", "active", "failed", HOUR + timedelta(minutes=59, seconds=59)),
    ("a5", "alpha", "active", "dead_letter", HOUR + timedelta(hours=1)),  # the next hour
    ("b1", "beta", "dead_letter", "waiting", HOUR + timedelta(minutes=1)),
    ("b2", "beta", "active", "cancelled", HOUR + timedelta(minutes=1)),
    ("b3", "beta", "waiting", "active", HOUR + timedelta(minutes=1)),  # a lease: nothing
    ("b4", "beta", "failed", "failed", HOUR + timedelta(minutes=1)),  # no change of state: nothing
    ("b5", "beta", "waiting", "dead_letter", HOUR + timedelta(minutes=2)),  # dead-lettered, not failed
]


def kinds(before: str, after: str) -> list[str]:
    """The kinds a change counts, as 0005_queue_activity and 0015_cancellation define them."""
    if before == after:
        return []
    found = []
    if after == "completed":
        found.append("completed")
    if before == "active" and after in ("failed", "dead_letter"):
        found.append("failed")
    if (before, after) in (("active", "failed"), ("dead_letter", "waiting")):
        found.append("retried")
    if after == "dead_letter":
        found.append("dead_lettered")
    if after == "cancelled":
        found.append("cancelled")
    return found


def bucket(moment: datetime, seconds: int) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()) // seconds * seconds, UTC)


def insert_jobs(connection, rows) -> None:
    created = HOUR - timedelta(days=1)
    connection.execute(
        queue_jobs.insert(),
        [
            {
                "job_id": job_id,
                "queue_name": queue,
                "job_name": "send",
                "job_data": {},
                "state": state,
                "priority": 0,
                "attempt_number": 1,
                "budget_start": 0,
                "run_at": created,
                "lease_expires_at": HOUR + timedelta(days=1) if state == "active" else None,
                "created_at": created,
                "updated_at": created,
            }
            for job_id, queue, state in rows
        ],
    )


def change_in_one_statement(connection, changes) -> None:
    """Each job to its new state and update time, all in one UPDATE."""
    by_id = {job_id: (after, moment) for job_id, after, moment in changes}
    connection.execute(
        update(queue_jobs)
        .where(queue_jobs.c.job_id.in_(list(by_id)))
        .values(
            state=case({job_id: after for job_id, (after, _) in by_id.items()}, value=queue_jobs.c.job_id),
            updated_at=case({job_id: moment for job_id, (_, moment) in by_id.items()}, value=queue_jobs.c.job_id),
            lease_expires_at=case(
                {job_id: HOUR + timedelta(days=1) for job_id, (after, _) in by_id.items() if after == "active"},
                value=queue_jobs.c.job_id,
                else_=None,
            ),
        )
    )


def counted(connection) -> Counter:
    rows = connection.execute(
        select(
            queue_activity.c.queue_name,
            queue_activity.c.bucket_seconds,
            queue_activity.c.bucket_start,
            queue_activity.c.activity,
            func.sum(queue_activity.c.amount),
        ).group_by(
            queue_activity.c.queue_name,
            queue_activity.c.bucket_seconds,
            queue_activity.c.bucket_start,
            queue_activity.c.activity,
        )
    ).all()
    return Counter({(queue, seconds, start, activity): int(amount) for queue, seconds, start, activity, amount in rows})


def test_one_statement_counts_each_change_in_its_own_buckets(database):
    expected = Counter()
    for _job_id, queue, before, after, moment in CHANGES:
        for kind in kinds(before, after):
            for seconds in (300, 3600):
                expected[(queue, seconds, bucket(moment, seconds), kind)] += 1
    with database.engine.begin() as connection:
        insert_jobs(connection, [(job_id, queue, before) for job_id, queue, before, _, _ in CHANGES])
        change_in_one_statement(connection, [(job_id, after, moment) for job_id, _, _, after, moment in CHANGES])
    with database.engine.connect() as connection:
        assert counted(connection) == expected
    # The five-minute buckets add up to the hourly ones, kind by kind.
    assert sum(n for key, n in expected.items() if key[1] == 300) == sum(
        n for key, n in expected.items() if key[1] == 3600
    )


def test_a_statement_that_only_leases_counts_nothing(database):
    with database.engine.begin() as connection:
        insert_jobs(connection, [(f"w{n}", "alpha", "waiting") for n in range(5)] + [("f1", "beta", "failed")])
        change_in_one_statement(connection, [(f"w{n}", "active", HOUR) for n in range(5)] + [("f1", "active", HOUR)])
    with database.engine.connect() as connection:
        assert counted(connection) == Counter()
        # The statement did change them: nothing was counted because nothing counts a lease.
        states = connection.execute(select(queue_jobs.c.state).distinct()).scalars().all()
    assert states == ["active"]
