"""Sign-in sessions: the sealed token in the session cookie, the session id, and the CSRF token."""

from __future__ import annotations

import base64
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request

SESSION_COOKIE = "queue_dashboard"
SESSION_MAX_AGE = 8 * 3600


class TokenSeal:
    """Encrypts the operator's token for the session cookie, which is signed but otherwise readable.

    Whoever copies the cookie then holds a session that ends with SESSION_MAX_AGE, not the admin
    token itself. The key comes from the session secret, so replicas sharing the secret share it.
    """

    def __init__(self, secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"queue-dashboard session token")
        self._fernet = Fernet(base64.urlsafe_b64encode(key.derive(secret.encode())))

    def seal(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode("ascii")

    def open(self, sealed: object) -> str | None:
        """The token, or None when the value is missing, forged, from another secret or too old."""
        if not isinstance(sealed, str) or not sealed:
            return None
        try:
            return self._fernet.decrypt(sealed.encode("ascii"), ttl=SESSION_MAX_AGE).decode()
        except (InvalidToken, UnicodeError):
            return None


def session_id(request: Request) -> str | None:
    """The id of the signed-in session, which sign-out revokes; None without one."""
    value = request.session.get("sid")
    return value if isinstance(value, str) and value else None


def sealed_token(request: Request) -> object:
    return request.session.get("sealed_token")


def start_session(request: Request, sealed: str) -> None:
    """A fresh session for a signed-in operator: nothing carries over from before the sign-in."""
    request.session.clear()
    request.session["sealed_token"] = sealed
    request.session["sid"] = secrets.token_urlsafe(16)
    request.session["csrf"] = secrets.token_urlsafe(32)


def csrf_token(request: Request) -> str:
    """The session's CSRF token for the forms on a page, made on first use."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_matches(request: Request, submitted: object) -> bool:
    """Whether a form's CSRF token is the session's; a session without one matches nothing."""
    expected = request.session.get("csrf", "")
    return bool(expected) and hmac.compare_digest(str(submitted), expected)
