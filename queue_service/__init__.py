"""Job retry and recovery service: exponential backoff, dead-letter queue and automatic recovery over gRPC."""

__version__ = "0.1.0"
