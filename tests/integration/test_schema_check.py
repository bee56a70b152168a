"""The server serves only the schema it was written for: a database that is empty, behind or ahead of the
code stops `serve` with one line saying what to run, and a schema changed under a running server turns
health NOT_SERVING until it is right again."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from queue_service.api.server import QueueServer
from queue_service.config import ConfigError
from queue_service.store import migrate
from tests.conftest import BACKENDS, make_config
from tests.databases import empty_database
from tests.integration.test_health import NOT_SERVING, SERVING, Client

pytestmark = pytest.mark.slow

QUEUE_SERVICE = str(Path(sys.executable).parent / "queue-service")
FUTURE_REVISION = "0099_from_a_newer_release"


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path) -> Iterator[Engine]:
    with empty_database(request.param, tmp_path) as engine:
        yield engine


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def stamp(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})


def start_error(engine: Engine) -> str:
    with pytest.raises(ConfigError) as raised:
        QueueServer(make_config(url_of(engine), migrate_on_start=False))
    return str(raised.value)


def test_an_unmigrated_database_is_refused(engine):
    message = start_error(engine)
    assert "no queue-service schema" in message
    assert "queue-service migrate" in message


@pytest.mark.parametrize("revision", ["0003_recovery_leases", "0004_check_constraint_names"])
def test_a_database_behind_the_code_is_refused(engine, revision):
    migrate.upgrade(engine, revision)
    message = start_error(engine)
    assert f"at revision {revision}" in message
    assert migrate.head_revision(engine) in message
    assert "queue-service migrate" in message


def test_a_database_ahead_of_the_code_is_refused(engine):
    migrate.upgrade(engine)
    stamp(engine, FUTURE_REVISION)
    message = start_error(engine)
    assert FUTURE_REVISION in message and "newer" in message


def test_a_database_at_head_serves(engine):
    migrate.upgrade(engine)
    server = QueueServer(make_config(url_of(engine), migrate_on_start=False)).start()
    client = Client(server)
    try:
        client.wait_for(SERVING)
    finally:
        client.channel.close()
        server.stop(0)


def test_health_follows_a_schema_changed_under_the_running_server(engine):
    migrate.upgrade(engine)
    head = migrate.head_revision(engine)
    server = QueueServer(make_config(url_of(engine), migrate_on_start=False)).start()
    client = Client(server)
    try:
        client.wait_for(SERVING)
        stamp(engine, FUTURE_REVISION)
        client.wait_for(NOT_SERVING)
        stamp(engine, head)
        client.wait_for(SERVING)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM alembic_version"))
        client.wait_for(NOT_SERVING)
    finally:
        client.channel.close()
        server.stop(0)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_exits_2_with_one_line_saying_what_to_run(engine, workers, tmp_path):
    migrate.upgrade(engine, "0004_check_constraint_names")
    result = subprocess.run(
        [QUEUE_SERVICE, "serve", "--port", "0", "--no-migrate", "--workers", workers, "--database-url", url_of(engine)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "0004_check_constraint_names" in lines[0] and "queue-service migrate" in lines[0]
