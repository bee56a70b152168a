"""Store-level failures the API reports with their own status codes."""


class StoreUnavailable(Exception):
    """The database could not be reached or is too busy; the caller may retry."""


class StoreCorrupted(Exception):
    """The database file is damaged; retrying will not help, an operator must restore it."""


class TransactionLost(StoreUnavailable):
    """The database ended a transaction by itself after an error inside one of its savepoints
    (SQLite does on a full disk, say): nothing of it is written, and nothing more may be."""


class LockConflict(StoreUnavailable):
    """PostgreSQL ended a statement to break a deadlock between transactions: the statement's
    transaction (or savepoint) is to be rolled back, and the work may be tried again."""
