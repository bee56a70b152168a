"""The pages and actions. Each handler is synchronous and gets the signed-in operator's AdminClient."""

from __future__ import annotations

import argparse
import json
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from jobqueue import AdminClient, InvalidArgument, JobQueueError, QueueAlertPolicy, RetryPolicy, RetryRule
from jobqueue.models import DeathReason, JobState, Queue, RecoveryStatus
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from queue_service.admin_cli.parse import retry_rule
from queue_service.admin_cli.render import rule_text
from queue_service.dashboard import breakers
from queue_service.dashboard.charts import WINDOWS, activity_chart
from queue_service.dashboard.forms import (
    parse_float,
    parse_int,
    parse_seconds,
    query_string,
)
from queue_service.dashboard.pages import (
    Dashboard,
    FieldError,
    PageError,
    Redrive,
    describe,
    flash,
    page,
    plural,
    render,
)
from queue_service.domain import CLEANABLE_STATES

PAGE_SIZE = 50
# The overview lists and charts only the busiest queues, so that it stays small however many there are.
OVERVIEW_QUEUES = 50
OVERVIEW_CHARTS = 10
QUEUES_PAGE_SIZE = 100
POLICY_FIELDS = ("max_retries", "retry_delays", "max_delay", "jitter", "max_retry_duration", "rules")


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def parse_time(value: str | None, field: str) -> datetime | None:
    """A date or date-and-time from a form, read as UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PageError(f"{field} is not a date and time such as 2026-01-31T14:00") from None


def parse_delays(value: Any) -> tuple[timedelta, ...]:
    if value in (None, ""):
        return ()
    return tuple(
        parse_seconds(part, "Retry delays", "retry_delays") or timedelta(0)
        for part in str(value).replace(" ", "").split(",")
        if part
    )


def parse_rules(value: Any) -> tuple[RetryRule, ...]:
    """Rules by error type, one a line, written as queue-admin's --rule takes them."""
    rules = []
    for number, line in enumerate(str(value or "").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rules.append(retry_rule(line))
        except argparse.ArgumentTypeError as error:
            raise FieldError(f"Rule on line {number}: {error}", "rules") from None
    return tuple(rules)


def parse_policy(form: dict[str, Any]) -> tuple[RetryPolicy | None, list[str]]:
    """A retry policy from the form's optional fields, and the fields that were given."""
    fields = {
        "max_retries": parse_int(form.get("max_retries"), "Max retries", "max_retries", minimum=0),
        "retry_delays": parse_delays(form.get("retry_delays")),
        "max_delay": parse_seconds(form.get("max_delay"), "Max delay", "max_delay"),
        "jitter": parse_float(form.get("jitter"), "Jitter", "jitter"),
        "max_retry_duration": parse_seconds(form.get("max_retry_duration"), "Retry deadline", "max_retry_duration"),
        "rules": parse_rules(form.get("rules")),
    }
    given = [name for name, value in fields.items() if value not in (None, ())]
    if not given:
        return None, []
    return RetryPolicy(**{name: fields[name] for name in given}), given


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def enum_or_none(enum_class, value: Any, field: str):
    if not value:
        return None
    try:
        return enum_class(value)
    except ValueError:
        raise PageError(f"{field} {value!r} is not one of {', '.join(item.value for item in enum_class)}") from None


# Overview


def overview(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    window = request.query_params.get("window", "day")
    if window not in WINDOWS:
        window = "day"
    period, width = WINDOWS[window]
    statistics = client.get_statistics(max_queues=OVERVIEW_QUEUES)
    activity = client.get_queue_activity(period=period, bucket_width=width, max_queues=OVERVIEW_CHARTS)
    charts = [activity_chart(activity.totals, title="All queues")] + [
        activity_chart(queue, title=queue.queue_name) for queue in activity.queues
    ]
    return render(
        request,
        "overview.html",
        {
            "title": "Overview",
            "statistics": statistics,
            "charts": charts,
            "holding_breakers": breakers.holding(client),
            "uncharted": activity.omitted_queue_count,
            "window": window,
            "windows": list(WINDOWS),
        },
    )


# Dead-letter queue


def dead_letter_filters(params) -> dict[str, Any]:
    # With no filter at all the page opens on what needs triage: pending entries.
    status = params.get("status", "pending" if not params else "")
    if status == "any":
        status = ""
    return {
        "queue_name": params.get("queue", ""),
        "recovery_status": status,
        "death_reason": params.get("reason", ""),
        "failure_reason_contains": params.get("text", ""),
        "assigned_to": params.get("assignee", ""),
        "after": params.get("after", ""),
        "before": params.get("before", ""),
        "fingerprint": params.get("fingerprint", ""),
    }


def dead_letters(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    filters = dead_letter_filters(request.query_params)
    pager = client.list_dead_letter_jobs(
        queue_name=filters["queue_name"] or None,
        recovery_status=enum_or_none(RecoveryStatus, filters["recovery_status"], "Status"),
        death_reason=enum_or_none(DeathReason, filters["death_reason"], "Reason"),
        failure_reason_contains=filters["failure_reason_contains"] or None,
        assigned_to=filters["assigned_to"] or None,
        fingerprint=filters["fingerprint"] or None,
        dead_lettered_after=parse_time(filters["after"], "After"),
        dead_lettered_before=parse_time(filters["before"], "Before"),
        page_size=PAGE_SIZE,
        page_token=request.query_params.get("page", ""),
    )
    queue_names = [queue.queue_name for queue in client.get_statistics().queues]
    filter_query = query_string(
        queue=filters["queue_name"],
        status=filters["recovery_status"] or "any",
        reason=filters["death_reason"],
        text=filters["failure_reason_contains"],
        assignee=filters["assigned_to"],
        after=filters["after"],
        before=filters["before"],
        fingerprint=filters["fingerprint"],
    )
    return render(
        request,
        "dead_letters.html",
        {
            "title": "Dead-letter queue",
            "entries": pager.items,
            "total": pager.total_size,
            "next_page": pager.next_page_token,
            "filters": filters,
            "filter_query": filter_query,
            "queue_names": queue_names,
            "statuses": [status.value for status in RecoveryStatus],
            "reasons": [reason.value for reason in DeathReason],
            "here": str(request.url.path) + ("?" + str(request.url.query) if request.url.query else ""),
        },
    )


def dead_letters_bulk(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    ids = [entry_id for entry_id in form.get("ids") or [] if entry_id]
    back = str(form.get("back") or "/dlq")
    if not back.startswith("/dlq"):
        back = "/dlq"
    if not ids:
        flash(request, "Select at least one entry.", "error")
        return redirect(back)
    if form.get("action") == "retry":
        retried = skipped = 0
        reasons: list[str] = []
        for progress in client.retry_dead_letter_jobs(ids=ids, timeout=60):
            retried, skipped = progress.retried_count, progress.skipped_count
            reasons.extend(f"{skip.id}: {skip.reason}" for skip in progress.skipped)
        message = f"Retried {retried} of {plural(len(ids), 'selected entry', 'selected entries')}."
        if skipped:
            message += f" Skipped {skipped}: " + "; ".join(reasons[:5])
        flash(request, message, "success" if not skipped else "info")
    elif form.get("action") == "fail":
        reason = str(form.get("reason") or "").strip()
        if not reason:
            flash(request, "Give a reason to mark entries permanently failed.", "error")
            return redirect(back)
        failed, problems = 0, []
        for entry_id in ids:
            try:
                client.mark_permanently_failed(entry_id, reason)
                failed += 1
            except JobQueueError as error:
                if error.code.name == "UNAUTHENTICATED":
                    raise
                problems.append(describe(error, ""))
        message = f"Marked {failed} of {plural(len(ids), 'selected entry', 'selected entries')} permanently failed."
        if problems:
            message += " " + "; ".join(problems[:5])
        flash(request, message, "success" if not problems else "info")
    else:
        flash(request, "Choose retry or mark failed.", "error")
    return redirect(back)


def dead_letter_entry(
    request: Request, client: AdminClient, form: dict[str, Any], errors: dict[str, str] | None = None
) -> Response:
    """The entry's page; with `errors`, again after a refused form (status 400, the values kept)."""
    details = client.get_dead_letter_job(request.path_params["entry_id"])
    return render(
        request,
        "dead_letter.html",
        {
            "title": f"Dead-letter entry {details.entry.id}",
            "details": details,
            "entry": details.entry,
            "payload": pretty_json(details.entry.job_data),
            "here": f"/dlq/{details.entry.id}",
            "errors": errors or {},
            "values": {key: str(value or "") for key, value in form.items() if key != "csrf_token"},
        },
        status_code=400 if errors else 200,
    )


def dead_letter_update(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    entry_id = request.path_params["entry_id"]
    client.update_dead_letter_job(
        entry_id,
        admin_notes=str(form.get("admin_notes") or ""),
        assigned_to=str(form.get("assigned_to") or "").strip(),
        priority=parse_int(form.get("priority"), "Priority", "priority") or 0,
    )
    flash(request, "Saved notes, assignee and priority.", "success")
    return redirect(f"/dlq/{entry_id}")


def parse_job_data(value: Any) -> dict[str, Any] | None:
    """A new payload from the form: a JSON object, or None when the field is empty."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise FieldError(f"The new payload is not JSON: {error}", "job_data") from None
    if not isinstance(document, dict):
        raise FieldError('The new payload must be a JSON object, such as {"email": "a@example.com"}', "job_data")
    return document


def dead_letter_retry(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    entry_id = request.path_params["entry_id"]
    policy, _ = parse_policy(form)
    job_data = parse_job_data(form.get("job_data"))
    outcome = client.retry_dead_letter_job(entry_id, retry_policy=policy, job_data=job_data)
    new_payload = " with the new payload" if job_data is not None else ""
    flash(request, f"Job {outcome.job.job_id} is back in queue {outcome.job.queue_name}{new_payload}.", "success")
    return redirect(f"/dlq/{entry_id}")


def dead_letter_fail(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    entry_id = request.path_params["entry_id"]
    reason = str(form.get("reason") or "").strip()
    if not reason:
        raise PageError("Give a reason to mark the entry permanently failed.")
    client.mark_permanently_failed(entry_id, reason)
    flash(request, "Marked permanently failed.", "success")
    return redirect(f"/dlq/{entry_id}")


# Failure patterns


def patterns(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    queue_name = request.query_params.get("queue", "")
    pager = client.list_failure_patterns(
        queue_name=queue_name or None, page_size=PAGE_SIZE, page_token=request.query_params.get("page", "")
    )
    return render(
        request,
        "patterns.html",
        {
            "title": "Failure patterns",
            "patterns": pager.items,
            "total": pager.total_size,
            "next_page": pager.next_page_token,
            "queue_name": queue_name,
        },
    )


def redrive_preview(
    request: Request, client: AdminClient, form: dict[str, Any], errors: dict[str, str] | None = None
) -> Response:
    """The dry run and the redrive form; with `errors`, again after a refused form (status 400)."""
    fingerprint = str(form.get("fingerprint") or "") if errors else request.query_params.get("fingerprint", "")
    if not fingerprint:
        raise PageError("Choose a failure pattern to redrive.")
    (preview,) = list(client.retry_dead_letter_jobs(fingerprint=fingerprint, dry_run=True, sample_size=10, timeout=30))
    return render(
        request,
        "redrive.html",
        {
            "title": "Redrive a failure pattern",
            "fingerprint": fingerprint,
            "preview": preview,
            "errors": errors or {},
            "values": {key: str(value or "") for key, value in form.items() if key != "csrf_token"},
        },
        status_code=400 if errors else 200,
    )


def redrive_start(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    fingerprint = str(form.get("fingerprint") or "")
    if not fingerprint:
        raise PageError("Choose a failure pattern to redrive.")
    if form.get("confirm") != "yes":
        raise PageError("Tick the confirmation box to start the redrive.")
    rate_limit = parse_float(form.get("rate_limit"), "Rate limit", "rate_limit")
    if rate_limit is not None and rate_limit < 0:
        raise FieldError("Rate limit must not be negative", "rate_limit")
    max_jobs = parse_int(form.get("max_jobs"), "Max jobs", "max_jobs", minimum=0)
    policy, _ = parse_policy(form)
    dashboard: Dashboard = request.app.state.dashboard
    redrive = Redrive(id=secrets.token_urlsafe(12), owner=request.session["sid"], fingerprint=fingerprint)
    with dashboard.redrives_lock:
        dashboard.redrives[redrive.id] = redrive

    def run() -> None:
        try:
            for progress in client.retry_dead_letter_jobs(
                fingerprint=fingerprint, rate_limit=rate_limit, max_jobs=max_jobs, retry_policy=policy
            ):
                redrive.matched = progress.matched_count
                redrive.retried = progress.retried_count
                redrive.skipped = progress.skipped_count
                redrive.skip_reasons.extend(f"{skip.id}: {skip.reason}" for skip in progress.skipped)
        except JobQueueError as error:
            redrive.error = describe(error, dashboard.settings.target)
        finally:
            redrive.done = True

    threading.Thread(target=run, name=f"redrive-{redrive.id}", daemon=True).start()
    return redirect(f"/redrives/{redrive.id}")


def redrive_progress(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    dashboard: Dashboard = request.app.state.dashboard
    with dashboard.redrives_lock:
        redrive = dashboard.redrives.get(request.path_params["redrive_id"])
    if redrive is None or redrive.owner != request.session.get("sid"):
        raise PageError("There is no such redrive in this session.", 404)
    return render(request, "redrive_progress.html", {"title": "Redrive progress", "redrive": redrive})


# Queues


def queues(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    pager = client.list_queues(page_size=QUEUES_PAGE_SIZE, page_token=request.query_params.get("page", ""))
    names = [queue.name for queue in pager.items]
    found = client.get_statistics(names, max_queues=len(names)).queues if names else ()
    return render(
        request,
        "queues.html",
        {
            "title": "Queues",
            "queues": pager.items,
            "statistics": {item.queue_name: item for item in found},
            "next_page": pager.next_page_token,
        },
    )


def queue_detail(
    request: Request, client: AdminClient, form: dict[str, Any], errors: dict[str, str] | None = None
) -> Response:
    """The queue's page; with `errors`, again after a refused form (status 400, the values kept)."""
    queue = client.get_queue(str(form.get("queue_name") or "") if errors else request.query_params.get("name", ""))
    alert_policy = client.get_queue_alert_policy(queue.name)
    values = {
        **policy_form_values(queue.retry_policy),
        **alert_form_values(alert_policy),
        **limit_form_values(queue),
        **breakers.breaker_form_values(queue),
    }
    if errors:
        fields = (*POLICY_FIELDS, *ALERT_FIELDS, *LIMIT_FIELDS, *breakers.BREAKER_FIELDS, "grace")
        values = {key: str(form.get(key) or "") for key in fields}
    return render(
        request,
        "queue.html",
        {
            "title": f"Queue {queue.name}",
            "queue": queue,
            "alert_policy": alert_policy,
            "preview": None,
            "values": values,
            "states": CLEANABLE_STATES,
            "errors": errors or {},
        },
        status_code=400 if errors else 200,
    )


def policy_form_values(policy: RetryPolicy | None) -> dict[str, str]:
    if policy is None:
        return {}
    return {
        "max_retries": "" if policy.max_retries is None else str(policy.max_retries),
        "retry_delays": ", ".join(f"{delay.total_seconds():g}" for delay in policy.retry_delays),
        "max_delay": "" if policy.max_delay is None else f"{policy.max_delay.total_seconds():g}",
        "jitter": "" if policy.jitter is None else f"{policy.jitter:g}",
        "max_retry_duration": (
            "" if policy.max_retry_duration is None else f"{policy.max_retry_duration.total_seconds():g}"
        ),
        "rules": "\n".join(rule_text(rule) for rule in policy.rules),
    }


def queue_policy(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    name = str(form.get("queue_name") or "")
    policy, given = parse_policy(form)
    preview = form.get("action") == "preview"
    result = client.update_queue_policy(name, policy, validate_only=preview)
    if preview:
        return render(
            request,
            "queue.html",
            {
                "title": f"Queue {name}",
                "queue": client.get_queue(name),
                "alert_policy": client.get_queue_alert_policy(name),
                "preview": result,
                "values": {key: str(form.get(key) or "") for key in POLICY_FIELDS},
                "states": CLEANABLE_STATES,
            },
        )
    flash(request, "Saved the retry policy." if given else "Cleared the queue's own policy.", "success")
    return redirect("/queue?" + query_string(name=name))


LIMIT_FIELDS = ("max_active", "max_starts_per_second")


def limit_form_values(queue: Queue) -> dict[str, str]:
    return {
        "max_active": "" if queue.max_active is None else str(queue.max_active),
        "max_starts_per_second": "" if queue.max_starts_per_second is None else f"{queue.max_starts_per_second:g}",
    }


def queue_limits(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    """Sets both lease limits as the form has them; an empty field removes that limit."""
    name = str(form.get("queue_name") or "")
    max_active = parse_int(form.get("max_active"), "Max active", "max_active", minimum=1)
    rate = parse_float(form.get("max_starts_per_second"), "Max starts per second", "max_starts_per_second")
    try:
        client.update_queue_policy(
            name, max_active=max_active, max_starts_per_second=rate, update_mask=list(LIMIT_FIELDS)
        )
    except InvalidArgument as error:
        field = error.field if error.field in LIMIT_FIELDS else "max_active"
        raise FieldError(error.message, field) from None
    flash(request, f"Saved the lease limits of {name}.", "success")
    return redirect("/queue?" + query_string(name=name))


ALERT_FIELDS = ("dlq_alert_threshold", "email_recipients")


def alert_form_values(policy: QueueAlertPolicy) -> dict[str, str]:
    threshold = policy.dlq_alert_threshold
    return {
        "dlq_alert_threshold": "" if threshold is None else str(threshold),
        "email_recipients": ", ".join(policy.email_recipients),
    }


def queue_alerts(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    name = str(form.get("queue_name") or "")
    threshold = parse_int(form.get("dlq_alert_threshold"), "DLQ alert threshold", "dlq_alert_threshold", minimum=0)
    raw = str(form.get("email_recipients") or "").replace("\n", ",")
    recipients = tuple(address.strip() for address in raw.split(",") if address.strip())
    try:
        client.update_queue_alert_policy(
            QueueAlertPolicy(name, dlq_alert_threshold=threshold, email_recipients=recipients)
        )
    except InvalidArgument as error:
        field = "email_recipients" if "email_recipients" in (error.field or "") else "dlq_alert_threshold"
        raise FieldError(error.message, field) from None
    flash(request, f"Saved the alert policy of {name}.", "success")
    return redirect("/queue?" + query_string(name=name))


def queue_pause(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    name = str(form.get("queue_name") or "")
    if form.get("action") == "resume":
        client.resume_queue(name)
        flash(request, f"Resumed {name}: workers lease from it again.", "success")
    else:
        client.pause_queue(name)
        flash(request, f"Paused {name}: workers lease nothing from it until it is resumed.", "success")
    back = str(form.get("back") or "/queues")
    return redirect(back if back.startswith("/queue") else "/queues")


def queue_clean(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    name = str(form.get("queue_name") or "")
    state = str(form.get("state") or "")
    if state not in CLEANABLE_STATES:
        raise PageError("Choose the state of the jobs to delete.")
    if str(form.get("confirm") or "").strip() != name:
        raise PageError("Type the queue's name to confirm the clean.")
    recovery_status = form.get("recovery_status") or None if state == "dead_letter" else None
    deleted = client.clean_queue(
        name,
        JobState(state),
        grace=parse_seconds(form.get("grace"), "Grace", "grace"),
        recovery_status=enum_or_none(RecoveryStatus, recovery_status, "Dead-letter status"),
    )
    flash(request, f"Deleted {plural(deleted, state.replace('_', '-') + ' job')} from {name}.", "success")
    return redirect("/queue?" + query_string(name=name))


# Recovery


def recovery(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    report = client.get_recovery_status(page_size=20, page_token=request.query_params.get("page", ""))
    return render(request, "recovery.html", {"title": "Recovery", "report": report})


def recovery_trigger(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    run = client.trigger_recovery(timeout=120)
    counts = run.counts
    flash(
        request,
        f"Sweep {run.id} {run.status.value if run.status else 'ran'}: {counts.due_retries} due retries, "
        f"{counts.stalled_jobs} stalled jobs, {counts.exhausted_jobs} exhausted jobs dead-lettered.",
        "success" if not run.error else "error",
    )
    return redirect("/recovery")


# Audit


def audit(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    params = request.query_params
    filters = {key: params.get(key, "") for key in ("actor", "action", "target", "after", "before")}
    pager = client.list_audit_events(
        actor=filters["actor"] or None,
        action=filters["action"] or None,
        target=filters["target"] or None,
        created_after=parse_time(filters["after"], "After"),
        created_before=parse_time(filters["before"], "Before"),
        page_size=PAGE_SIZE,
        page_token=params.get("page", ""),
    )
    return render(
        request,
        "audit.html",
        {
            "title": "Audit log",
            "events": [(event, json.dumps(event.parameters, sort_keys=True, default=str)) for event in pager.items],
            "next_page": pager.next_page_token,
            "filters": filters,
            "filter_query": query_string(**filters),
        },
    )


ROUTES = [
    Route("/", page(overview), methods=["GET"]),
    Route("/dlq", page(dead_letters), methods=["GET"]),
    Route("/dlq/bulk", page(dead_letters_bulk, write=True), methods=["POST"]),
    Route("/dlq/{entry_id}", page(dead_letter_entry), methods=["GET"]),
    Route(
        "/dlq/{entry_id}/update", page(dead_letter_update, write=True, form_page=dead_letter_entry), methods=["POST"]
    ),
    Route("/dlq/{entry_id}/retry", page(dead_letter_retry, write=True, form_page=dead_letter_entry), methods=["POST"]),
    Route("/dlq/{entry_id}/fail", page(dead_letter_fail, write=True), methods=["POST"]),
    Route("/patterns", page(patterns), methods=["GET"]),
    Route("/patterns/redrive", page(redrive_preview), methods=["GET"]),
    Route("/patterns/redrive", page(redrive_start, write=True, form_page=redrive_preview), methods=["POST"]),
    Route("/redrives/{redrive_id}", page(redrive_progress), methods=["GET"]),
    Route("/queues", page(queues), methods=["GET"]),
    Route("/queue", page(queue_detail), methods=["GET"]),
    Route("/queue/policy", page(queue_policy, write=True, form_page=queue_detail), methods=["POST"]),
    Route("/queue/alerts", page(queue_alerts, write=True, form_page=queue_detail), methods=["POST"]),
    Route("/queue/limits", page(queue_limits, write=True, form_page=queue_detail), methods=["POST"]),
    Route("/queue/breaker", page(breakers.queue_breaker, write=True, form_page=queue_detail), methods=["POST"]),
    Route("/queue/pause", page(queue_pause, write=True), methods=["POST"]),
    Route("/queue/clean", page(queue_clean, write=True, form_page=queue_detail), methods=["POST"]),
    Route("/recovery", page(recovery), methods=["GET"]),
    Route("/recovery/trigger", page(recovery_trigger, write=True), methods=["POST"]),
    Route("/audit", page(audit), methods=["GET"]),
]
