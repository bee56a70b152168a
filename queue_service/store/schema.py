"""SQLAlchemy Core tables; the Alembic migrations create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from queue_service.domain import RETRY_RULE_LENGTH, TRACE_PARENT_LENGTH, DeathReason, Decision, JobState, RecoveryStatus

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

JOB_STATES = tuple(state.value for state in JobState)
RECOVERY_STATUSES = tuple(status.value for status in RecoveryStatus)
DEATH_REASONS = tuple(reason.value for reason in DeathReason)
DECISIONS = tuple(decision.value for decision in Decision)
RUN_STATUSES = ("running", "succeeded", "failed")
OUTBOX_STATUSES = ("pending", "sent", "failed")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def result_processor(self, dialect, coltype):
        if dialect.name != "postgresql":
            return super().result_processor(dialect, coltype)

        # The service's connections run in UTC (database.py), so psycopg2 already gives UTC times:
        # one check per value, where a leased job's ten times each went through two calls.
        def process(value):
            if value is None or value.tzinfo is UTC:
                return value
            return self.process_result_value(value, dialect)

        return process


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC)


# The times of statements bound without SQLAlchemy's per-value processing, as UTCDateTime stores them.


def sqlite_utc_text(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DATETIME text of the naive UTC time."""
    return None if value is None else as_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


def postgres_utc_text(value: datetime | None) -> str | None:
    """ISO 8601 with its UTC offset, for a timestamptz read from JSON."""
    return None if value is None else as_utc(value).isoformat()


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


RETRY_PENDING = "state IN ('waiting', 'failed') AND attempt_number > budget_start"

# A unique job holds its slot while its state is one of its unique_states (",waiting,active,failed,"):
# the unique index covers only those rows, so a job leaving its counted states frees the slot with
# no statement of its own. Each dialect spells substring search its own way.
UNIQUE_SLOT_INDEX = "ix_queue_jobs_unique_slot"
UNIQUE_SLOT_HELD = {
    "postgresql": "unique_slot IS NOT NULL AND strpos(unique_states, ',' || state || ',') > 0",
    "sqlite": "unique_slot IS NOT NULL AND instr(unique_states, ',' || state || ',') > 0",
}
UNIQUE_KEY_LENGTH = 255

JsonDocument = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")

queues = Table(
    "queues",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("paused", Boolean(name="paused_bool"), nullable=False, server_default=text("false")),
    Column("retry_policy", JsonDocument, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

queue_jobs = Table(
    "queue_jobs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(255), nullable=False, unique=True),
    Column("queue_name", String(100), nullable=False),
    Column("job_name", String(100), nullable=False),
    Column("job_data", JsonDocument, nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("attempt_number", Integer, nullable=False, server_default=text("0")),
    Column("budget_start", Integer, nullable=False, server_default=text("0")),
    Column("retry_policy", JsonDocument, nullable=True),
    Column("run_at", UTCDateTime(), nullable=False),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    Column("worker_id", String(255), nullable=True),
    Column("last_error", JsonDocument, nullable=True),
    Column("error_history", JsonDocument, nullable=True),
    Column("result", JsonDocument, nullable=True),
    Column("processing_duration_ms", BigInteger, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("completed_at", UTCDateTime(), nullable=True),
    Column("dead_letter_id", String(36), nullable=True),
    # W3C traceparent of the producer's call (migration 0008_alerts_tracing); "" if it sent none.
    Column("trace_parent", String(TRACE_PARENT_LENGTH), nullable=False, server_default=text("''")),
    # Unique jobs (migration 0010_unique_jobs): the producer's key, the slot (a hash of queue, key
    # and window) and the states the job holds it in; all NULL for other jobs.
    Column("unique_key", String(UNIQUE_KEY_LENGTH), nullable=True),
    Column("unique_slot", String(64), nullable=True),
    Column("unique_states", String(100), nullable=True),
    # The retry rule that decided the last failure, "" for the default policy, and when the job
    # first failed in its current retry budget (migration 0012_retry_rules).
    Column("retry_rule", String(RETRY_RULE_LENGTH), nullable=False, server_default=text("''")),
    Column("first_failed_at", UTCDateTime(), nullable=True),
    # When a cancellation asked the ACTIVE job's run to stop (migration 0015_cancellation); NULL if none did.
    Column("cancel_requested_at", UTCDateTime(), nullable=True),
    CheckConstraint(_in("state", JOB_STATES), name="state_valid"),
    CheckConstraint("attempt_number >= 0", name="attempt_number_nonnegative"),
    CheckConstraint("budget_start >= 0 AND budget_start <= attempt_number", name="budget_start_valid"),
    CheckConstraint("state <> 'active' OR lease_expires_at IS NOT NULL", name="active_has_lease"),
    # Ready jobs in lease order; partial so that completed history does not bloat it.
    Index(
        "ix_queue_jobs_ready",
        "queue_name",
        text("priority DESC"),
        "run_at",
        "id",
        postgresql_where=text("state IN ('waiting', 'failed')"),
        sqlite_where=text("state IN ('waiting', 'failed')"),
    ),
    Index(
        "ix_queue_jobs_lease_expiry",
        "lease_expires_at",
        postgresql_where=text("state = 'active'"),
        sqlite_where=text("state = 'active'"),
    ),
    # queue_name last: the delayed split of the statistics is an index-only range scan on it.
    Index("ix_queue_jobs_state_run_at_queue_name", "state", "run_at", "queue_name"),
    Index("ix_queue_jobs_queue_state", "queue_name", "state", "updated_at"),
    # Retention walks completed jobs oldest first without touching the rest of the table.
    Index(
        "ix_queue_jobs_completed_at",
        "completed_at",
        postgresql_where=text("state = 'completed'"),
        sqlite_where=text("state = 'completed'"),
    ),
    # Jobs waiting for a retry: the only ones a lowered retry policy can exhaust.
    Index(
        "ix_queue_jobs_retry_pending",
        "id",
        postgresql_where=text(RETRY_PENDING),
        sqlite_where=text(RETRY_PENDING),
    ),
    # At most one job holds a unique slot in its counted states: what makes concurrent unique
    # enqueues create one job.
    Index(
        UNIQUE_SLOT_INDEX,
        "unique_slot",
        unique=True,
        postgresql_where=text(UNIQUE_SLOT_HELD["postgresql"]),
        sqlite_where=text(UNIQUE_SLOT_HELD["sqlite"]),
    ),
)

dead_letter_queue = Table(
    "dead_letter_queue",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("job_id", String(255), nullable=False, unique=True),
    Column("queue_name", String(100), nullable=False),
    Column("job_name", String(100), nullable=False),
    Column("job_data", JsonDocument, nullable=False),
    Column("failure_reason", Text, nullable=False),
    Column("error_type", String(255), nullable=False, server_default=text("''")),
    Column("total_attempts", Integer, nullable=False),
    Column("error_history", JsonDocument, nullable=False),
    Column("death_reason", String(32), nullable=False),
    Column("recovery_status", String(32), nullable=False),
    Column("recovery_attempts", Integer, nullable=False, server_default=text("0")),
    Column("admin_notes", Text, nullable=False, server_default=text("''")),
    Column("assigned_to", String(255), nullable=False, server_default=text("''")),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("fingerprint", String(64), nullable=False, server_default=text("''")),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("dead_lettered_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("resolution_reason", Text, nullable=False, server_default=text("''")),
    Column("resolved_by", String(255), nullable=False, server_default=text("''")),
    Column("resolved_at", UTCDateTime(), nullable=True),
    CheckConstraint(_in("recovery_status", RECOVERY_STATUSES), name="recovery_status_valid"),
    CheckConstraint(_in("death_reason", DEATH_REASONS), name="death_reason_valid"),
    # The triage page: priority first, then newest, within a queue and status.
    Index("ix_dead_letter_queue_triage", "recovery_status", text("priority DESC"), text("dead_lettered_at DESC"), "id"),
    Index(
        "ix_dead_letter_queue_queue_triage",
        "queue_name",
        "recovery_status",
        text("priority DESC"),
        text("dead_lettered_at DESC"),
    ),
    Index("ix_dead_letter_queue_fingerprint", "fingerprint", "recovery_status"),
)

queue_retry_log = Table(
    "queue_retry_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("job_id", String(255), nullable=False),
    Column("queue_name", String(100), nullable=False),
    Column("attempt_number", Integer, nullable=False),
    Column("error", JsonDocument, nullable=True),
    Column("decision", String(16), nullable=False),
    Column("retry_delay_ms", BigInteger, nullable=False, server_default=text("0")),
    Column("remaining_retries", Integer, nullable=False, server_default=text("0")),
    Column("next_retry_at", UTCDateTime(), nullable=True),
    Column("death_reason", String(32), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint(_in("decision", DECISIONS), name="decision_valid"),
    Index("ix_queue_retry_log_job", "job_id", "attempt_number"),
    Index("ix_queue_retry_log_queue_created", "queue_name", "created_at"),
    Index("ix_queue_retry_log_created", "created_at"),
)

queue_recovery_runs = Table(
    "queue_recovery_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("status", String(16), nullable=False),
    Column("trigger", String(16), nullable=False, server_default=text("'scheduled'")),
    Column("node_id", String(255), nullable=False, server_default=text("''")),
    Column("counts", JsonDocument, nullable=True),
    Column("error", Text, nullable=True),
    CheckConstraint(_in("status", RUN_STATUSES), name="status_valid"),
    Index("ix_queue_recovery_runs_started", "started_at"),
)

# Exact counts of jobs per (queue, state) and dead-letter entries per (queue, recovery status),
# kept by database triggers on queue_jobs and dead_letter_queue (migration 0002_admin_audit).
# counter is "jobs.<state>" or "dead_letters.<recovery_status>"; a key's count is the sum of its
# rows' amounts. A migration that recreates either table (SQLite batch mode) must recreate the
# triggers too; tests/integration/test_admin_statistics.py fails if counts drift.
queue_counters = Table(
    "queue_counters",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("queue_name", String(100), nullable=False),
    Column("counter", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False, server_default=text("0")),
    Index("ix_queue_counters_queue_name", "queue_name", "counter"),
)

ACTIVITIES = ("completed", "failed", "retried", "dead_lettered", "cancelled")

# Completed, failed, retried, dead-lettered and cancelled jobs per queue in five-minute and hourly
# buckets, counted by triggers on queue_jobs state changes (migrations 0005_queue_activity and
# 0015_cancellation, which define each kind; 0016_activity_trigger_by_groups, PostgreSQL's present
# function). Several rows may share a key, as in queue_counters;
# a key's count is the sum of their amounts.
queue_activity = Table(
    "queue_activity",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("queue_name", String(100), nullable=False),
    Column("bucket_seconds", Integer, nullable=False),
    Column("bucket_start", UTCDateTime(), nullable=False),
    Column("activity", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False, server_default=text("0")),
    CheckConstraint(_in("activity", ACTIVITIES), name="activity_valid"),
    CheckConstraint("bucket_seconds IN (300, 3600)", name="bucket_seconds_valid"),
    Index("ix_queue_activity_bucket_seconds", "bucket_seconds", "bucket_start"),
    Index("ix_queue_activity_queue_name", "queue_name", "bucket_seconds", "bucket_start", "activity"),
)

# Every admin action that changed something: who, what, on which target, with which parameters.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("actor", String(255), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(400), nullable=False, server_default=text("''")),
    Column("parameters", JsonDocument, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_audit_events_created_at", "created_at"),
    Index("ix_audit_events_actor", "actor", "id"),
    Index("ix_audit_events_action", "action", "id"),
    Index("ix_audit_events_target", "target", "id"),
)

# Named leases with a term (leader election, the single-sweeper lock). A lapsed row stays
# until the next election takes it over, so the term only ever grows.
queue_leases = Table(
    "queue_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("term", BigInteger, nullable=False),
    Column("elected_at", UTCDateTime(), nullable=False),
    Column("renewed_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    # When the holder plans its next run (the recovery leader: its next scheduled sweep); NULL if unknown.
    Column("next_run_at", UTCDateTime(), nullable=True),
    CheckConstraint("term >= 1", name="term_positive"),
)

# One row per queue that has ever alerted: whether its pending DLQ count is above the threshold now.
queue_dlq_alerts = Table(
    "queue_dlq_alerts",
    metadata,
    Column("queue_name", String(100), primary_key=True),
    Column("alerting", Boolean(name="alerting_bool"), nullable=False),
    Column("pending_count", Integer, nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("raised_at", UTCDateTime(), nullable=False),
    Column("cleared_at", UTCDateTime(), nullable=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

MISFIRE_POLICIES = ("skip", "run_once")

# Cron schedules: the leader enqueues a job for each due slot and moves next_run_at on in the same transaction.
queue_schedules = Table(
    "queue_schedules",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("cron", String(255), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("queue_name", String(100), nullable=False),
    Column("job_name", String(100), nullable=False),
    Column("job_data", JsonDocument, nullable=True),
    Column("retry_policy", JsonDocument, nullable=True),
    Column("misfire_policy", String(16), nullable=False),
    Column("paused", Boolean(name="paused_bool"), nullable=False, server_default=text("false")),
    # The first slot not enqueued yet; NULL while paused.
    Column("next_run_at", UTCDateTime(), nullable=True),
    Column("last_run_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint(_in("misfire_policy", MISFIRE_POLICIES), name="misfire_policy_known"),
    Index("ix_queue_schedules_next_run_at", "next_run_at"),
)

# Alerts to send by email, written in the transaction that raises them and delivered by a sweep
# task (queue_service/core/sweep/tasks/alert_emails.py): an SMTP server that is down delays an alert, never loses
# it. "failed" rows ran out of attempts; "sent" rows are kept as the record of what went out.
alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("queue_name", String(100), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("recipients", JsonDocument, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("last_error", Text, nullable=False, server_default=text("''")),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    CheckConstraint(_in("status", OUTBOX_STATUSES), name="status_valid"),
    CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
    Index("ix_alert_outbox_due", "status", "next_attempt_at", "id"),
)

# Per queue: the DLQ alert threshold (NULL: the server's) and the email recipients of its alerts.
queue_alert_policies = Table(
    "queue_alert_policies",
    metadata,
    Column("queue_name", String(100), primary_key=True),
    Column("dlq_alert_threshold", Integer, nullable=True),
    Column("email_recipients", JsonDocument, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("dlq_alert_threshold >= 0", name="dlq_alert_threshold_nonnegative"),
)

# Per queue with a lease limit (migration 0011_queue_concurrency): the most ACTIVE jobs and the
# most starts per second, with the start-rate token bucket (tokens left at refilled_at). LeaseJobs
# locks a queue's row for its transaction, so that leases of a limited queue take turns across
# replicas; queues without limits have no row and lease without that lock.
queue_lease_limits = Table(
    "queue_lease_limits",
    metadata,
    Column("queue_name", String(100), primary_key=True),
    Column("max_active", Integer, nullable=True),
    Column("max_starts_per_second", Float, nullable=True),
    Column("tokens", Float, nullable=False, server_default=text("0")),
    Column("refilled_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint("max_active >= 1", name="max_active_positive"),
    CheckConstraint("max_starts_per_second > 0", name="max_starts_per_second_positive"),
    CheckConstraint("tokens >= 0", name="tokens_nonnegative"),
    CheckConstraint("max_active IS NOT NULL OR max_starts_per_second IS NOT NULL", name="some_limit"),
)

BREAKER_STATES = ("closed", "open", "half_open")

# Per queue: its circuit breaker's policy and state (migration 0014_retry_breaker). Every change of
# state is a compare-and-set on `version`, so that replicas racing to open or close it agree.
queue_breakers = Table(
    "queue_breakers",
    metadata,
    Column("queue_name", String(100), primary_key=True),
    Column("enabled", Boolean(name="enabled_bool"), nullable=False, server_default=text("false")),
    Column("failure_ratio", Float(53), nullable=False),
    Column("min_runs", Integer, nullable=False),
    Column("window_ms", BigInteger, nullable=False),
    Column("cooldown_ms", BigInteger, nullable=False),
    Column("ramp_ms", BigInteger, nullable=False),
    Column("state", String(16), nullable=False, server_default=text("'closed'")),
    Column("version", BigInteger, nullable=False, server_default=text("1")),
    Column("changed_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime(), nullable=True),
    Column("opened_at", UTCDateTime(), nullable=True),
    Column("probe_job_id", String(255), nullable=False, server_default=text("''")),
    Column("probe_attempt", Integer, nullable=False, server_default=text("0")),
    Column("updated_at", UTCDateTime(), nullable=False),
    CheckConstraint(_in("state", BREAKER_STATES), name="state_valid"),
    CheckConstraint("failure_ratio > 0 AND failure_ratio <= 1", name="failure_ratio_valid"),
    CheckConstraint("min_runs >= 1", name="min_runs_positive"),
    CheckConstraint("window_ms > 0 AND cooldown_ms > 0 AND ramp_ms >= 0", name="durations_valid"),
)

# Runs and failed runs of queues whose breaker is on, per second; several shards per second so
# that concurrent reports rarely wait on one row. The breaker's window sums the rows it covers;
# rows older than the window are deleted as failures are counted.
queue_breaker_outcomes = Table(
    "queue_breaker_outcomes",
    metadata,
    Column("queue_name", String(100), primary_key=True),
    Column("second_start", UTCDateTime(), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("runs", BigInteger, nullable=False, server_default=text("0")),
    Column("failures", BigInteger, nullable=False, server_default=text("0")),
)
