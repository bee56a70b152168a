"""SQL is bound, never built from input: hostile queue names and job data round-trip intact and
every table survives; NUL is refused; the source builds no SQL text from values."""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict
from jobqueue.v1 import admin_service_pb2 as admin_pb
from jobqueue.v1 import job_pb2
from jobqueue.v1 import job_service_pb2 as pb
from sqlalchemy import create_engine, func, inspect, select

from queue_service.store.schema import dead_letter_queue, metadata, queue_jobs, queue_retry_log
from tests.integration.admin_helpers import bad_field, rpc_error

# Up to 100 characters, no control characters: valid names, hostile to anything that pastes them into SQL.
# No upper-case letters outside ASCII: SQLite's lower() folds ASCII only, and the failure-reason
# search is case-insensitive.
HOSTILE_NAMES = [
    "'; DROP TABLE queue_jobs; --",
    'Robert"); DROP TABLE dead_letter_queue;--',
    "x' OR '1'='1",
    "1; DELETE FROM queues WHERE 1=1",
    "%",
    "_",
    "a%b_c",
    "\\",
    "\\'",
    "$1",
    "%s",
    ":name",
    "?",
    "/* comment */",
    "queue_jobs",
    "名前-キュー",
    "émoji 😀 ‮rtl",
    "e\u0301",
    " leading and trailing ",
]
HOSTILE_DATA = {
    "'; DROP TABLE queue_jobs; --": "x' OR '1'='1",
    "nested": {
        "quote": '"; DELETE FROM queues; --',
        "list": ["%s", "$1", ":name", "\\u0000", "\\x00", "‮", "😀", "", " "],
        "deep": {"deeper": {"deepest": "' UNION SELECT * FROM queue_jobs --"}},
    },
    "number": 1.5,
    "big": 2**52,
    "negative": -0.25,
    "flag": True,
    "nothing": None,
}
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def job_id_for(name: str) -> str:
    return f"job:{name}"


def test_hostile_names_and_data_round_trip_and_the_tables_survive(service, database_url):
    jobs, admin = service.jobs, service.admin
    for name in HOSTILE_NAMES:
        created = jobs.EnqueueJob(
            pb.EnqueueJobRequest(queue_name=name, job_name=name, job_id=job_id_for(name), job_data=HOSTILE_DATA)
        )
        assert created.created
    for name in HOSTILE_NAMES:
        job = jobs.GetJob(pb.GetJobRequest(job_id=job_id_for(name))).job
        assert (job.queue_name, job.job_name, job.job_id) == (name, name, job_id_for(name))
        assert MessageToDict(job.job_data) == HOSTILE_DATA
        # Exact matches only: a name pasted into LIKE or into the SQL text would match others, or all.
        listed = admin.ListJobs(admin_pb.ListJobsRequest(queue_name=name))
        assert [item.job_id for item in listed.jobs] == [job_id_for(name)]
        stats = admin.GetStatistics(admin_pb.GetStatisticsRequest(queue_names=[name]))
        assert [(queue.queue_name, queue.waiting_count) for queue in stats.queues] == [(name, 1)]

        assert admin.PauseQueue(admin_pb.PauseQueueRequest(queue_name=name)).queue.paused
        assert not jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[name])).jobs
        admin.ResumeQueue(admin_pb.ResumeQueueRequest(queue_name=name))
        (leased,) = jobs.LeaseJobs(pb.LeaseJobsRequest(queue_names=[name], worker_id=name)).jobs
        assert leased.worker_id == name
        failure = jobs.TrackFailure(
            pb.TrackFailureRequest(
                job_id=leased.job_id,
                attempt_number=leased.attempt_number,
                error=job_pb2.JobError(message=name, type=name, details=name),
                non_retryable=True,
            )
        )
        assert failure.moved_to_dead_letter

    for name in HOSTILE_NAMES:
        by_queue = admin.ListDeadLetterJobs(
            admin_pb.ListDeadLetterJobsRequest(filter=admin_pb.DeadLetterFilter(queue_name=name))
        )
        assert [entry.job_id for entry in by_queue.entries] == [job_id_for(name)]
        (entry,) = by_queue.entries
        assert (entry.failure_reason, entry.error_type) == (name, name)
        # A substring search treats % and _ as characters, not wildcards.
        searched = admin.ListDeadLetterJobs(
            admin_pb.ListDeadLetterJobsRequest(
                filter=admin_pb.DeadLetterFilter(failure_reason_contains=name), page_size=1000
            )
        )
        expected = sorted(job_id_for(other) for other in HOSTILE_NAMES if name.lower() in other.lower())
        assert sorted(item.job_id for item in searched.entries) == expected
        by_type = admin.ListDeadLetterJobs(
            admin_pb.ListDeadLetterJobsRequest(filter=admin_pb.DeadLetterFilter(error_type=name))
        )
        assert [item.job_id for item in by_type.entries] == [job_id_for(name)]
        updated = admin.UpdateDeadLetterJob(
            admin_pb.UpdateDeadLetterJobRequest(
                entry=job_pb2.DeadLetterEntry(id=entry.id, admin_notes=name, assigned_to=name)
            )
        ).entry
        assert (updated.admin_notes, updated.assigned_to) == (name, name)
        events = admin.ListAuditEvents(admin_pb.ListAuditEventsRequest(target=f"dead_letter/{entry.id}")).events
        assert [event.action for event in events] == ["UpdateDeadLetterJob"]

    # Redrive by hostile queue name: exactly that queue's entry comes back.
    target = HOSTILE_NAMES[0]
    progress = list(
        admin.RetryDeadLetterJobs(
            admin_pb.RetryDeadLetterJobsRequest(filter=admin_pb.DeadLetterFilter(queue_name=target))
        )
    )
    assert progress[-1].done and progress[-1].retried_count == 1
    assert jobs.GetJob(pb.GetJobRequest(job_id=job_id_for(target))).job.state == job_pb2.Job.STATE_WAITING

    # The rows are where they should be, and every table is still there.
    engine = create_engine(database_url)
    try:
        assert {table.name for table in metadata.sorted_tables} <= set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(queue_jobs)).scalar_one() == len(HOSTILE_NAMES)
            assert connection.execute(select(func.count()).select_from(dead_letter_queue)).scalar_one() == len(
                HOSTILE_NAMES
            )
            assert connection.execute(select(func.count()).select_from(queue_retry_log)).scalar_one() == len(
                HOSTILE_NAMES
            )
            stored = connection.execute(
                select(queue_jobs.c.queue_name, queue_jobs.c.job_data).where(queue_jobs.c.job_id == job_id_for("%"))
            ).one()
    finally:
        engine.dispose()
    assert stored.queue_name == "%"
    assert stored.job_data == HOSTILE_DATA


def test_nul_is_refused_everywhere_and_nothing_is_written(service):
    for request in (
        pb.EnqueueJobRequest(queue_name="q\x00", job_name="n"),
        pb.EnqueueJobRequest(queue_name="q", job_name="n", job_data={"text": "a\x00b"}),
    ):
        error = rpc_error(service.jobs.EnqueueJob, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_field(error) in ("queue_name", "job_data")
    assert service.admin.GetStatistics(admin_pb.GetStatisticsRequest()).totals.waiting_count == 0
    assert not service.admin.ListQueues(admin_pb.ListQueuesRequest()).queues


# No SQL text is built from values


SQL_CALLS = {"text", "exec_driver_sql", "execute", "executescript"}


def formatted_sql_arguments(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls of text()/execute()/exec_driver_sql() whose SQL is built at run time from anything but
    UPPER_CASE constants: f-strings, %, + and .format()."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in SQL_CALLS:
            continue
        argument = node.args[0]
        if isinstance(argument, ast.JoinedStr):
            names = [value.value for value in argument.values if isinstance(value, ast.FormattedValue)]
            if all(isinstance(value, ast.Name) and value.id.isupper() for value in names):
                continue
            found.append((node.lineno, ast.unparse(argument)))
        elif isinstance(argument, ast.BinOp) and isinstance(argument.op, (ast.Add, ast.Mod)):
            found.append((node.lineno, ast.unparse(argument)))
        elif isinstance(argument, ast.Call) and getattr(argument.func, "attr", "") == "format":
            found.append((node.lineno, ast.unparse(argument)))
    return found


def test_the_service_builds_no_sql_text_from_values():
    # Migrations are left out: they format DDL from table names fixed in their own code, never from requests.
    sources = sorted((SOURCE_ROOT / "queue_service").rglob("*.py"))
    assert len(sources) > 20
    offenders = []
    for path in sources:
        for line, code in formatted_sql_arguments(ast.parse(path.read_text(), str(path))):
            offenders.append(f"{path.relative_to(SOURCE_ROOT)}:{line}: {code}")
    assert not offenders, "SQL built from values:\n" + "\n".join(offenders)


def test_the_source_check_catches_built_sql():
    tree = ast.parse(
        "connection.execute(text(f\"SELECT * FROM jobs WHERE queue = '{name}'\"))\n"
        "cursor.execute('DELETE FROM jobs WHERE id = ' + job_id)\n"
        "cursor.execute('SELECT %s' % value)\n"
        "connection.exec_driver_sql('SELECT {}'.format(value))\n"
        "cursor.execute(f'PRAGMA busy_timeout={TIMEOUT_MS}')\n"
        "connection.execute(select(jobs).where(jobs.c.queue == name))\n"
    )
    assert sorted(line for line, _ in formatted_sql_arguments(tree)) == [1, 2, 3, 4]
