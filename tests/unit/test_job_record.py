"""JobRecord.of_fields builds the record its constructor builds, and only from exactly its fields."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from queue_service.domain import ErrorInfo, JobRecord, JobState

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def job_fields() -> dict:
    return {
        "id": 7,
        "job_id": "j-1",
        "queue_name": "q",
        "job_name": "send",
        "job_data": {"n": 1},
        "state": JobState.FAILED,
        "priority": 3,
        "attempt_number": 2,
        "budget_start": 1,
        "retry_policy": None,
        "run_at": NOW,
        "lease_expires_at": None,
        "worker_id": "w",
        "last_error": ErrorInfo.from_json({"message": "boom"}),
        "error_history": [],
        "result": None,
        "processing_duration_ms": None,
        "created_at": NOW,
        "updated_at": NOW,
        "started_at": NOW,
        "completed_at": None,
        "dead_letter_id": None,
        "trace_parent": "",
        "unique_key": "k",
        "unique_states": frozenset({JobState.WAITING}),
        "retry_rule": "",
        "first_failed_at": NOW,
        "cancel_requested_at": None,
        "row_version": None,
    }


def test_of_fields_equals_the_constructor():
    built, constructed = JobRecord.of_fields(**job_fields()), JobRecord(**job_fields())
    assert built == constructed
    assert dataclasses.asdict(built) == dataclasses.asdict(constructed)
    assert repr(built) == repr(constructed)
    assert built.runs_in_budget == 1 and not built.holds_unique_slot


def test_the_rows_version_is_the_stores_and_no_part_of_the_jobs_value():
    read = JobRecord.of_fields(**(job_fields() | {"row_version": "4711"}))
    assert read == JobRecord(**job_fields())
    assert read.row_version == "4711" and "4711" not in repr(read)


def test_of_fields_builds_a_frozen_record():
    with pytest.raises(dataclasses.FrozenInstanceError):
        JobRecord.of_fields(**job_fields()).state = JobState.ACTIVE  # type: ignore[misc]


def test_of_fields_names_every_field():
    assert {field.name for field in dataclasses.fields(JobRecord)} == set(job_fields())


@pytest.mark.parametrize("name", ["cancel_requested_at", "trace_parent", "id"])
def test_of_fields_refuses_a_missing_field_even_one_with_a_default(name):
    values = job_fields()
    del values[name]
    with pytest.raises(TypeError, match=name):
        JobRecord.of_fields(**values)


def test_of_fields_refuses_an_unknown_field():
    with pytest.raises(TypeError, match="colour"):
        JobRecord.of_fields(**job_fields(), colour="red")
