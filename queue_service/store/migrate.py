"""Apply the Alembic migrations shipped in queue_service.migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

import queue_service.migrations

VERSION_TABLE = "alembic_version"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(queue_service.migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revisions(engine: Engine) -> tuple[str, ...]:
    """The revisions stamped in the database; empty when it has none.

    Read directly rather than through a MigrationContext, which logs at INFO each time:
    health checks ask every few seconds.
    """
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return ()
        rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        connection.rollback()
    return tuple(sorted(rows))


def revision_known(engine: Engine, revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config(engine)).get_revision(revision) is not None
    except CommandError:
        return False
