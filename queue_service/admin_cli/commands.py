"""One function per `queue-admin` command: call the AdminClient, then print a table or JSON."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from jobqueue import AdminClient, DeadLetterEntry, Pager, RetryPolicy
from jobqueue.models import Queue, QueueAlertPolicy, QueueStatistics

from queue_service.admin_cli import render

MAX_PAGE_SIZE = 1000


class Output:
    """Where and how a command prints: a table for people, or JSON with --json."""

    def __init__(self, as_json: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.as_json = as_json
        self.out = out
        self.err = err

    def json(self, value: Any) -> None:
        render.print_json(value, self.out)

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")


def first(pager_for_page_size, limit: int) -> tuple[list, Pager]:
    """Up to `limit` items (0: all of them) from a list call, fetching pages as needed."""
    pager = pager_for_page_size(min(limit, MAX_PAGE_SIZE) if limit else MAX_PAGE_SIZE)
    items = list(itertools.islice(pager, limit) if limit else pager)
    return items, pager


def footer(output: Output, shown: int, pager: Pager, limit: int) -> None:
    total = pager.total_size
    if total is not None and total > shown:
        output.line(f"\n{shown} of {total} shown; raise --limit (0 for all) to see more")
    elif total is None and limit and shown == limit:
        output.line(f"\nfirst {shown} shown; raise --limit (0 for all) to see more")


def policy_from(args: argparse.Namespace) -> tuple[RetryPolicy | None, list[str]]:
    """The retry policy given by --max-retries/--retry-delays/--max-delay/--jitter/--rule/--no-rules/
    --max-retry-duration, and their field names."""
    rules = () if args.no_rules else args.rules
    given = {
        "max_retries": args.max_retries,
        "retry_delays": args.retry_delays,
        "max_delay": args.max_delay,
        "jitter": args.jitter,
        "rules": rules,
        "max_retry_duration": args.max_retry_duration,
    }
    mask = [name for name, value in given.items() if value is not None]
    if not mask:
        return None, []
    return RetryPolicy(
        max_retries=args.max_retries,
        retry_delays=args.retry_delays or (),
        max_delay=args.max_delay,
        jitter=args.jitter,
        rules=tuple(rules or ()),
        max_retry_duration=args.max_retry_duration,
    ), mask


def limits_text(queue: Queue) -> str:
    parts = []
    if queue.max_active is not None:
        parts.append(f"max_active={queue.max_active}")
    if queue.max_starts_per_second is not None:
        parts.append(f"starts/s={queue.max_starts_per_second:g}")
    return " ".join(parts) or "-"


def policy_text(policy: RetryPolicy | None) -> str:
    if policy is None:
        return "-"
    parts = render.backoff_parts(policy)
    if policy.max_retry_duration is not None:
        parts.append(f"max_retry_duration={render.span(policy.max_retry_duration)}")
    if policy.rules:
        parts.append(f"rules={len(policy.rules)}")
    return " ".join(parts) or "-"


# Statistics


def queue_status(paused: bool) -> str:
    """A queue's state in one word, as the dashboard shows it."""
    return "paused" if paused else "running"


def stats(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    statistics = client.get_statistics(args.queues)
    if output.as_json:
        output.json(statistics)
        return 0

    def row(queue: QueueStatistics, name: str, status: str) -> list[Any]:
        summary = queue.dead_letter_summary
        return [
            name,
            status,
            queue.waiting_count,
            queue.delayed_count,
            queue.active_count,
            queue.completed_count,
            queue.failed_count,
            queue.retryable_count,
            queue.dead_letter_count,
            queue.cancelled_count,
            summary.pending_count,
            summary.recovered_count,
            summary.permanently_failed_count,
        ]

    headers = [
        "QUEUE",
        "STATUS",
        "WAITING",
        "DELAYED",
        "ACTIVE",
        "COMPLETED",
        "FAILED",
        "RETRYABLE",
        "DEAD",
        "CANCELLED",
        "DLQ PENDING",
        "DLQ RECOVERED",
        "DLQ GAVE UP",
    ]
    # The dashboard's words for a queue's state; the totals row has none.
    rows = [row(queue, queue.queue_name, queue_status(queue.paused)) for queue in statistics.queues]
    if len(rows) != 1 or statistics.omitted_queue_count:
        rows.append(row(statistics.totals, "(all)", ""))
    render.table(headers, rows, output.out)
    if statistics.omitted_queue_count:
        print(f"{statistics.omitted_queue_count} quieter queues are counted in (all) only", file=output.out)
    return 0


# Dead-letter queue


def dead_letter_filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "queue_name": args.queue,
        "death_reason": args.death_reason,
        "failure_reason_contains": args.reason_contains,
        "error_type": args.error_type,
        "fingerprint": args.fingerprint,
        "assigned_to": args.assigned_to,
        "dead_lettered_after": args.since,
        "dead_lettered_before": args.until,
    }


def entry_rows(entries: Iterable[DeadLetterEntry]) -> list[list[Any]]:
    return [
        [
            entry.id,
            entry.queue_name,
            entry.job_id,
            entry.error_type,
            render.shorten(entry.failure_reason, 40),
            entry.total_attempts,
            entry.recovery_status,
            entry.priority,
            entry.assigned_to,
            entry.dead_lettered_at,
        ]
        for entry in entries
    ]


ENTRY_HEADERS = [
    "ID",
    "QUEUE",
    "JOB",
    "ERROR TYPE",
    "FAILURE",
    "ATTEMPTS",
    "STATUS",
    "PRIORITY",
    "ASSIGNED",
    "DEAD SINCE",
]


def dlq_list(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    entries, pager = first(
        lambda size: client.list_dead_letter_jobs(
            recovery_status=args.status, page_size=size, **dead_letter_filters(args)
        ),
        args.limit,
    )
    if output.as_json:
        output.json(entries)
        return 0
    if not entries:
        output.line("no dead-letter entries match")
        return 0
    render.table(ENTRY_HEADERS, entry_rows(entries), output.out)
    footer(output, len(entries), pager, args.limit)
    return 0


def dlq_show(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    details = client.get_dead_letter_job(args.id)
    if output.as_json:
        output.json(details)
        return 0
    entry = details.entry
    render.fields(
        [
            ("id", entry.id),
            ("job", f"{entry.job_id} ({entry.job_name} in {entry.queue_name})"),
            ("status", entry.recovery_status),
            ("death reason", entry.death_reason),
            ("retry rule", details.job.retry_rule if details.job else None),
            ("error", f"{entry.error_type}: {entry.failure_reason}" if entry.error_type else entry.failure_reason),
            ("attempts", entry.total_attempts),
            ("recovery attempts", entry.recovery_attempts),
            ("priority", entry.priority),
            ("assigned to", entry.assigned_to),
            ("notes", entry.admin_notes),
            ("fingerprint", entry.fingerprint),
            ("dead since", entry.dead_lettered_at),
            ("first dead at", entry.created_at),
            ("resolved", f"{render.when(entry.resolved_at)} by {entry.resolved_by}" if entry.resolved_by else None),
            ("resolution", entry.resolution_reason),
            ("job state", details.job.state if details.job else "deleted"),
            ("job data", render.jsonable(entry.job_data)),
        ],
        output.out,
    )
    render.heading(f"Errors ({len(entry.error_history)})", output.out)
    render.table(
        ["ATTEMPT", "AT", "TYPE", "RULE", "MESSAGE"],
        [
            [error.attempt_number, error.occurred_at, error.type, error.retry_rule, error.message]
            for error in entry.error_history
        ],
        output.out,
    )
    last_trace = next((error.details for error in reversed(entry.error_history) if error.details), "")
    if last_trace:
        render.heading("Last error details", output.out)
        output.line(last_trace.rstrip())
    render.heading(f"Retry log ({len(details.retry_log)})", output.out)
    render.table(
        ["ATTEMPT", "AT", "DECISION", "DELAY", "REASON"],
        [
            [row.attempt_number, row.created_at, row.decision, row.retry_delay, row.death_reason]
            for row in details.retry_log
        ],
        output.out,
    )
    return 0


def dlq_retry(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    policy, _ = policy_from(args)
    outcome = client.retry_dead_letter_job(args.id, retry_policy=policy, job_data=args.data)
    if output.as_json:
        output.json(outcome)
        return 0
    new_payload = " with the new job_data" if args.data is not None else ""
    output.line(
        f"entry {outcome.entry.id} recovered (recovery attempt {outcome.entry.recovery_attempts}); "
        f"job {outcome.job.job_id} is {outcome.job.state.value} in {outcome.job.queue_name}{new_payload}"
    )
    return 0


def dlq_mark_failed(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    entry = client.mark_permanently_failed(args.id, args.reason)
    if output.as_json:
        output.json(entry)
        return 0
    output.line(f"entry {entry.id} marked permanently failed: {entry.resolution_reason}")
    return 0


def dlq_update(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    if args.notes is None and args.assign_to is None and args.priority is None:
        raise UsageError("give at least one of --notes, --assign-to, --priority")
    entry = client.update_dead_letter_job(
        args.id, admin_notes=args.notes, assigned_to=args.assign_to, priority=args.priority
    )
    if output.as_json:
        output.json(entry)
        return 0
    render.fields(
        [
            ("id", entry.id),
            ("notes", entry.admin_notes),
            ("assigned to", entry.assigned_to),
            ("priority", entry.priority),
        ],
        output.out,
    )
    return 0


# Failure patterns


def patterns(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    found, pager = first(
        lambda size: client.list_failure_patterns(queue_name=args.queue, recovery_status=args.status, page_size=size),
        args.limit,
    )
    if output.as_json:
        output.json(found)
        return 0
    if not found:
        output.line("no failure patterns")
        return 0
    render.table(
        ["FINGERPRINT", "COUNT", "LAST HOUR", "LAST DAY", "ERROR TYPE", "MESSAGE", "QUEUES", "FIRST SEEN", "LAST SEEN"],
        [
            [
                pattern.fingerprint,
                pattern.count,
                pattern.last_hour_count,
                pattern.last_day_count,
                pattern.error_type,
                render.shorten(pattern.normalised_message, 50),
                pattern.queue_names,
                pattern.first_seen_at,
                pattern.last_seen_at,
            ]
            for pattern in found
        ],
        output.out,
    )
    footer(output, len(found), pager, args.limit)
    output.line("\nretry a group with: queue-admin redrive --fingerprint <FINGERPRINT> --dry-run")
    return 0


# Bulk redrive


def redrive(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    policy, _ = policy_from(args)
    selection = {"ids": args.ids} if args.ids else dead_letter_filters(args)
    common = {"retry_policy": policy, "rate_limit": args.rate, "max_jobs": args.max_jobs}
    if args.dry_run:
        progress = list(client.retry_dead_letter_jobs(dry_run=True, sample_size=args.sample, **common, **selection))
        final = progress[-1]
        if output.as_json:
            output.json(final)
            return 0
        output.line(f"dry run: {final.matched_count} pending entries would be retried; nothing changed")
        if final.sample:
            render.table(ENTRY_HEADERS, entry_rows(final.sample), output.out)
        return 0
    if not args.yes and sys.stdin.isatty():
        (preview,) = list(client.retry_dead_letter_jobs(dry_run=True, sample_size=1, **common, **selection))[-1:]
        answer = input(f"retry {preview.matched_count} dead-letter entries? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            output.err.write("nothing retried\n")
            return 1
    bar = render.ProgressBar(output.err)
    final = None
    skipped = []
    for message in client.retry_dead_letter_jobs(**common, **selection):
        skipped.extend(message.skipped)
        final = message
        bar.update(
            message.retried_count + message.skipped_count,
            message.matched_count,
            f"{message.retried_count} retried, {message.skipped_count} skipped",
            final=message.done,
        )
    if final is None:
        raise RuntimeError("the server ended the redrive without a progress message")
    if output.as_json:
        output.json(
            {
                "matched_count": final.matched_count,
                "retried_count": final.retried_count,
                "skipped_count": final.skipped_count,
                "skipped": skipped,
                "done": final.done,
            }
        )
        return 0
    output.line(f"{final.retried_count} retried, {final.skipped_count} skipped of {final.matched_count} matched")
    for skip in skipped:
        output.line(f"  skipped {skip.id}: {skip.reason}")
    return 0


# Cancellation

CANCEL_SAMPLE_HEADERS = ["JOB", "QUEUE", "NAME", "STATE", "ATTEMPT", "CREATED"]


def cancel(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    if args.job_ids and (args.queue or args.states or args.job_name or args.created_after or args.created_before):
        raise UsageError("give job ids or filters, not both")
    if not args.job_ids and not (
        args.queue or args.states or args.job_name or args.created_after or args.created_before
    ):
        raise UsageError("give job ids, or filters such as --queue, to say which jobs to cancel")
    selection: dict[str, Any] = (
        {"ids": args.job_ids}
        if args.job_ids
        else {
            "queue_name": args.queue,
            "states": args.states,
            "job_name": args.job_name,
            "created_after": args.created_after,
            "created_before": args.created_before,
        }
    )
    common = {"rate_limit": args.rate, "max_jobs": args.max_jobs, "reason": args.reason or ""}
    if args.dry_run:
        final = list(client.cancel_jobs(dry_run=True, sample_size=args.sample, **common, **selection))[-1]
        if output.as_json:
            output.json(final)
            return 0
        output.line(f"dry run: {final.matched_count} jobs would be cancelled; nothing changed")
        if final.sample:
            rows = [
                [job.job_id, job.queue_name, job.job_name, job.state, job.attempt_number, job.created_at]
                for job in final.sample
            ]
            render.table(CANCEL_SAMPLE_HEADERS, rows, output.out)
        return 0
    if not args.yes and sys.stdin.isatty():
        (preview,) = list(client.cancel_jobs(dry_run=True, sample_size=1, **common, **selection))[-1:]
        answer = input(f"cancel {preview.matched_count} jobs? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            output.err.write("nothing cancelled\n")
            return 1
    bar = render.ProgressBar(output.err)
    final = None
    skipped = []
    for message in client.cancel_jobs(**common, **selection):
        skipped.extend(message.skipped)
        final = message
        bar.update(
            message.cancelled_count + message.cancel_requested_count + message.skipped_count,
            message.matched_count,
            f"{message.cancelled_count} cancelled, {message.cancel_requested_count} asked to stop, "
            f"{message.skipped_count} skipped",
            final=message.done,
        )
    if final is None:
        raise RuntimeError("the server ended the cancel without a progress message")
    if output.as_json:
        output.json(
            {
                "matched_count": final.matched_count,
                "cancelled_count": final.cancelled_count,
                "cancel_requested_count": final.cancel_requested_count,
                "skipped_count": final.skipped_count,
                "skipped": skipped,
                "done": final.done,
            }
        )
        return 0
    output.line(
        f"{final.cancelled_count} cancelled, {final.cancel_requested_count} running and asked to stop, "
        f"{final.skipped_count} skipped of {final.matched_count} matched"
    )
    for skip in skipped:
        output.line(f"  skipped {skip.job_id}: {skip.reason}")
    return 0


# Queues


def queue_fields(queue: Queue, output: Output) -> None:
    render.fields(
        [
            ("queue", queue.name),
            ("paused", queue.paused),
            ("own policy", policy_text(queue.retry_policy)),
            ("effective policy", policy_text(queue.effective_retry_policy)),
            ("delays", " ".join(render.span(delay) for delay in queue.delay_schedule) or "-"),
            ("max active", "-" if queue.max_active is None else queue.max_active),
            (
                "max starts per second",
                "-" if queue.max_starts_per_second is None else f"{queue.max_starts_per_second:g}",
            ),
            ("circuit breaker", render.breaker_text(queue)),
            ("updated", queue.updated_at),
        ],
        output.out,
    )
    rules = queue.effective_retry_policy.rules if queue.effective_retry_policy else ()
    if rules:
        render.heading(f"Rules by error type ({len(rules)})", output.out)
        for rule in rules:
            output.line(f"  {render.rule_text(rule)}")


def queues_list(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    found, pager = first(lambda size: client.list_queues(page_size=size), args.limit)
    if output.as_json:
        output.json(found)
        return 0
    render.table(
        ["QUEUE", "STATUS", "LIMITS", "EFFECTIVE POLICY", "DELAYS", "BREAKER"],
        [
            [
                queue.name,
                "paused" if queue.paused else "",
                limits_text(queue),
                policy_text(queue.effective_retry_policy),
                " ".join(render.span(delay) for delay in queue.delay_schedule),
                render.breaker_state(queue),
            ]
            for queue in found
        ],
        output.out,
    )
    footer(output, len(found), pager, args.limit)
    return 0


def queues_pause(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    queue = client.pause_queue(args.queue, allow_missing=args.create)
    if output.as_json:
        output.json(queue)
    else:
        output.line(f"queue {queue.name} paused: workers lease nothing from it until it is resumed")
    return 0


def queues_resume(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    queue = client.resume_queue(args.queue)
    if output.as_json:
        output.json(queue)
    else:
        output.line(f"queue {queue.name} resumed")
    return 0


def queues_clean(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    deleted = client.clean_queue(args.queue, args.state, grace=args.grace, recovery_status=args.status)
    if output.as_json:
        output.json({"deleted_count": deleted})
    else:
        older = f" older than {render.span(args.grace)}" if args.grace else ""
        output.line(f"deleted {deleted} {args.state} jobs{older} from {args.queue}")
    return 0


def limits_from(args: argparse.Namespace) -> list[str]:
    """The lease limits --max-active/--max-starts-per-second set and --no-... remove, by field name."""
    named = []
    for name in ("max_active", "max_starts_per_second"):
        value, removed = getattr(args, name), getattr(args, f"no_{name}")
        if value is not None and removed:
            option = name.replace("_", "-")
            raise UsageError(f"--{option} and --no-{option} exclude each other")
        if value is not None or removed:
            named.append(name)
    return named


def queues_policy(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    policy, mask = policy_from(args)
    limits = limits_from(args)
    if args.clear and (policy is not None or limits):
        raise UsageError("--clear replaces the whole retry policy; give it alone")
    if policy is None and not limits and not args.clear:
        queue = client.get_queue(args.queue)
    else:
        queue = client.update_queue_policy(
            args.queue,
            policy,
            max_active=args.max_active,
            max_starts_per_second=args.max_starts_per_second,
            update_mask=mask + limits,
            allow_missing=args.create,
            validate_only=args.validate_only,
        )
    if output.as_json:
        output.json(queue)
        return 0
    queue_fields(queue, output)
    if args.validate_only:
        output.line("\n(validated only: nothing saved)")
    return 0


def queues_alerts(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    """Show the queue's alert policy, or replace the parts given (the rest is kept)."""
    changes = args.dlq_threshold is not None or args.server_threshold or args.email is not None
    if args.dlq_threshold is not None and args.server_threshold:
        raise UsageError("--dlq-threshold and --server-threshold exclude each other")
    policy = client.get_queue_alert_policy(args.queue)
    if changes:
        threshold = None if args.server_threshold else policy.dlq_alert_threshold
        if args.dlq_threshold is not None:
            threshold = args.dlq_threshold
        recipients = policy.email_recipients
        if args.email is not None:
            recipients = tuple(address.strip() for address in args.email.split(",") if address.strip())
        policy = client.update_queue_alert_policy(
            QueueAlertPolicy(args.queue, dlq_alert_threshold=threshold, email_recipients=recipients)
        )
    if output.as_json:
        output.json(policy)
        return 0
    threshold = policy.dlq_alert_threshold
    render.fields(
        [
            ("queue", policy.queue_name),
            ("dlq threshold", "server's" if threshold is None else ("off" if threshold == 0 else str(threshold))),
            ("email to", ", ".join(policy.email_recipients) or "-"),
            ("updated", policy.update_time),
        ],
        output.out,
    )
    return 0


# Recovery


def recovery_trigger(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    run = client.trigger_recovery()
    if output.as_json:
        output.json(run)
        return 0
    counts = run.counts
    render.fields(
        [
            ("run", run.id),
            ("status", run.status),
            ("started", run.started_at),
            ("finished", run.finished_at),
            ("due retries", counts.due_retries),
            ("stalled jobs", counts.stalled_jobs),
            ("stalled jobs cancelled", counts.stalled_jobs_cancelled),
            ("exhausted jobs", counts.exhausted_jobs),
            ("deleted completed jobs", counts.deleted_completed_jobs),
            ("deleted retry log rows", counts.deleted_retry_log_rows),
            ("deleted activity rows", counts.deleted_activity_rows),
            ("error", run.error),
        ],
        output.out,
    )
    return 0


def recovery_status(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    report = client.get_recovery_status(page_size=args.limit)
    if output.as_json:
        output.json(report)
        return 0
    render.fields(
        [
            ("total runs", report.total_runs),
            ("successful", report.successful_runs),
            ("failed", report.failed_runs),
            ("last run", report.last_run_at),
            ("last duration", report.last_run_duration),
            ("next run", report.next_run_at),
            ("leader", report.leader_node_id or "none"),
            ("this replica leads", report.is_leader),
        ],
        output.out,
    )
    if report.recent_runs:
        render.heading("Recent runs", output.out)
        render.table(
            ["RUN", "TRIGGER", "STATUS", "STARTED", "FINISHED", "RETRIES", "STALLED", "ERROR"],
            [
                [
                    run.id,
                    run.trigger,
                    run.status,
                    run.started_at,
                    run.finished_at,
                    run.counts.due_retries,
                    run.counts.stalled_jobs,
                    run.error,
                ]
                for run in report.recent_runs
            ],
            output.out,
        )
    return 0


# Audit


def audit(client: AdminClient, args: argparse.Namespace, output: Output) -> int:
    events, pager = first(
        lambda size: client.list_audit_events(
            actor=args.actor,
            action=args.action,
            target=args.event_target,
            created_after=args.since,
            created_before=args.until,
            page_size=size,
        ),
        args.limit,
    )
    if output.as_json:
        output.json(events)
        return 0
    if not events:
        output.line("no audit events match")
        return 0
    render.table(
        ["AT", "ACTOR", "ACTION", "TARGET", "PARAMETERS"],
        [
            [event.created_at, event.actor, event.action, event.target, render.jsonable(event.parameters)]
            for event in events
        ],
        output.out,
    )
    footer(output, len(events), pager, args.limit)
    return 0


class UsageError(Exception):
    """The arguments make no sense together; exit status 2, as for argparse's own errors."""
