"""Store-level failures the API reports as retryable."""


class StoreUnavailable(Exception):
    """The database could not be reached or is too busy; the caller may retry."""
