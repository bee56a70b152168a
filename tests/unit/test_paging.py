"""Page tokens: opaque, bound to their filters, and strict about what they decode."""

import base64
import json
from datetime import UTC, datetime

import pytest

from queue_service.core import paging
from queue_service.core.errors import InvalidArgument

SHAPE = (int, datetime, str)
KEY = [3, datetime(2026, 2, 14, 10, 0, tzinfo=UTC), "entry-id"]


def test_round_trip_and_filter_binding():
    token = paging.encode_token(KEY, {"queue_name": "emails"})
    assert paging.decode_token(token, {"queue_name": "emails"}, shape=SHAPE) == KEY
    assert paging.decode_token("", {"queue_name": "emails"}, shape=SHAPE) is None
    with pytest.raises(InvalidArgument, match="different filters") as raised:
        paging.decode_token(token, {"queue_name": "sms"}, shape=SHAPE)
    assert raised.value.field == "page_token"


def forged(key, filters):
    payload = {"k": key, "f": paging._filter_digest(filters)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        forged([3, "2026-02-14T10:00:00+00:00"], {}),  # too short
        forged(["3", "2026-02-14T10:00:00+00:00", "x"], {}),  # wrong type
        forged([True, "2026-02-14T10:00:00+00:00", "x"], {}),  # a bool is not an int here
        forged([3, "yesterday", "x"], {}),
        forged([3, "2026-02-14T10:00:00", "x"], {}),  # naive time
    ],
)
def test_malformed_tokens_are_invalid_arguments(token):
    with pytest.raises(InvalidArgument) as raised:
        paging.decode_token(token, {}, shape=SHAPE)
    assert raised.value.field == "page_token"


def test_page_size_rule():
    assert paging.page_size(0) == paging.DEFAULT_PAGE_SIZE
    assert paging.page_size(7) == 7
    assert paging.page_size(10**6) == paging.MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument):
        paging.page_size(-1)
