"""The dashboard's schedules page against a real server with authentication, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

from jobqueue import Schedule

from tests.integration.test_dashboard import admin, dashboard, post, signed_in, text_of  # noqa: F401 - fixtures


def test_schedules_page_lists_next_runs_and_its_actions_work(signed_in, admin, secured_service):  # noqa: F811
    secured_service.clock.set(datetime(2026, 3, 27, 12, tzinfo=UTC))
    admin.create_schedule(Schedule("nightly", "30 2 * * *", "Europe/Berlin", "reports", "build"))
    page = signed_in.get("/schedules")
    assert page.status_code == 200 and 'data-schedule="nightly"' in page.text
    # The next runs in UTC, the skipped hour of 29 March included.
    assert 'datetime="2026-03-28T01:30:00+00:00"' in page.text
    assert 'datetime="2026-03-29T01:00:00+00:00"' in page.text

    created = post(
        signed_in,
        "/schedules/create",
        {
            "name": "hourly",
            "cron": "0 * * * *",
            "time_zone": "UTC",
            "queue_name": "reports",
            "job_name": "ping",
            "job_data": '{"a": 1}',
            "misfire_policy": "run_once",
        },
        page="/schedules",
    )
    assert "Created schedule hourly; it runs next at 2026-03-27 13:00 UTC." in text_of(created)
    hourly = admin.get_schedule("hourly")
    assert (hourly.job_data, hourly.misfire_policy) == ({"a": 1}, "run_once")

    refused = post(
        signed_in,
        "/schedules/create",
        {"name": "bad", "cron": "0 25 * * *", "queue_name": "reports", "job_name": "ping", "back": "/schedules"},
        page="/schedules",
    )
    assert "cron '0 25 * * *' is not a five-field cron expression" in text_of(refused) and [
        s.name for s in admin.list_schedules()
    ] == ["hourly", "nightly"]

    paused = post(signed_in, "/schedules/action", {"name": "hourly", "action": "pause"}, page="/schedules")
    assert "Paused schedule hourly" in text_of(paused) and admin.get_schedule("hourly").paused
    resumed = post(signed_in, "/schedules/action", {"name": "hourly", "action": "resume"}, page="/schedules")
    assert "Resumed schedule hourly" in text_of(resumed) and not admin.get_schedule("hourly").paused
    deleted = post(signed_in, "/schedules/action", {"name": "hourly", "action": "delete"}, page="/schedules")
    assert "Deleted schedule hourly" in text_of(deleted)
    assert [s.name for s in admin.list_schedules()] == ["nightly"]
    actions = {event.action for event in admin.list_audit_events(actor="admin")}
    assert {"CreateSchedule", "PauseSchedule", "ResumeSchedule", "DeleteSchedule"} <= actions
