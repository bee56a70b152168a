"""The web dashboard over HTTP against a real gRPC server with authentication, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import html
import re
import time
from collections.abc import Iterator

import pytest
from jobqueue import AdminClient, JobClient
from starlette.testclient import TestClient

from queue_service.dashboard.app import SESSION_COOKIE, DashboardSettings, create_app
from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN

QUEUE = "emails"


def csrf(page_html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    assert match, "the page has a CSRF token"
    return match.group(1)


def text_of(response) -> str:
    """The page's visible text, tags stripped, entities decoded, whitespace collapsed."""
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", response.text, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def sign_in(client: TestClient, token: str = ADMIN_TOKEN):
    page = client.get("/login")
    return client.post(
        "/login", data={"csrf_token": csrf(page.text), "token": token, "next": "/"}, follow_redirects=False
    )


def post(client: TestClient, path: str, data: dict, *, page: str = "/") -> object:
    token = csrf(client.get(page).text)
    return client.post(path, data={"csrf_token": token, **data}, follow_redirects=True)


@pytest.fixture
def dashboard(secured_service) -> Iterator[TestClient]:
    app = create_app(DashboardSettings(target=secured_service.target))
    with TestClient(app, base_url="https://testserver") as client:
        yield client
    app.state.dashboard.close()


@pytest.fixture
def signed_in(dashboard) -> TestClient:
    assert sign_in(dashboard).status_code == 303
    return dashboard


@pytest.fixture
def jobs(secured_service) -> Iterator[JobClient]:
    with JobClient(secured_service.target, token=WORKER_TOKEN, timeout=10) as client:
        yield client


@pytest.fixture
def admin(secured_service) -> Iterator[AdminClient]:
    with AdminClient(secured_service.target, token=ADMIN_TOKEN, timeout=10) as client:
        yield client


def dead_letter(jobs: JobClient, job_id: str, message: str = "Connection timeout after 30s", queue: str = QUEUE) -> str:
    jobs.enqueue(queue, "send", {"to": "a@example.com", "job": job_id}, job_id=job_id)
    (job,) = jobs.lease(queue)
    assert job.job_id == job_id
    result = jobs.track_failure(
        job_id,
        job.attempt_number,
        message,
        error_type="TimeoutError",
        details='Traceback (most recent call last):\n  File "send.py", line 3\nTimeoutError',
        non_retryable=True,
    )
    return result.dead_letter_id


def test_sign_in_sets_a_secure_http_only_cookie_and_refuses_other_tokens(dashboard):
    assert dashboard.get("/", follow_redirects=False).headers["location"].startswith("/login")
    refused = sign_in(dashboard, "not-a-token-the-server-knows-0123")
    assert refused.status_code == 401 and "The server does not know this token." in text_of(refused)
    worker = sign_in(dashboard, WORKER_TOKEN)
    assert worker.status_code == 401 and "sign in with an admin token" in text_of(worker)
    assert dashboard.get("/", follow_redirects=False).status_code == 303

    accepted = sign_in(dashboard)
    assert accepted.status_code == 303
    cookie = next(value for key, value in accepted.headers.multi_items() if key == "set-cookie")
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"secure", "httponly", "samesite=strict"} <= attributes
    overview = dashboard.get("/")
    assert overview.status_code == 200 and "Overview" in overview.text
    assert "default-src 'self'" in overview.headers["content-security-policy"]
    assert overview.headers["cache-control"] == "no-store"
    assert "//" not in re.sub(
        r"https?://testserver|http://www.w3.org", "", " ".join(re.findall(r'(?:src|href)="([^"]*)"', overview.text))
    )

    post(dashboard, "/logout", {})
    assert dashboard.get("/", follow_redirects=False).status_code == 303


def test_the_session_cookie_carries_the_token_sealed_and_only_its_own_secret_opens_it(secured_service):
    settings = DashboardSettings(target=secured_service.target, session_secret="one-shared-secret-0123456789")
    first = create_app(settings)
    with TestClient(first, base_url="https://testserver") as browser:
        assert sign_in(browser).status_code == 303
        cookie = browser.cookies[SESSION_COOKIE]
    first.state.dashboard.close()
    payload = base64.b64decode(cookie.split(".")[0] + "==").decode()
    assert "sealed_token" in payload and ADMIN_TOKEN not in payload

    def overview_with(cookie_value: str, secret: str) -> int:
        app = create_app(DashboardSettings(target=secured_service.target, session_secret=secret))
        with TestClient(app, base_url="https://testserver", cookies={SESSION_COOKIE: cookie_value}) as browser:
            status = browser.get("/", follow_redirects=False).status_code
        app.state.dashboard.close()
        return status

    assert overview_with(cookie, "one-shared-secret-0123456789") == 200  # a replica sharing the secret
    assert overview_with(cookie, "another-secret-0123456789abcd") == 303  # back to sign-in


def test_writes_without_the_csrf_token_are_refused_and_change_nothing(signed_in, jobs, admin):
    entry_id = dead_letter(jobs, "csrf-1")
    refused = signed_in.post(f"/dlq/{entry_id}/retry", data={"csrf_token": "forged"})
    assert refused.status_code == 403 and "This form has expired" in text_of(refused)
    missing = signed_in.post(f"/dlq/{entry_id}/retry", data={})
    assert missing.status_code == 403
    assert admin.get_dead_letter_job(entry_id).entry.recovery_status.value == "pending"
    assert list(admin.list_audit_events(action="RetryDeadLetterJob")) == []


def test_overview_shows_counts_dlq_summary_and_activity(signed_in, jobs, admin, secured_service):
    dead_letter(jobs, "dead-1")
    secured_service.clock.advance(1)  # the period ends, exclusively, at the server's now
    jobs.enqueue(QUEUE, "send", {}, job_id="waiting-1")
    admin.pause_queue("sms", allow_missing=True)
    page = signed_in.get("/?window=hour")
    assert page.status_code == 200
    text = text_of(page)
    assert re.search(r'data-queue="emails">.*?data-count="waiting">1<', page.text, flags=re.S)
    assert re.search(r'data-count="dlq_total_pending">1<', page.text)
    assert "paused" in text and "Last hour" in text
    # The chart of the hour holds the failed run and the dead letter, also as a data table.
    assert "All queues: 0 completed, 1 failed, 0 retried, 1 dead-lettered" in page.text
    for window in ("day", "week"):
        assert signed_in.get(f"/?window={window}").status_code == 200


def test_dead_letter_list_filters_pages_and_bulk_actions_audited_under_the_token_name(signed_in, jobs, admin):
    ids = [dead_letter(jobs, f"bulk-{n}", message=f"Connection timeout after {n}s") for n in range(3)]
    other = dead_letter(jobs, "other-1", message="401 Unauthorized", queue="sms")
    admin.update_dead_letter_job(ids[0], assigned_to="ops@example.com", priority=5)

    listing = signed_in.get("/dlq")
    assert listing.status_code == 200
    rows = re.findall(r'data-entry="([^"]+)"', listing.text)
    assert rows[0] == ids[0], "priority first"
    assert set(rows) == {*ids, other}
    assert set(re.findall(r'data-entry="([^"]+)"', signed_in.get("/dlq", params={"queue": "sms"}).text)) == {other}
    assert re.findall(r'data-entry="([^"]+)"', signed_in.get("/dlq", params={"assignee": "ops@example.com"}).text) == [
        ids[0]
    ]
    assert set(re.findall(r'data-entry="([^"]+)"', signed_in.get("/dlq", params={"text": "unauthorized"}).text)) == {
        other
    }
    assert re.findall(r'data-entry="([^"]+)"', signed_in.get("/dlq", params={"after": "2100-01-01T00:00"}).text) == []
    bad = signed_in.get("/dlq", params={"after": "yesterday"})
    assert bad.status_code == 400 and "After is not a date and time" in text_of(bad)

    retried = post(signed_in, "/dlq/bulk", {"ids": ids[:2], "action": "retry", "back": "/dlq"}, page="/dlq")
    assert "Retried 2 of 2 selected entries." in text_of(retried)
    no_reason = post(signed_in, "/dlq/bulk", {"ids": [ids[2]], "action": "fail", "back": "/dlq"}, page="/dlq")
    assert "Give a reason" in text_of(no_reason)
    failed = post(
        signed_in,
        "/dlq/bulk",
        {"ids": [ids[2], ids[0]], "action": "fail", "reason": "bad data", "back": "/dlq"},
        page="/dlq",
    )
    assert "Marked 1 of 2 selected entries permanently failed." in text_of(failed)
    assert "RECOVERED" in text_of(failed), "the refusal for the recovered entry is shown as the server's message"
    statuses = {entry.id: entry.recovery_status.value for entry in admin.list_dead_letter_jobs()}
    assert statuses == {ids[0]: "recovered", ids[1]: "recovered", ids[2]: "permanently_failed", other: "pending"}
    actors = {
        event.actor
        for event in admin.list_audit_events()
        if event.action in ("RetryDeadLetterJobs", "MarkPermanentlyFailed")
    }
    assert actors == {"admin"}

    for n in range(3):
        dead_letter(jobs, f"page-{n}", queue="push")
    first = signed_in.get("/dlq", params={"status": "pending"})
    assert "4 matching entries" in text_of(first)


def test_dead_letter_entry_page_shows_everything_and_its_actions_work(signed_in, jobs, admin):
    entry_id = dead_letter(jobs, "entry-1")
    page = signed_in.get(f"/dlq/{entry_id}")
    assert page.status_code == 200
    assert '{\n  "job": "entry-1",\n  "to": "a@example.com"\n}' in html.unescape(page.text), "pretty JSON payload"
    assert "Traceback (most recent call last):" in page.text
    text = text_of(page)
    assert "Attempt 1: dead letter" in text and "non retryable" in text

    saved = post(
        signed_in,
        f"/dlq/{entry_id}/update",
        {
            "admin_notes": "Investigating <b>root</b> cause",
            "assigned_to": "me@example.com",
            "priority": "7",
            "back": f"/dlq/{entry_id}",
        },
        page=f"/dlq/{entry_id}",
    )
    assert "Saved notes" in text_of(saved)
    assert "Investigating &lt;b&gt;root&lt;/b&gt; cause" in saved.text, "notes are escaped"
    entry = admin.get_dead_letter_job(entry_id).entry
    assert (entry.admin_notes, entry.assigned_to, entry.priority) == (
        "Investigating <b>root</b> cause",
        "me@example.com",
        7,
    )

    bad_priority = post(
        signed_in, f"/dlq/{entry_id}/update", {"priority": "high", "back": f"/dlq/{entry_id}"}, page=f"/dlq/{entry_id}"
    )
    assert "Priority must be a whole number" in text_of(bad_priority)

    retried = post(signed_in, f"/dlq/{entry_id}/retry", {"back": f"/dlq/{entry_id}"}, page=f"/dlq/{entry_id}")
    assert f"Job entry-1 is back in queue {QUEUE}." in text_of(retried)
    again = post(signed_in, f"/dlq/{entry_id}/retry", {"back": f"/dlq/{entry_id}"}, page=f"/dlq/{entry_id}")
    again_text = text_of(again)
    assert (
        again.status_code == 200
        and "RECOVERED" in again_text
        and "Traceback" not in again_text.split("Error history")[0]
    )

    second = dead_letter(jobs, "entry-2", queue="push")
    marked = post(
        signed_in, f"/dlq/{second}/fail", {"reason": "Invalid address", "back": f"/dlq/{second}"}, page=f"/dlq/{second}"
    )
    assert "Marked permanently failed." in text_of(marked) and "Invalid address" in text_of(marked)

    missing = signed_in.get("/dlq/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and "not found" in text_of(missing).lower()
    actions = [(event.actor, event.action) for event in admin.list_audit_events()]
    assert ("admin", "UpdateDeadLetterJob") in actions and ("admin", "RetryDeadLetterJob") in actions


def test_failure_patterns_and_a_confirmed_redrive_with_progress(signed_in, jobs, admin):
    for n in range(3):
        dead_letter(jobs, f"pattern-{n}", message=f"Connection to 10.0.0.{n} timed out after {n}ms")
    page = signed_in.get("/patterns")
    assert page.status_code == 200
    text = text_of(page)
    assert "Connection to <address> timed out after <n>ms" in text
    (pattern,) = admin.list_failure_patterns()
    fingerprint = pattern.fingerprint
    preview = signed_in.get("/patterns/redrive", params={"fingerprint": fingerprint})
    assert re.search(r'id="matched">3<', preview.text)
    assert all(entry.recovery_status.value == "pending" for entry in admin.list_dead_letter_jobs())

    unconfirmed = post(
        signed_in, "/patterns/redrive", {"fingerprint": fingerprint, "back": "/patterns"}, page="/patterns"
    )
    assert "Tick the confirmation box" in text_of(unconfirmed)
    started = post(
        signed_in,
        "/patterns/redrive",
        {"fingerprint": fingerprint, "confirm": "yes", "rate_limit": "", "max_retries": "2", "back": "/patterns"},
        page="/patterns",
    )
    assert "Redrive progress" in started.text
    progress_url = str(started.url.path)
    deadline = time.monotonic() + 30  # the redrive runs in a thread of its own; a busy machine slows it
    while True:
        progress = signed_in.get(progress_url)
        if 'id="redrive-state">done<' in progress.text or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert 'id="retried">3<' in progress.text
    assert all(entry.recovery_status.value == "recovered" for entry in admin.list_dead_letter_jobs())
    assert admin.get_job_details("pattern-0").job.retry_policy.max_retries == 2


def test_queues_pause_resume_policy_preview_and_clean(signed_in, jobs, admin):
    jobs.enqueue(QUEUE, "send", {}, job_id="q-1")
    page = signed_in.get("/queues")
    assert page.status_code == 200 and 'data-queue="emails"' in page.text
    paused = post(
        signed_in, "/queue/pause", {"queue_name": QUEUE, "action": "pause", "back": "/queues"}, page="/queues"
    )
    assert "Paused emails" in text_of(paused) and admin.get_queue(QUEUE).paused
    resumed = post(
        signed_in, "/queue/pause", {"queue_name": QUEUE, "action": "resume", "back": "/queues"}, page="/queues"
    )
    assert "Resumed emails" in text_of(resumed) and not admin.get_queue(QUEUE).paused

    detail = f"/queue?name={QUEUE}"
    preview = post(
        signed_in,
        "/queue/policy",
        {"queue_name": QUEUE, "max_retries": "3", "retry_delays": "10s, 1m", "action": "preview", "back": detail},
        page=detail,
    )
    preview_text = text_of(preview)
    assert "Preview (not saved)" in preview_text
    assert "Retry 1 after 10s Retry 2 after 1m Retry 3 after 6m" in preview_text
    assert admin.get_queue(QUEUE).retry_policy is None, "a preview saves nothing"
    saved = post(
        signed_in,
        "/queue/policy",
        {"queue_name": QUEUE, "max_retries": "3", "retry_delays": "10s, 1m", "action": "save", "back": detail},
        page=detail,
    )
    assert "Saved the retry policy." in text_of(saved)
    assert admin.get_queue(QUEUE).retry_policy.max_retries == 3
    invalid = post(
        signed_in, "/queue/policy", {"queue_name": QUEUE, "jitter": "2", "action": "save", "back": detail}, page=detail
    )
    assert "jitter" in text_of(invalid).lower() and invalid.status_code == 200

    (job,) = jobs.lease(QUEUE)
    jobs.track_completion(job.job_id, job.attempt_number)
    unconfirmed = post(
        signed_in,
        "/queue/clean",
        {"queue_name": QUEUE, "state": "completed", "grace": "", "confirm": "nope", "back": detail},
        page=detail,
    )
    assert "Type the queue's name to confirm" in text_of(unconfirmed)
    assert admin.get_statistics([QUEUE]).queues[0].completed_count == 1
    cleaned = post(
        signed_in,
        "/queue/clean",
        {"queue_name": QUEUE, "state": "completed", "grace": "", "confirm": QUEUE, "back": detail},
        page=detail,
    )
    assert "Deleted 1 completed job from emails." in text_of(cleaned)
    assert admin.get_statistics([QUEUE]).queues[0].completed_count == 0
    assert {event.action for event in admin.list_audit_events(actor="admin")} >= {
        "PauseQueue",
        "ResumeQueue",
        "UpdateQueuePolicy",
        "CleanQueue",
    }


def test_recovery_page_and_a_manual_sweep(signed_in):
    page = signed_in.get("/recovery")
    assert page.status_code == 200 and "No runs yet." in text_of(page)
    swept = post(signed_in, "/recovery/trigger", {"back": "/recovery"}, page="/recovery")
    text = text_of(swept)
    assert re.search(r"Sweep \d+ succeeded", text)
    assert "manual" in text


def test_audit_log_lists_and_filters_events(signed_in, admin):
    admin.pause_queue("sms", allow_missing=True)
    admin.resume_queue("sms")
    page = signed_in.get("/audit")
    assert page.status_code == 200
    text = text_of(page)
    assert "PauseQueue" in text and "ResumeQueue" in text and "queue/sms" in text
    filtered = text_of(signed_in.get("/audit", params={"action": "PauseQueue"}))
    assert "PauseQueue" in filtered and "ResumeQueue" not in filtered
    assert "No events match." in text_of(signed_in.get("/audit", params={"actor": "nobody"}))


def test_an_unreachable_server_is_a_readable_message(unused_tcp_port_target):
    app = create_app(DashboardSettings(target=unused_tcp_port_target))
    with TestClient(app, base_url="https://testserver") as client:
        response = sign_in(client)
        assert response.status_code == 401
        assert f"The queue service at {unused_tcp_port_target} is not reachable" in text_of(response)
        assert "Traceback" not in response.text
        assert client.get("/nowhere").status_code == 404
    app.state.dashboard.close()


@pytest.fixture
def unused_tcp_port_target() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


# The job browser


def job_rows(response) -> list[str]:
    return [html.unescape(job_id) for job_id in re.findall(r'data-job="([^"]+)"', response.text)]


def test_jobs_page_filters_by_queue_state_and_name_and_pages_by_key(signed_in, jobs, secured_service, monkeypatch):
    from queue_service.dashboard import jobs as job_pages

    for job_id, queue, name in [
        ("j-1", QUEUE, "send"),
        ("j-2", QUEUE, "receipt"),
        ("j-3", "sms", "send"),
        ("j-4", QUEUE, "send"),
        ("j-5", QUEUE, "send"),
    ]:
        jobs.enqueue(queue, name, {"n": job_id}, job_id=job_id)
        secured_service.clock.advance(1)
    (leased,) = jobs.lease(QUEUE, worker_id="worker-7")
    assert leased.job_id == "j-1"

    everything = signed_in.get("/jobs")
    assert everything.status_code == 200
    assert job_rows(everything) == ["j-1", "j-5", "j-4", "j-3", "j-2"], "most recently changed first"
    assert "5 matching jobs." in text_of(everything)
    assert re.search(r'data-job="j-1">.*?worker-7', everything.text, flags=re.S), "the lease holder is listed"
    waiting_sends = signed_in.get("/jobs", params={"queue": QUEUE, "state": "waiting", "name": "send"})
    assert job_rows(waiting_sends) == ["j-5", "j-4"] and "2 matching jobs." in text_of(waiting_sends)
    assert job_rows(signed_in.get("/jobs", params={"name": "receipt"})) == ["j-2"]
    assert "1 matching job." in text_of(signed_in.get("/jobs", params={"name": "receipt"}))
    assert job_rows(signed_in.get("/jobs", params={"state": "active"})) == ["j-1"]
    assert "No jobs match." in text_of(signed_in.get("/jobs", params={"queue": "nowhere"}))

    # Keyset pages keep the filters; the last page has no next link.
    monkeypatch.setattr(job_pages, "PAGE_SIZE", 2)
    seen, url, pages = [], "/jobs?queue=emails&name=send", 0
    while url:
        listing = signed_in.get(html.unescape(url))
        assert listing.status_code == 200 and "3 matching jobs." in text_of(listing)
        seen += job_rows(listing)
        pages += 1
        found = re.search(r'href="(/jobs\?[^"]*page=[^"]*)" rel="next"', listing.text)
        url = found.group(1) if found else ""
        if url:
            assert "queue=emails" in url and "name=send" in url
    assert (seen, pages) == (["j-1", "j-5", "j-4"], 2)

    bad_state = signed_in.get("/jobs", params={"state": "sleeping"})
    assert bad_state.status_code == 400 and "State 'sleeping' is not one of" in text_of(bad_state)
    too_long = signed_in.get("/jobs", params={"name": "n" * 5000})
    assert too_long.status_code == 400 and "job_name is longer than" in text_of(too_long).lower()
    forged = signed_in.get("/jobs", params={"page": "not-a-token"})
    assert forged.status_code == 400 and "page_token is not a token" in text_of(forged).lower()


def test_job_page_shows_payload_attempts_errors_retry_log_and_lease_holder(signed_in, jobs, secured_service):
    jobs.enqueue(QUEUE, "send", {"to": "b@example.com", "template": "welcome"}, job_id="detail-1")
    (job,) = jobs.lease(QUEUE, worker_id="worker-1")
    jobs.track_failure(
        job.job_id, job.attempt_number, "SMTP 451 try later", error_type="SMTPError", details="Traceback: line 9"
    )
    secured_service.clock.advance(3600)
    (job,) = jobs.lease(QUEUE, worker_id="worker-2")

    page = signed_in.get("/job", params={"id": "detail-1"})
    assert page.status_code == 200
    assert '{\n  "template": "welcome",\n  "to": "b@example.com"\n}' in html.unescape(page.text), "pretty JSON payload"
    text = text_of(page)
    assert "Attempts 2 made" in text and "active" in text
    assert re.search(r'id="lease-holder">worker-2, lease until \d{4}-', page.text)
    assert "Attempt 1 · " in text and "SMTP 451 try later" in text and "Traceback: line 9" in page.text
    assert re.search(r"Attempt 1: retry in \d+(m\d+)?s", text), "the retry decision with its delay"

    dead = dead_letter(jobs, "detail-2")
    dead_page = signed_in.get("/job", params={"id": "detail-2"})
    assert f'href="/dlq/{dead}"' in dead_page.text and "Lease holder none" in text_of(dead_page)
    assert "Attempt 1: dead letter" in text_of(dead_page)
    entry_page = signed_in.get(f"/dlq/{dead}")
    assert 'href="/job?id=detail-2"' in entry_page.text, "the entry links back to its job"

    missing = signed_in.get("/job", params={"id": "no-such-job"})
    assert missing.status_code == 404 and "not found" in text_of(missing).lower()
    assert signed_in.get("/job").status_code == 400


def test_job_page_shows_the_unique_key_of_a_unique_job(signed_in, jobs):
    jobs.enqueue(QUEUE, "send", job_id="unique-1", unique="<digest> for a@example.com")
    jobs.enqueue(QUEUE, "send", job_id="plain-1")
    page = signed_in.get("/job", params={"id": "unique-1"})
    assert page.status_code == 200
    assert '<code id="unique-key">&lt;digest&gt; for a@example.com</code>' in page.text
    assert "Unique key" in text_of(page)
    assert "Unique key" not in text_of(signed_in.get("/job", params={"id": "plain-1"}))


def test_search_jumps_to_a_job_or_a_dead_letter_entry_by_id(signed_in, jobs):
    entry_id = dead_letter(jobs, "search-2")
    jobs.enqueue(QUEUE, "send", {}, job_id="order/42 x")
    overview = signed_in.get("/")
    assert re.search(r'<form method="get" action="/search"[^>]*role="search"', overview.text)

    to_job = signed_in.get("/search", params={"q": " order/42 x "}, follow_redirects=False)
    assert to_job.status_code == 303 and to_job.headers["location"] == "/job?id=order%2F42+x"
    assert "Job order/42 x" in text_of(signed_in.get(to_job.headers["location"]))
    to_entry = signed_in.get("/search", params={"q": entry_id}, follow_redirects=False)
    assert to_entry.status_code == 303 and to_entry.headers["location"] == f"/dlq/{entry_id}"
    nothing = signed_in.get("/search", params={"q": "nothing-here"})
    assert nothing.status_code == 404 and "No job and no dead-letter entry has the id 'nothing-here'." in text_of(
        nothing
    )
    empty = signed_in.get("/search", params={"q": "  "})
    assert empty.status_code == 400 and "Enter a job id" in text_of(empty)
    assert signed_in.get("/search", params={"q": "x" * 300}).status_code == 400


def test_auto_refresh_is_offered_on_overview_queues_and_jobs_from_the_dashboards_own_script(signed_in):
    for path in ("/", "/queues", "/jobs"):
        page = signed_in.get(path)
        assert re.search(r'<div class="refresh" data-refresh-every="\d+" hidden>', page.text), path
        assert 'id="auto-refresh"' in page.text and 'id="page-content"' in page.text
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, flags=re.S)
        assert scripts == [(' src="/static/app.js" defer', "")], "no inline script: the CSP forbids it"
        assert (
            "script-src" not in page.headers["content-security-policy"]
            or "unsafe-inline" not in page.headers["content-security-policy"]
        )
    assert 'id="auto-refresh"' not in signed_in.get("/dlq").text, "opt-in where it helps, not on triage forms"
    script = signed_in.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert 'getElementById("page-content")' in script.text and "fetch(" in script.text


def test_durations_read_as_queue_admin_writes_them_and_counts_take_the_right_word(signed_in, jobs, admin):
    from datetime import timedelta

    from jobqueue import RetryPolicy

    from queue_service.admin_cli.render import span

    admin.update_queue_policy(
        QUEUE, RetryPolicy(max_retries=2, retry_delays=(timedelta(seconds=135),)), allow_missing=True
    )
    queues = signed_in.get("/queues")
    assert span(timedelta(seconds=135)) == "2m15s"
    assert re.search(r'data-queue="emails">.*?<td>2m15s, ', queues.text, flags=re.S), "the CLI's format"
    assert "135s" not in queues.text

    dead_letter(jobs, "plural-1")
    (pattern,) = admin.list_failure_patterns()
    one = text_of(signed_in.get("/patterns/redrive", params={"fingerprint": pattern.fingerprint}))
    assert "Send this entry back" in one and "entries back" not in one
    (entry,) = admin.list_dead_letter_jobs()
    assert "Sent back 0 times" in text_of(signed_in.get(f"/dlq/{entry.id}"))
    dead_letter(jobs, "plural-2")
    two = text_of(signed_in.get("/patterns/redrive", params={"fingerprint": pattern.fingerprint}))
    assert "Send these 2 entries back" in two
