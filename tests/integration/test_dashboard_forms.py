"""The dashboard's forms under odd values, against a real gRPC server on SQLite and PostgreSQL: each
refused value is a 400 with its message next to the field, never a 500, and changes nothing."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from queue_service.dashboard.app import DashboardSettings, create_app
from tests.integration.test_dashboard import QUEUE, admin, csrf, dead_letter, jobs, sign_in, text_of  # noqa: F401

ODD_VALUES = (
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "Infinity",
    "1e30",
    "-1e30",
    "1e400",
    "99999999999d",
    "3651d",
    "2147483648",
    "-2147483649",
    "9" * 60,
    "-9" * 30,
    "0x10",
    "1_000",
    " ",
    "\x00",
    "💥",
    "-0",
    "1e-7",
    "0.0000001s",
    "5ms",
    "3650d",
    "-5",
    "1.5",
    "0",
    "10",
    "1,2",
    ",,",
    "1e3m",
    "nand",
    "infs",
)
# The examples found against the dashboard, each refused next to its field.
REFUSED = [
    ("/queue/clean", "grace", "nan"),
    ("/queue/clean", "grace", "inf"),
    ("/queue/clean", "grace", "1e30"),
    ("/queue/clean", "grace", "99999999999d"),
    ("/queue/policy", "retry_delays", "nan"),
    ("/queue/policy", "retry_delays", "5, inf"),
    ("/queue/policy", "max_delay", "1e30"),
    ("/queue/policy", "max_retries", "2147483648"),
    ("/queue/policy", "jitter", "nan"),
    ("/queue/policy", "max_retry_duration", "-5"),
    ("/queue/policy", "max_retry_duration", "99999999999d"),
    ("/dlq/{entry}/update", "priority", "2147483648"),
    ("/dlq/{entry}/update", "priority", "-2147483649"),
    ("/dlq/{entry}/retry", "max_retries", "99999999999"),
    ("/patterns/redrive", "rate_limit", "nan"),
    ("/patterns/redrive", "max_jobs", "2147483648"),
    ("/patterns/redrive", "retry_delays", "inf"),
    ("/queue/policy", "retry_delays", "0.0000001s"),  # would be truncated to 0
    ("/queue/breaker", "breaker_failure_ratio", "1.5"),
    ("/queue/breaker", "breaker_failure_ratio", "nan"),
    ("/queue/breaker", "breaker_min_runs", "0"),
    ("/queue/breaker", "breaker_min_runs", "2147483648"),
    ("/queue/breaker", "breaker_window", "2h"),
    ("/queue/breaker", "breaker_window", "1.5"),
    ("/queue/breaker", "breaker_cooldown", "0"),
    ("/queue/breaker", "breaker_ramp", "1e30"),
    ("/queue/alerts", "dlq_alert_threshold", "-5"),
    ("/queue/alerts", "dlq_alert_threshold", "2147483648"),
    ("/queue/alerts", "dlq_alert_threshold", "9999999"),  # past the server's limit
    ("/queue/alerts", "email_recipients", "ops@example.com, not-an-address"),
    ("/queue/limits", "max_active", "0"),
    ("/queue/limits", "max_active", "2147483648"),
    ("/queue/limits", "max_active", "9999999"),  # past the server's limit
    ("/queue/limits", "max_starts_per_second", "nan"),
    ("/queue/limits", "max_starts_per_second", "inf"),
    ("/queue/limits", "max_starts_per_second", "0"),
    ("/queue/limits", "max_starts_per_second", "-1"),
    ("/queue/limits", "max_starts_per_second", "1e300"),
]


@pytest.fixture
def browser(secured_service) -> Iterator[TestClient]:
    app = create_app(DashboardSettings(target=secured_service.target))
    # A crash must show as the 500 a browser gets, not as an exception in the test.
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        assert sign_in(client).status_code == 303
        yield client
    app.state.dashboard.close()


def forms(entry: str, fingerprint: str) -> dict[str, tuple[dict[str, str], tuple[str, ...]]]:
    """Each form: its fixed fields, and the fields that take numbers, durations or lists of them."""
    detail = f"/queue?name={QUEUE}"
    return {
        "/queue/policy": (
            {"queue_name": QUEUE, "action": "preview", "back": detail},
            ("max_retries", "retry_delays", "max_delay", "jitter", "max_retry_duration", "rules"),
        ),
        "/queue/alerts": ({"queue_name": QUEUE, "back": detail}, ("dlq_alert_threshold",)),
        "/queue/limits": ({"queue_name": QUEUE, "back": detail}, ("max_active", "max_starts_per_second")),
        "/queue/breaker": (
            {"queue_name": QUEUE, "breaker_enabled": "on", "back": detail},
            ("breaker_failure_ratio", "breaker_min_runs", "breaker_window", "breaker_cooldown", "breaker_ramp"),
        ),
        "/queue/clean": (
            {"queue_name": QUEUE, "state": "completed", "confirm": QUEUE, "back": detail},
            ("grace",),
        ),
        "/dlq/{entry}/update": ({"admin_notes": "n", "assigned_to": "", "back": f"/dlq/{entry}"}, ("priority",)),
        "/dlq/{entry}/retry": ({"back": f"/dlq/{entry}"}, ("max_retries", "job_data")),
        "/patterns/redrive": (
            {"fingerprint": fingerprint, "confirm": "yes", "back": "/patterns"},
            ("rate_limit", "max_jobs", "max_retries", "retry_delays"),
        ),
    }


def seeded(jobs, admin) -> tuple[str, str]:
    entry = dead_letter(jobs, "forms-1")
    (pattern,) = admin.list_failure_patterns()
    return entry, pattern.fingerprint


@pytest.mark.parametrize(("path", "field", "value"), REFUSED)
def test_odd_values_are_a_400_with_the_message_next_to_the_field(browser, jobs, admin, path, field, value):
    entry, fingerprint = seeded(jobs, admin)
    fixed, _ = forms(entry, fingerprint)[path]
    token = csrf(browser.get(f"/dlq/{entry}").text)
    before = (admin.get_dead_letter_job(entry).entry, admin.get_queue(QUEUE))
    response = browser.post(
        path.format(entry=entry), data={"csrf_token": token, **fixed, field: value}, follow_redirects=False
    )
    assert response.status_code == 400, text_of(response)[:300]
    error = re.search(
        rf'id="[^"]*"[^>]*name="{field}"[^>]*>\s*<p class="field-error" id="{field}-error" role="alert">([^<]+)</p>',
        response.text,
    )
    assert error, f"no message right after the {field} input:\n{response.text[:3000]}"
    assert error.group(1).strip()
    assert (admin.get_dead_letter_job(entry).entry, admin.get_queue(QUEUE)) == before


def test_odd_dates_in_list_filters_are_a_400(browser):
    for path in ("/dlq", "/audit"):
        for value in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "nan"):
            response = browser.get(path, params={"after": value})
            assert response.status_code == 400, (path, value, response.status_code)


def test_fuzzed_form_values_never_crash_the_dashboard(browser, jobs, admin):
    entry, fingerprint = seeded(jobs, admin)
    token = csrf(browser.get(f"/dlq/{entry}").text)
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    outcomes: Counter[tuple[str, int]] = Counter()
    for _ in range(200):
        path, (fixed, fields) = rng.choice(list(forms(entry, fingerprint).items()))
        values = {
            field: rng.choice(ODD_VALUES + (str(rng.randint(-(2**40), 2**40)),))
            for field in rng.sample(fields, rng.randint(1, len(fields)))
        }
        response = browser.post(
            path.format(entry=entry), data={"csrf_token": token, **fixed, **values}, follow_redirects=False
        )
        outcomes[(path, response.status_code)] += 1
        assert response.status_code < 500, f"seed {seed}: {path} {values!r} -> {response.status_code}"
        assert response.status_code in (200, 303, 400), f"seed {seed}: {path} {values!r} -> {response.status_code}"
        if response.status_code == 400:
            assert 'class="field-error"' in response.text, f"seed {seed}: {path} {values!r}: no message at a field"
    assert browser.get("/").status_code == 200
    assert {code for _, code in outcomes} >= {303, 400}, outcomes


def test_the_queue_page_sets_the_alert_policy(browser, jobs, admin):
    seeded(jobs, admin)
    page = browser.get(f"/queue?name={QUEUE}")
    assert "now the server&#39;s threshold" in page.text or "now the server's threshold" in page.text
    response = browser.post(
        "/queue/alerts",
        data={
            "csrf_token": csrf(page.text),
            "queue_name": QUEUE,
            "dlq_alert_threshold": "7",
            "email_recipients": "ops@example.com, oncall@example.com",
            "back": f"/queue?name={QUEUE}",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    policy = admin.get_queue_alert_policy(QUEUE)
    assert (policy.dlq_alert_threshold, policy.email_recipients) == (7, ("ops@example.com", "oncall@example.com"))
    shown = browser.get(f"/queue?name={QUEUE}").text
    assert 'value="7"' in shown and 'value="ops@example.com, oncall@example.com"' in shown


def test_the_queue_page_sets_and_shows_the_lease_limits(browser, jobs, admin):
    seeded(jobs, admin)
    page = browser.get(f"/queue?name={QUEUE}")
    assert "no limit on active jobs" in text_of(page)
    detail = f"/queue?name={QUEUE}"
    form = {"csrf_token": csrf(page.text), "queue_name": QUEUE, "back": detail}
    response = browser.post("/queue/limits", data={**form, "max_active": "3", "max_starts_per_second": "2.5"})
    assert response.status_code == 200 and "Saved the lease limits of emails." in text_of(response)
    queue = admin.get_queue(QUEUE)
    assert (queue.max_active, queue.max_starts_per_second) == (3, 2.5)
    shown = text_of(browser.get(detail))
    assert "at most 3 active" in shown and "at most 2.5 starts per second" in shown
    assert "0 / 3" in text_of(browser.get("/queues"))
    # An empty field removes that limit.
    browser.post("/queue/limits", data={**form, "max_active": "", "max_starts_per_second": "2.5"})
    queue = admin.get_queue(QUEUE)
    assert (queue.max_active, queue.max_starts_per_second) == (None, 2.5)


def test_the_queue_page_sets_the_circuit_breaker_and_the_overview_shows_it_open(browser, jobs, admin):
    seeded(jobs, admin)
    page = browser.get(f"/queue?name={QUEUE}")
    assert 'id="breaker-form"' in page.text
    assert "off" in text_of(page).split("Circuit breaker", 1)[1][:200]
    response = browser.post(
        "/queue/breaker",
        data={
            "csrf_token": csrf(page.text),
            "queue_name": QUEUE,
            "breaker_enabled": "on",
            "breaker_failure_ratio": "1",
            "breaker_min_runs": "1",
            "breaker_window": "2m",
            "back": f"/queue?name={QUEUE}",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, text_of(response)[:300]
    queue = admin.get_queue(QUEUE)
    assert queue.circuit_breaker.enabled and queue.circuit_breaker.min_runs == 1
    assert queue.circuit_breaker.window.total_seconds() == 120
    assert "Every circuit breaker is closed" in browser.get("/").text

    jobs.enqueue(QUEUE, "send", {}, job_id="breaker-1")
    (job,) = jobs.lease(QUEUE)
    jobs.track_failure("breaker-1", job.attempt_number, "downstream down")
    overview = browser.get("/")
    assert 'id="holding-breakers"' in overview.text and "open" in text_of(overview)
    assert "breaker-open" in browser.get("/queues").text
    assert "breaker-open" in browser.get(f"/queue?name={QUEUE}").text
