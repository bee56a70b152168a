"""Command-line flags and environment variables of the email channel."""

from __future__ import annotations

import argparse
import os
from datetime import timedelta

from queue_service.alerts.email import DEFAULT_SMTP_PORT, EmailSettings
from queue_service.config import ConfigError, env_str

SMTP_PASSWORD_ENV = "QUEUE_SMTP_PASSWORD"


def add_email_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--smtp-host",
        default=env_str("QUEUE_SMTP_HOST", ""),
        help="SMTP server for alert emails; empty turns email alerts off (env QUEUE_SMTP_HOST)",
    )
    group.add_argument(
        "--smtp-port",
        default=env_str("QUEUE_SMTP_PORT", str(DEFAULT_SMTP_PORT)),
        help=f"SMTP port (env QUEUE_SMTP_PORT, default {DEFAULT_SMTP_PORT})",
    )
    group.add_argument(
        "--smtp-starttls",
        choices=("on", "off"),
        default=env_str("QUEUE_SMTP_STARTTLS", "on"),
        help="upgrade to TLS with STARTTLS before login (env QUEUE_SMTP_STARTTLS, default on)",
    )
    group.add_argument(
        "--smtp-ca-file",
        default=env_str("QUEUE_SMTP_CA_FILE", ""),
        help="PEM bundle that verifies the SMTP server, default the system's (env QUEUE_SMTP_CA_FILE)",
    )
    group.add_argument(
        "--smtp-username",
        default=env_str("QUEUE_SMTP_USERNAME", ""),
        help=f"SMTP login; its password is read from {SMTP_PASSWORD_ENV} only (env QUEUE_SMTP_USERNAME)",
    )
    group.add_argument(
        "--alert-email-from",
        default=env_str("QUEUE_ALERT_EMAIL_FROM", ""),
        help="sender address of alert emails (env QUEUE_ALERT_EMAIL_FROM)",
    )
    group.add_argument(
        "--alert-email-to",
        default=env_str("QUEUE_ALERT_EMAIL_TO", ""),
        help="comma-separated addresses that receive every alert (env QUEUE_ALERT_EMAIL_TO)",
    )
    group.add_argument(
        "--alert-email-attempts",
        default=env_str("QUEUE_ALERT_EMAIL_ATTEMPTS", "10"),
        help="tries of an email the server refuses before it is recorded as failed "
        "(env QUEUE_ALERT_EMAIL_ATTEMPTS, default 10)",
    )


def _addresses(raw: str) -> tuple[str, ...]:
    addresses = tuple(address.strip() for address in raw.split(",") if address.strip())
    for address in addresses:
        if "@" not in address or any(char.isspace() for char in address):
            raise ConfigError(f"--alert-email-to / QUEUE_ALERT_EMAIL_TO: {address!r} is not an email address")
    return addresses


def email_settings(args: argparse.Namespace, environ: dict[str, str] | None = None) -> EmailSettings:
    environ = dict(os.environ) if environ is None else environ
    host = args.smtp_host.strip()
    if not host:
        return EmailSettings()
    try:
        port = int(args.smtp_port)
    except ValueError:
        raise ConfigError(f"--smtp-port / QUEUE_SMTP_PORT must be an integer, got {args.smtp_port!r}") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"--smtp-port / QUEUE_SMTP_PORT must be between 1 and 65535, got {port}")
    try:
        attempts = int(args.alert_email_attempts)
    except ValueError:
        attempts = 0
    if not 1 <= attempts <= 1000:
        raise ConfigError(
            f"--alert-email-attempts / QUEUE_ALERT_EMAIL_ATTEMPTS must be between 1 and 1000, got {args.alert_email_attempts!r}"
        )
    sender = args.alert_email_from.strip()
    if "@" not in sender:
        raise ConfigError(
            "--alert-email-from / QUEUE_ALERT_EMAIL_FROM must be an email address when --smtp-host is set"
        )
    password = environ.get(SMTP_PASSWORD_ENV, "")
    if args.smtp_username and not password:
        raise ConfigError(f"--smtp-username / QUEUE_SMTP_USERNAME needs {SMTP_PASSWORD_ENV}")
    starttls = args.smtp_starttls == "on"
    if args.smtp_username and not starttls:
        # Never send a password in the clear.
        raise ConfigError("--smtp-username / QUEUE_SMTP_USERNAME needs --smtp-starttls on")
    return EmailSettings(
        host=host,
        port=port,
        starttls=starttls,
        ca_file=args.smtp_ca_file,
        username=args.smtp_username,
        password=password,
        sender=sender,
        recipients=_addresses(args.alert_email_to),
        timeout=timedelta(seconds=10),
        max_attempts=attempts,
    )
