"""Client side of grpc.health.v1, for `queue-service health` (container and Kubernetes probes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from queue_service.config import ConfigError


@dataclass(frozen=True)
class ProbeTls:
    ca: bytes
    certificate: bytes | None = None
    key: bytes | None = None
    server_name: str = ""

    @classmethod
    def load(cls, ca_file: str, cert_file: str = "", key_file: str = "", server_name: str = "") -> ProbeTls:
        if bool(cert_file) != bool(key_file):
            raise ConfigError("health: --tls-cert and --tls-key go together")

        def read(path: str, flag: str) -> bytes:
            try:
                return Path(path).read_bytes()
            except OSError as error:
                raise ConfigError(f"health: {flag}: cannot read {path}: {error.strerror}") from None

        return cls(
            read(ca_file, "--tls-ca"),
            read(cert_file, "--tls-cert") if cert_file else None,
            read(key_file, "--tls-key") if key_file else None,
            server_name,
        )

    def channel(self, target: str) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(self.ca, private_key=self.key, certificate_chain=self.certificate)
        options = [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []
        return grpc.secure_channel(target, credentials, options=options)


def probe(target: str, *, service: str = "", timeout: float = 3.0, tls: ProbeTls | None = None) -> tuple[bool, str]:
    """(True, "SERVING") only when the server answers SERVING within `timeout` seconds."""
    with tls.channel(target) if tls else grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as error:
            return False, f"{error.code().name}: {error.details() or 'no answer'}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, status
