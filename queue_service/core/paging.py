"""AIP-158 pages: the page size rule and opaque keyset page tokens bound to the filters they came with."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from queue_service.core.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

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


def encode_token(key: Sequence[Any], filters: dict[str, Any]) -> str:
    """An opaque token for the page after the row whose sort key is `key`.

    Keyset tokens stay valid while rows are added: the next page starts after a sort key,
    not at an offset.
    """
    payload = {"k": list(key), "f": _filter_digest(filters)}
    raw = json.dumps(payload, default=_json_default, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, filters: dict[str, Any], *, shape: Sequence[type]) -> list[Any] | None:
    """The sort key in `token`, checked against `shape` (int, str or datetime per position); None for no token."""
    if not token:
        return None
    invalid = InvalidArgument("page_token is not a token this service issued", field="page_token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(payload, dict) or not isinstance(payload.get("k"), list) or len(payload["k"]) != len(shape):
        raise invalid
    if payload.get("f") != _filter_digest(filters):
        raise InvalidArgument("page_token was issued for different filters; send the same filters", field="page_token")
    key = []
    for value, kind in zip(payload["k"], shape, strict=True):
        if kind is datetime:
            try:
                value = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                raise invalid from None
            if value.tzinfo is None:
                raise invalid
        elif kind is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise invalid
        elif not isinstance(value, kind):
            raise invalid
        key.append(value)
    return key


def next_token(items: list[T], limit: int, key, filters: dict[str, Any]) -> str:
    """A token for the next page when this one is full (fetch limit + 1 rows to know), else ""."""
    if len(items) <= limit:
        return ""
    return encode_token(key(items[limit - 1]), filters)
