"""DLQ alerts: a warning and one webhook POST per threshold crossing, to a real local HTTP server."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from queue_service.core.dead_letters import DeadLetterManager
from queue_service.core.jobs import JobSpec
from queue_service.core.sweep.runner import Recovery
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.core.sweep.tasks.dlq_alerts import DlqAlerter, DlqAlertsConfig
from queue_service.domain import RunStatus


class WebhookReceiver:
    """A loopback HTTP server that records every POST body; it can answer slowly or with an error."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.status = status
        self.delay = delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that timed out and hung up is what the slow-webhook test wants

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/dlq"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


def dead_letter(job_manager, queue: str, *job_ids: str) -> None:
    job_manager.enqueue([JobSpec(queue, "send", job_id=job_id) for job_id in job_ids])
    for job_id in job_ids:
        job_manager.move_to_dead_letter(job_id, "invalid phone number")


def triage(job_manager, *job_ids: str) -> None:
    """An operator gives up on entries, taking them out of the pending count."""
    dead_letters = DeadLetterManager(job_manager)
    for job_id in job_ids:
        with job_manager.database.transaction() as repo:
            entry = repo.get_dead_letter_for_job(job_id)
        dead_letters.mark_permanently_failed(entry.id, "bad phone numbers", actor="ops")


def alerter_for(job_manager, url: str, threshold: int = 2, timeout: float = 5.0, node_id: str = "node-a") -> DlqAlerter:
    return DlqAlerter(
        job_manager.database,
        job_manager.clock,
        DlqAlertsConfig(
            threshold=threshold, webhook_url=url, webhook_timeout=timedelta(seconds=timeout), node_id=node_id
        ),
    )


def test_webhook_is_posted_once_per_crossing(job_manager, database, clock, receiver, caplog):
    alerter = alerter_for(job_manager, receiver.url)
    dead_letter(job_manager, "emails", "e1")
    dead_letter(job_manager, "sms", "s1")
    assert alerter.run_once().raised == 0
    assert receiver.bodies == []

    dead_letter(job_manager, "emails", "e2")
    with caplog.at_level(logging.WARNING, logger="queue_service.core.sweep.tasks.dlq_alerts"):
        counts = alerter.run_once()

    assert (counts.raised, counts.cleared, counts.webhook_failures) == (1, 0, 0)
    assert len(receiver.bodies) == 1
    body = receiver.bodies[0]
    assert body["event"] == "dlq_threshold_crossed"
    assert (body["queue_name"], body["pending_count"], body["threshold"]) == ("emails", 2, 2)
    assert body["raised_at"] == clock.now().isoformat()
    assert body["node_id"] == "node-a"
    assert "emails" in body["text"]
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert any("DLQ alert" in record.message and "'emails'" in record.message for record in caplog.records)

    # Still above the threshold, even growing: no new POST, not on this node nor after a restart.
    assert alerter.run_once().raised == 0
    dead_letter(job_manager, "emails", "e3")
    assert alerter.run_once().raised == 0
    assert alerter_for(job_manager, receiver.url, node_id="node-b").run_once().raised == 0
    assert len(receiver.bodies) == 1

    # Below the threshold clears the alert (no POST); crossing again alerts again.
    triage(job_manager, "e1", "e2")
    assert alerter.run_once().cleared == 1
    assert alerter.run_once().cleared == 0
    assert len(receiver.bodies) == 1
    dead_letter(job_manager, "emails", "e4")
    clock.advance(60)
    assert alerter.run_once().raised == 1
    assert len(receiver.bodies) == 2
    assert (receiver.bodies[1]["queue_name"], receiver.bodies[1]["pending_count"]) == ("emails", 2)
    assert receiver.bodies[1]["raised_at"] == clock.now().isoformat()


def test_each_queue_alerts_on_its_own(job_manager, receiver):
    alerter = alerter_for(job_manager, receiver.url)
    dead_letter(job_manager, "emails", "e1", "e2")
    dead_letter(job_manager, "sms", "s1", "s2", "s3")

    assert alerter.run_once().raised == 2
    assert sorted((body["queue_name"], body["pending_count"]) for body in receiver.bodies) == [
        ("emails", 2),
        ("sms", 3),
    ]


def test_threshold_zero_turns_alerts_off(job_manager, receiver):
    dead_letter(job_manager, "emails", "e1", "e2", "e3")
    assert alerter_for(job_manager, receiver.url, threshold=0).run_once().raised == 0
    assert receiver.bodies == []


def test_alerts_without_a_webhook_only_log(job_manager, caplog):
    dead_letter(job_manager, "emails", "e1", "e2")
    with caplog.at_level(logging.WARNING, logger="queue_service.core.sweep.tasks.dlq_alerts"):
        counts = alerter_for(job_manager, "").run_once()
    assert (counts.raised, counts.webhook_failures) == (1, 0)
    assert any("has 2 pending entries" in record.message for record in caplog.records)


@pytest.mark.parametrize("failure", ["error status", "timeout", "connection refused"])
def test_a_failing_webhook_does_not_fail_the_run(job_manager, failure):
    # The slow receiver would answer 200 after 10 s: only the 0.3 s time-out makes it count as failed.
    receiver = WebhookReceiver(
        status=500 if failure == "error status" else 200, delay=10.0 if failure == "timeout" else 0
    )
    url = receiver.url
    if failure == "connection refused":
        receiver.close()
    try:
        dead_letter(job_manager, "emails", "e1", "e2")
        recovery = Recovery(
            job_manager,
            RecoverySettings(dlq_alert_threshold=2, dlq_alert_webhook_url=url, webhook_timeout=timedelta(seconds=0.3)),
        )
        run = recovery.run_once()

        assert run.status == RunStatus.SUCCEEDED
        assert run.error is None
        assert run.counts["dead_letter_alerts"] == 1
        assert run.counts["alert_webhook_failures"] == 1
        # The crossing counts as alerted: the next run does not retry the broken webhook.
        assert recovery.run_once().counts["dead_letter_alerts"] == 0
    finally:
        if failure != "connection refused":
            receiver.close()
