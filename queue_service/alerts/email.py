"""The email channel: one message per alert over SMTP (standard library smtplib), STARTTLS and login
as configured."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from queue_service.alerts.message import Alert

DEFAULT_SMTP_PORT = 587


@dataclass(frozen=True)
class EmailSettings:
    """Where and how alert emails are sent; no host (the default) turns email alerts off."""

    host: str = ""
    port: int = DEFAULT_SMTP_PORT
    # Upgrade the connection with STARTTLS before login and sending; refuses servers that cannot.
    starttls: bool = True
    # PEM bundle that verifies the server's certificate; empty: the system's trusted roots.
    ca_file: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = ""
    # Receive every alert, in addition to each queue's own recipients.
    recipients: tuple[str, ...] = ()
    timeout: timedelta = timedelta(seconds=10)
    # A send that keeps failing is retried this many times in all, then recorded as failed.
    max_attempts: int = 10

    @property
    def enabled(self) -> bool:
        return bool(self.host)


class SmtpServerUnavailable(Exception):
    """The server could not be reached or refused the session: no other alert can go out now."""


class MessageRefused(Exception):
    """The server refused this one message (a recipient, the size); others may still go out."""


def email_message(alert: Alert, sender: str, recipients: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = alert.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="queue-service")
    # Lets mail filters sort alerts without parsing subjects.
    message["X-Queue-Alert"] = alert.kind
    message["X-Queue-Name"] = alert.queue_name
    message.set_content(alert.body)
    return message


class SmtpMailer:
    """Opens one SMTP session per `session()` and sends alerts through it."""

    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings

    def session(self) -> SmtpSession:
        return SmtpSession(self.settings)


class SmtpSession:
    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpSession:
        settings = self.settings
        try:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout.total_seconds())
        except (OSError, smtplib.SMTPException) as error:
            raise SmtpServerUnavailable(f"cannot connect to {settings.host}:{settings.port}: {error}") from error
        try:
            if settings.starttls:
                context = ssl.create_default_context(cafile=settings.ca_file or None)
                smtp.starttls(context=context)
            if settings.username:
                smtp.login(settings.username, settings.password)
        except (OSError, smtplib.SMTPException) as error:
            smtp.close()
            raise SmtpServerUnavailable(f"{settings.host}:{settings.port} refused the session: {error}") from error
        self._smtp = smtp
        return self

    def send(self, alert: Alert, recipients: Sequence[str]) -> None:
        assert self._smtp is not None
        message = email_message(alert, self.settings.sender, recipients)
        try:
            # Recipients refused while others took it raise nothing: sending again would duplicate
            # the message for those who have it.
            self._smtp.send_message(message, from_addr=self.settings.sender, to_addrs=list(recipients))
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
            raise MessageRefused(str(error)) from error
        except (OSError, smtplib.SMTPException) as error:
            raise SmtpServerUnavailable(
                f"{self.settings.host}:{self.settings.port} failed mid-session: {error}"
            ) from error

    def __exit__(self, *exc_info: object) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()
