import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from jobqueue.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CircuitBreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CIRCUIT_BREAKER_STATE_UNSPECIFIED: _ClassVar[CircuitBreakerState]
    CIRCUIT_BREAKER_STATE_CLOSED: _ClassVar[CircuitBreakerState]
    CIRCUIT_BREAKER_STATE_OPEN: _ClassVar[CircuitBreakerState]
    CIRCUIT_BREAKER_STATE_HALF_OPEN: _ClassVar[CircuitBreakerState]
CIRCUIT_BREAKER_STATE_UNSPECIFIED: CircuitBreakerState
CIRCUIT_BREAKER_STATE_CLOSED: CircuitBreakerState
CIRCUIT_BREAKER_STATE_OPEN: CircuitBreakerState
CIRCUIT_BREAKER_STATE_HALF_OPEN: CircuitBreakerState

class GetStatisticsRequest(_message.Message):
    __slots__ = ("queue_names", "max_queues")
    QUEUE_NAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUES_FIELD_NUMBER: _ClassVar[int]
    queue_names: _containers.RepeatedScalarFieldContainer[str]
    max_queues: int
    def __init__(self, queue_names: _Optional[_Iterable[str]] = ..., max_queues: _Optional[int] = ...) -> None: ...

class GetStatisticsResponse(_message.Message):
    __slots__ = ("queues", "totals", "computed_at", "omitted_queue_count")
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    OMITTED_QUEUE_COUNT_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[QueueStatistics]
    totals: QueueStatistics
    computed_at: _timestamp_pb2.Timestamp
    omitted_queue_count: int
    def __init__(self, queues: _Optional[_Iterable[_Union[QueueStatistics, _Mapping]]] = ..., totals: _Optional[_Union[QueueStatistics, _Mapping]] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., omitted_queue_count: _Optional[int] = ...) -> None: ...

class QueueStatistics(_message.Message):
    __slots__ = ("queue_name", "paused", "waiting_count", "delayed_count", "active_count", "completed_count", "failed_count", "retryable_count", "dead_letter_count", "dead_letter_summary", "cancelled_count")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    WAITING_COUNT_FIELD_NUMBER: _ClassVar[int]
    DELAYED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_COUNT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    paused: bool
    waiting_count: int
    delayed_count: int
    active_count: int
    completed_count: int
    failed_count: int
    retryable_count: int
    dead_letter_count: int
    dead_letter_summary: DeadLetterSummary
    cancelled_count: int
    def __init__(self, queue_name: _Optional[str] = ..., paused: _Optional[bool] = ..., waiting_count: _Optional[int] = ..., delayed_count: _Optional[int] = ..., active_count: _Optional[int] = ..., completed_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., retryable_count: _Optional[int] = ..., dead_letter_count: _Optional[int] = ..., dead_letter_summary: _Optional[_Union[DeadLetterSummary, _Mapping]] = ..., cancelled_count: _Optional[int] = ...) -> None: ...

class DeadLetterSummary(_message.Message):
    __slots__ = ("total_count", "pending_count", "recovered_count", "permanently_failed_count")
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_COUNT_FIELD_NUMBER: _ClassVar[int]
    PERMANENTLY_FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    total_count: int
    pending_count: int
    recovered_count: int
    permanently_failed_count: int
    def __init__(self, total_count: _Optional[int] = ..., pending_count: _Optional[int] = ..., recovered_count: _Optional[int] = ..., permanently_failed_count: _Optional[int] = ...) -> None: ...

class GetQueueActivityRequest(_message.Message):
    __slots__ = ("queue_names", "start_time", "end_time", "bucket_width", "period", "max_queues")
    QUEUE_NAMES_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    BUCKET_WIDTH_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUES_FIELD_NUMBER: _ClassVar[int]
    queue_names: _containers.RepeatedScalarFieldContainer[str]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    bucket_width: _duration_pb2.Duration
    period: _duration_pb2.Duration
    max_queues: int
    def __init__(self, queue_names: _Optional[_Iterable[str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bucket_width: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_queues: _Optional[int] = ...) -> None: ...

class GetQueueActivityResponse(_message.Message):
    __slots__ = ("queues", "totals", "start_time", "end_time", "bucket_width", "omitted_queue_count")
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    BUCKET_WIDTH_FIELD_NUMBER: _ClassVar[int]
    OMITTED_QUEUE_COUNT_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[QueueActivity]
    totals: QueueActivity
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    bucket_width: _duration_pb2.Duration
    omitted_queue_count: int
    def __init__(self, queues: _Optional[_Iterable[_Union[QueueActivity, _Mapping]]] = ..., totals: _Optional[_Union[QueueActivity, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bucket_width: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., omitted_queue_count: _Optional[int] = ...) -> None: ...

class QueueActivity(_message.Message):
    __slots__ = ("queue_name", "buckets")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    buckets: _containers.RepeatedCompositeFieldContainer[ActivityBucket]
    def __init__(self, queue_name: _Optional[str] = ..., buckets: _Optional[_Iterable[_Union[ActivityBucket, _Mapping]]] = ...) -> None: ...

class ActivityBucket(_message.Message):
    __slots__ = ("start_time", "completed_count", "failed_count", "retried_count", "dead_lettered_count", "cancelled_count")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    RETRIED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    completed_count: int
    failed_count: int
    retried_count: int
    dead_lettered_count: int
    cancelled_count: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., retried_count: _Optional[int] = ..., dead_lettered_count: _Optional[int] = ..., cancelled_count: _Optional[int] = ...) -> None: ...

class DeadLetterFilter(_message.Message):
    __slots__ = ("queue_name", "recovery_status", "death_reason", "failure_reason_contains", "error_type", "fingerprint", "assigned_to", "dead_lettered_after", "dead_lettered_before")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_STATUS_FIELD_NUMBER: _ClassVar[int]
    DEATH_REASON_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_TO_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_AFTER_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    recovery_status: _job_pb2.DeadLetterEntry.RecoveryStatus
    death_reason: _job_pb2.DeathReason
    failure_reason_contains: str
    error_type: str
    fingerprint: str
    assigned_to: str
    dead_lettered_after: _timestamp_pb2.Timestamp
    dead_lettered_before: _timestamp_pb2.Timestamp
    def __init__(self, queue_name: _Optional[str] = ..., recovery_status: _Optional[_Union[_job_pb2.DeadLetterEntry.RecoveryStatus, str]] = ..., death_reason: _Optional[_Union[_job_pb2.DeathReason, str]] = ..., failure_reason_contains: _Optional[str] = ..., error_type: _Optional[str] = ..., fingerprint: _Optional[str] = ..., assigned_to: _Optional[str] = ..., dead_lettered_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dead_lettered_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLetterJobsRequest(_message.Message):
    __slots__ = ("filter", "page_size", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: DeadLetterFilter
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLetterJobsResponse(_message.Message):
    __slots__ = ("entries", "next_page_token", "total_size")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_job_pb2.DeadLetterEntry]
    next_page_token: str
    total_size: int
    def __init__(self, entries: _Optional[_Iterable[_Union[_job_pb2.DeadLetterEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class GetDeadLetterJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetDeadLetterJobResponse(_message.Message):
    __slots__ = ("entry", "job", "retry_log", "retry_log_omitted_count")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    RETRY_LOG_FIELD_NUMBER: _ClassVar[int]
    RETRY_LOG_OMITTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    entry: _job_pb2.DeadLetterEntry
    job: _job_pb2.Job
    retry_log: _containers.RepeatedCompositeFieldContainer[_job_pb2.RetryLogEntry]
    retry_log_omitted_count: int
    def __init__(self, entry: _Optional[_Union[_job_pb2.DeadLetterEntry, _Mapping]] = ..., job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., retry_log: _Optional[_Iterable[_Union[_job_pb2.RetryLogEntry, _Mapping]]] = ..., retry_log_omitted_count: _Optional[int] = ...) -> None: ...

class RetryDeadLetterJobRequest(_message.Message):
    __slots__ = ("id", "retry_policy", "job_data")
    ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    JOB_DATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    retry_policy: _job_pb2.RetryPolicy
    job_data: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., retry_policy: _Optional[_Union[_job_pb2.RetryPolicy, _Mapping]] = ..., job_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RetryDeadLetterJobResponse(_message.Message):
    __slots__ = ("entry", "job")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    entry: _job_pb2.DeadLetterEntry
    job: _job_pb2.Job
    def __init__(self, entry: _Optional[_Union[_job_pb2.DeadLetterEntry, _Mapping]] = ..., job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class MarkPermanentlyFailedRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class MarkPermanentlyFailedResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _job_pb2.DeadLetterEntry
    def __init__(self, entry: _Optional[_Union[_job_pb2.DeadLetterEntry, _Mapping]] = ...) -> None: ...

class UpdateDeadLetterJobRequest(_message.Message):
    __slots__ = ("entry", "update_mask")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    entry: _job_pb2.DeadLetterEntry
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, entry: _Optional[_Union[_job_pb2.DeadLetterEntry, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateDeadLetterJobResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _job_pb2.DeadLetterEntry
    def __init__(self, entry: _Optional[_Union[_job_pb2.DeadLetterEntry, _Mapping]] = ...) -> None: ...

class ListFailurePatternsRequest(_message.Message):
    __slots__ = ("queue_name", "recovery_status", "page_size", "page_token")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    recovery_status: _job_pb2.DeadLetterEntry.RecoveryStatus
    page_size: int
    page_token: str
    def __init__(self, queue_name: _Optional[str] = ..., recovery_status: _Optional[_Union[_job_pb2.DeadLetterEntry.RecoveryStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFailurePatternsResponse(_message.Message):
    __slots__ = ("patterns", "next_page_token", "total_size")
    PATTERNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    patterns: _containers.RepeatedCompositeFieldContainer[FailurePattern]
    next_page_token: str
    total_size: int
    def __init__(self, patterns: _Optional[_Iterable[_Union[FailurePattern, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class FailurePattern(_message.Message):
    __slots__ = ("fingerprint", "error_type", "normalised_message", "count", "queue_names", "first_seen_at", "last_seen_at", "sample", "last_hour_count", "last_day_count", "queue_count")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    NORMALISED_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAMES_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    LAST_HOUR_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_DAY_COUNT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_COUNT_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    error_type: str
    normalised_message: str
    count: int
    queue_names: _containers.RepeatedScalarFieldContainer[str]
    first_seen_at: _timestamp_pb2.Timestamp
    last_seen_at: _timestamp_pb2.Timestamp
    sample: _job_pb2.DeadLetterEntry
    last_hour_count: int
    last_day_count: int
    queue_count: int
    def __init__(self, fingerprint: _Optional[str] = ..., error_type: _Optional[str] = ..., normalised_message: _Optional[str] = ..., count: _Optional[int] = ..., queue_names: _Optional[_Iterable[str]] = ..., first_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sample: _Optional[_Union[_job_pb2.DeadLetterEntry, _Mapping]] = ..., last_hour_count: _Optional[int] = ..., last_day_count: _Optional[int] = ..., queue_count: _Optional[int] = ...) -> None: ...

class RetryDeadLetterJobsRequest(_message.Message):
    __slots__ = ("filter", "ids", "dry_run", "retry_policy", "rate_limit", "max_jobs", "sample_size")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_JOBS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    filter: DeadLetterFilter
    ids: DeadLetterIds
    dry_run: bool
    retry_policy: _job_pb2.RetryPolicy
    rate_limit: float
    max_jobs: int
    sample_size: int
    def __init__(self, filter: _Optional[_Union[DeadLetterFilter, _Mapping]] = ..., ids: _Optional[_Union[DeadLetterIds, _Mapping]] = ..., dry_run: _Optional[bool] = ..., retry_policy: _Optional[_Union[_job_pb2.RetryPolicy, _Mapping]] = ..., rate_limit: _Optional[float] = ..., max_jobs: _Optional[int] = ..., sample_size: _Optional[int] = ...) -> None: ...

class DeadLetterIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RetryDeadLetterJobsResponse(_message.Message):
    __slots__ = ("matched_count", "retried_count", "skipped_count", "done", "sample", "retried_ids", "skipped")
    MATCHED_COUNT_FIELD_NUMBER: _ClassVar[int]
    RETRIED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    RETRIED_IDS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    matched_count: int
    retried_count: int
    skipped_count: int
    done: bool
    sample: _containers.RepeatedCompositeFieldContainer[_job_pb2.DeadLetterEntry]
    retried_ids: _containers.RepeatedScalarFieldContainer[str]
    skipped: _containers.RepeatedCompositeFieldContainer[RedriveSkip]
    def __init__(self, matched_count: _Optional[int] = ..., retried_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., done: _Optional[bool] = ..., sample: _Optional[_Iterable[_Union[_job_pb2.DeadLetterEntry, _Mapping]]] = ..., retried_ids: _Optional[_Iterable[str]] = ..., skipped: _Optional[_Iterable[_Union[RedriveSkip, _Mapping]]] = ...) -> None: ...

class RedriveSkip(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelJobsRequest(_message.Message):
    __slots__ = ("filter", "ids", "dry_run", "rate_limit", "max_jobs", "sample_size", "reason")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_JOBS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    filter: JobFilter
    ids: JobIds
    dry_run: bool
    rate_limit: float
    max_jobs: int
    sample_size: int
    reason: str
    def __init__(self, filter: _Optional[_Union[JobFilter, _Mapping]] = ..., ids: _Optional[_Union[JobIds, _Mapping]] = ..., dry_run: _Optional[bool] = ..., rate_limit: _Optional[float] = ..., max_jobs: _Optional[int] = ..., sample_size: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class JobFilter(_message.Message):
    __slots__ = ("queue_name", "states", "job_name", "created_after", "created_before")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    states: _containers.RepeatedScalarFieldContainer[_job_pb2.Job.State]
    job_name: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    def __init__(self, queue_name: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_job_pb2.Job.State, str]]] = ..., job_name: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class JobIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CancelJobsResponse(_message.Message):
    __slots__ = ("matched_count", "cancelled_count", "cancel_requested_count", "skipped_count", "done", "sample", "cancelled_ids", "cancel_requested_ids", "skipped")
    MATCHED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_IDS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_IDS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    matched_count: int
    cancelled_count: int
    cancel_requested_count: int
    skipped_count: int
    done: bool
    sample: _containers.RepeatedCompositeFieldContainer[_job_pb2.Job]
    cancelled_ids: _containers.RepeatedScalarFieldContainer[str]
    cancel_requested_ids: _containers.RepeatedScalarFieldContainer[str]
    skipped: _containers.RepeatedCompositeFieldContainer[CancelSkip]
    def __init__(self, matched_count: _Optional[int] = ..., cancelled_count: _Optional[int] = ..., cancel_requested_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., done: _Optional[bool] = ..., sample: _Optional[_Iterable[_Union[_job_pb2.Job, _Mapping]]] = ..., cancelled_ids: _Optional[_Iterable[str]] = ..., cancel_requested_ids: _Optional[_Iterable[str]] = ..., skipped: _Optional[_Iterable[_Union[CancelSkip, _Mapping]]] = ...) -> None: ...

class CancelSkip(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("queue_name", "state", "page_size", "page_token", "job_name")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    state: _job_pb2.Job.State
    page_size: int
    page_token: str
    job_name: str
    def __init__(self, queue_name: _Optional[str] = ..., state: _Optional[_Union[_job_pb2.Job.State, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., job_name: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token", "total_size")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_job_pb2.Job]
    next_page_token: str
    total_size: int
    def __init__(self, jobs: _Optional[_Iterable[_Union[_job_pb2.Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class GetJobDetailsRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobDetailsResponse(_message.Message):
    __slots__ = ("job", "error_history", "retry_log", "dead_letter_entry", "retry_log_omitted_count")
    JOB_FIELD_NUMBER: _ClassVar[int]
    ERROR_HISTORY_FIELD_NUMBER: _ClassVar[int]
    RETRY_LOG_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_ENTRY_FIELD_NUMBER: _ClassVar[int]
    RETRY_LOG_OMITTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    error_history: _containers.RepeatedCompositeFieldContainer[_job_pb2.JobError]
    retry_log: _containers.RepeatedCompositeFieldContainer[_job_pb2.RetryLogEntry]
    dead_letter_entry: _job_pb2.DeadLetterEntry
    retry_log_omitted_count: int
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., error_history: _Optional[_Iterable[_Union[_job_pb2.JobError, _Mapping]]] = ..., retry_log: _Optional[_Iterable[_Union[_job_pb2.RetryLogEntry, _Mapping]]] = ..., dead_letter_entry: _Optional[_Union[_job_pb2.DeadLetterEntry, _Mapping]] = ..., retry_log_omitted_count: _Optional[int] = ...) -> None: ...

class ListRetryLogRequest(_message.Message):
    __slots__ = ("job_id", "queue_name", "decision", "created_after", "created_before", "page_size", "page_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue_name: str
    decision: _job_pb2.RetryDecision
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, job_id: _Optional[str] = ..., queue_name: _Optional[str] = ..., decision: _Optional[_Union[_job_pb2.RetryDecision, str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRetryLogResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_job_pb2.RetryLogEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[_job_pb2.RetryLogEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Queue(_message.Message):
    __slots__ = ("name", "paused", "retry_policy", "effective_retry_policy", "delay_schedule", "created_at", "updated_at", "max_active", "max_starts_per_second", "circuit_breaker", "circuit_breaker_status")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    DELAY_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    MAX_STARTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_BREAKER_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_BREAKER_STATUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    paused: bool
    retry_policy: _job_pb2.RetryPolicy
    effective_retry_policy: _job_pb2.RetryPolicy
    delay_schedule: _containers.RepeatedCompositeFieldContainer[_duration_pb2.Duration]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    max_active: int
    max_starts_per_second: float
    circuit_breaker: CircuitBreakerPolicy
    circuit_breaker_status: CircuitBreakerStatus
    def __init__(self, name: _Optional[str] = ..., paused: _Optional[bool] = ..., retry_policy: _Optional[_Union[_job_pb2.RetryPolicy, _Mapping]] = ..., effective_retry_policy: _Optional[_Union[_job_pb2.RetryPolicy, _Mapping]] = ..., delay_schedule: _Optional[_Iterable[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_active: _Optional[int] = ..., max_starts_per_second: _Optional[float] = ..., circuit_breaker: _Optional[_Union[CircuitBreakerPolicy, _Mapping]] = ..., circuit_breaker_status: _Optional[_Union[CircuitBreakerStatus, _Mapping]] = ...) -> None: ...

class CircuitBreakerPolicy(_message.Message):
    __slots__ = ("enabled", "failure_ratio", "min_runs", "window", "cooldown", "ramp")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_RATIO_FIELD_NUMBER: _ClassVar[int]
    MIN_RUNS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_FIELD_NUMBER: _ClassVar[int]
    RAMP_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    failure_ratio: float
    min_runs: int
    window: _duration_pb2.Duration
    cooldown: _duration_pb2.Duration
    ramp: _duration_pb2.Duration
    def __init__(self, enabled: _Optional[bool] = ..., failure_ratio: _Optional[float] = ..., min_runs: _Optional[int] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cooldown: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., ramp: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CircuitBreakerStatus(_message.Message):
    __slots__ = ("state", "change_time", "open_time", "probe_job_id", "window_runs", "window_failures")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    OPEN_TIME_FIELD_NUMBER: _ClassVar[int]
    PROBE_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_RUNS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FAILURES_FIELD_NUMBER: _ClassVar[int]
    state: CircuitBreakerState
    change_time: _timestamp_pb2.Timestamp
    open_time: _timestamp_pb2.Timestamp
    probe_job_id: str
    window_runs: int
    window_failures: int
    def __init__(self, state: _Optional[_Union[CircuitBreakerState, str]] = ..., change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., open_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., probe_job_id: _Optional[str] = ..., window_runs: _Optional[int] = ..., window_failures: _Optional[int] = ...) -> None: ...

class ListQueuesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListQueuesResponse(_message.Message):
    __slots__ = ("queues", "next_page_token")
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[Queue]
    next_page_token: str
    def __init__(self, queues: _Optional[_Iterable[_Union[Queue, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetQueueRequest(_message.Message):
    __slots__ = ("queue_name",)
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    def __init__(self, queue_name: _Optional[str] = ...) -> None: ...

class GetQueueResponse(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: Queue
    def __init__(self, queue: _Optional[_Union[Queue, _Mapping]] = ...) -> None: ...

class UpdateQueuePolicyRequest(_message.Message):
    __slots__ = ("queue_name", "retry_policy", "update_mask", "allow_missing", "validate_only", "max_active", "max_starts_per_second", "circuit_breaker")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    MAX_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    MAX_STARTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_BREAKER_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    retry_policy: _job_pb2.RetryPolicy
    update_mask: _field_mask_pb2.FieldMask
    allow_missing: bool
    validate_only: bool
    max_active: int
    max_starts_per_second: float
    circuit_breaker: CircuitBreakerPolicy
    def __init__(self, queue_name: _Optional[str] = ..., retry_policy: _Optional[_Union[_job_pb2.RetryPolicy, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., allow_missing: _Optional[bool] = ..., validate_only: _Optional[bool] = ..., max_active: _Optional[int] = ..., max_starts_per_second: _Optional[float] = ..., circuit_breaker: _Optional[_Union[CircuitBreakerPolicy, _Mapping]] = ...) -> None: ...

class UpdateQueuePolicyResponse(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: Queue
    def __init__(self, queue: _Optional[_Union[Queue, _Mapping]] = ...) -> None: ...

class QueueAlertPolicy(_message.Message):
    __slots__ = ("queue_name", "dlq_alert_threshold", "email_recipients", "update_time")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    DLQ_ALERT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    EMAIL_RECIPIENTS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    dlq_alert_threshold: int
    email_recipients: _containers.RepeatedScalarFieldContainer[str]
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, queue_name: _Optional[str] = ..., dlq_alert_threshold: _Optional[int] = ..., email_recipients: _Optional[_Iterable[str]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetQueueAlertPolicyRequest(_message.Message):
    __slots__ = ("queue_name",)
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    def __init__(self, queue_name: _Optional[str] = ...) -> None: ...

class GetQueueAlertPolicyResponse(_message.Message):
    __slots__ = ("alert_policy",)
    ALERT_POLICY_FIELD_NUMBER: _ClassVar[int]
    alert_policy: QueueAlertPolicy
    def __init__(self, alert_policy: _Optional[_Union[QueueAlertPolicy, _Mapping]] = ...) -> None: ...

class UpdateQueueAlertPolicyRequest(_message.Message):
    __slots__ = ("alert_policy",)
    ALERT_POLICY_FIELD_NUMBER: _ClassVar[int]
    alert_policy: QueueAlertPolicy
    def __init__(self, alert_policy: _Optional[_Union[QueueAlertPolicy, _Mapping]] = ...) -> None: ...

class UpdateQueueAlertPolicyResponse(_message.Message):
    __slots__ = ("alert_policy",)
    ALERT_POLICY_FIELD_NUMBER: _ClassVar[int]
    alert_policy: QueueAlertPolicy
    def __init__(self, alert_policy: _Optional[_Union[QueueAlertPolicy, _Mapping]] = ...) -> None: ...

class PauseQueueRequest(_message.Message):
    __slots__ = ("queue_name", "allow_missing")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    allow_missing: bool
    def __init__(self, queue_name: _Optional[str] = ..., allow_missing: _Optional[bool] = ...) -> None: ...

class PauseQueueResponse(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: Queue
    def __init__(self, queue: _Optional[_Union[Queue, _Mapping]] = ...) -> None: ...

class ResumeQueueRequest(_message.Message):
    __slots__ = ("queue_name",)
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    def __init__(self, queue_name: _Optional[str] = ...) -> None: ...

class ResumeQueueResponse(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: Queue
    def __init__(self, queue: _Optional[_Union[Queue, _Mapping]] = ...) -> None: ...

class CleanQueueRequest(_message.Message):
    __slots__ = ("queue_name", "state", "grace", "recovery_status")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GRACE_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_STATUS_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    state: _job_pb2.Job.State
    grace: _duration_pb2.Duration
    recovery_status: _job_pb2.DeadLetterEntry.RecoveryStatus
    def __init__(self, queue_name: _Optional[str] = ..., state: _Optional[_Union[_job_pb2.Job.State, str]] = ..., grace: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., recovery_status: _Optional[_Union[_job_pb2.DeadLetterEntry.RecoveryStatus, str]] = ...) -> None: ...

class CleanQueueResponse(_message.Message):
    __slots__ = ("deleted_count",)
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    def __init__(self, deleted_count: _Optional[int] = ...) -> None: ...

class TriggerRecoveryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TriggerRecoveryResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: RecoveryRun
    def __init__(self, run: _Optional[_Union[RecoveryRun, _Mapping]] = ...) -> None: ...

class GetRecoveryStatusRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetRecoveryStatusResponse(_message.Message):
    __slots__ = ("total_runs", "successful_runs", "failed_runs", "last_run_at", "last_run_duration", "next_run_at", "is_leader", "recent_runs", "next_page_token", "leader_node_id")
    TOTAL_RUNS_FIELD_NUMBER: _ClassVar[int]
    SUCCESSFUL_RUNS_FIELD_NUMBER: _ClassVar[int]
    FAILED_RUNS_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_DURATION_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    IS_LEADER_FIELD_NUMBER: _ClassVar[int]
    RECENT_RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEADER_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    total_runs: int
    successful_runs: int
    failed_runs: int
    last_run_at: _timestamp_pb2.Timestamp
    last_run_duration: _duration_pb2.Duration
    next_run_at: _timestamp_pb2.Timestamp
    is_leader: bool
    recent_runs: _containers.RepeatedCompositeFieldContainer[RecoveryRun]
    next_page_token: str
    leader_node_id: str
    def __init__(self, total_runs: _Optional[int] = ..., successful_runs: _Optional[int] = ..., failed_runs: _Optional[int] = ..., last_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_run_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., next_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., is_leader: _Optional[bool] = ..., recent_runs: _Optional[_Iterable[_Union[RecoveryRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., leader_node_id: _Optional[str] = ...) -> None: ...

class RecoveryRun(_message.Message):
    __slots__ = ("id", "started_at", "finished_at", "status", "trigger", "node_id", "counts", "error")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[RecoveryRun.Status]
        STATUS_RUNNING: _ClassVar[RecoveryRun.Status]
        STATUS_SUCCEEDED: _ClassVar[RecoveryRun.Status]
        STATUS_FAILED: _ClassVar[RecoveryRun.Status]
    STATUS_UNSPECIFIED: RecoveryRun.Status
    STATUS_RUNNING: RecoveryRun.Status
    STATUS_SUCCEEDED: RecoveryRun.Status
    STATUS_FAILED: RecoveryRun.Status
    class Trigger(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TRIGGER_UNSPECIFIED: _ClassVar[RecoveryRun.Trigger]
        TRIGGER_SCHEDULED: _ClassVar[RecoveryRun.Trigger]
        TRIGGER_MANUAL: _ClassVar[RecoveryRun.Trigger]
    TRIGGER_UNSPECIFIED: RecoveryRun.Trigger
    TRIGGER_SCHEDULED: RecoveryRun.Trigger
    TRIGGER_MANUAL: RecoveryRun.Trigger
    ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: int
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    status: RecoveryRun.Status
    trigger: RecoveryRun.Trigger
    node_id: str
    counts: RecoveryTaskCounts
    error: str
    def __init__(self, id: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[RecoveryRun.Status, str]] = ..., trigger: _Optional[_Union[RecoveryRun.Trigger, str]] = ..., node_id: _Optional[str] = ..., counts: _Optional[_Union[RecoveryTaskCounts, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class RecoveryTaskCounts(_message.Message):
    __slots__ = ("due_retries", "stalled_jobs", "exhausted_jobs", "deleted_completed_jobs", "deleted_retry_log_rows", "dead_letter_alerts", "stalled_jobs_dead_lettered", "dead_letter_alerts_cleared", "alert_webhook_failures", "deleted_activity_rows", "alert_emails_sent", "alert_email_failures", "alert_emails_given_up", "stalled_jobs_cancelled")
    DUE_RETRIES_FIELD_NUMBER: _ClassVar[int]
    STALLED_JOBS_FIELD_NUMBER: _ClassVar[int]
    EXHAUSTED_JOBS_FIELD_NUMBER: _ClassVar[int]
    DELETED_COMPLETED_JOBS_FIELD_NUMBER: _ClassVar[int]
    DELETED_RETRY_LOG_ROWS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_ALERTS_FIELD_NUMBER: _ClassVar[int]
    STALLED_JOBS_DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_ALERTS_CLEARED_FIELD_NUMBER: _ClassVar[int]
    ALERT_WEBHOOK_FAILURES_FIELD_NUMBER: _ClassVar[int]
    DELETED_ACTIVITY_ROWS_FIELD_NUMBER: _ClassVar[int]
    ALERT_EMAILS_SENT_FIELD_NUMBER: _ClassVar[int]
    ALERT_EMAIL_FAILURES_FIELD_NUMBER: _ClassVar[int]
    ALERT_EMAILS_GIVEN_UP_FIELD_NUMBER: _ClassVar[int]
    STALLED_JOBS_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    due_retries: int
    stalled_jobs: int
    exhausted_jobs: int
    deleted_completed_jobs: int
    deleted_retry_log_rows: int
    dead_letter_alerts: int
    stalled_jobs_dead_lettered: int
    dead_letter_alerts_cleared: int
    alert_webhook_failures: int
    deleted_activity_rows: int
    alert_emails_sent: int
    alert_email_failures: int
    alert_emails_given_up: int
    stalled_jobs_cancelled: int
    def __init__(self, due_retries: _Optional[int] = ..., stalled_jobs: _Optional[int] = ..., exhausted_jobs: _Optional[int] = ..., deleted_completed_jobs: _Optional[int] = ..., deleted_retry_log_rows: _Optional[int] = ..., dead_letter_alerts: _Optional[int] = ..., stalled_jobs_dead_lettered: _Optional[int] = ..., dead_letter_alerts_cleared: _Optional[int] = ..., alert_webhook_failures: _Optional[int] = ..., deleted_activity_rows: _Optional[int] = ..., alert_emails_sent: _Optional[int] = ..., alert_email_failures: _Optional[int] = ..., alert_emails_given_up: _Optional[int] = ..., stalled_jobs_cancelled: _Optional[int] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("id", "actor", "action", "target", "parameters", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    actor: str
    action: str
    target: str
    parameters: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., target: _Optional[str] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("actor", "action", "target", "created_after", "created_before", "page_size", "page_token")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    actor: str
    action: str
    target: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, actor: _Optional[str] = ..., action: _Optional[str] = ..., target: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("name", "cron", "time_zone", "queue_name", "job_name", "job_data", "retry_policy", "misfire_policy", "paused", "next_run_times", "last_run_at", "created_at", "updated_at")
    class MisfirePolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MISFIRE_POLICY_UNSPECIFIED: _ClassVar[Schedule.MisfirePolicy]
        MISFIRE_POLICY_SKIP: _ClassVar[Schedule.MisfirePolicy]
        MISFIRE_POLICY_RUN_ONCE: _ClassVar[Schedule.MisfirePolicy]
    MISFIRE_POLICY_UNSPECIFIED: Schedule.MisfirePolicy
    MISFIRE_POLICY_SKIP: Schedule.MisfirePolicy
    MISFIRE_POLICY_RUN_ONCE: Schedule.MisfirePolicy
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_DATA_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    MISFIRE_POLICY_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_TIMES_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    cron: str
    time_zone: str
    queue_name: str
    job_name: str
    job_data: _struct_pb2.Struct
    retry_policy: _job_pb2.RetryPolicy
    misfire_policy: Schedule.MisfirePolicy
    paused: bool
    next_run_times: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    last_run_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., cron: _Optional[str] = ..., time_zone: _Optional[str] = ..., queue_name: _Optional[str] = ..., job_name: _Optional[str] = ..., job_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., retry_policy: _Optional[_Union[_job_pb2.RetryPolicy, _Mapping]] = ..., misfire_policy: _Optional[_Union[Schedule.MisfirePolicy, str]] = ..., paused: _Optional[bool] = ..., next_run_times: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ..., last_run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateScheduleRequest(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class CreateScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules", "next_page_token")
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    next_page_token: str
    def __init__(self, schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class UpdateScheduleRequest(_message.Message):
    __slots__ = ("schedule", "update_mask")
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class PauseScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PauseScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class ResumeScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ResumeScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class DeleteScheduleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
