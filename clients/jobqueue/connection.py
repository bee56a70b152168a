"""The core every client shares: targets, token, TLS, deadlines, gRPC's own retry and balancing policy.

`open_channel` makes a channel the way the clients do; `ClientCore` is the base of every
synchronous client (jobqueue.aio.connection has the asyncio ones): a client names its stub and the
methods safe to retry, and gets the channel, its options, TLS, the token and deadlines from here.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self, TypedDict, TypeVar, Unpack

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

# How soon a client finds a server that is back. gRPC's own wait between connection attempts
# starts at 1 s and grows to 120 s, so after an outage of a minute a client went on failing for
# up to a minute more once its server was back.
RECONNECT_BACKOFF: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)

Response = TypeVar("Response")


# Calls go to every address of the target in turn, skipping any whose grpc.health.v1 status
# (of the whole server, "") is not SERVING: a replica that is draining or has lost its database.
# A lone server is never skipped, so its callers get its own error (and reason), not an empty one.
LOAD_BALANCING: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
HEALTH_CHECKING: dict[str, Any] = {"healthCheckConfig": {"serviceName": ""}}

Targets = str | Sequence[str]


def service_config(
    idempotent_methods: Mapping[str, Iterable[str]], *, retry: bool = True, health_checking: bool = True
) -> str:
    """A gRPC service config (JSON): round_robin over the addresses (with `health_checking`, only the
    SERVING ones), and with `retry`, a retry of `idempotent_methods` ({service: [method, ...]}) on
    UNAVAILABLE."""
    config: dict[str, Any] = dict(LOAD_BALANCING)
    if health_checking:
        config.update(HEALTH_CHECKING)
    names = [
        {"service": service, "method": method} for service, methods in idempotent_methods.items() for method in methods
    ]
    if retry and names:
        config["methodConfig"] = [{"name": names, "retryPolicy": RETRY_POLICY}]
    return json.dumps(config)


def _split_host_port(target: str) -> tuple[str, int]:
    host, separator, port = target.rpartition(":")
    if not separator or not port.isdigit():
        raise ValueError(f"target {target!r} needs a port: host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _addresses(target: str) -> list[tuple[int, str]]:
    """(address family, address) of each address `target` (host:port) names; a name is looked up now."""
    host, port = _split_host_port(target)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise ValueError(f"cannot resolve target {target!r}: {error}") from None
        ips = [ipaddress.ip_address(info[4][0]) for info in found]
    else:
        ips = [ip]
    return [
        (socket.AF_INET6, f"[{ip}]:{port}") if ip.version == 6 else (socket.AF_INET, f"{ip}:{port}")
        for ip in dict.fromkeys(ips)
    ]


def channel_target(targets: Targets) -> str:
    """The gRPC target for one target string, or for several host:port targets.

    One string goes to gRPC as it is: host:port, or any gRPC target such as dns:///name:port
    (every address the name has, re-resolved as it changes). Several targets are resolved here,
    once, into one ipv4: (or ipv6:) address list, because gRPC's resolvers take one name each.
    """
    if isinstance(targets, str):
        return targets
    if not targets:
        raise ValueError("give at least one target")
    if len(targets) == 1:
        return targets[0]
    resolved = [_addresses(target) for target in targets]
    for family, scheme in ((socket.AF_INET, "ipv4"), (socket.AF_INET6, "ipv6")):
        if all(any(found == family for found, _ in addresses) for addresses in resolved):
            chosen = dict.fromkeys(address for addresses in resolved for found, address in addresses if found == family)
            return f"{scheme}:{','.join(chosen)}"
    raise ValueError(f"targets {list(targets)!r} mix IPv4-only and IPv6-only addresses")


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


@dataclass(frozen=True)
class ChannelSettings:
    """What a channel is made of, for the synchronous and the asyncio channel alike."""

    target: str
    options: list[tuple[str, Any]]
    # None: a plaintext channel.
    credentials: grpc.ChannelCredentials | None
    # Sent with every call: the token, on a plaintext channel.
    metadata: tuple[tuple[str, str], ...]


def token_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


class TransportOptions(TypedDict, total=False):
    """How a channel is made: `tls` True (system trust store) or a TlsConfig; `retry` False turns
    gRPC's retry off; `options`, gRPC channel options added to the client's own, and taking the
    place of any of the same name."""

    tls: TlsConfig | bool | None
    retry: bool
    options: Sequence[tuple[str, Any]]


class ClientOptions(TransportOptions, total=False):
    """What every client takes besides its target: the token, each call's deadline in seconds (None
    for none), and a channel to use instead of making one."""

    token: str | None
    timeout: float | None
    channel: Any


def channel_settings(
    targets: Targets,
    *,
    token: str | None = None,
    tls: TlsConfig | bool | None = None,
    retry: bool = True,
    options: Sequence[tuple[str, Any]] = (),
    idempotent_methods: Mapping[str, Iterable[str]] | None = None,
) -> ChannelSettings:
    tls_config = TlsConfig() if tls is True else tls or None
    target = channel_target(targets)
    own: list[tuple[str, Any]] = [
        ("grpc.enable_retries", 1 if retry else 0),
        (
            "grpc.service_config",
            service_config(idempotent_methods or {}, retry=retry, health_checking=may_name_replicas(targets)),
        ),
        *RECONNECT_BACKOFF,
    ]
    if not isinstance(targets, str) and len(targets) > 1:
        # Requests and TLS name checks use the first target's host name, not an address.
        own.append(("grpc.default_authority", targets[0]))
    if tls_config and tls_config.server_name:
        own.append(("grpc.ssl_target_name_override", tls_config.server_name))
    # gRPC keeps the first of two options of one name: the caller's are the only ones of theirs.
    given = {name for name, _ in options}
    channel_options = [*options, *(option for option in own if option[0] not in given)]
    if not tls_config:
        return ChannelSettings(target, channel_options, None, token_metadata(token))
    # On TLS the token travels as call credentials, which gRPC never sends in plaintext.
    credentials = tls_config.credentials()
    if token:
        credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
    return ChannelSettings(target, channel_options, credentials, ())


def may_name_replicas(targets: Targets) -> bool:
    """Whether `targets` can stand for several servers: a list of them, an address list, or a DNS name."""
    if not isinstance(targets, str):
        return len(targets) > 1
    return targets.startswith("dns:") or ("," in targets and targets.startswith(("ipv4:", "ipv6:")))


def describe_targets(targets: Targets) -> str:
    return targets if isinstance(targets, str) else ",".join(targets)


def _sync_channel(settings: ChannelSettings) -> grpc.Channel:
    if settings.credentials is not None:
        return grpc.secure_channel(settings.target, settings.credentials, options=settings.options)
    return grpc.insecure_channel(settings.target, options=settings.options)


def open_channel(
    target: Targets = DEFAULT_TARGET,
    *,
    idempotent_methods: Mapping[str, Iterable[str]] | None = None,
    **transport: Unpack[TransportOptions],
) -> grpc.Channel:
    """A channel made as the clients make theirs: round-robin over the healthy replicas, gRPC's retry
    of `idempotent_methods` on UNAVAILABLE, TLS. It carries no token: send one as call metadata
    (`token_metadata`), or hand the channel to a client (`channel=`, `token=`)."""
    return _sync_channel(channel_settings(target, idempotent_methods=idempotent_methods, **transport))


class BaseConnection:
    """What the synchronous and the asyncio connection share: the target, token, TLS and deadline."""

    def __init__(
        self,
        target: Targets = DEFAULT_TARGET,
        *,
        token: str | None = None,
        tls: TlsConfig | bool | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        channel: Any = None,
        retry: bool = True,
        options: Sequence[tuple[str, Any]] = (),
        idempotent_methods: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.target = describe_targets(target)
        self.timeout = timeout
        # The options this connection made its channel with; None for a channel passed in.
        self.options: tuple[tuple[str, Any], ...] | None = None
        if channel is not None:
            # A plaintext channel passed in carries the token as call metadata.
            self._metadata = token_metadata(token)
            self._owns_channel = False
            self.channel = channel
            return
        settings = channel_settings(
            target, token=token, tls=tls, retry=retry, options=options, idempotent_methods=idempotent_methods
        )
        self._metadata = settings.metadata
        self._owns_channel = True
        self.options = tuple(settings.options)
        self.channel = self._open(settings)

    def _open(self, settings: ChannelSettings) -> Any:
        """A new channel made of `settings`."""
        raise NotImplementedError

    def deadline(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r})"


class Connection(BaseConnection):
    """A channel plus what every call needs: the token, a deadline, and typed errors."""

    channel: grpc.Channel

    def _open(self, settings: ChannelSettings) -> grpc.Channel:
        return _sync_channel(settings)

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


class BaseClient:
    """What every client is made of, synchronous or asyncio: one connection and the stub of its service.

    A client names `stub_class` and the `idempotent_methods` ({service: [method, ...]}) gRPC may
    retry on UNAVAILABLE; target, token, TLS, deadline, retry and channel options work alike for all.
    """

    stub_class: ClassVar[type[Any]]
    idempotent_methods: ClassVar[Mapping[str, Iterable[str]]] = {}
    connection_class: ClassVar[type[BaseConnection]]
    # Told apart from the synchronous client of the same name in repr().
    repr_prefix: ClassVar[str] = ""

    def __init__(self, target: Targets = DEFAULT_TARGET, **connection: Unpack[ClientOptions]) -> None:
        self.connection = self.connection_class(target, idempotent_methods=self.idempotent_methods, **connection)
        self.stub = self.stub_class(self.connection.channel)

    def __repr__(self) -> str:
        return f"{self.repr_prefix}{type(self).__name__}({self.connection.target!r})"


class ClientCore(BaseClient):
    """The base of every synchronous client; close it, or use it as a context manager."""

    connection_class = Connection
    connection: Connection

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()
