"""queue_counters under concurrent writers: exact, no deadlocks, and a bounded number of rows per key."""

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from queue_service.core.jobs import JobSpec, ReportedError
from queue_service.core.queues import QueueManager

WRITERS = 6
ROUNDS = 15


def work(job_manager, writer: int) -> None:
    for round_number in range(ROUNDS):
        job_manager.enqueue([JobSpec(queue_name="shared", job_name="n", job_id=f"w{writer}-{round_number}")])
        for job in job_manager.lease(["shared"], worker_id=f"w{writer}", max_jobs=2):
            record = job.record
            if (writer + round_number) % 3 == 0:
                job_manager.fail(record.job_id, record.attempt_number, ReportedError("boom"), non_retryable=True)
            else:
                job_manager.complete(record.job_id, record.attempt_number)


def test_concurrent_writers_keep_counters_exact(job_manager, database):
    with ThreadPoolExecutor(WRITERS) as pool:
        for result in [pool.submit(work, job_manager, writer) for writer in range(WRITERS)]:
            result.result()  # re-raises any error, deadlocks included

    with database.engine.connect() as connection:
        recount = dict(connection.execute(text("SELECT state, count(*) FROM queue_jobs GROUP BY state")).all())
        rows_per_key = connection.execute(
            text("SELECT max(n) FROM (SELECT count(*) AS n FROM queue_counters GROUP BY queue_name, counter) AS k")
        ).scalar_one()
    (stats,) = QueueManager(job_manager).statistics(["shared"]).queues
    reported = {
        "waiting": stats.waiting + stats.delayed,
        "active": stats.active,
        "completed": stats.completed,
        "dead_letter": stats.dead_letter,
    }
    assert sum(recount.values()) == WRITERS * ROUNDS
    assert {state: n for state, n in reported.items() if n} == recount
    assert stats.dead_letters_pending == recount.get("dead_letter", 0)
    # Contended keys get another row instead of a lock wait; never more rows than writers.
    assert rows_per_key <= WRITERS
