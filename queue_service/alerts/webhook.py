"""The alert webhook: one JSON POST, shared by the DLQ threshold alerts and the circuit breaker's."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

# How an alert is POSTed: (url, body, timeout in seconds); tests pass their own.
PostJson = Callable[[str, dict[str, Any], float], None]


def post_json(url: str, body: dict[str, Any], timeout: float) -> None:
    """POST `body` as JSON; raises on a network error, a time-out or a non-2xx answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "queue-service"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - operator-configured URL
        response.read(64 * 1024)
