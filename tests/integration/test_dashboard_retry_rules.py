"""The dashboard's retry rules, retry deadline and redrive with a new payload, against a real gRPC
server on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from jobqueue import RetryPolicy, RetryRule
from starlette.testclient import TestClient

from queue_service.dashboard.app import DashboardSettings, create_app
from tests.conftest import WORKER_TOKEN
from tests.integration.test_dashboard import QUEUE, admin, csrf, dead_letter, jobs, sign_in, text_of  # noqa: F401


@pytest.fixture
def browser(secured_service) -> Iterator[TestClient]:
    app = create_app(DashboardSettings(target=secured_service.target))
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        assert sign_in(client).status_code == 303
        yield client
    app.state.dashboard.close()


def save_policy(browser, **fields):
    page = browser.get(f"/queue?name={QUEUE}")
    data = {"csrf_token": csrf(page.text), "queue_name": QUEUE, "action": "save", "back": f"/queue?name={QUEUE}"}
    return browser.post("/queue/policy", data={**data, **fields}, follow_redirects=False)


def test_the_queue_page_sets_and_shows_rules_and_the_deadline(browser, jobs, admin):
    dead_letter(jobs, "seed")
    response = save_policy(
        browser,
        max_retries="3",
        max_retry_duration="1d",
        rules="TimeoutError max_retries=6 retry_delays=2s,4s max_delay=2m\n\nValidationError retryable=false\n",
    )
    assert response.status_code == 303, text_of(response)[:500]
    policy = admin.get_queue(QUEUE).retry_policy
    assert policy.max_retry_duration == timedelta(days=1)
    assert policy.rules == (
        RetryRule(
            "TimeoutError",
            max_retries=6,
            retry_delays=(timedelta(seconds=2), timedelta(seconds=4)),
            max_delay=timedelta(minutes=2),
        ),
        RetryRule("ValidationError", retryable=False),
    )
    shown = browser.get(f"/queue?name={QUEUE}")
    text = text_of(shown)
    assert "a job failing for longer than 1d is dead-lettered at its next failure" in text
    assert "TimeoutError 6 2s, 4s 2m" in text
    assert "ValidationError not retried: straight to the dead-letter queue" in text
    # The form holds what is saved, so saving it again keeps the rules and the deadline.
    assert "TimeoutError max_retries=6 retry_delays=2s,4s max_delay=2m\nValidationError retryable=false" in shown.text
    assert 'name="max_retry_duration" value="86400"' in shown.text
    assert (
        save_policy(
            browser,
            max_retries="4",
            max_retry_duration="86400",
            rules="TimeoutError max_retries=6 retry_delays=2s,4s max_delay=2m\nValidationError retryable=false",
        ).status_code
        == 303
    )
    again = admin.get_queue(QUEUE).retry_policy
    assert (again.max_retries, again.rules, again.max_retry_duration) == (4, policy.rules, policy.max_retry_duration)


def test_a_bad_rule_is_a_400_next_to_the_rules_and_changes_nothing(browser, jobs, admin):
    dead_letter(jobs, "seed")
    admin.update_queue_policy(QUEUE, RetryPolicy(max_retries=2))
    response = save_policy(browser, rules="TimeoutError retries=3")
    assert response.status_code == 400
    assert 'id="rules-error"' in response.text and "retries=3" in text_of(response)
    assert admin.get_queue(QUEUE).retry_policy == RetryPolicy(max_retries=2)
    # Two rules for one type: the server refuses it, and the page says why.
    refused = save_policy(browser, rules="A\nA")
    assert refused.status_code == 303
    assert "policy.rules[1].error_type 'A' has a rule already" in text_of(browser.get(refused.headers["location"]))
    assert admin.get_queue(QUEUE).retry_policy == RetryPolicy(max_retries=2)


def test_the_job_page_shows_the_rule_that_decided(browser, jobs, admin):
    admin.update_queue_policy(QUEUE, RetryPolicy(rules=(RetryRule("TimeoutError", max_retries=5),)), allow_missing=True)
    jobs.enqueue(QUEUE, "send", {}, job_id="slow")
    (job,) = jobs.lease(QUEUE)
    jobs.track_failure("slow", job.attempt_number, "timed out", error_type="TimeoutError")
    text = text_of(browser.get("/job?id=slow"))
    assert "Retry rule queue:TimeoutError" in text
    assert "Failing since" in text
    assert "rule queue:TimeoutError" in text  # on the error history entry
    jobs.enqueue(QUEUE, "plain", {}, job_id="plain")
    assert "Retry rule default policy" in text_of(browser.get("/job?id=plain"))


def test_the_entry_page_redrives_with_a_new_payload(browser, jobs, admin):
    entry = dead_letter(jobs, "record")
    page = browser.get(f"/dlq/{entry}")
    assert 'name="job_data"' in page.text
    token = csrf(page.text)
    refused = browser.post(
        f"/dlq/{entry}/retry",
        data={"csrf_token": token, "back": f"/dlq/{entry}", "job_data": "[1, 2]"},
        follow_redirects=False,
    )
    assert refused.status_code == 400 and 'id="job_data-error"' in refused.text
    assert "[1, 2]" in refused.text  # the value is kept to fix it
    assert admin.get_dead_letter_job(entry).entry.recovery_status.value == "pending"
    done = browser.post(
        f"/dlq/{entry}/retry",
        data={"csrf_token": token, "back": f"/dlq/{entry}", "job_data": '{"to": "fixed@example.com"}'},
        follow_redirects=True,
    )
    assert "with the new payload" in text_of(done)
    assert admin.get_job_details("record").job.job_data == {"to": "fixed@example.com"}
    (event, *_) = admin.list_audit_events(action="RetryDeadLetterJob").items
    assert event.parameters["old_job_data"] == {"to": "a@example.com", "job": "record"}


def test_an_empty_payload_field_keeps_the_payload(browser, jobs, admin):
    entry = dead_letter(jobs, "kept")
    token = csrf(browser.get(f"/dlq/{entry}").text)
    browser.post(
        f"/dlq/{entry}/retry", data={"csrf_token": token, "back": "/", "job_data": "  "}, follow_redirects=False
    )
    assert admin.get_job_details("kept").job.job_data == {"to": "a@example.com", "job": "kept"}


def test_a_worker_token_cannot_use_the_dashboard(secured_service):
    app = create_app(DashboardSettings(target=secured_service.target))
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        assert sign_in(client, WORKER_TOKEN).status_code != 303
    app.state.dashboard.close()
