"""The channel both clients share: target, token, TLS, deadlines and gRPC's own retry policy."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from jobqueue.errors import from_rpc_error

DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT = 30.0

# Retried by gRPC itself when the call ends UNAVAILABLE (server unreachable, restarting, or its
# database briefly down). Only methods that are safe to repeat are listed by the clients.
RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

Response = TypeVar("Response")


def service_config(idempotent_methods: Mapping[str, Iterable[str]]) -> str:
    """A gRPC service config (JSON) that retries `idempotent_methods` ({service: [method, ...]}) on UNAVAILABLE."""
    names = [
        {"service": service, "method": method}
        for service, methods in idempotent_methods.items()
        for method in methods
    ]
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": RETRY_POLICY}]})


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings: PEM bytes. No root certificates means the system's trust store."""

    root_certificates: bytes | None = None
    # For mutual TLS: the client's certificate chain and private key.
    certificate_chain: bytes | None = field(default=None, repr=False)
    private_key: bytes | None = field(default=None, repr=False)
    # Host name to verify the server certificate against, when it differs from the target's.
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("a client certificate needs its private key, and the other way round")

    @classmethod
    def from_files(
        cls,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        server_name: str | None = None,
    ) -> TlsConfig:
        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return cls(read(ca_file), read(cert_file), read(key_file), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


class Connection:
    """A channel plus what every call needs: the token, a deadline, and typed errors."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: str | None = None,
        tls: TlsConfig | bool | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        channel: grpc.Channel | None = None,
        retry: bool = True,
        options: Sequence[tuple[str, Any]] = (),
        idempotent_methods: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        tls_config = TlsConfig() if tls is True else tls or None
        # On TLS the token travels as call credentials, which gRPC never sends in plaintext;
        # a plaintext channel (loopback, or one passed in) carries it as call metadata.
        self._metadata: tuple[tuple[str, str], ...] = ()
        if channel is not None:
            self.channel = channel
            self._owns_channel = False
            if token:
                self._metadata = (("authorization", f"Bearer {token}"),)
            return
        channel_options: list[tuple[str, Any]] = [("grpc.enable_retries", 1 if retry else 0)]
        if retry and idempotent_methods:
            channel_options.append(("grpc.service_config", service_config(idempotent_methods)))
        if tls_config and tls_config.server_name:
            channel_options.append(("grpc.ssl_target_name_override", tls_config.server_name))
        channel_options.extend(options)
        if tls_config:
            credentials = tls_config.credentials()
            if token:
                credentials = grpc.composite_channel_credentials(
                    credentials, grpc.access_token_call_credentials(token)
                )
            self.channel = grpc.secure_channel(target, credentials, options=channel_options)
        else:
            if token:
                self._metadata = (("authorization", f"Bearer {token}"),)
            self.channel = grpc.insecure_channel(target, options=channel_options)
        self._owns_channel = True

    def deadline(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    def unary(self, method: Callable[..., Response], request: Any, timeout: float | None = None) -> Response:
        """Call a unary RPC; a failure raises the typed error for its status."""
        try:
            return method(request, timeout=self.deadline(timeout), metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def stream(
        self,
        method: Callable[..., Iterable[Response]],
        request: Any,
        timeout: float | None = None,
        *,
        default_deadline: bool = True,
    ) -> Iterator[Response]:
        """Call a server-streaming RPC and yield its responses; a failure raises the typed error.

        Without `default_deadline`, a None timeout means no deadline rather than the client's.
        """
        deadline = self.deadline(timeout) if default_deadline else timeout
        try:
            yield from method(request, timeout=deadline, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def close(self) -> None:
        if self._owns_channel:
            self.channel.close()

    def __repr__(self) -> str:
        return f"Connection({self.target!r})"
