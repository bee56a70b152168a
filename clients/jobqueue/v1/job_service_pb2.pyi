import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from jobqueue.v1 import job_pb2 as _job_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnqueueJobRequest(_message.Message):
    __slots__ = ("queue_name", "job_name", "job_data", "job_id", "priority", "run_at", "delay", "retry_policy", "unique")
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_DATA_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_FIELD_NUMBER: _ClassVar[int]
    queue_name: str
    job_name: str
    job_data: _struct_pb2.Struct
    job_id: str
    priority: int
    run_at: _timestamp_pb2.Timestamp
    delay: _duration_pb2.Duration
    retry_policy: _job_pb2.RetryPolicy
    unique: UniqueOptions
    def __init__(self, queue_name: _Optional[str] = ..., job_name: _Optional[str] = ..., job_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., job_id: _Optional[str] = ..., priority: _Optional[int] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retry_policy: _Optional[_Union[_job_pb2.RetryPolicy, _Mapping]] = ..., unique: _Optional[_Union[UniqueOptions, _Mapping]] = ...) -> None: ...

class UniqueOptions(_message.Message):
    __slots__ = ("unique_key", "window", "states")
    UNIQUE_KEY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    unique_key: str
    window: _duration_pb2.Duration
    states: _containers.RepeatedScalarFieldContainer[_job_pb2.Job.State]
    def __init__(self, unique_key: _Optional[str] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., states: _Optional[_Iterable[_Union[_job_pb2.Job.State, str]]] = ...) -> None: ...

class EnqueueJobResponse(_message.Message):
    __slots__ = ("job", "created")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    created: bool
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class EnqueueJobsRequest(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[EnqueueJobRequest]
    def __init__(self, jobs: _Optional[_Iterable[_Union[EnqueueJobRequest, _Mapping]]] = ...) -> None: ...

class EnqueueJobsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EnqueueJobResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[EnqueueJobResponse, _Mapping]]] = ...) -> None: ...

class LeaseJobsRequest(_message.Message):
    __slots__ = ("queue_names", "worker_id", "max_jobs", "lease_duration", "wait", "max_response_bytes")
    QUEUE_NAMES_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_JOBS_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    MAX_RESPONSE_BYTES_FIELD_NUMBER: _ClassVar[int]
    queue_names: _containers.RepeatedScalarFieldContainer[str]
    worker_id: str
    max_jobs: int
    lease_duration: _duration_pb2.Duration
    wait: _duration_pb2.Duration
    max_response_bytes: int
    def __init__(self, queue_names: _Optional[_Iterable[str]] = ..., worker_id: _Optional[str] = ..., max_jobs: _Optional[int] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_response_bytes: _Optional[int] = ...) -> None: ...

class LeaseJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[_job_pb2.Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[_job_pb2.Job, _Mapping]]] = ...) -> None: ...

class HeartbeatJobRequest(_message.Message):
    __slots__ = ("job_id", "attempt_number", "lease_duration")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt_number: int
    lease_duration: _duration_pb2.Duration
    def __init__(self, job_id: _Optional[str] = ..., attempt_number: _Optional[int] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class HeartbeatJobResponse(_message.Message):
    __slots__ = ("lease_expires_at", "cancel_requested")
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    lease_expires_at: _timestamp_pb2.Timestamp
    cancel_requested: bool
    def __init__(self, lease_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_requested: _Optional[bool] = ...) -> None: ...

class TrackStartRequest(_message.Message):
    __slots__ = ("job_id", "queue_name", "job_name", "job_data", "worker_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_DATA_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue_name: str
    job_name: str
    job_data: _struct_pb2.Struct
    worker_id: str
    def __init__(self, job_id: _Optional[str] = ..., queue_name: _Optional[str] = ..., job_name: _Optional[str] = ..., job_data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., worker_id: _Optional[str] = ...) -> None: ...

class TrackStartResponse(_message.Message):
    __slots__ = ("job", "created")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    created: bool
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class TrackCompletionRequest(_message.Message):
    __slots__ = ("job_id", "attempt_number", "result", "processing_duration")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_DURATION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt_number: int
    result: _struct_pb2.Struct
    processing_duration: _duration_pb2.Duration
    def __init__(self, job_id: _Optional[str] = ..., attempt_number: _Optional[int] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., processing_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class TrackCompletionResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class TrackCompletionsRequest(_message.Message):
    __slots__ = ("completions",)
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    completions: _containers.RepeatedCompositeFieldContainer[TrackCompletionRequest]
    def __init__(self, completions: _Optional[_Iterable[_Union[TrackCompletionRequest, _Mapping]]] = ...) -> None: ...

class TrackCompletionsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TrackCompletionResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TrackCompletionResult, _Mapping]]] = ...) -> None: ...

class TrackCompletionResult(_message.Message):
    __slots__ = ("job_id", "status")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: _status_pb2.Status
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class TrackFailureRequest(_message.Message):
    __slots__ = ("job_id", "attempt_number", "error", "non_retryable", "retry_after")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NON_RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt_number: int
    error: _job_pb2.JobError
    non_retryable: bool
    retry_after: _duration_pb2.Duration
    def __init__(self, job_id: _Optional[str] = ..., attempt_number: _Optional[int] = ..., error: _Optional[_Union[_job_pb2.JobError, _Mapping]] = ..., non_retryable: _Optional[bool] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class TrackFailureResponse(_message.Message):
    __slots__ = ("should_retry", "retry_delay", "next_retry_at", "remaining_retries", "moved_to_dead_letter", "dead_letter_id", "job")
    SHOULD_RETRY_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAY_FIELD_NUMBER: _ClassVar[int]
    NEXT_RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_RETRIES_FIELD_NUMBER: _ClassVar[int]
    MOVED_TO_DEAD_LETTER_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    should_retry: bool
    retry_delay: _duration_pb2.Duration
    next_retry_at: _timestamp_pb2.Timestamp
    remaining_retries: int
    moved_to_dead_letter: bool
    dead_letter_id: str
    job: _job_pb2.Job
    def __init__(self, should_retry: _Optional[bool] = ..., retry_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., next_retry_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., remaining_retries: _Optional[int] = ..., moved_to_dead_letter: _Optional[bool] = ..., dead_letter_id: _Optional[str] = ..., job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...

class MoveToDeadLetterRequest(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class MoveToDeadLetterResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _job_pb2.DeadLetterEntry
    def __init__(self, entry: _Optional[_Union[_job_pb2.DeadLetterEntry, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job", "error_history", "retry_log", "retry_log_omitted_count")
    JOB_FIELD_NUMBER: _ClassVar[int]
    ERROR_HISTORY_FIELD_NUMBER: _ClassVar[int]
    RETRY_LOG_FIELD_NUMBER: _ClassVar[int]
    RETRY_LOG_OMITTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    error_history: _containers.RepeatedCompositeFieldContainer[_job_pb2.JobError]
    retry_log: _containers.RepeatedCompositeFieldContainer[_job_pb2.RetryLogEntry]
    retry_log_omitted_count: int
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ..., error_history: _Optional[_Iterable[_Union[_job_pb2.JobError, _Mapping]]] = ..., retry_log: _Optional[_Iterable[_Union[_job_pb2.RetryLogEntry, _Mapping]]] = ..., retry_log_omitted_count: _Optional[int] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: _job_pb2.Job
    def __init__(self, job: _Optional[_Union[_job_pb2.Job, _Mapping]] = ...) -> None: ...
