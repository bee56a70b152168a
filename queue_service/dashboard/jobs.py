"""The job browser: a filtered, keyset-paged list of jobs, one job's page, and lookup by id."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from jobqueue import AdminClient
from jobqueue.errors import InvalidArgument, NotFound
from jobqueue.models import JobState
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from queue_service.dashboard.forms import query_string
from queue_service.dashboard.pages import PageError, flash, page, render
from queue_service.dashboard.routes import PAGE_SIZE, enum_or_none, pretty_json, redirect

# Longest id the search box sends on; the server refuses longer ones anyway.
MAX_SEARCH_LENGTH = 255


def jobs(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    params = request.query_params
    filters = {key: params.get(key, "").strip() for key in ("queue", "state", "name")}
    state = enum_or_none(JobState, filters["state"], "State")
    pager = client.list_jobs(
        queue_name=filters["queue"] or None,
        state=state,
        job_name=filters["name"] or None,
        page_size=PAGE_SIZE,
        page_token=params.get("page", ""),
    )
    return render(
        request,
        "jobs.html",
        {
            "title": "Jobs",
            "jobs": pager.items,
            "total": pager.total_size,
            "next_page": pager.next_page_token,
            "filters": filters,
            "filter_query": query_string(**filters),
            "states": [item.value for item in JobState],
        },
    )


def job_detail(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    job_id = request.query_params.get("id", "")
    if not job_id:
        raise PageError("Give the id of the job to show.")
    details = client.get_job_details(job_id)
    job = details.job
    return render(
        request,
        "job.html",
        {
            "title": f"Job {job.job_id}",
            "job": job,
            "details": details,
            "payload": pretty_json(job.job_data),
            "result": pretty_json(job.result) if job.result is not None else None,
        },
    )


def job_cancel(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    job_id = str(form.get("id") or "")
    if not job_id:
        raise PageError("Give the id of the job to cancel.")
    reason = str(form.get("reason") or "").strip()
    progress = list(client.cancel_jobs(ids=[job_id], reason=reason))
    skipped = [skip for message in progress for skip in message.skipped]
    if skipped:
        raise PageError(skipped[0].reason, 409)
    final = progress[-1]
    if final.cancel_requested_count:
        flash(request, f"Job {job_id} is running: its worker is asked to stop it.", "success")
    else:
        flash(request, f"Job {job_id} is cancelled.", "success")
    return redirect("/job?" + query_string(id=job_id))


def search(request: Request, client: AdminClient, form: dict[str, Any]) -> Response:
    """Jump to the job with this id, or else to the dead-letter entry with it."""
    wanted = request.query_params.get("q", "").strip()
    if not wanted:
        raise PageError("Enter a job id or a dead-letter entry id to look for.")
    if len(wanted) > MAX_SEARCH_LENGTH:
        raise PageError(f"An id is at most {MAX_SEARCH_LENGTH} characters long.")
    lookups = (
        (client.get_job_details, lambda: "/job?" + query_string(id=wanted)),
        (client.get_dead_letter_job, lambda: "/dlq/" + quote(wanted, safe="")),
    )
    for lookup, location in lookups:
        try:
            lookup(wanted)
        except (NotFound, InvalidArgument):
            continue  # not this kind of id: try the next
        return RedirectResponse(location(), status_code=303)
    return render(
        request,
        "error.html",
        {"title": "Not found", "message": f"No job and no dead-letter entry has the id {wanted!r}."},
        status_code=404,
    )


ROUTES = [
    Route("/jobs", page(jobs), methods=["GET"]),
    Route("/job", page(job_detail), methods=["GET"]),
    Route("/job/cancel", page(job_cancel, write=True), methods=["POST"]),
    Route("/search", page(search), methods=["GET"]),
]
