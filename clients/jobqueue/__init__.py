"""Client library for the job retry and recovery service.

    from jobqueue import JobClient, Worker

Depends only on grpcio, protobuf and grpcio-status. The generated stubs are in jobqueue.v1.
"""

from jobqueue.connection import TlsConfig
from jobqueue.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    JobQueueError,
    NonRetryableError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RetryAfterError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from jobqueue.job_client import JobClient, TrackedRun
from jobqueue.models import (
    DeadLetterEntry,
    DeathReason,
    EnqueueResult,
    FailureResult,
    Job,
    JobDetails,
    JobError,
    JobRequest,
    JobState,
    RecoveryStatus,
    RetryDecision,
    RetryLogEntry,
    RetryPolicy,
    StartResult,
)
from jobqueue.worker import Worker

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DeadLetterEntry",
    "DeadlineExceeded",
    "DeathReason",
    "EnqueueResult",
    "FailedPrecondition",
    "FailureResult",
    "Internal",
    "InvalidArgument",
    "Job",
    "JobClient",
    "JobDetails",
    "JobError",
    "JobQueueError",
    "JobRequest",
    "JobState",
    "NonRetryableError",
    "NotFound",
    "PermissionDenied",
    "RecoveryStatus",
    "ResourceExhausted",
    "RetryAfterError",
    "RetryDecision",
    "RetryLogEntry",
    "RetryPolicy",
    "StartResult",
    "TlsConfig",
    "TrackedRun",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Worker",
]
