"""AIP-158 pages: the page size rule and opaque keyset page tokens, signed and bound to their filters."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from queue_service.core.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Tokens this service issues are far shorter; anything longer is refused before it is decoded.
MAX_TOKEN_LENGTH = 2048
MIN_KEY_BYTES = 16
_MAC_BYTES = 16
_INT64 = range(-(2**63), 2**63)

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str = ""
    total_size: int | None = None


def page_size(requested: int, field: str = "page_size") -> int:
    """0 means the default; larger than the maximum is lowered to it (AIP-158); negative is an error."""
    if requested < 0:
        raise InvalidArgument(f"{field} must not be negative", field=field)
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    raise TypeError(f"cannot put {type(value).__name__} in a page token")


def _filter_digest(filters: dict[str, Any]) -> str:
    canonical = json.dumps(filters, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid() -> InvalidArgument:
    return InvalidArgument("page_token is not a token this service issued", field="page_token")


class PageTokens:
    """Issues and reads page tokens, signed with an HMAC under the server's key.

    A token the key did not sign is refused before its content is read, so a caller cannot make
    up sort keys. Replicas behind one address must share the key, or a page fetched from one
    replica cannot be continued on another.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a page token key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def ephemeral(cls) -> PageTokens:
        """A random key: tokens work within this process only, and end when it stops."""
        return cls(secrets.token_bytes(32))

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, key: Sequence[Any], filters: dict[str, Any]) -> str:
        """An opaque token for the page after the row whose sort key is `key`.

        Keyset tokens stay valid while rows are added: the next page starts after a sort key,
        not at an offset.
        """
        payload = json.dumps(
            {"k": list(key), "f": _filter_digest(filters)}, default=_json_default, separators=(",", ":")
        )
        raw = payload.encode()
        return f"{_b64encode(raw)}.{_b64encode(self._mac(raw))}"

    def decode(self, token: str, filters: dict[str, Any], *, shape: Sequence[type]) -> list[Any] | None:
        """The sort key in `token`, checked against `shape` (int, str or datetime per position); None for no token."""
        if not token:
            return None
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
            raise _invalid()
        body, _, signature = token.partition(".")
        try:
            raw, mac = _b64decode(body), _b64decode(signature)
        except (binascii.Error, ValueError):
            raise _invalid() from None
        if not hmac.compare_digest(mac, self._mac(raw)):
            raise _invalid()
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise _invalid() from None
        if not isinstance(payload, dict) or not isinstance(payload.get("k"), list) or len(payload["k"]) != len(shape):
            raise _invalid()
        if payload.get("f") != _filter_digest(filters):
            raise InvalidArgument(
                "page_token was issued for different filters; send the same filters", field="page_token"
            )
        return [_key_part(value, kind) for value, kind in zip(payload["k"], shape, strict=True)]

    def next(self, items: list[T], limit: int, key, filters: dict[str, Any]) -> str:
        """A token for the next page when this one is full (fetch limit + 1 rows to know), else ""."""
        if len(items) <= limit:
            return ""
        return self.encode(key(items[limit - 1]), filters)


def _key_part(value: Any, kind: type) -> Any:
    """One sort-key value, strictly: what a row of the store can hold, nothing else."""
    if kind is datetime:
        if not isinstance(value, str):
            raise _invalid()
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise _invalid()
            return moment.astimezone(UTC)
        except (ValueError, OverflowError):
            raise _invalid() from None
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or value not in _INT64:
            raise _invalid()
        return value
    if kind is str:
        if not isinstance(value, str) or "\x00" in value:
            raise _invalid()
        return value
    raise TypeError(f"page tokens hold int, str or datetime, not {kind.__name__}")
