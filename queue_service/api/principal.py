"""Who is calling: the one place servicers learn the actor recorded in audit events and its role.

Servicers only ever call `current_actor(context)` and `caller_is_admin(context)`. Authentication
attaches the authenticated principal's name and role to the call's context with `attach_principal` (for example in an interceptor
that wraps the method handler, which receives the same context object as the servicer). Without
authentication configured nothing is attached and the actor is "anonymous".
"""

from __future__ import annotations

ANONYMOUS = "anonymous"

_ATTRIBUTE = "_jobqueue_principal_name"
_ADMIN_ATTRIBUTE = "_jobqueue_principal_is_admin"


def attach_principal(context, name: str, *, is_admin: bool = False) -> None:
    """Record the authenticated principal's name (a token's name) and role on this call's context."""
    setattr(context, _ATTRIBUTE, name)
    setattr(context, _ADMIN_ATTRIBUTE, is_admin)


def caller_is_admin(context) -> bool:
    """True for an admin token, and for every caller when authentication is off."""
    return getattr(context, _ADMIN_ATTRIBUTE, True)


def current_actor(context) -> str:
    """The name of the authenticated caller of this call, or "anonymous" without authentication."""
    return getattr(context, _ATTRIBUTE, None) or ANONYMOUS
