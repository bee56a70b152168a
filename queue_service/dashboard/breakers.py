"""The dashboard's circuit breaker parts: the queue page's form, and the overview's list of
queues whose breaker is open or half-open."""

from __future__ import annotations

from typing import Any

from jobqueue import AdminClient, CircuitBreakerPolicy, CircuitBreakerState, InvalidArgument, Queue
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from queue_service.dashboard.forms import parse_float, parse_int, parse_seconds, query_string
from queue_service.dashboard.pages import FieldError, flash

# Form fields, each the CircuitBreakerPolicy field of the same name ("breaker_" + field).
BREAKER_FIELDS = (
    "breaker_enabled",
    "breaker_failure_ratio",
    "breaker_min_runs",
    "breaker_window",
    "breaker_cooldown",
    "breaker_ramp",
)
# The overview looks at this many queues for breakers that hold.
OVERVIEW_QUEUES = 1000


def breaker_form_values(queue: Queue) -> dict[str, str]:
    policy = queue.circuit_breaker or CircuitBreakerPolicy()
    return {
        "breaker_enabled": "on" if policy.enabled else "",
        "breaker_failure_ratio": "" if policy.failure_ratio is None else f"{policy.failure_ratio:g}",
        "breaker_min_runs": "" if policy.min_runs is None else str(policy.min_runs),
        "breaker_window": "" if policy.window is None else f"{policy.window.total_seconds():g}",
        "breaker_cooldown": "" if policy.cooldown is None else f"{policy.cooldown.total_seconds():g}",
        "breaker_ramp": "" if policy.ramp is None else f"{policy.ramp.total_seconds():g}",
    }


def holding(client: AdminClient) -> list[Queue]:
    """Queues whose circuit breaker is open or half-open now."""
    found = client.list_queues(page_size=OVERVIEW_QUEUES).items
    return [
        queue
        for queue in found
        if queue.circuit_breaker
        and queue.circuit_breaker.enabled
        and queue.circuit_breaker_status
        and queue.circuit_breaker_status.state != CircuitBreakerState.CLOSED
    ]


def queue_breaker(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    name = str(form.get("queue_name") or "")
    policy = CircuitBreakerPolicy(
        enabled=bool(form.get("breaker_enabled")),
        failure_ratio=parse_float(form.get("breaker_failure_ratio"), "Failure ratio", "breaker_failure_ratio"),
        min_runs=parse_int(form.get("breaker_min_runs"), "Minimum runs", "breaker_min_runs", minimum=1),
        window=parse_seconds(form.get("breaker_window"), "Window", "breaker_window"),
        cooldown=parse_seconds(form.get("breaker_cooldown"), "Cool-down", "breaker_cooldown"),
        ramp=parse_seconds(form.get("breaker_ramp"), "Ramp", "breaker_ramp"),
    )
    try:
        client.update_queue_policy(name, circuit_breaker=policy, update_mask=["circuit_breaker"])
    except InvalidArgument as error:
        field = (error.field or "").removeprefix("circuit_breaker.")
        raise FieldError(
            error.message, f"breaker_{field}" if f"breaker_{field}" in BREAKER_FIELDS else "breaker_enabled"
        ) from None
    flash(request, f"Saved the circuit breaker of {name}.", "success")
    return RedirectResponse("/queue?" + query_string(name=name), status_code=303)
