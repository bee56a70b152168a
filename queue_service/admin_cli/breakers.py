"""`queue-admin queues breaker ...`: a queue's circuit breaker against retry storms."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from jobqueue import AdminClient
from jobqueue.models import CircuitBreakerPolicy

from queue_service.admin_cli import commands, render
from queue_service.admin_cli.parse import duration

# Options -> the CircuitBreakerPolicy field each sets.
BREAKER_OPTIONS = {
    "ratio": "failure_ratio",
    "min_runs": "min_runs",
    "window": "window",
    "cooldown": "cooldown",
    "ramp": "ramp",
}


def add_commands(queues, command: Callable) -> None:
    breaker = command(
        queues,
        "breaker",
        queues_breaker,
        "show a queue's circuit breaker, or change it (the options given; the rest is kept)",
    )
    breaker.add_argument("queue")
    switch = breaker.add_mutually_exclusive_group()
    switch.add_argument("--on", dest="enabled", action="store_const", const=True, help="turn the breaker on")
    switch.add_argument("--off", dest="enabled", action="store_const", const=False, help="turn it off")
    breaker.add_argument("--ratio", type=float, metavar="FRACTION", help="failed share of runs that opens it, (0, 1]")
    breaker.add_argument("--min-runs", type=int, metavar="N", help="runs the window must hold first")
    breaker.add_argument("--window", type=duration, metavar="DURATION", help="the sliding window, such as 60s")
    breaker.add_argument("--cooldown", type=duration, metavar="DURATION", help="open this long before a probe")
    breaker.add_argument("--ramp", type=duration, metavar="DURATION", help="spread the held jobs over this long")
    breaker.add_argument("--validate-only", action="store_true", help="show the result without saving it")
    breaker.add_argument("--create", action="store_true", help="create the queue if it is unknown")


def queues_breaker(client: AdminClient, args: argparse.Namespace, output: commands.Output) -> int:
    values = {field: getattr(args, option) for option, field in BREAKER_OPTIONS.items()}
    given = {field: value for field, value in values.items() if value is not None}
    if args.enabled is None and not given:
        if args.validate_only or args.create:
            raise commands.UsageError("--validate-only and --create go with a change")
        queue = client.get_queue(args.queue)
    else:
        mask = [f"circuit_breaker.{field}" for field in given]
        if args.enabled is not None:
            mask.append("circuit_breaker.enabled")
        queue = client.update_queue_policy(
            args.queue,
            circuit_breaker=CircuitBreakerPolicy(enabled=bool(args.enabled), **given),
            update_mask=mask,
            allow_missing=args.create,
            validate_only=args.validate_only,
        )
    if output.as_json:
        output.json({"queue_name": queue.name, "policy": queue.circuit_breaker, "status": queue.circuit_breaker_status})
        return 0
    status = queue.circuit_breaker_status
    render.fields(
        [
            ("queue", queue.name),
            ("breaker", render.breaker_text(queue)),
            ("changed", status.change_time if status else None),
            ("opened", status.open_time if status else None),
            ("probe job", (status.probe_job_id if status else "") or "-"),
            ("window", f"{status.window_failures} of {status.window_runs} runs failed" if status else "-"),
        ],
        output.out,
    )
    if args.validate_only:
        output.line("\n(validated only: nothing saved)")
    return 0
