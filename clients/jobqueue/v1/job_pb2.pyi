import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetryDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETRY_DECISION_UNSPECIFIED: _ClassVar[RetryDecision]
    RETRY_DECISION_RETRY: _ClassVar[RetryDecision]
    RETRY_DECISION_DEAD_LETTER: _ClassVar[RetryDecision]

class DeathReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEATH_REASON_UNSPECIFIED: _ClassVar[DeathReason]
    DEATH_REASON_RETRIES_EXHAUSTED: _ClassVar[DeathReason]
    DEATH_REASON_NON_RETRYABLE: _ClassVar[DeathReason]
    DEATH_REASON_LEASE_EXPIRED: _ClassVar[DeathReason]
    DEATH_REASON_MOVED_EXPLICITLY: _ClassVar[DeathReason]
    DEATH_REASON_RETRY_DEADLINE_EXCEEDED: _ClassVar[DeathReason]
RETRY_DECISION_UNSPECIFIED: RetryDecision
RETRY_DECISION_RETRY: RetryDecision
RETRY_DECISION_DEAD_LETTER: RetryDecision
DEATH_REASON_UNSPECIFIED: DeathReason
DEATH_REASON_RETRIES_EXHAUSTED: DeathReason
DEATH_REASON_NON_RETRYABLE: DeathReason
DEATH_REASON_LEASE_EXPIRED: DeathReason
DEATH_REASON_MOVED_EXPLICITLY: DeathReason
DEATH_REASON_RETRY_DEADLINE_EXCEEDED: DeathReason

class Job(_message.Message):
    __slots__ = ("job_id", "queue_name", "job_name", "job_data", "state", "priority", "attempt_number", "remaining_retries", "retry_policy", "run_at", "next_retry_at", "lease_expires_at", "worker_id", "last_error", "result", "processing_duration", "created_at", "updated_at", "started_at", "completed_at", "dead_letter_id", "trace_parent", "unique_key", "retry_rule", "first_failed_at", "cancel_requested_at")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Job.State]
        STATE_WAITING: _ClassVar[Job.State]
        STATE_ACTIVE: _ClassVar[Job.State]
        STATE_COMPLETED: _ClassVar[Job.State]
        STATE_FAILED: _ClassVar[Job.State]
        STATE_DEAD_LETTER: _ClassVar[Job.State]
        STATE_CANCELLED: _ClassVar[Job.State]
    STATE_UNSPECIFIED: Job.State
    STATE_WAITING: Job.State
    STATE_ACTIVE: Job.State
    STATE_COMPLETED: Job.State
    STATE_FAILED: Job.State
    STATE_DEAD_LETTER: Job.State
    STATE_CANCELLED: Job.State
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_DATA_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REMAINING_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_DURATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_PARENT_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_KEY_FIELD_NUMBER: _ClassVar[int]
    RETRY_RULE_FIELD_NUMBER: _ClassVar[int]
    FIRST_FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue_name: str
    job_name: str
    job_data: _struct_pb2.Struct
    state: Job.State
    priority: int
    attempt_number: int
    remaining_retries: int
    retry_policy: RetryPolicy
    run_at: _timestamp_pb2.Timestamp
    next_retry_at: _timestamp_pb2.Timestamp
    lease_expires_at: _timestamp_pb2.Timestamp
    worker_id: str
    last_error: JobError
    result: _struct_pb2.Struct
    processing_duration: _duration_pb2.Duration
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    dead_letter_id: str
    trace_parent: str
    unique_key: str
    retry_rule: str
    first_failed_at: _timestamp_pb2.Timestamp
    cancel_requested_at: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., queue_name: _Optional[str] = ..., job_name: _Optional[str] = ..., job_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., state: _Optional[_Union[Job.State, str]] = ..., priority: _Optional[int] = ..., attempt_number: _Optional[int] = ..., remaining_retries: _Optional[int] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_retry_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., worker_id: _Optional[str] = ..., last_error: _Optional[_Union[JobError, _Mapping]] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., processing_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dead_letter_id: _Optional[str] = ..., trace_parent: _Optional[str] = ..., unique_key: _Optional[str] = ..., retry_rule: _Optional[str] = ..., first_failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_requested_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("message", "type", "details", "attempt_number", "occurred_at", "omitted_count", "retry_rule")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    OMITTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    RETRY_RULE_FIELD_NUMBER: _ClassVar[int]
    message: str
    type: str
    details: str
    attempt_number: int
    occurred_at: _timestamp_pb2.Timestamp
    omitted_count: int
    retry_rule: str
    def __init__(self, message: _Optional[str] = ..., type: _Optional[str] = ..., details: _Optional[str] = ..., attempt_number: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., omitted_count: _Optional[int] = ..., retry_rule: _Optional[str] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_retries", "retry_delays", "max_delay", "jitter", "rules", "max_retry_duration")
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAYS_FIELD_NUMBER: _ClassVar[int]
    MAX_DELAY_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRY_DURATION_FIELD_NUMBER: _ClassVar[int]
    max_retries: int
    retry_delays: _containers.RepeatedCompositeFieldContainer[_duration_pb2.Duration]
    max_delay: _duration_pb2.Duration
    jitter: float
    rules: _containers.RepeatedCompositeFieldContainer[RetryRule]
    max_retry_duration: _duration_pb2.Duration
    def __init__(self, max_retries: _Optional[int] = ..., retry_delays: _Optional[_Iterable[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]]] = ..., max_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., jitter: _Optional[float] = ..., rules: _Optional[_Iterable[_Union[RetryRule, _Mapping]]] = ..., max_retry_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RetryRule(_message.Message):
    __slots__ = ("error_type", "max_retries", "retry_delays", "max_delay", "jitter", "retryable")
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAYS_FIELD_NUMBER: _ClassVar[int]
    MAX_DELAY_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    error_type: str
    max_retries: int
    retry_delays: _containers.RepeatedCompositeFieldContainer[_duration_pb2.Duration]
    max_delay: _duration_pb2.Duration
    jitter: float
    retryable: bool
    def __init__(self, error_type: _Optional[str] = ..., max_retries: _Optional[int] = ..., retry_delays: _Optional[_Iterable[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]]] = ..., max_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., jitter: _Optional[float] = ..., retryable: _Optional[bool] = ...) -> None: ...

class RetryLogEntry(_message.Message):
    __slots__ = ("id", "job_id", "queue_name", "attempt_number", "error", "decision", "retry_delay", "next_retry_at", "death_reason", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAY_FIELD_NUMBER: _ClassVar[int]
    NEXT_RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    DEATH_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    job_id: str
    queue_name: str
    attempt_number: int
    error: JobError
    decision: RetryDecision
    retry_delay: _duration_pb2.Duration
    next_retry_at: _timestamp_pb2.Timestamp
    death_reason: DeathReason
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., job_id: _Optional[str] = ..., queue_name: _Optional[str] = ..., attempt_number: _Optional[int] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., decision: _Optional[_Union[RetryDecision, str]] = ..., retry_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., next_retry_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., death_reason: _Optional[_Union[DeathReason, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeadLetterEntry(_message.Message):
    __slots__ = ("id", "job_id", "queue_name", "job_name", "job_data", "failure_reason", "error_type", "total_attempts", "error_history", "death_reason", "recovery_status", "recovery_attempts", "admin_notes", "assigned_to", "priority", "fingerprint", "created_at", "dead_lettered_at", "updated_at", "resolution_reason", "resolved_by", "resolved_at")
    class RecoveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RECOVERY_STATUS_UNSPECIFIED: _ClassVar[DeadLetterEntry.RecoveryStatus]
        RECOVERY_STATUS_PENDING: _ClassVar[DeadLetterEntry.RecoveryStatus]
        RECOVERY_STATUS_RECOVERED: _ClassVar[DeadLetterEntry.RecoveryStatus]
        RECOVERY_STATUS_PERMANENTLY_FAILED: _ClassVar[DeadLetterEntry.RecoveryStatus]
    RECOVERY_STATUS_UNSPECIFIED: DeadLetterEntry.RecoveryStatus
    RECOVERY_STATUS_PENDING: DeadLetterEntry.RecoveryStatus
    RECOVERY_STATUS_RECOVERED: DeadLetterEntry.RecoveryStatus
    RECOVERY_STATUS_PERMANENTLY_FAILED: DeadLetterEntry.RecoveryStatus
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_DATA_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_HISTORY_FIELD_NUMBER: _ClassVar[int]
    DEATH_REASON_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_STATUS_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ADMIN_NOTES_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_TO_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_REASON_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    job_id: str
    queue_name: str
    job_name: str
    job_data: _struct_pb2.Struct
    failure_reason: str
    error_type: str
    total_attempts: int
    error_history: _containers.RepeatedCompositeFieldContainer[JobError]
    death_reason: DeathReason
    recovery_status: DeadLetterEntry.RecoveryStatus
    recovery_attempts: int
    admin_notes: str
    assigned_to: str
    priority: int
    fingerprint: str
    created_at: _timestamp_pb2.Timestamp
    dead_lettered_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    resolution_reason: str
    resolved_by: str
    resolved_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., job_id: _Optional[str] = ..., queue_name: _Optional[str] = ..., job_name: _Optional[str] = ..., job_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., failure_reason: _Optional[str] = ..., error_type: _Optional[str] = ..., total_attempts: _Optional[int] = ..., error_history: _Optional[_Iterable[_Union[JobError, _Mapping]]] = ..., death_reason: _Optional[_Union[DeathReason, str]] = ..., recovery_status: _Optional[_Union[DeadLetterEntry.RecoveryStatus, str]] = ..., recovery_attempts: _Optional[int] = ..., admin_notes: _Optional[str] = ..., assigned_to: _Optional[str] = ..., priority: _Optional[int] = ..., fingerprint: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dead_lettered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolution_reason: _Optional[str] = ..., resolved_by: _Optional[str] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
