"""`queue-admin` argument parsing and dispatch. Exit status: 0 done, 1 the server said no, 2 bad usage."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from jobqueue import AdminClient, DeadlineExceeded, JobQueueError, TlsConfig, Unavailable
from jobqueue.models import DeathReason, JobState, RecoveryStatus

from queue_service.admin_cli import breakers, commands, schedules
from queue_service.admin_cli.parse import (
    duration,
    durations,
    json_object,
    json_object_file,
    non_negative_int,
    point_in_time,
    retry_rule,
)

DEFAULT_TARGET = "localhost:50051"

EXAMPLES = """\
examples:
  queue-admin stats
  queue-admin dlq list --queue whatsapp-messages --limit 50
  queue-admin dlq retry <DLQ_ID>
  queue-admin dlq retry <DLQ_ID> --data '{"email": "fixed@example.com"}'
  queue-admin queues policy WHATSAPP --rule "TimeoutError max_retries=6 retry_delays=2s,4s max_delay=2m" \
      --rule "ValidationError retryable=false" --max-retry-duration 1d
  queue-admin dlq mark-failed <DLQ_ID> --reason "Invalid data format, cannot be processed"
  queue-admin dlq update <DLQ_ID> --notes "Investigating root cause" --assign-to admin@example.com --priority 5
  queue-admin patterns
  queue-admin redrive --fingerprint <FINGERPRINT> --dry-run
  queue-admin queues pause WHATSAPP
  queue-admin queues clean WHATSAPP --state completed --grace 1d
  queue-admin recovery trigger
  queue-admin schedules create nightly --cron "30 2 * * *" --time-zone Europe/Berlin --queue reports --job-name build

The server and token come from --target / QUEUE_TARGET and --token / QUEUE_TOKEN
(prefer the variable: other users can read a process's arguments).
"""


def values(enum_class) -> list[str]:
    return [member.value for member in enum_class]


def build_parser() -> argparse.ArgumentParser:
    # --json is accepted before or after the command: `queue-admin --json stats` or `queue-admin stats --json`.
    output_options = argparse.ArgumentParser(add_help=False)
    output_options.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")

    parser = argparse.ArgumentParser(
        prog="queue-admin",
        description="Operate the job retry and recovery service: statistics, dead-letter triage, redrive, queues.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    connection = parser.add_argument_group("connection")
    connection.add_argument(
        "--target",
        default=os.environ.get("QUEUE_TARGET") or DEFAULT_TARGET,
        help=f"server host:port (env QUEUE_TARGET, default {DEFAULT_TARGET})",
    )
    connection.add_argument(
        "--token", default=os.environ.get("QUEUE_TOKEN") or None, help="admin bearer token (env QUEUE_TOKEN)"
    )
    connection.add_argument("--tls", action="store_true", help="use TLS, trusting the system's certificate authorities")
    connection.add_argument("--tls-ca", metavar="PEM", help="use TLS, trusting this CA bundle")
    connection.add_argument("--tls-cert", metavar="PEM", help="client certificate, for mutual TLS")
    connection.add_argument("--tls-key", metavar="PEM", help="client private key, for mutual TLS")
    connection.add_argument("--tls-server-name", metavar="NAME", help="name to verify the server certificate against")
    connection.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default 30)")
    parser.add_argument("--json", action="store_true", default=False, help="print JSON instead of tables")
    commands_parser = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent, name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help, description=help, parents=[output_options])
        sub.set_defaults(handler=handler)
        return sub

    def limit_option(sub: argparse.ArgumentParser, default: int = 50) -> None:
        sub.add_argument(
            "--limit", type=non_negative_int, default=default, help=f"at most this many (default {default}; 0: all)"
        )

    def dead_letter_filter_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--queue", help="queue name")
        sub.add_argument("--death-reason", choices=values(DeathReason))
        sub.add_argument("--reason-contains", metavar="TEXT", help="failure reason contains TEXT (any case)")
        sub.add_argument("--error-type", help="exact error type")
        sub.add_argument("--fingerprint", help="error fingerprint, from `queue-admin patterns`")
        sub.add_argument("--assigned-to", metavar="WHO")
        sub.add_argument(
            "--since",
            type=point_in_time,
            metavar="TIME",
            help="dead-lettered at or after (ISO 8601, or 2h for 2 hours ago)",
        )
        sub.add_argument("--until", type=point_in_time, metavar="TIME", help="dead-lettered before")

    def policy_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--max-retries", type=non_negative_int, metavar="N", help="retries after the first run")
        sub.add_argument(
            "--retry-delays", type=durations, metavar="LIST", help="delays before retry 1, 2, ...: 5s,15s,45s"
        )
        sub.add_argument("--max-delay", type=duration, metavar="DURATION", help="cap on any delay, such as 1h")
        sub.add_argument("--jitter", type=float, metavar="FRACTION", help="random spread of each delay, 0 to 1")
        rules = sub.add_mutually_exclusive_group()
        rules.add_argument(
            "--rule",
            dest="rules",
            action="append",
            type=retry_rule,
            metavar="RULE",
            help="how failures of one error type retry (repeatable; replaces the rules): "
            "'TimeoutError max_retries=6 retry_delays=2s,4s max_delay=2m' or 'ValidationError retryable=false'",
        )
        rules.add_argument("--no-rules", action="store_true", help="remove the rules by error type")
        sub.add_argument(
            "--max-retry-duration",
            type=duration,
            metavar="DURATION",
            help="how long a job may keep failing, from its first failure, before it is dead-lettered: 1d",
        )

    command(commands_parser, "stats", commands.stats, "job counts per queue and the dead-letter summary").add_argument(
        "queues", nargs="*", metavar="QUEUE", help="queues to show (default: all)"
    )

    dlq = commands_parser.add_parser("dlq", help="dead-letter queue triage").add_subparsers(
        dest="dlq_command", required=True, metavar="ACTION"
    )
    listing = command(dlq, "list", commands.dlq_list, "list dead-letter entries, highest priority then newest first")
    dead_letter_filter_options(listing)
    listing.add_argument("--status", choices=values(RecoveryStatus), help="triage status (default: all)")
    limit_option(listing)
    command(dlq, "show", commands.dlq_show, "one entry with its payload, errors and retry log").add_argument("id")
    retry = command(dlq, "retry", commands.dlq_retry, "send a pending entry's job back to its queue")
    retry.add_argument("id")
    policy_options(retry)
    payload = retry.add_mutually_exclusive_group()
    payload.add_argument("--data", type=json_object, metavar="JSON", help="new job_data for the job, a JSON object")
    payload.add_argument(
        "--data-file",
        dest="data",
        type=json_object_file,
        metavar="PATH",
        help="new job_data read from a file (- for stdin)",
    )
    mark = command(dlq, "mark-failed", commands.dlq_mark_failed, "give up on a pending entry for good")
    mark.add_argument("id")
    mark.add_argument("--reason", required=True, help="why; kept on the entry")
    update = command(dlq, "update", commands.dlq_update, "set an entry's notes, assignee or priority")
    update.add_argument("id")
    update.add_argument("--notes", help="operator notes ('' clears them)")
    update.add_argument("--assign-to", metavar="WHO", help="who is looking at it ('' clears it)")
    update.add_argument("--priority", type=int, help="triage priority; higher comes first")

    pattern = command(
        commands_parser, "patterns", commands.patterns, "dead-letter entries grouped by error fingerprint"
    )
    pattern.add_argument("--queue")
    pattern.add_argument("--status", choices=values(RecoveryStatus), help="default: pending")
    limit_option(pattern)

    redrive = command(commands_parser, "redrive", commands.redrive, "retry many pending dead-letter entries")
    redrive.add_argument(
        "--id", dest="ids", action="append", metavar="DLQ_ID", help="an entry to retry (repeatable); instead of filters"
    )
    dead_letter_filter_options(redrive)
    redrive.add_argument(
        "--dry-run", action="store_true", help="count the matching entries and show a sample; change nothing"
    )
    redrive.add_argument(
        "--sample", type=non_negative_int, default=10, help="entries in the dry-run sample (default 10)"
    )
    redrive.add_argument("--rate", type=float, metavar="PER_SECOND", help="at most this many jobs per second")
    redrive.add_argument("--max-jobs", type=non_negative_int, metavar="N", help="stop after N entries")
    redrive.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation on a terminal")
    policy_options(redrive)

    cancel = command(
        commands_parser,
        "cancel",
        commands.cancel,
        "cancel jobs: waiting and failed ones at once, running ones when their worker stops them",
    )
    cancel.add_argument("job_ids", nargs="*", metavar="JOB_ID", help="jobs to cancel; instead of filters")
    cancel.add_argument("--queue", help="jobs of this queue")
    cancel.add_argument(
        "--state",
        dest="states",
        action="append",
        choices=["waiting", "failed", "active"],
        help="jobs in this state (repeatable; default: all three)",
    )
    cancel.add_argument("--job-name", metavar="NAME", help="jobs of this type name")
    cancel.add_argument("--created-after", type=point_in_time, metavar="TIME", help="jobs created at or after TIME")
    cancel.add_argument("--created-before", type=point_in_time, metavar="TIME", help="jobs created before TIME")
    cancel.add_argument("--reason", help="why; kept in the audit log")
    cancel.add_argument(
        "--dry-run", action="store_true", help="count the matching jobs and show a sample; change nothing"
    )
    cancel.add_argument("--sample", type=non_negative_int, default=10, help="jobs in the dry-run sample (default 10)")
    cancel.add_argument("--rate", type=float, metavar="PER_SECOND", help="at most this many jobs per second")
    cancel.add_argument("--max-jobs", type=non_negative_int, metavar="N", help="stop after N jobs")
    cancel.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation on a terminal")

    queues = commands_parser.add_parser("queues", help="queue controls").add_subparsers(
        dest="queues_command", required=True, metavar="ACTION"
    )
    limit_option(command(queues, "list", commands.queues_list, "known queues with their policies"))
    pause = command(queues, "pause", commands.queues_pause, "stop leasing from a queue (enqueueing goes on)")
    pause.add_argument("queue")
    pause.add_argument("--create", action="store_true", help="create the queue paused if it is unknown")
    command(queues, "resume", commands.queues_resume, "lease from a paused queue again").add_argument("queue")
    clean = command(queues, "clean", commands.queues_clean, "delete a queue's old jobs in one state")
    clean.add_argument("queue")
    clean.add_argument("--state", required=True, choices=[s for s in values(JobState) if s != "active"])
    clean.add_argument("--grace", type=duration, help="only jobs in that state for at least this long, such as 7d")
    clean.add_argument(
        "--status",
        choices=[s for s in values(RecoveryStatus) if s != "pending"],
        help="with --state dead_letter: which entries (default permanently_failed)",
    )
    policy = command(
        queues, "policy", commands.queues_policy, "show a queue's retry policy and lease limits, or change them"
    )
    policy.add_argument("queue")
    policy_options(policy)
    policy.add_argument(
        "--max-active", type=int, metavar="N", help="most ACTIVE jobs at once, over every worker and replica"
    )
    policy.add_argument(
        "--max-starts-per-second",
        type=float,
        metavar="RATE",
        help="most jobs started per second (bursts of up to max(1, RATE) starts)",
    )
    policy.add_argument("--no-max-active", action="store_true", help="remove the queue's max_active limit")
    policy.add_argument("--no-max-starts-per-second", action="store_true", help="remove the queue's start rate limit")
    policy.add_argument("--clear", action="store_true", help="remove the queue's own policy")
    policy.add_argument("--validate-only", action="store_true", help="show the result without saving it")
    policy.add_argument("--create", action="store_true", help="create the queue if it is unknown")
    breakers.add_commands(queues, command)
    alerts = command(queues, "alerts", commands.queues_alerts, "show a queue's alert policy, or change it")
    alerts.add_argument("queue")
    alerts.add_argument(
        "--dlq-threshold",
        type=int,
        metavar="N",
        help="pending dead letters that raise the queue's DLQ alert; 0 turns them off",
    )
    alerts.add_argument("--server-threshold", action="store_true", help="use the server's threshold again")
    alerts.add_argument(
        "--email", metavar="ADDRESSES", help="comma-separated recipients of the queue's alert emails; '' removes them"
    )

    recovery = commands_parser.add_parser("recovery", help="the recovery scheduler").add_subparsers(
        dest="recovery_command", required=True, metavar="ACTION"
    )
    command(recovery, "trigger", commands.recovery_trigger, "run a recovery sweep now")
    limit_option(command(recovery, "status", commands.recovery_status, "recovery totals and recent runs"), default=10)

    schedules.add_commands(commands_parser, command, limit_option, policy_options)

    audit = command(commands_parser, "audit", commands.audit, "who did what to which target, newest first")
    audit.add_argument("--actor", help="token name")
    audit.add_argument("--action")
    audit.add_argument(
        "--on", dest="event_target", metavar="TARGET", help="events about this target, such as queue/emails"
    )
    audit.add_argument("--since", type=point_in_time, metavar="TIME")
    audit.add_argument("--until", type=point_in_time, metavar="TIME")
    limit_option(audit)
    return parser


def tls_config(args: argparse.Namespace) -> TlsConfig | None:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise commands.UsageError("--tls-cert and --tls-key go together")
    if not (args.tls or args.tls_ca or args.tls_cert):
        return None
    try:
        return TlsConfig.from_files(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    except OSError as error:
        raise commands.UsageError(f"cannot read {error.filename}: {error.strerror}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    output = commands.Output(as_json=args.json)
    try:
        client = AdminClient(args.target, token=args.token, tls=tls_config(args), timeout=args.timeout)
        with client:
            return args.handler(client, args, output)
    except commands.UsageError as error:
        parser.error(str(error))
    except JobQueueError as error:
        sys.stdout.flush()
        print(f"queue-admin: {error.code.name}: {error.message}", file=sys.stderr)
        if isinstance(error, Unavailable | DeadlineExceeded):
            print(f"queue-admin: is the server running at {args.target}? (--target / QUEUE_TARGET)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("queue-admin: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
