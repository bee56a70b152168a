"""Alembic migrations, installed as queue_service.migrations."""
