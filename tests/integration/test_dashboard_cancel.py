"""The dashboard's Cancel button on a job's page, against a real gRPC server on SQLite and PostgreSQL:
a confirmed, CSRF-checked form that cancels a waiting job at once and asks a running one to stop,
audited under the token's name; CANCELLED in the state filter and the overview."""

from __future__ import annotations

import re

from jobqueue import JobState

from tests.integration.test_dashboard import (  # noqa: F401
    QUEUE,
    admin,
    csrf,
    dashboard,
    jobs,
    signed_in,
    text_of,
)


def job_page(client, job_id):
    return client.get("/job", params={"id": job_id})


def test_cancel_button_cancels_a_waiting_job_and_asks_a_running_one_to_stop(signed_in, jobs, admin):
    jobs.enqueue(QUEUE, "send", {}, job_id="waiting-1")
    page = job_page(signed_in, "waiting-1")
    assert 'id="cancel-button"' in page.text and 'class="danger"' in page.text  # confirmed by the page's script

    refused = signed_in.post("/job/cancel", data={"csrf_token": "forged", "id": "waiting-1"})
    assert refused.status_code == 403
    assert jobs.get_job("waiting-1").job.state == JobState.WAITING

    done = signed_in.post("/job/cancel", data={"csrf_token": csrf(page.text), "id": "waiting-1", "reason": "duplicate"})
    assert done.status_code == 200 and "Job waiting-1 is cancelled." in text_of(done)
    assert jobs.get_job("waiting-1").job.state == JobState.CANCELLED
    assert 'id="cancel-button"' not in done.text
    assert re.search(r'class="badge cancelled" id="job-state"', done.text)

    jobs.enqueue(QUEUE, "send", {}, job_id="running-1")
    jobs.lease(QUEUE)
    page = job_page(signed_in, "running-1")
    asked = signed_in.post("/job/cancel", data={"csrf_token": csrf(page.text), "id": "running-1"})
    assert "its worker is asked to stop it" in text_of(asked)
    assert 'id="cancel-requested"' in asked.text and 'id="cancel-button"' not in asked.text
    assert jobs.get_job("running-1").job.state == JobState.ACTIVE

    events = list(admin.list_audit_events(action="CancelJob"))
    assert {event.target: event.actor for event in events} == {"job/waiting-1": "admin", "job/running-1": "admin"}


def test_a_finished_job_has_no_cancel_button_and_a_forged_cancel_is_a_readable_error(signed_in, jobs):
    jobs.enqueue(QUEUE, "send", {}, job_id="done-1")
    (job,) = jobs.lease(QUEUE)
    jobs.track_completion("done-1", job.attempt_number)
    page = job_page(signed_in, "done-1")
    assert 'id="cancel-button"' not in page.text
    back = "/job?id=done-1"
    refused = signed_in.post("/job/cancel", data={"csrf_token": csrf(page.text), "id": "done-1", "back": back})
    # Refused writes come back to the page they were sent from, with the server's reason.
    assert str(refused.url).endswith(back)
    assert "job 'done-1' is COMPLETED; only WAITING, ACTIVE, FAILED jobs can be cancelled" in text_of(refused)
    assert jobs.get_job("done-1").job.state == JobState.COMPLETED


def test_cancelled_jobs_are_a_state_filter_and_an_overview_count(signed_in, jobs, admin):
    jobs.enqueue(QUEUE, "send", {}, job_id="c-1")
    jobs.cancel_job("c-1")
    listing = signed_in.get("/jobs", params={"state": "cancelled"})
    assert '<option value="cancelled" selected' in listing.text or 'value="cancelled"' in listing.text
    assert "c-1" in listing.text
    overview = signed_in.get("/")
    assert re.search(r'data-queue="emails">.*?data-count="cancelled">1<', overview.text, flags=re.S)
