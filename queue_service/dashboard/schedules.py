"""The schedules page: each cron schedule with its next run times; create, pause, resume and delete."""

from __future__ import annotations

import json
from typing import Any

from jobqueue import AdminClient
from jobqueue.models import MisfirePolicy, Schedule
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from queue_service.dashboard.pages import FieldError, flash, page, render

PAGE_SIZE = 100


def schedules(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    pager = client.list_schedules(page_size=PAGE_SIZE, page_token=request.query_params.get("page", ""))
    return render(
        request,
        "schedules.html",
        {
            "title": "Schedules",
            "schedules": pager.items,
            "next_page": pager.next_page_token,
            "misfire_policies": [policy.value for policy in MisfirePolicy],
        },
    )


def _job_data(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise FieldError('Job data must be JSON, such as {"report": "daily"}.', "job_data") from None
    if not isinstance(value, dict):
        raise FieldError("Job data must be a JSON object.", "job_data")
    return value


def schedule_create(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    def text(key: str) -> str:
        return str(form.get(key) or "").strip()

    misfire = text("misfire_policy") or None
    if misfire not in (None, *(policy.value for policy in MisfirePolicy)):
        raise FieldError("Missed slots must be skip or run_once.", "misfire_policy")
    created = client.create_schedule(
        Schedule(
            name=text("name"),
            cron=text("cron"),
            time_zone=text("time_zone") or "UTC",
            queue_name=text("queue_name"),
            job_name=text("job_name"),
            job_data=_job_data(text("job_data")),
            misfire_policy=misfire,
        )
    )
    first = created.next_run_times[0].strftime("%Y-%m-%d %H:%M UTC") if created.next_run_times else "never"
    flash(request, f"Created schedule {created.name}; it runs next at {first}.", "success")
    return RedirectResponse("/schedules", status_code=303)


def schedule_pause(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    name = str(form.get("name") or "")
    if form.get("action") == "resume":
        client.resume_schedule(name)
        flash(request, f"Resumed schedule {name}.", "success")
    elif form.get("action") == "delete":
        client.delete_schedule(name)
        flash(request, f"Deleted schedule {name}; the jobs it enqueued stay.", "success")
    else:
        client.pause_schedule(name)
        flash(request, f"Paused schedule {name}: it enqueues nothing until resumed.", "success")
    return RedirectResponse("/schedules", status_code=303)


ROUTES = [
    Route("/schedules", page(schedules), methods=["GET"]),
    Route("/schedules/create", page(schedule_create, write=True), methods=["POST"]),
    Route("/schedules/action", page(schedule_pause, write=True), methods=["POST"]),
]
