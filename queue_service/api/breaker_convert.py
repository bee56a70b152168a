"""Circuit breaker messages to domain values and back (CircuitBreakerPolicy, CircuitBreakerStatus)."""

from __future__ import annotations

from typing import Any

from jobqueue.v1 import admin_service_pb2 as admin_pb

# The module, not its names: convert imports this module while it loads.
from queue_service.api import scalars
from queue_service.core.breaker import WindowCounts
from queue_service.core.errors import InvalidArgument
from queue_service.domain import BreakerPolicy, BreakerRecord, BreakerState

FIELD = "circuit_breaker"
STATES = {
    BreakerState.CLOSED: admin_pb.CIRCUIT_BREAKER_STATE_CLOSED,
    BreakerState.OPEN: admin_pb.CIRCUIT_BREAKER_STATE_OPEN,
    BreakerState.HALF_OPEN: admin_pb.CIRCUIT_BREAKER_STATE_HALF_OPEN,
}
# Beyond these the value cannot be valid; refused here so that it never reaches a conversion.
MAX_MIN_RUNS_SENT = 2**31 - 1


def breaker_policy(request: admin_pb.UpdateQueuePolicyRequest) -> BreakerPolicy | None:
    """The request's circuit breaker policy with defaults for unset fields; None when it has none."""
    if not request.HasField(FIELD):
        return None
    message = request.circuit_breaker
    default = BreakerPolicy()
    ratio = (
        scalars.finite(message.failure_ratio, f"{FIELD}.failure_ratio") if message.HasField("failure_ratio") else None
    )
    if message.HasField("min_runs") and not 0 < message.min_runs <= MAX_MIN_RUNS_SENT:
        raise InvalidArgument(f"{FIELD}.min_runs must be at least 1", field=f"{FIELD}.min_runs")

    def span(name: str):
        return scalars.to_timedelta(getattr(message, name), f"{FIELD}.{name}") if message.HasField(name) else None

    window, cooldown, ramp = span("window"), span("cooldown"), span("ramp")
    return BreakerPolicy(
        enabled=message.enabled,
        failure_ratio=default.failure_ratio if ratio is None else ratio,
        min_runs=message.min_runs if message.HasField("min_runs") else default.min_runs,
        window=default.window if window is None else window,
        cooldown=default.cooldown if cooldown is None else cooldown,
        ramp=default.ramp if ramp is None else ramp,
    )


def policy_message(policy: BreakerPolicy) -> admin_pb.CircuitBreakerPolicy:
    return admin_pb.CircuitBreakerPolicy(
        enabled=policy.enabled,
        failure_ratio=policy.failure_ratio,
        min_runs=policy.min_runs,
        window=scalars.duration(policy.window),
        cooldown=scalars.duration(policy.cooldown),
        ramp=scalars.duration(policy.ramp),
    )


def status_message(record: BreakerRecord, counts: WindowCounts | None) -> admin_pb.CircuitBreakerStatus:
    state = record.state if record.policy.enabled else BreakerState.CLOSED
    return admin_pb.CircuitBreakerStatus(
        state=STATES[state],
        change_time=scalars.timestamp(record.changed_at),
        open_time=scalars.timestamp(record.opened_at),
        probe_job_id=record.probe_job_id if state == BreakerState.HALF_OPEN else "",
        window_runs=counts.runs if counts else 0,
        window_failures=counts.failures if counts else 0,
    )


def queue_fields(breaker: BreakerRecord | None, counts: WindowCounts | None) -> dict[str, Any]:
    """The Queue message's circuit breaker fields; none for a queue that never had a breaker."""
    if breaker is None:
        return {}
    return {
        "circuit_breaker": policy_message(breaker.policy),
        "circuit_breaker_status": status_message(breaker, counts),
    }
