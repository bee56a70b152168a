"""The payload of a wake-up notice between processes (store/wakeups.py)."""

from __future__ import annotations

from queue_service.store.wakeups import MAX_PAYLOAD_BYTES, decode, encode


def test_a_notice_names_its_sender_and_the_jobs_made_ready_per_queue():
    assert decode(encode("me", {"emails": 3, "reports": 1})) == ("me", {"emails": 3, "reports": 1})
    assert decode(encode("me", None)) == ("me", None)


def test_too_many_queues_for_one_notice_become_every_queue():
    ready = {f"queue-{index:05d}": 1 for index in range(2_000)}
    payload = encode("me", ready)
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
    assert decode(payload) == ("me", None)


def test_a_notice_this_version_cannot_read_wakes_every_waiter():
    for payload in ("", "not json", "[]", '{"from": "x"}', '{"from": "x", "ready": {"a": "many"}}'):
        assert decode(payload) == ("", None)
