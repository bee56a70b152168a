"""Bearer-token authentication and role checks for every RPC, as a gRPC server interceptor.

`worker` tokens may call JobService; `admin` tokens may call every service. Health and
reflection stay open. A missing or unknown token gets UNAUTHENTICATED, a token of the wrong
role PERMISSION_DENIED; both carry a google.rpc.Status with ErrorInfo, like every other error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from queue_service.api.errors import status_for
from queue_service.api.principal import attach_principal
from queue_service.api.tokens import NamedToken, Role, TokenSet
from queue_service.core.audit import AuditLog
from queue_service.core.errors import PermissionDenied, Unauthenticated

logger = logging.getLogger(__name__)

OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
# Services a role may call besides those open to everyone; None means every service.
ROLE_SERVICES: Mapping[Role, frozenset[str] | None] = {
    Role.WORKER: frozenset({"jobqueue.v1.JobService"}),
    Role.ADMIN: None,
}


def service_of(method: str) -> str:
    """ "/jobqueue.v1.JobService/GetJob" -> "jobqueue.v1.JobService"."""
    return method.lstrip("/").split("/", 1)[0]


def may_call(role: Role, service: str) -> bool:
    allowed = ROLE_SERVICES[role]
    return allowed is None or service in allowed


def bearer_token(metadata: tuple[tuple[str, Any], ...] | None) -> str | None:
    """The token of the single `authorization: Bearer <token>` header, or None if absent or malformed."""
    values = [value for key, value in metadata or () if key == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


# Metadata a dashboard sends with a sign-in check: the browser's address, for the audit record.
SIGN_IN_CLIENT_METADATA = "jobqueue-sign-in-client"
MAX_AUDITED_VALUE_LENGTH = 200


def _metadata_value(metadata: tuple[tuple[str, Any], ...] | None, key: str) -> str | None:
    for name, value in metadata or ():
        if name == key and isinstance(value, str):
            return "".join(char for char in value if char.isprintable())[:MAX_AUDITED_VALUE_LENGTH]
    return None


class AuthInterceptor(grpc.ServerInterceptor):
    """Checks every call's token; with an audit log, records the calls refused for a wrong token or role.

    Calls with no token at all are not audited: probes and misconfigured clients would fill the log.
    """

    def __init__(self, tokens: TokenSet, audit_log: AuditLog | None = None) -> None:
        if not tokens:
            raise ValueError("AuthInterceptor needs at least one token")
        self.tokens = tokens
        self.audit_log = audit_log

    def _auditing(self, handler_call_details, actor: str, reason: str):
        """What the refusing handler calls with its context, to record the refusal."""
        if self.audit_log is None:
            return None
        audit_log = self.audit_log
        method = handler_call_details.method
        client = _metadata_value(handler_call_details.invocation_metadata, SIGN_IN_CLIENT_METADATA)

        def audit(context: grpc.ServicerContext) -> None:
            details = {"peer": context.peer()[:MAX_AUDITED_VALUE_LENGTH]}
            if client is not None:
                details["sign_in_client"] = client
            audit_log.record_refused_call(actor=actor, method=method, reason=reason, details=details)

        return audit

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        service = service_of(method)
        if service in OPEN_SERVICES:
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: UNIMPLEMENTED, as without auth
        presented = bearer_token(handler_call_details.invocation_metadata)
        token: NamedToken | None = self.tokens.authenticate(presented) if presented is not None else None
        if token is None:
            reason = "MISSING_TOKEN" if presented is None else "INVALID_TOKEN"
            logger.info("rejected %s: %s", method, "no bearer token" if presented is None else "unknown token")
            message = (
                "this call needs an `authorization: Bearer <token>` header"
                if presented is None
                else "the bearer token is not valid"
            )
            audit = self._auditing(handler_call_details, "anonymous", reason) if presented is not None else None
            return rejecting(handler, Unauthenticated(message, reason=reason), audit)
        if not may_call(token.role, service):
            logger.info("rejected %s: token %r has role %s", method, token.name, token.role.value)
            return rejecting(
                handler,
                PermissionDenied(
                    f"token {token.name!r} has role {token.role.value!r}, which may not call {service}",
                    reason="ROLE_NOT_ALLOWED",
                ),
                self._auditing(handler_call_details, token.name, "ROLE_NOT_ALLOWED"),
            )
        return bound_to(handler, token.name, is_admin=token.role == Role.ADMIN)


def rejecting(
    handler: grpc.RpcMethodHandler,
    error: Exception,
    audit: Callable[[grpc.ServicerContext], None] | None = None,
) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that ends the call with `error`'s status, audited first."""
    status = status_for(error)

    def reject(_request: Any, context: grpc.ServicerContext) -> Any:
        if audit is not None:
            audit(context)
        context.abort_with_status(status)

    # The request is never read, so it is not even deserialised.
    return rebuild(handler, lambda _behavior: reject, request_deserializer=None)


def bound_to(handler: grpc.RpcMethodHandler, principal_name: str, *, is_admin: bool = False) -> grpc.RpcMethodHandler:
    """`handler` with the caller's name and role attached to the context the servicer receives."""

    def wrap(behavior: Callable) -> Callable:
        def attached(request: Any, context: grpc.ServicerContext) -> Any:
            attach_principal(context, principal_name, is_admin=is_admin)
            return behavior(request, context)

        return attached

    return rebuild(handler, wrap)


_KEEP = object()


def rebuild(
    handler: grpc.RpcMethodHandler, wrap: Callable[[Callable], Callable], request_deserializer: Any = _KEEP
) -> grpc.RpcMethodHandler:
    """A handler of the same streaming shape whose behaviour is `wrap(original behaviour)`."""
    serializers = {
        "request_deserializer": handler.request_deserializer if request_deserializer is _KEEP else request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream), **serializers)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary), **serializers)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream), **serializers)
    return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary), **serializers)
