"""Who is calling: the one place servicers learn the actor recorded in audit events.

Servicers only ever call `current_actor(context)`. Authentication attaches the authenticated
principal's name to the call's context with `attach_principal` (for example in an interceptor
that wraps the method handler, which receives the same context object as the servicer). Without
authentication configured nothing is attached and the actor is "anonymous".
"""

from __future__ import annotations

ANONYMOUS = "anonymous"

_ATTRIBUTE = "_jobqueue_principal_name"


def attach_principal(context, name: str) -> None:
    """Record the authenticated principal's name (a token's name) on this call's context."""
    setattr(context, _ATTRIBUTE, name)


def current_actor(context) -> str:
    """The name of the authenticated caller of this call, or "anonymous" without authentication."""
    return getattr(context, _ATTRIBUTE, None) or ANONYMOUS
