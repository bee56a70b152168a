"""The machine's message brokers for integration tests: reachable, or a skip (a failure in CI)."""

from __future__ import annotations

import os

import pytest

RABBITMQ_URL_ENV = "QUEUE_TEST_RABBITMQ_URL"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"


REQUIRE_BROKERS_ENV = "QUEUE_TEST_REQUIRE_BROKERS"


def required() -> bool:
    """Broker tests must run, never skip: in CI (.ci/run sets QUEUE_TEST_REQUIRE_BROKERS=1, CI sets
    CI=true), and wherever PostgreSQL is required."""
    return (
        os.environ.get(REQUIRE_BROKERS_ENV) == "1"
        or os.environ.get("CI", "").lower() == "true"
        or os.environ.get("QUEUE_TEST_REQUIRE_POSTGRES") == "1"
    )


def rabbitmq_url() -> str:
    """The RabbitMQ URL, after checking that it answers."""
    from kombu import Connection

    url = os.environ.get(RABBITMQ_URL_ENV) or DEFAULT_RABBITMQ_URL
    try:
        with Connection(url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:  # noqa: BLE001 - any failure means the broker is unusable here
        reason = f"RabbitMQ at {url} is not reachable ({error!r}); set {RABBITMQ_URL_ENV}"
        if required():
            pytest.fail(
                f"{reason}; broker tests are required here ({REQUIRE_BROKERS_ENV}, CI or QUEUE_TEST_REQUIRE_POSTGRES)"
            )
        pytest.skip(reason)
    return url


def delete_queues(url: str, names: list[str]) -> None:
    """Remove a test run's queues from the broker, with the exchanges Celery names after them."""
    from kombu import Connection

    with Connection(url, connect_timeout=5) as connection:
        for name in names:
            for delete in ("queue_delete", "exchange_delete"):
                # A failed delete closes the channel: each gets its own.
                channel = connection.channel()
                try:
                    getattr(channel, delete)(name)
                except Exception:  # noqa: BLE001 - already gone
                    pass
                finally:
                    try:
                        channel.close()
                    except Exception:  # noqa: BLE001 - closed by the broker after a failed delete
                        pass
