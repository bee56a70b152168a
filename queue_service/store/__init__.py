"""Persistence: SQLAlchemy tables, row records and the SQL for every job operation."""
