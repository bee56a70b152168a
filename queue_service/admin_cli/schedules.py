"""`queue-admin schedules ...`: cron schedules, each shown with its next run times."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from jobqueue import AdminClient
from jobqueue.models import MisfirePolicy, Schedule

from queue_service.admin_cli import render
from queue_service.admin_cli.commands import Output, UsageError, first, footer, policy_from, policy_text

# Options of `create` and `update` -> the Schedule field each sets.
DEFINITION_OPTIONS = {
    "cron": "cron",
    "time_zone": "time_zone",
    "queue": "queue_name",
    "job_name": "job_name",
    "data": "job_data",
    "misfire": "misfire_policy",
}
NEXT_RUNS_SHOWN = 3


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, such as \'{"report": "daily"}\'')
    return value


def add_commands(commands_parser, command: Callable, limit_option: Callable, policy_options: Callable) -> None:
    schedules = commands_parser.add_parser("schedules", help="cron schedules").add_subparsers(
        dest="schedules_command", required=True, metavar="ACTION"
    )
    limit_option(command(schedules, "list", schedules_list, "schedules with their next run times"))
    command(schedules, "show", schedules_show, "one schedule and its next run times").add_argument("name")
    create = command(schedules, "create", schedules_create, "enqueue a job at each time a cron expression matches")
    create.add_argument("name")
    create.add_argument(
        "--cron", required=True, help="five fields: minute hour day month weekday, such as '30 2 * * *'"
    )
    create.add_argument("--time-zone", default="UTC", help="IANA zone the expression is read in (default UTC)")
    create.add_argument("--queue", required=True, help="queue the jobs go to")
    create.add_argument("--job-name", required=True)
    definition_options(create)
    policy_options(create)
    update = command(schedules, "update", schedules_update, "change the given settings of a schedule")
    update.add_argument("name")
    update.add_argument("--cron")
    update.add_argument("--time-zone")
    update.add_argument("--queue")
    update.add_argument("--job-name")
    definition_options(update)
    policy_options(update)
    command(schedules, "pause", schedules_pause, "stop a schedule from enqueueing jobs").add_argument("name")
    command(schedules, "resume", schedules_resume, "start a paused schedule at its next slot").add_argument("name")
    command(schedules, "delete", schedules_delete, "delete a schedule (its jobs stay)").add_argument("name")


def definition_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--data", type=json_object, metavar="JSON", help="job_data of each job, a JSON object")
    sub.add_argument(
        "--misfire",
        choices=[policy.value for policy in MisfirePolicy],
        help="missed slots: skip them, or run_once for the latest (default skip)",
    )


def next_runs(schedule: Schedule, count: int = NEXT_RUNS_SHOWN) -> str:
    return ", ".join(render.when(moment) for moment in schedule.next_run_times[:count]) or "-"


def schedule_fields(schedule: Schedule, output: Output) -> None:
    render.fields(
        [
            ("schedule", schedule.name),
            ("cron", f"{schedule.cron} ({schedule.time_zone})"),
            ("job", f"{schedule.job_name} on {schedule.queue_name}"),
            ("job data", json.dumps(schedule.job_data) if schedule.job_data else "-"),
            ("retry policy", policy_text(schedule.retry_policy)),
            ("misfire", schedule.misfire_policy or MisfirePolicy.SKIP),
            ("paused", schedule.paused),
            ("next runs", "\n".join(render.when(moment) for moment in schedule.next_run_times) or "-"),
            ("last run", schedule.last_run_at),
        ],
        output.out,
    )


def show(schedule: Schedule, output: Output, message: str = "") -> int:
    if output.as_json:
        output.json(schedule)
    elif message:
        output.line(message)
    else:
        schedule_fields(schedule, output)
    return 0


def schedules_list(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    found, pager = first(lambda size: client.list_schedules(page_size=size), args.limit)
    if output.as_json:
        output.json(found)
        return 0
    render.table(
        ["SCHEDULE", "CRON", "TIME ZONE", "QUEUE", "JOB", "STATUS", "NEXT RUNS"],
        [
            [
                schedule.name,
                schedule.cron,
                schedule.time_zone,
                schedule.queue_name,
                schedule.job_name,
                "paused" if schedule.paused else "",
                next_runs(schedule),
            ]
            for schedule in found
        ],
        output.out,
    )
    footer(output, len(found), pager, args.limit)
    return 0


def schedules_show(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    return show(client.get_schedule(args.name), output)


def _given(args: argparse.Namespace) -> tuple[Schedule, list[str]]:
    """The schedule the options describe, and the fields they set."""
    values = {field: getattr(args, option) for option, field in DEFINITION_OPTIONS.items()}
    mask = [field for field, value in values.items() if value is not None]
    policy, policy_mask = policy_from(args)
    if policy_mask:
        mask.append("retry_policy")
    schedule = Schedule(
        name=args.name,
        cron=values["cron"] or "",
        time_zone=values["time_zone"] or "",
        queue_name=values["queue_name"] or "",
        job_name=values["job_name"] or "",
        job_data=values["job_data"],
        retry_policy=policy,
        misfire_policy=values["misfire_policy"],
    )
    return schedule, mask


def schedules_create(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    schedule, _ = _given(args)
    created = client.create_schedule(schedule)
    return show(created, output, f"schedule {created.name} created; next runs: {next_runs(created)}")


def schedules_update(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    schedule, mask = _given(args)
    if not mask:
        raise UsageError("give at least one setting to change, such as --cron")
    updated = client.update_schedule(schedule, update_mask=mask)
    return show(updated, output)


def schedules_pause(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    schedule = client.pause_schedule(args.name)
    return show(schedule, output, f"schedule {schedule.name} paused: it enqueues nothing until resumed")


def schedules_resume(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    schedule = client.resume_schedule(args.name)
    return show(schedule, output, f"schedule {schedule.name} resumed; next runs: {next_runs(schedule)}")


def schedules_delete(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    client.delete_schedule(args.name)
    if output.as_json:
        output.json({"deleted": args.name})
    else:
        output.line(f"schedule {args.name} deleted; jobs it enqueued stay")
    return 0
