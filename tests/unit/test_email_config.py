"""Alert email settings from flags and environment: off by default, each bad value named."""

from __future__ import annotations

import pytest

from queue_service.alerts.email_config import email_settings
from queue_service.cli import build_parser
from queue_service.config import ConfigError


def parsed(*flags: str):
    return build_parser().parse_args(["serve", "--port", "0", *flags])


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in (
        "QUEUE_SMTP_HOST",
        "QUEUE_SMTP_PORT",
        "QUEUE_SMTP_STARTTLS",
        "QUEUE_SMTP_USERNAME",
        "QUEUE_SMTP_PASSWORD",
        "QUEUE_ALERT_EMAIL_FROM",
        "QUEUE_ALERT_EMAIL_TO",
        "QUEUE_ALERT_EMAIL_ATTEMPTS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_email_is_off_without_a_host():
    assert not email_settings(parsed(), environ={}).enabled


def test_a_full_configuration_with_login():
    settings = email_settings(
        parsed(
            "--smtp-host",
            "smtp.example.com",
            "--smtp-port",
            "2525",
            "--smtp-username",
            "alerts",
            "--alert-email-from",
            "queue@example.com",
            "--alert-email-to",
            "ops@example.com, oncall@example.com",
            "--alert-email-attempts",
            "4",
        ),
        environ={"QUEUE_SMTP_PASSWORD": "secret"},
    )
    assert (settings.host, settings.port, settings.starttls) == ("smtp.example.com", 2525, True)
    assert (settings.username, settings.password, settings.max_attempts) == ("alerts", "secret", 4)
    assert settings.recipients == ("ops@example.com", "oncall@example.com")
    assert "secret" not in repr(settings)


@pytest.mark.parametrize(
    ("flags", "environ", "named"),
    [
        (("--smtp-port", "99999"), {}, "--smtp-port"),
        (("--smtp-port", "x"), {}, "--smtp-port"),
        (("--alert-email-attempts", "0"), {}, "--alert-email-attempts"),
        (("--alert-email-attempts", "99999999999999999999"), {}, "--alert-email-attempts"),
        (("--alert-email-to", "not an address"), {}, "--alert-email-to"),
        (("--smtp-username", "alerts"), {}, "QUEUE_SMTP_PASSWORD"),
        (("--smtp-username", "alerts", "--smtp-starttls", "off"), {"QUEUE_SMTP_PASSWORD": "p"}, "--smtp-starttls on"),
    ],
)
def test_bad_values_are_named(flags, environ, named):
    with pytest.raises(ConfigError, match=named):
        email_settings(
            parsed("--smtp-host", "smtp.example.com", "--alert-email-from", "q@example.com", *flags), environ=environ
        )


def test_a_sender_is_required():
    with pytest.raises(ConfigError, match="--alert-email-from"):
        email_settings(parsed("--smtp-host", "smtp.example.com"), environ={})
