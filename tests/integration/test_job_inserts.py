"""The job insert on both backends, batched and of one job (SQLite's own statement): the rows it
stores are the rows SQLAlchemy's own insert of the same values stores, column for column, and the
records it returns are the jobs as read back."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import String, cast, insert, select

from queue_service.core.validation import checked_json
from queue_service.domain import JobState, NewJob, UniqueClaim
from queue_service.store import jobs as jobs_store
from queue_service.store.schema import queue_jobs

NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def new_jobs(prefix: str) -> list[NewJob]:
    return [
        NewJob(
            job_id=f"{prefix}plain",
            queue_name="q",
            job_name="send",
            job_data={},
            priority=0,
            run_at=NOW,
            retry_policy=None,
        ),
        NewJob(
            job_id=f"{prefix}rich",
            queue_name="q",
            job_name="send",
            job_data={"to": "ü@example.com", "n": 3, "x": 1.5, "tags": ["a", None, True], "deep": {"k": {}}},
            priority=-7,
            run_at=NOW + timedelta(seconds=90),
            retry_policy={"max_retries": 2},
            trace_parent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            unique=UniqueClaim(
                key=f"{prefix}key", slot=f"{prefix}slot", states=frozenset({JobState.WAITING, JobState.ACTIVE})
            ),
        ),
        NewJob(
            job_id=f"{prefix}started",
            queue_name="q",
            job_name="run",
            job_data={"a": 1},
            priority=0,
            run_at=NOW,
            retry_policy=None,
            state=JobState.ACTIVE,
            attempt_number=1,
            worker_id="w-1",
            lease_expires_at=NOW + timedelta(minutes=5),
            started_at=datetime(2026, 3, 4, 6, 6, 7, tzinfo=UTC).astimezone(tz=None),
        ),
    ]


def sqlalchemy_row(job: NewJob) -> dict:
    """The row SQLAlchemy's insert of `job` stores, every value through the column's type."""
    claim = job.unique
    return {
        "job_id": job.job_id,
        "queue_name": job.queue_name,
        "job_name": job.job_name,
        "job_data": job.job_data,
        "state": job.state.value,
        "priority": job.priority,
        "attempt_number": job.attempt_number,
        "budget_start": 0,
        "retry_policy": job.retry_policy,
        "run_at": job.run_at,
        "lease_expires_at": job.lease_expires_at,
        "worker_id": job.worker_id,
        "started_at": job.started_at,
        "trace_parent": job.trace_parent,
        "unique_key": claim.key if claim else None,
        "unique_slot": claim.slot if claim else None,
        "unique_states": ",waiting,active," if claim else None,
        "created_at": NOW,
        "updated_at": NOW,
    }


def stored_text(repo, job_ids: list[str]) -> list[tuple]:
    """Every column but the ids as the database holds it, as text, in job_id order."""
    compared = [column for column in queue_jobs.c if column.name not in ("id", "job_id", "unique_key", "unique_slot")]
    statement = select(*(cast(column, String) for column in compared)).where(queue_jobs.c.job_id.in_(job_ids))
    return [tuple(row) for row in repo.connection.execute(statement.order_by(queue_jobs.c.job_id))]


@pytest.mark.parametrize("measured", [False, True], ids=["encoded by the store", "as measured"])
def test_the_batched_insert_stores_what_sqlalchemys_insert_stores(database, measured):
    jobs = new_jobs("fast-")
    if measured:  # the payload's text from its size check, as an enqueue passes it on
        jobs = [replace(job, job_data_json=checked_json(job.job_data, "job_data", 1 << 20)) for job in jobs]
    with database.transaction() as repo:
        repo.ensure_queues(["q"], NOW)
        inserted = repo.insert_jobs_returning(jobs, NOW)
        for job in new_jobs("reference-"):
            repo.connection.execute(insert(queue_jobs), sqlalchemy_row(job))
        assert sorted(inserted) == ["fast-plain", "fast-rich", "fast-started"]
        fast = stored_text(repo, ["fast-plain", "fast-rich", "fast-started"])
        reference = stored_text(repo, ["reference-plain", "reference-rich", "reference-started"])
    assert fast == reference


def test_the_returned_jobs_are_the_jobs_as_read_back(database):
    with database.transaction() as repo:
        repo.ensure_queues(["q"], NOW)
        inserted = repo.insert_jobs_returning(new_jobs(""), NOW)
        assert inserted == repo.get_jobs(list(inserted))


@pytest.mark.parametrize("split", [False, True], ids=["one statement", "split"])
def test_a_repeated_job_id_or_held_slot_in_a_batch_keeps_the_first(database, monkeypatch, split):
    if split:  # a statement a row: PostgreSQL's rows as JSON past its size, SQLite's past its row count
        monkeypatch.setattr(jobs_store, "MAX_ROWS_JSON_CHARS", 1)
        monkeypatch.setattr(jobs_store, "SQLITE_INSERT_ROWS", 1)
    first, rich, _ = new_jobs("")
    same_slot = NewJob(**{**vars(rich), "job_id": "other"})
    repeated = NewJob(**{**vars(first), "job_name": "second"})
    with database.transaction() as repo:
        repo.ensure_queues(["q"], NOW)
        inserted = repo.insert_jobs_returning([first, rich, same_slot, repeated], NOW)
        assert sorted(inserted) == ["plain", "rich"]
        assert repo.get_jobs(["plain", "other"])["plain"].job_name == "send"
        assert repo.insert_jobs_returning([same_slot, repeated], NOW) == {}


def test_a_job_inserted_alone_stores_what_sqlalchemys_insert_stores(database):
    with database.transaction() as repo:
        repo.ensure_queues(["q"], NOW)
        inserted = {}
        for job in new_jobs("alone-"):
            inserted.update(repo.insert_jobs_returning([job], NOW))
        for job in new_jobs("reference-"):
            repo.connection.execute(insert(queue_jobs), sqlalchemy_row(job))
        assert inserted == repo.get_jobs(["alone-plain", "alone-rich", "alone-started"])
        alone = stored_text(repo, ["alone-plain", "alone-rich", "alone-started"])
        reference = stored_text(repo, ["reference-plain", "reference-rich", "reference-started"])
    assert alone == reference


def test_a_job_alone_is_not_inserted_when_its_job_id_is_stored_or_its_slot_held(database):
    first, rich, _ = new_jobs("")
    same_slot = NewJob(**{**vars(rich), "job_id": "other"})
    repeated = NewJob(**{**vars(first), "job_name": "second"})
    with database.transaction() as repo:
        repo.ensure_queues(["q"], NOW)
        assert list(repo.insert_jobs_returning([first], NOW)) == ["plain"]
        assert list(repo.insert_jobs_returning([rich], NOW)) == ["rich"]
        assert repo.insert_jobs_returning([repeated], NOW) == {}
        assert repo.insert_jobs_returning([same_slot], NOW) == {}
        assert repo.get_jobs(["plain", "other"]) == {"plain": repo.get_jobs(["plain"])["plain"]}
        assert repo.get_jobs(["plain"])["plain"].job_name == "send"
        # The same job given twice is one job: the first is inserted, as in a batch.
        twice = NewJob(**{**vars(first), "job_id": "twice"})
        assert list(repo.insert_jobs_returning([twice, NewJob(**{**vars(twice), "job_name": "x"})], NOW)) == ["twice"]
        assert repo.get_jobs(["twice"])["twice"].job_name == "send"
