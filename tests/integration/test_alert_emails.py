"""Alert emails: a real local SMTP server (aiosmtpd) with STARTTLS and login receives each DLQ alert;
a server that is down or refuses delays alerts, records why, and loses none."""

from __future__ import annotations

import email
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from queue_service.alerts.email import EmailSettings
from queue_service.core.sweep.runner import Recovery
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.store.alert_outbox import outbox_of
from tests.certificates import CertificateAuthority
from tests.integration.test_dlq_alerts import dead_letter

USERNAME, PASSWORD = "alerts", "s3cret-smtp"


@dataclass
class Mailbox:
    """What the SMTP server took: one (envelope recipients, parsed message) per email."""

    received: list[tuple[list[str], Message]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    refuse_recipients: bool = False
    require_tls: bool = True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's naming
        if self.refuse_recipients:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.require_tls and session.ssl is None:
            return "530 5.7.0 the message must travel over STARTTLS"
        self.received.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            USERNAME.encode(),
            PASSWORD.encode(),
        ):
            self.logins.append(auth_data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


class SmtpServer:
    def __init__(self, mailbox: Mailbox, port: int, certificates: Path) -> None:
        authority = CertificateAuthority(certificates)
        pair = authority.issue("smtp.test", server=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pair.certificate, pair.key)
        self.ca_file = str(authority.pair.certificate)
        self.controller = Controller(
            mailbox,
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=True,
            auth_required=True,
            authenticator=mailbox.authenticate,
        )
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp_server(mailbox, smtp_port, tmp_path) -> Iterator[SmtpServer]:
    server = SmtpServer(mailbox, smtp_port, tmp_path)
    yield server
    server.stop()


def email_settings(port: int, ca_file: str, **overrides) -> EmailSettings:
    settings = dict(
        host="127.0.0.1",
        port=port,
        starttls=True,
        ca_file=ca_file,
        username=USERNAME,
        password=PASSWORD,
        sender="queue-service@example.com",
        recipients=("ops@example.com", "oncall@example.com"),
        timeout=timedelta(seconds=5),
        max_attempts=3,
    )
    settings.update(overrides)
    return EmailSettings(**settings)


def recovery_with_email(job_manager, settings: EmailSettings) -> Recovery:
    return Recovery(job_manager, RecoverySettings(dlq_alert_threshold=2, alert_email=settings))


def outbox_rows(database):
    with database.transaction() as repo:
        return outbox_of(repo).list_recent(limit=100)


def test_a_dlq_alert_is_emailed_over_starttls_with_login(job_manager, database, clock, mailbox, smtp_server, smtp_port):
    recovery = recovery_with_email(job_manager, email_settings(smtp_port, smtp_server.ca_file))
    dead_letter(job_manager, "emails", "e1", "e2")

    run = recovery.run_once()

    assert (run.counts["dead_letter_alerts"], run.counts["alert_emails_sent"]) == (1, 1)
    assert mailbox.logins == [USERNAME]
    [(envelope_recipients, message)] = mailbox.received
    assert envelope_recipients == ["ops@example.com", "oncall@example.com"]
    assert message["To"] == "ops@example.com, oncall@example.com"
    assert message["From"] == "queue-service@example.com"
    assert message["Subject"] == "[queue-service] emails: 2 dead letters pending"
    assert message["X-Queue-Alert"] == "dlq_threshold_crossed"
    assert message["X-Queue-Name"] == "emails"
    body = message.get_payload(decode=True).decode()
    assert "dead-letter queue of 'emails' has 2 pending entries (alert threshold 2)" in body
    assert clock.now().isoformat() in body
    [row] = outbox_rows(database)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, clock.now())

    # Sent once: the next sweep has nothing to send.
    assert recovery.run_once().counts["alert_emails_sent"] == 0
    assert len(mailbox.received) == 1


def test_a_down_smtp_server_delays_alerts_and_loses_none(job_manager, database, clock, mailbox, smtp_port):
    """Down for longer than the attempts allowed: every alert stays pending and goes out once it is back."""
    settings = email_settings(smtp_port, "", starttls=False, username="", password="", max_attempts=2)
    recovery = recovery_with_email(job_manager, settings)
    dead_letter(job_manager, "emails", "e1", "e2")
    dead_letter(job_manager, "sms", "s1", "s2")

    for _ in range(5):
        run = recovery.run_once()
        assert run.status.value == "succeeded"
        assert run.counts["alert_emails_sent"] == 0
        # One connection attempt per sweep, whatever the number waiting.
        assert run.counts["alert_email_failures"] == 1
        clock.advance(3600)
    rows = outbox_rows(database)
    assert sorted(row.queue_name for row in rows) == ["emails", "sms"]
    assert all(row.status == "pending" and row.attempts == 0 for row in rows)
    assert any("cannot connect to 127.0.0.1" in row.last_error for row in rows)

    mailbox.require_tls = False
    plain = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    plain.start()
    try:
        run = recovery.run_once()
    finally:
        plain.stop()
    assert run.counts["alert_emails_sent"] == 2
    assert sorted(message["X-Queue-Name"] for _, message in mailbox.received) == ["emails", "sms"]
    assert {row.status for row in outbox_rows(database)} == {"sent"}


def test_a_refused_email_is_retried_with_a_bound_then_recorded_failed(
    job_manager, database, clock, mailbox, smtp_server, smtp_port
):
    mailbox.refuse_recipients = True
    recovery = recovery_with_email(job_manager, email_settings(smtp_port, smtp_server.ca_file, max_attempts=3))
    dead_letter(job_manager, "emails", "e1", "e2")

    first = recovery.run_once()
    assert (first.counts["alert_email_failures"], first.counts["alert_emails_given_up"]) == (1, 0)
    [row] = outbox_rows(database)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "550" in row.last_error
    # Not due again before its retry delay.
    assert recovery.run_once().counts["alert_email_failures"] == 0

    clock.advance(timedelta(minutes=1))
    assert recovery.run_once().counts["alert_email_failures"] == 1
    clock.advance(timedelta(minutes=2))
    last = recovery.run_once()
    assert (last.counts["alert_email_failures"], last.counts["alert_emails_given_up"]) == (0, 1)
    [row] = outbox_rows(database)
    assert (row.status, row.attempts) == ("failed", 3)
    clock.advance(timedelta(hours=2))
    assert recovery.run_once().counts["alert_emails_given_up"] == 0
    assert mailbox.received == []
