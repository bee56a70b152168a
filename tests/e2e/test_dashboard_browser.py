"""The dashboard in a real headless Chromium, against `queue-service serve` and `queue-service dashboard`.

Needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver). Without
them the test skips, unless QUEUE_TEST_REQUIRE_BROWSER=1 (set by .ci/run) makes that a failure.
Selenium is pointed at both binaries, so Selenium Manager never downloads anything.

Screenshots go to the test's directory, and to QUEUE_TEST_SCREENSHOT_DIR when set (the README's
docs/dashboard-*.png are made that way).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from jobqueue import AdminClient, JobClient

from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.e2e.server_process import dashboard_process, serve

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRE_BROWSER_ENV = "QUEUE_TEST_REQUIRE_BROWSER"
SCREENSHOT_DIR_ENV = "QUEUE_TEST_SCREENSHOT_DIR"
WAIT = 30


def navigating_wait(driver):
    """A wait that looks again when Chromium answers a look at an element of the page it is leaving
    ("Node with given id does not belong to the document"): a condition that never holds still fails,
    at the timeout."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,))


def browser_or_skip() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return
    reason = f"the browser test needs {' and '.join(missing)}: apt-get install -y chromium chromium-driver"
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_BROWSER_ENV}=1 makes it mandatory)")
    pytest.skip(reason)


@contextmanager
def chromium(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    # The console shows Content-Security-Policy violations; the job browser test reads it.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(WAIT)
        yield driver
    finally:
        driver.quit()


def seed(target: str) -> None:
    """Real traffic: completions, retries and dead letters in three queues."""
    with JobClient(target, token=WORKER_TOKEN, timeout=10) as jobs:
        for queue_name, completed, dead in (("emails", 14, 3), ("sms", 8, 1), ("webhooks", 5, 2)):
            for n in range(completed + dead + 3):
                jobs.enqueue(
                    queue_name,
                    "send",
                    {"to": f"user{n}@example.com", "template": "welcome"},
                    job_id=f"{queue_name}-{n}",
                )
            for n in range(completed):
                (job,) = jobs.lease(queue_name)
                jobs.track_completion(job.job_id, job.attempt_number, result={"message_id": f"m-{n}"})
            for n in range(2):
                (job,) = jobs.lease(queue_name)
                jobs.track_failure(
                    job.job_id, job.attempt_number, f"Connection timeout after {30 + n}s", error_type="TimeoutError"
                )
            for n in range(dead):
                (job,) = jobs.lease(queue_name)
                jobs.track_failure(
                    job.job_id,
                    job.attempt_number,
                    f"SMTP 550 mailbox {job.job_data['to']} unavailable",
                    error_type="SMTPRecipientRefused",
                    details=(
                        "Traceback (most recent call last):\n"
                        '  File "workers/send.py", line 41, in send_email\n'
                        "    smtp.sendmail(sender, [to], message)\n"
                        '  File "/usr/lib/python3.11/smtplib.py", line 901, in sendmail\n'
                        "    raise SMTPRecipientsRefused(senderrs)\n"
                        f"smtplib.SMTPRecipientsRefused: {{'{job.job_data['to']}': (550, b'mailbox unavailable')}}"
                    ),
                    non_retryable=True,
                )


@contextmanager
def seeded_server(tmp_path: Path, monkeypatch) -> Iterator:
    """`queue-service serve` on SQLite, holding seed()'s traffic; the tokens are in the environment."""
    monkeypatch.setenv("QUEUE_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("QUEUE_WORKER_TOKEN", WORKER_TOKEN)
    with serve(f"sqlite:///{tmp_path / 'jobs.sqlite3'}", tmp_path, "--recovery-interval", "0") as server:
        seed(server.address)
        yield server


def count(driver, selector: str) -> int:
    from selenium.webdriver.common.by import By

    return int(driver.find_element(By.CSS_SELECTOR, selector).text)


def save(driver, name: str, tmp_path: Path) -> Path:
    path = tmp_path / name
    # The whole page, not just the window.
    for _ in range(2):  # resizing reflows the page; measure again
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, max(1000, min(height + 160, 4000)))
    assert driver.save_screenshot(str(path)), f"screenshot {name} not saved"
    target_dir = os.environ.get(SCREENSHOT_DIR_ENV)
    if target_dir:
        shutil.copy(path, Path(target_dir) / name)
    driver.set_window_size(1280, 1000)
    return path


def test_sign_in_find_a_dead_job_note_retry_and_see_the_counts_change(tmp_path, monkeypatch):
    browser_or_skip()
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with seeded_server(tmp_path, monkeypatch) as server:
        with (
            dashboard_process(server.address, tmp_path, "--token", ADMIN_TOKEN) as base_url,
            chromium(tmp_path) as driver,
        ):
            wait = navigating_wait(driver)
            started = time.monotonic()
            driver.get(f"{base_url}/")
            wait.until(ec.presence_of_element_located((By.ID, "token")))
            assert "/login" in driver.current_url, "unsigned visitors are sent to sign in"
            driver.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
            driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            wait.until(ec.presence_of_element_located((By.ID, "queue-stats")))
            cookie = driver.get_cookie("queue_dashboard")
            assert cookie and cookie["httpOnly"] and cookie["secure"]

            pending_before = count(driver, '[data-count="dlq_total_pending"]')
            waiting_before = count(driver, 'tr[data-queue="emails"] [data-count="waiting"]')
            assert pending_before == 6
            driver.get(f"{base_url}/?window=hour")
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "figure.chart svg")))
            save(driver, "dashboard-overview.png", tmp_path)

            # Find a dead job of emails through the filters, open it, add a note.
            driver.get(f"{base_url}/dlq")
            wait.until(ec.presence_of_element_located((By.ID, "f-queue")))
            driver.find_element(By.CSS_SELECTOR, "#f-queue option[value=emails]").click()
            driver.find_element(By.ID, "f-text").send_keys("mailbox")
            driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
            wait.until(ec.text_to_be_present_in_element((By.ID, "dlq-total"), "3 matching entries"))
            driver.find_element(By.CSS_SELECTOR, "tr[data-entry] td:nth-child(2) a").click()
            wait.until(ec.presence_of_element_located((By.ID, "admin_notes")))
            entry_url = driver.current_url
            notes = driver.find_element(By.ID, "admin_notes")
            notes.clear()
            notes.send_keys("Mailbox restored by the customer; retrying.")
            assignee = driver.find_element(By.ID, "assigned_to")
            assignee.clear()
            assignee.send_keys("ops@example.com")
            driver.find_element(By.CSS_SELECTOR, "#triage button[type=submit]").click()
            wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "Saved notes"))
            assert (
                driver.find_element(By.ID, "admin_notes").get_attribute("value")
                == "Mailbox restored by the customer; retrying."
            )
            save(driver, "dashboard-dead-letter-entry.png", tmp_path)

            driver.find_element(By.ID, "retry-button").click()
            wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "is back in queue emails"))
            # Read through a wait: a node found while the browser is still swapping in the page after
            # the form's redirect belongs to the document it leaves ("does not belong to the document").
            settled = WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,))
            settled.until(ec.text_to_be_present_in_element((By.ID, "entry-status"), "recovered"))
            assert driver.find_element(By.ID, "entry-status").text == "recovered"
            assert driver.current_url == entry_url

            driver.get(f"{base_url}/")
            wait.until(ec.presence_of_element_located((By.ID, "queue-stats")))
            assert count(driver, '[data-count="dlq_total_pending"]') == pending_before - 1
            assert count(driver, 'tr[data-queue="emails"] [data-count="waiting"]') == waiting_before + 1
            assert time.monotonic() - started < 120

        with AdminClient(server.address, token=ADMIN_TOKEN, timeout=10) as admin:
            events = [(event.actor, event.action) for event in admin.list_audit_events()]
        assert ("admin", "UpdateDeadLetterJob") in events and ("admin", "RetryDeadLetterJob") in events
    assert (tmp_path / "dashboard-overview.png").stat().st_size > 10_000


def sign_in(driver, base_url: str, wait) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(f"{base_url}/login")
    wait.until(ec.presence_of_element_located((By.ID, "token")))
    driver.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "queue-stats")))


def test_browse_jobs_look_up_ids_refresh_live_and_confirm_only_complete_forms(tmp_path, monkeypatch):
    browser_or_skip()
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with seeded_server(tmp_path, monkeypatch) as server:
        jobs = JobClient(server.address, token=WORKER_TOKEN, timeout=10)
        with jobs, dashboard_process(server.address, tmp_path) as base_url, chromium(tmp_path) as driver:
            wait = navigating_wait(driver)
            sign_in(driver, base_url, wait)

            # The Jobs page, filtered through its form.
            driver.find_element(By.CSS_SELECTOR, 'header nav a[href="/jobs"]').click()
            wait.until(ec.presence_of_element_located((By.ID, "j-queue")))
            driver.find_element(By.ID, "j-queue").send_keys("emails")
            Select(driver.find_element(By.ID, "j-state")).select_by_value("dead_letter")
            driver.find_element(By.ID, "j-name").send_keys("send")
            driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
            wait.until(ec.text_to_be_present_in_element((By.ID, "jobs-total"), "3 matching jobs"))
            states = {cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#jobs tbody [data-state]")}
            assert states == {"dead letter"}
            save(driver, "dashboard-jobs.png", tmp_path)

            # One job: payload, attempts, errors, retry log, and the way to its dead-letter entry.
            driver.find_element(By.CSS_SELECTOR, "#jobs tbody tr[data-job] th a").click()
            wait.until(ec.presence_of_element_located((By.ID, "job-payload")))
            assert '"template": "welcome"' in driver.find_element(By.ID, "job-payload").text
            assert "SMTP 550 mailbox" in driver.find_element(By.ID, "error-history").text
            assert "dead letter" in driver.find_element(By.ID, "retry-log").text
            assert driver.find_element(By.ID, "lease-holder").text == "none"
            entry_id = driver.find_element(By.ID, "dead-letter-link").get_attribute("href").rsplit("/", 1)[1]
            save(driver, "dashboard-job.png", tmp_path)

            # The search box jumps to a dead-letter entry, or to a job, by id.
            def look_up(wanted: str) -> None:
                box = driver.find_element(By.ID, "search-id")
                box.send_keys(wanted)
                box.submit()

            look_up(entry_id)
            wait.until(ec.url_to_be(f"{base_url}/dlq/{entry_id}"))
            look_up("sms-0")
            wait.until(ec.presence_of_element_located((By.ID, "job-payload")))
            assert driver.find_element(By.TAG_NAME, "h1").text == "Job sms-0"

            # Auto-refresh is opt-in, swaps the content in place (no reload) and is remembered.
            driver.get(f"{base_url}/jobs?queue=live")
            wait.until(ec.text_to_be_present_in_element((By.ID, "jobs-total"), "0 matching jobs"))
            toggle = driver.find_element(By.ID, "auto-refresh")
            assert toggle.is_displayed() and not toggle.is_selected()
            driver.execute_script("window.sameDocument = true")
            jobs.enqueue("live", "send", {}, job_id="live-1")
            with pytest.raises(TimeoutException):  # off: nothing changes on its own
                WebDriverWait(driver, 7).until(
                    ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-job="live-1"]'))
                )
            toggle.click()
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-job="live-1"]')))
            assert driver.execute_script("return window.sameDocument === true"), "refreshed without reloading"
            assert driver.find_element(By.ID, "refresh-status").text.startswith("Updated")

            driver.get(f"{base_url}/")
            wait.until(ec.presence_of_element_located((By.ID, "queue-stats")))
            assert driver.find_element(By.ID, "auto-refresh").is_selected(), "the choice is remembered"
            waiting = count(driver, 'tr[data-queue="emails"] [data-count="waiting"]')
            driver.execute_script("window.sameDocument = true")
            jobs.enqueue("emails", "send", {}, job_id="live-2")
            wait.until(
                ec.text_to_be_present_in_element(
                    (By.CSS_SELECTOR, 'tr[data-queue="emails"] [data-count="waiting"]'), str(waiting + 1)
                )
            )
            assert driver.execute_script("return window.sameDocument === true")
            driver.find_element(By.ID, "auto-refresh").click()
            driver.get(f"{base_url}/queues")
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-queue="live"]')))
            assert (
                driver.find_element(By.ID, "auto-refresh").is_displayed()
                and not driver.find_element(By.ID, "auto-refresh").is_selected()
            )

            # "Mark permanently failed": an empty reason is refused before any confirm dialog.
            driver.get(f"{base_url}/dlq/{entry_id}")
            wait.until(ec.presence_of_element_located((By.ID, "fail-reason")))
            fail = driver.find_element(By.CSS_SELECTOR, "#fail-form button.danger")
            reason = driver.find_element(By.ID, "fail-reason")
            reason.send_keys("   ")
            fail.click()
            with pytest.raises(TimeoutException):
                WebDriverWait(driver, 2).until(ec.alert_is_present())
            assert reason.get_attribute("validationMessage") == "Give a reason for giving up."
            assert driver.current_url == f"{base_url}/dlq/{entry_id}"
            reason.send_keys("The customer closed the account.")
            fail.click()
            alert = wait.until(ec.alert_is_present())
            assert alert.text == "Mark permanently failed?"
            alert.accept()
            wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "Marked permanently failed."))

            violations = [
                entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]
            ]
            assert violations == []
