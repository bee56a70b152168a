"""An alert as every channel sends it: what happened (kind), where (queue), and the words for people."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alert:
    # Stable machine name, such as "dlq_threshold_crossed"; mail filters and webhooks key on it.
    kind: str
    queue_name: str
    subject: str
    body: str
