"""The asyncio channel: the synchronous client's channel settings and typed errors over grpc.aio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
import grpc.aio

from jobqueue.connection import (
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    Targets,
    TlsConfig,
    channel_settings,
    describe_targets,
    token_metadata,
)
from jobqueue.errors import from_rpc_error


class Connection:
    """A grpc.aio channel plus what every call needs: the token, a deadline, and typed errors.

    Create it inside a running event loop: a grpc.aio channel belongs to the loop it was made in.
    """

    def __init__(
        self,
        target: Targets = DEFAULT_TARGET,
        *,
        token: str | None = None,
        tls: TlsConfig | bool | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        channel: grpc.aio.Channel | None = None,
        retry: bool = True,
        options: Sequence[tuple[str, Any]] = (),
        idempotent_methods: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.target = describe_targets(target)
        self.timeout = timeout
        if channel is not None:
            self.channel = channel
            self._owns_channel = False
            self._metadata = token_metadata(token)
            return
        settings = channel_settings(
            target, token=token, tls=tls, retry=retry, options=options, idempotent_methods=idempotent_methods
        )
        self._metadata = settings.metadata
        if settings.credentials is not None:
            self.channel = grpc.aio.secure_channel(settings.target, settings.credentials, options=settings.options)
        else:
            self.channel = grpc.aio.insecure_channel(settings.target, options=settings.options)
        self._owns_channel = True

    def deadline(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    async def unary(self, method: Callable[..., Any], request: Any, timeout: float | None = None) -> Any:
        """Call a unary RPC; a failure raises the typed error for its status."""
        try:
            return await method(request, timeout=self.deadline(timeout), metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def stream(
        self,
        method: Callable[..., Any],
        request: Any,
        timeout: float | None = None,
        *,
        default_deadline: bool = True,
    ) -> AsyncIterator[Any]:
        """Call a server-streaming RPC and yield its responses; a failure raises the typed error.

        Without `default_deadline`, a None timeout means no deadline rather than the client's.
        """
        deadline = self.deadline(timeout) if default_deadline else timeout
        call = method(request, timeout=deadline, metadata=self._metadata)
        try:
            async for response in call:
                yield response
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()  # a no-op once the stream has ended; stops it if the caller left early

    async def close(self) -> None:
        if self._owns_channel:
            await self.channel.close()

    def __repr__(self) -> str:
        return f"Connection({self.target!r})"
