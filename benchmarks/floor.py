"""The floor: each operation's SQL, in the same transactions as the service, straight through DB-API.

These mirror the statements queue_service/store issues for the same call (read them there with
SQLAlchemy echo), with no gRPC, no protobuf and no Python service layer in between, so the ratio
service/floor is what the service adds on top of the database.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

JOB_COLUMNS = (
    "id, job_id, queue_name, job_name, job_data, state, priority, attempt_number, budget_start, retry_policy, "
    "run_at, lease_expires_at, worker_id, last_error, error_history, result, processing_duration_ms, created_at, "
    "updated_at, started_at, completed_at, dead_letter_id"
)
DEAD_LETTER_COLUMNS = (
    "id, job_id, queue_name, job_name, job_data, failure_reason, error_type, total_attempts, error_history, "
    "death_reason, recovery_status, recovery_attempts, admin_notes, assigned_to, priority, fingerprint, created_at, "
    "dead_lettered_at, updated_at, resolution_reason, resolved_by, resolved_at"
)
DEFAULT_DELAYS_MS = (5000, 15000, 45000)


class Floor:
    """Raw SQL on one backend; every method is one transaction on the given DB-API connection."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.postgres = backend == "postgresql"

    # Plumbing

    def ts(self, value: datetime | None):
        if value is None or self.postgres:
            return value
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    def _sql(self, statement: str) -> str:
        return re.sub(r"(?<!:):(\w+)", r"%(\1)s", statement) if self.postgres else statement

    def execute(self, cursor, statement: str, params: dict[str, Any] | None = None):
        cursor.execute(self._sql(statement), params or {})
        return cursor

    def begin(self, connection):
        cursor = connection.cursor()
        if not self.postgres:
            cursor.execute("BEGIN IMMEDIATE")
        return cursor

    def commit(self, connection, cursor) -> None:
        if self.postgres:
            connection.commit()
        else:
            cursor.execute("COMMIT")
        cursor.close()

    def in_list(self, prefix: str, values, params: dict[str, Any]) -> str:
        names = []
        for index, value in enumerate(values):
            params[f"{prefix}{index}"] = value
            names.append(f":{prefix}{index}")
        return "(" + ", ".join(names) + ")"

    # Producers

    def enqueue(self, connection, jobs: list[tuple[str, str, str, dict[str, Any]]], now: datetime) -> int:
        """EnqueueJob(s): read the queues (all exist after the first call), insert the jobs returning them."""
        cursor = self.begin(connection)
        params: dict[str, Any] = {"now": self.ts(now), "false": False}
        queue_names = sorted({queue for _, queue, _, _ in jobs})
        names = self.in_list("s", queue_names, params)
        found = self.execute(cursor, f"SELECT * FROM queues WHERE name IN {names}", params).fetchall()
        if len(found) < len(queue_names):
            values = ", ".join(f"(:q{index}, :false, :now, :now)" for index in range(len(queue_names)))
            params.update({f"q{index}": name for index, name in enumerate(queue_names)})
            self.execute(
                cursor,
                f"INSERT INTO queues (name, paused, created_at, updated_at) VALUES {values} "
                "ON CONFLICT (name) DO NOTHING",
                params,
            )
            self.execute(cursor, f"SELECT * FROM queues WHERE name IN {names}", params).fetchall()
        rows = []
        for index, (job_id, queue, job_name, data) in enumerate(jobs):
            params[f"j{index}"] = job_id
            params[f"n{index}"] = job_name
            params[f"d{index}"] = json.dumps(data)
            params[f"u{index}"] = queue
            rows.append(
                f"(:j{index}, :u{index}, :n{index}, :d{index}, 'waiting', 0, 0, 0, NULL, :now, NULL, NULL, NULL, :now, :now)"
            )
        self.execute(
            cursor,
            "INSERT INTO queue_jobs (job_id, queue_name, job_name, job_data, state, priority, attempt_number, budget_start, "
            "retry_policy, run_at, lease_expires_at, worker_id, started_at, created_at, updated_at) VALUES "
            + ", ".join(rows)
            + f" ON CONFLICT (job_id) DO NOTHING RETURNING {JOB_COLUMNS}",
            params,
        ).fetchall()
        self.commit(connection, cursor)
        return len(jobs)

    # Workers

    def lease(self, connection, queue: str, limit: int, worker_id: str, now: datetime, lease: timedelta) -> list[tuple]:
        """LeaseJobs: read the queues (paused, policies), claim with SKIP LOCKED."""
        cursor = self.begin(connection)
        params = {
            "queue": queue,
            "limit": limit,
            "now": self.ts(now),
            "worker": worker_id,
            "expires": self.ts(now + lease),
        }
        self.execute(cursor, "SELECT * FROM queues WHERE name IN (:queue)", params).fetchall()
        skip_locked = " FOR UPDATE SKIP LOCKED" if self.postgres else ""
        rows = self.execute(
            cursor,
            "WITH ready AS (SELECT id FROM queue_jobs WHERE queue_name IN (:queue) AND state IN ('waiting', 'failed') "
            f"AND run_at <= :now ORDER BY priority DESC, run_at, id LIMIT :limit{skip_locked}) "
            "UPDATE queue_jobs SET state = 'active', attempt_number = attempt_number + 1, worker_id = :worker, "
            "lease_expires_at = :expires, started_at = :now, updated_at = :now "
            f"FROM ready WHERE queue_jobs.id = ready.id RETURNING {', '.join('queue_jobs.' + c.strip() for c in JOB_COLUMNS.split(','))}",
            params,
        ).fetchall()
        self.commit(connection, cursor)
        return rows

    def complete(self, connection, job_id: str, attempt: int, result: dict[str, Any], now: datetime) -> None:
        """TrackCompletion: one compare-and-set to COMPLETED by job id, state and attempt."""
        cursor = self.begin(connection)
        params = {"job_id": job_id, "attempt": attempt, "result": json.dumps(result), "now": self.ts(now)}
        row = self.execute(
            cursor,
            "UPDATE queue_jobs SET state = 'completed', result = :result, processing_duration_ms = NULL, "
            "lease_expires_at = NULL, completed_at = :now, updated_at = :now "
            f"WHERE job_id = :job_id AND state IN ('active') AND attempt_number = :attempt RETURNING {JOB_COLUMNS}",
            params,
        ).fetchone()
        if row is None:
            raise RuntimeError(f"floor could not complete {job_id}")
        self.commit(connection, cursor)

    def complete_many(self, connection, jobs: list[tuple[str, int]], result: dict[str, Any], now: datetime) -> int:
        """TrackCompletions: one compare-and-set statement (PostgreSQL) or one per job (SQLite)."""
        cursor = self.begin(connection)
        ordered = sorted(jobs)
        encoded = json.dumps(result)
        if self.postgres:
            done = self.execute(
                cursor,
                "UPDATE queue_jobs AS q SET state = 'completed', result = v.result, processing_duration_ms = v.duration_ms, "
                "lease_expires_at = NULL, completed_at = :now, updated_at = :now "
                "FROM unnest(CAST(:job_ids AS text[]), CAST(:attempts AS integer[]), CAST(:results AS jsonb[]), "
                "CAST(:durations AS bigint[])) AS v(job_id, attempt_number, result, duration_ms) "
                "WHERE q.job_id = v.job_id AND q.attempt_number = v.attempt_number "
                "AND q.state = ANY(CAST(:expected AS text[])) RETURNING q.job_id, q.queue_name",
                {
                    "now": now,
                    "job_ids": [job for job, _ in ordered],
                    "attempts": [attempt for _, attempt in ordered],
                    "results": [encoded] * len(ordered),
                    "durations": [None] * len(ordered),
                    "expected": ["active"],
                },
            ).fetchall()
            count = len(done)
        else:
            count = 0
            for job_id, attempt in ordered:
                count += len(
                    self.execute(
                        cursor,
                        "UPDATE queue_jobs SET state = 'completed', result = :result, processing_duration_ms = NULL, "
                        "lease_expires_at = NULL, completed_at = :now, updated_at = :now "
                        "WHERE job_id = :job_id AND attempt_number = :attempt AND state IN ('active') "
                        "RETURNING job_id, queue_name",
                        {"result": encoded, "now": self.ts(now), "job_id": job_id, "attempt": attempt},
                    ).fetchall()
                )
        self.commit(connection, cursor)
        return count

    def fail(self, connection, job_id: str, attempt: int, message: str, now: datetime) -> bool:
        """TrackFailure: lock the job, read its queue's policy, then retry it or move it to the DLQ.

        True when it went to the DLQ (its retry budget of 3 was spent).
        """
        cursor = self.begin(connection)
        params: dict[str, Any] = {"job_id": job_id, "now": self.ts(now), "attempt": attempt}
        columns = ", ".join(f"queue_jobs.{name.strip()}" for name in JOB_COLUMNS.split(","))
        lock = " FOR UPDATE OF queue_jobs" if self.postgres else ""
        job = self.execute(
            cursor,
            f"SELECT {columns}, queues.retry_policy AS queue_retry_policy FROM queue_jobs "
            f"LEFT OUTER JOIN queues ON queues.name = queue_jobs.queue_name WHERE queue_jobs.job_id = :job_id{lock}",
            params,
        ).fetchone()
        row_id, queue, job_name, job_data = job[0], job[2], job[3], job[4]
        params.update(id=row_id, queue=queue)
        error = {
            "message": message,
            "type": "TimeoutError",
            "details": "",
            "attempt_number": attempt,
            "occurred_at": now.isoformat(),
        }
        params["error"] = json.dumps(error)
        params["history"] = json.dumps([error])
        if attempt <= len(DEFAULT_DELAYS_MS):
            delay = DEFAULT_DELAYS_MS[attempt - 1]
            params.update(run_at=self.ts(now + timedelta(milliseconds=delay)), delay=delay, remaining=3 - attempt)
            self.execute(
                cursor,
                "UPDATE queue_jobs SET state = 'failed', run_at = :run_at, lease_expires_at = NULL, last_error = :error, "
                "error_history = :history, updated_at = :now WHERE id = :id AND state IN ('active') "
                f"AND attempt_number = :attempt RETURNING {JOB_COLUMNS}",
                params,
            ).fetchone()
            self._retry_log(cursor, params, "retry", None)
            self.commit(connection, cursor)
            return False
        params.update(
            job_name=job_name,
            job_data=job_data if isinstance(job_data, str) else json.dumps(job_data),
            entry_id=f"{row_id:08d}-0000-4000-8000-{attempt:012d}",
            message=message,
        )
        values = (
            "queue_name = :queue, job_name = :job_name, job_data = :job_data, failure_reason = :message, "
            "error_type = 'TimeoutError', total_attempts = :attempt, error_history = :history, "
            "death_reason = 'retries_exhausted', recovery_status = 'pending', fingerprint = 'f', "
            "dead_lettered_at = :now, updated_at = :now, resolution_reason = '', resolved_by = '', resolved_at = NULL"
        )
        self.execute(
            cursor,
            "INSERT INTO dead_letter_queue (id, job_id, created_at, queue_name, job_name, job_data, failure_reason, "
            "error_type, total_attempts, error_history, death_reason, recovery_status, fingerprint, dead_lettered_at, "
            "updated_at, resolution_reason, resolved_by, resolved_at) VALUES (:entry_id, :job_id, :now, :queue, "
            ":job_name, :job_data, :message, 'TimeoutError', :attempt, :history, 'retries_exhausted', 'pending', 'f', "
            f":now, :now, '', '', NULL) ON CONFLICT (job_id) DO UPDATE SET {values} RETURNING {DEAD_LETTER_COLUMNS}",
            params,
        ).fetchone()
        self.execute(
            cursor,
            "UPDATE queue_jobs SET state = 'dead_letter', lease_expires_at = NULL, last_error = :error, "
            "error_history = :history, dead_letter_id = :entry_id, updated_at = :now WHERE id = :id "
            f"AND state IN ('active') AND attempt_number = :attempt RETURNING {JOB_COLUMNS}",
            params,
        ).fetchone()
        self._retry_log(
            cursor, params | {"delay": 0, "remaining": 0, "run_at": None}, "dead_letter", "retries_exhausted"
        )
        self.commit(connection, cursor)
        return True

    def rescue_expired_leases(self, connection, now: datetime, *, batch_size: int) -> int:
        """One batch of the sweep's stalled-jobs task: lock expired leases, read their queues' policies,
        compare-and-set them all to FAILED (run 1 of 4 here) and log the decisions, set-wise."""
        cursor = self.begin(connection)
        skip_locked = " FOR UPDATE SKIP LOCKED" if self.postgres else ""
        jobs = self.execute(
            cursor,
            f"SELECT {JOB_COLUMNS} FROM queue_jobs WHERE state = 'active' AND lease_expires_at <= :now "
            f"ORDER BY lease_expires_at, id LIMIT :limit{skip_locked}",
            {"now": self.ts(now), "limit": batch_size},
        ).fetchall()
        if not jobs:
            self.commit(connection, cursor)
            return 0
        params: dict[str, Any] = {"now": self.ts(now)}
        names = self.in_list("s", sorted({job[2] for job in jobs}), params)
        self.execute(cursor, f"SELECT * FROM queues WHERE name IN {names}", params).fetchall()
        updates, logs = [], []
        for job in jobs:
            attempt = job[7]
            error = json.dumps(
                {
                    "message": "lease expired",
                    "type": "LeaseExpired",
                    "details": "",
                    "attempt_number": attempt,
                    "occurred_at": now.isoformat(),
                }
            )
            delay = DEFAULT_DELAYS_MS[attempt - 1]
            run_at = now + timedelta(milliseconds=delay)
            updates.append((job[0], attempt, run_at, error, f"[{error}]"))
            logs.append((job[1], job[2], attempt, error, delay, 3 - attempt, run_at))
        if self.postgres:
            self.execute(
                cursor,
                "UPDATE queue_jobs AS q SET state = 'failed', run_at = v.run_at, lease_expires_at = NULL, "
                "last_error = v.last_error, error_history = v.error_history, updated_at = :now "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS integer[]), CAST(:run_ats AS timestamptz[]), "
                "CAST(:errors AS jsonb[]), CAST(:histories AS jsonb[])) AS v(id, attempt_number, run_at, last_error, "
                "error_history) WHERE q.id = v.id AND q.attempt_number = v.attempt_number "
                "AND q.state = ANY(CAST(:expected AS text[])) RETURNING q.*",
                {
                    "now": now,
                    "ids": [u[0] for u in updates],
                    "attempts": [u[1] for u in updates],
                    "run_ats": [u[2] for u in updates],
                    "errors": [u[3] for u in updates],
                    "histories": [u[4] for u in updates],
                    "expected": ["active"],
                },
            ).fetchall()
        else:
            for row_id, attempt, run_at, error, history in updates:
                self.execute(
                    cursor,
                    "UPDATE queue_jobs SET state = 'failed', run_at = :run_at, lease_expires_at = NULL, "
                    "last_error = :error, error_history = :history, updated_at = :now WHERE id = :id "
                    f"AND state IN ('active') AND attempt_number = :attempt RETURNING {JOB_COLUMNS}",
                    {
                        "run_at": self.ts(run_at),
                        "error": error,
                        "history": history,
                        "now": self.ts(now),
                        "id": row_id,
                        "attempt": attempt,
                    },
                ).fetchone()
        values = []
        for index, (job_id, queue, attempt, error, delay, remaining, run_at) in enumerate(logs):
            params.update(
                {
                    f"j{index}": job_id,
                    f"q{index}": queue,
                    f"a{index}": attempt,
                    f"e{index}": error,
                    f"d{index}": delay,
                    f"r{index}": remaining,
                    f"t{index}": self.ts(run_at),
                }
            )
            values.append(
                f"(:j{index}, :q{index}, :a{index}, :e{index}, 'retry', :d{index}, :r{index}, :t{index}, NULL, :now)"
            )
        self.execute(
            cursor,
            "INSERT INTO queue_retry_log (job_id, queue_name, attempt_number, error, decision, retry_delay_ms, "
            "remaining_retries, next_retry_at, death_reason, created_at) VALUES " + ", ".join(values),
            params,
        )
        self.commit(connection, cursor)
        return len(jobs)

    def reset_expired(self, connection, job_ids: list[str]) -> None:
        """Put the jobs the floor sweep handled back as they were: ACTIVE in run 1, lease expired."""
        cursor = self.begin(connection)
        expired = self.ts(datetime.now(UTC) - timedelta(hours=1))
        for start in range(0, len(job_ids), 1000):
            chunk = job_ids[start : start + 1000]
            params: dict[str, Any] = {"expired": expired}
            ids = self.in_list("i", chunk, params)
            self.execute(
                cursor,
                "UPDATE queue_jobs SET state = 'active', run_at = created_at, lease_expires_at = :expired, "
                f"last_error = NULL, error_history = NULL WHERE job_id IN {ids}",
                params,
            )
            self.execute(cursor, f"DELETE FROM queue_retry_log WHERE job_id IN {ids}", params)
        self.commit(connection, cursor)
        if self.postgres:
            connection.autocommit = True
            connection.cursor().execute("VACUUM ANALYZE queue_jobs")
            connection.autocommit = False

    def _retry_log(self, cursor, params: dict[str, Any], decision: str, death_reason: str | None) -> None:
        self.execute(
            cursor,
            "INSERT INTO queue_retry_log (job_id, queue_name, attempt_number, error, decision, retry_delay_ms, "
            "remaining_retries, next_retry_at, death_reason, created_at) VALUES (:job_id, :queue, :attempt, :error, "
            ":decision, :delay, :remaining, :run_at, :death_reason, :now)",
            params | {"decision": decision, "death_reason": death_reason},
        )

    # Admin

    def dead_letter_page(self, connection, limit: int, after: tuple | None) -> list[tuple]:
        """ListDeadLetterJobs filtered on PENDING: one keyset page, and the total from the counters."""
        cursor = self.begin(connection)
        params: dict[str, Any] = {"status": "pending", "limit": limit + 1}
        select_page = f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letter_queue WHERE recovery_status = :status"
        order = " ORDER BY priority DESC, dead_lettered_at DESC, id LIMIT :limit"
        if after is None:
            sql = select_page + order
        else:
            # The service's keyset: three disjoint index ranges after the key, merged.
            params.update(p=after[0], t=after[1], i=after[2])
            ranges = (
                " AND priority = :p AND dead_lettered_at = :t AND id > :i",
                " AND priority = :p AND dead_lettered_at < :t",
                " AND priority < :p",
            )
            merged = " UNION ALL ".join(
                f"SELECT * FROM ({select_page}{bounds}{order}) AS part_{n}" for n, bounds in enumerate(ranges)
            )
            sql = f"SELECT * FROM ({merged}) AS page{order}"
        rows = self.execute(cursor, sql, params).fetchall()
        self.execute(cursor, self.dead_letter_total_sql(), params).fetchone()
        self.commit(connection, cursor)
        return rows

    def dead_letter_total_sql(self) -> str:
        return "SELECT sum(amount) FROM queue_counters WHERE counter = 'dead_letters.' || :status"

    def statistics(self, connection, now: datetime) -> None:
        """GetStatistics: the queues, the counter sums and the delayed split."""
        cursor = self.begin(connection)
        params = {"now": self.ts(now)}
        self.execute(cursor, "SELECT * FROM queues ORDER BY name LIMIT 2147483647", params).fetchall()
        self.execute(
            cursor, "SELECT queue_name, counter, sum(amount) FROM queue_counters GROUP BY queue_name, counter", params
        ).fetchall()
        self.execute(
            cursor,
            "SELECT queue_name, state, count(*) FROM queue_jobs WHERE state IN ('waiting', 'failed') AND run_at > :now "
            "GROUP BY queue_name, state",
            params,
        ).fetchall()
        self.commit(connection, cursor)
