"""Page tokens: opaque, signed, bound to their filters, and strict about what they decode."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from queue_service.core import paging
from queue_service.core.errors import InvalidArgument

SHAPE = (int, datetime, str)
KEY = [3, datetime(2026, 2, 14, 10, 0, tzinfo=UTC), "entry-id"]
SECRET = b"a-page-token-key-for-tests"
TOKENS = paging.PageTokens(SECRET)
WIRE_KEY = [3, "2026-02-14T10:00:00+00:00", "entry-id"]


def test_round_trip_and_filter_binding():
    token = TOKENS.encode(KEY, {"queue_name": "emails"})
    assert TOKENS.decode(token, {"queue_name": "emails"}, shape=SHAPE) == KEY
    assert TOKENS.decode("", {"queue_name": "emails"}, shape=SHAPE) is None
    with pytest.raises(InvalidArgument, match="different filters") as raised:
        TOKENS.decode(token, {"queue_name": "sms"}, shape=SHAPE)
    assert raised.value.field == "page_token"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unsigned(key, filters) -> str:
    """What tokens were before they were signed: base64 JSON with a digest anyone can recompute."""
    return b64(json.dumps({"k": key, "f": paging._filter_digest(filters)}).encode())


def signed(key, filters, secret: bytes = SECRET) -> str:
    """A token signed with `secret` whatever its content: with the server's key, as if it had leaked."""
    raw = json.dumps({"k": key, "f": paging._filter_digest(filters)}).encode()
    return f"{b64(raw)}.{b64(hmac.new(secret, raw, hashlib.sha256).digest()[:16])}"


def test_a_token_from_another_key_or_altered_is_refused():
    token = TOKENS.encode(KEY, {})
    body, signature = token.split(".")
    altered = b64(base64.urlsafe_b64decode(body + "==").replace(b'"entry-id"', b'"entry-ie"'))
    for forged in (
        paging.PageTokens(b"another-key-of-sixteen-bytes").encode(KEY, {}),
        f"{altered}.{signature}",
        unsigned(WIRE_KEY, {}),
        signed(WIRE_KEY, {}, b"another-key-of-sixteen-bytes"),
    ):
        with pytest.raises(InvalidArgument, match="not a token this service issued") as raised:
            TOKENS.decode(forged, {}, shape=SHAPE)
        assert raised.value.field == "page_token"


@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        "a.b.c",
        "x" * 5000,
        signed([1, 2], {}),
        b64(b"[1, 2]"),
        signed([3, "2026-02-14T10:00:00+00:00"], {}),  # too short
        signed(["3", "2026-02-14T10:00:00+00:00", "x"], {}),  # wrong type
        signed([True, "2026-02-14T10:00:00+00:00", "x"], {}),  # a bool is not an int here
        signed([3, "yesterday", "x"], {}),
        signed([3, "2026-02-14T10:00:00", "x"], {}),  # naive time
        # What a forged token did to the stores before tokens were signed: each gave INTERNAL.
        signed([2**63, "2026-02-14T10:00:00+00:00", "x"], {}),
        signed([-(2**63) - 1, "2026-02-14T10:00:00+00:00", "x"], {}),
        signed([3, "0001-01-01T00:00:00+14:00", "x"], {}),
        signed([3, "2026-02-14T10:00:00+00:00", "nul\x00"], {}),
        signed([3, "2026-02-14T10:00:00+00:00", [[[[["deep"]]]]]], {}),
    ],
)
def test_malformed_tokens_are_invalid_arguments_even_when_signed(token):
    with pytest.raises(InvalidArgument) as raised:
        TOKENS.decode(token, {}, shape=SHAPE)
    assert raised.value.field == "page_token"


def test_deep_nesting_in_a_signed_token_is_invalid_not_a_crash():
    deep = "[" * 100_000 + "]" * 100_000
    raw = ('{"k":' + deep + ',"f":"x"}').encode()
    token = f"{b64(raw)}.{b64(hmac.new(SECRET, raw, hashlib.sha256).digest()[:16])}"
    with pytest.raises(InvalidArgument):
        TOKENS.decode(token, {}, shape=SHAPE)


def test_keys_are_at_least_sixteen_bytes():
    with pytest.raises(ValueError):
        paging.PageTokens(b"short")


def test_page_size_rule():
    assert paging.page_size(0) == paging.DEFAULT_PAGE_SIZE
    assert paging.page_size(7) == 7
    assert paging.page_size(10**6) == paging.MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument):
        paging.page_size(-1)
