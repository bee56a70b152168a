"""The asyncio client core: the synchronous clients' channel settings and typed errors over grpc.aio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Self, Unpack

import grpc
import grpc.aio

from jobqueue.connection import (
    DEFAULT_TARGET,
    BaseClient,
    BaseConnection,
    ChannelSettings,
    Targets,
    TransportOptions,
    channel_settings,
)
from jobqueue.errors import from_rpc_error


def _aio_channel(settings: ChannelSettings) -> grpc.aio.Channel:
    if settings.credentials is not None:
        return grpc.aio.secure_channel(settings.target, settings.credentials, options=settings.options)
    return grpc.aio.insecure_channel(settings.target, options=settings.options)


def open_channel(
    target: Targets = DEFAULT_TARGET,
    *,
    idempotent_methods: Mapping[str, Iterable[str]] | None = None,
    **transport: Unpack[TransportOptions],
) -> grpc.aio.Channel:
    """The grpc.aio channel of jobqueue.connection.open_channel; make it inside a running event loop."""
    return _aio_channel(channel_settings(target, idempotent_methods=idempotent_methods, **transport))


class Connection(BaseConnection):
    """A grpc.aio channel plus what every call needs: the token, a deadline, and typed errors.

    Create it inside a running event loop: a grpc.aio channel belongs to the loop it was made in.
    """

    channel: grpc.aio.Channel

    def _open(self, settings: ChannelSettings) -> grpc.aio.Channel:
        return _aio_channel(settings)

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


class ClientCore(BaseClient):
    """The base of every asyncio client. Create it inside a running event loop, and close it
    (`await client.close()` or `async with`) before the loop ends."""

    connection_class = Connection
    connection: Connection
    repr_prefix = "aio."

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.connection.close()
