"""Client side of grpc.health.v1, for `queue-service health` (container and Kubernetes probes)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def probe(target: str, *, service: str = "", timeout: float = 3.0) -> tuple[bool, str]:
    """(True, "SERVING") only when the server answers SERVING within `timeout` seconds."""
    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as error:
            return False, f"{error.code().name}: {error.details() or 'no answer'}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, status
