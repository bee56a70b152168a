"""Persistence: SQLAlchemy tables and all SQL, a module a table, each with its row mapper.

`repository.Repository` is the transaction's entry point, composed of the table classes of
jobs.py, dead_letters.py, retry_log.py, queues.py, audit.py, recovery.py and activity.py; the
other tables' statements are reached from it (`ScheduleStore.of(repo)`, `breakers_of(repo)`, ...).
"""
