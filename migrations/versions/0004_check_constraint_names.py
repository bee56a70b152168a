"""Check constraints get the names schema.py gives them.

Revision ID: 0004_check_constraint_names
Revises: 0003_recovery_leases
Create Date: 2026-11-28

Earlier revisions passed full names such as "ck_queue_jobs_state_valid" to CheckConstraint, and
Alembic applied the naming convention "ck_%(table_name)s_%(constraint_name)s" on top of them, so
the database holds "ck_queue_jobs_ck_queue_jobs_state_valid". This revision renames every such
doubled name. A new revision gives a check constraint its short name ("state_valid"), or wraps a
full name in op.f(); tests/integration/test_migrations.py compares the names with schema.py.

PostgreSQL renames constraints in place. SQLite has no statement for it; since a constraint's
name is not part of the stored rows, the table definition is edited as SQLite documents for
changes that leave the file format alone (writable_schema, then a new schema_version), instead
of copying whole tables and recreating their indexes, triggers and the views over them.
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0004_check_constraint_names"
down_revision = "0003_recovery_leases"
branch_labels = None
depends_on = None


def _single(table: str, name: str) -> str:
    doubled = f"ck_{table}_ck_{table}_"
    return f"ck_{table}_{name[len(doubled) :]}" if name.startswith(doubled) else name


def _doubled(table: str, name: str) -> str:
    single, doubled = f"ck_{table}_", f"ck_{table}_ck_{table}_"
    if name.startswith(single) and not name.startswith(doubled):
        return f"ck_{table}_{name}"
    return name


def _rename(new_name) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        checks = bind.execute(
            sa.text(
                "SELECT rel.relname, con.conname FROM pg_constraint con"
                " JOIN pg_class rel ON rel.oid = con.conrelid"
                " JOIN pg_namespace ns ON ns.oid = rel.relnamespace"
                " WHERE con.contype = 'c' AND ns.nspname = current_schema()"
            )
        ).all()
        for table, name in checks:
            if new_name(table, name) != name:
                op.execute(f'ALTER TABLE "{table}" RENAME CONSTRAINT "{name}" TO "{new_name(table, name)}"')
        return

    definitions = bind.execute(
        sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE '%CONSTRAINT ck_%'")
    ).all()
    changed = {}
    for table, sql in definitions:
        renamed = re.sub(
            r"CONSTRAINT (ck_\w+) CHECK", lambda match: f"CONSTRAINT {new_name(table, match.group(1))} CHECK", sql
        )
        if renamed != sql:
            changed[table] = renamed
    if not changed:
        return
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    for table, sql in changed.items():
        bind.execute(
            sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :table"),
            {"sql": sql, "table": table},
        )
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    # Reading the tables makes SQLite parse the edited definitions now, failing the migration if one is wrong.
    for table in changed:
        bind.exec_driver_sql(f'SELECT * FROM "{table}" LIMIT 0').all()


def upgrade() -> None:
    _rename(_single)


def downgrade() -> None:
    _rename(_doubled)
