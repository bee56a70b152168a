"""Dashboard sign-in against a real gRPC server on SQLite and PostgreSQL: failed sign-ins slow down
and are audited, and logout ends a session for good."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from jobqueue import AdminClient
from jobqueue.v1 import admin_service_pb2 as admin_pb
from starlette.testclient import TestClient

from queue_service.clock import FakeClock
from queue_service.dashboard.app import SESSION_COOKIE, DashboardSettings, create_app
from queue_service.dashboard.sign_in import SignInThrottle, ThrottleSettings
from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.integration.test_dashboard import post, sign_in, text_of

WRONG = "not-a-token-the-server-knows-0123"


@pytest.fixture
def browser_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def browser(secured_service, browser_clock) -> Iterator[TestClient]:
    settings = DashboardSettings(
        target=secured_service.target,
        session_secret="one-shared-secret-0123456789",
        clock=browser_clock,
        sign_in_throttle=ThrottleSettings(free_per_client=3, first_delay=timedelta(seconds=1)),
    )
    app = create_app(settings)
    with TestClient(app, base_url="https://testserver") as client:
        yield client
    app.state.dashboard.close()


@pytest.fixture
def admin(secured_service) -> Iterator[AdminClient]:
    with AdminClient(secured_service.target, token=ADMIN_TOKEN, timeout=10) as client:
        yield client


def test_failed_sign_ins_get_a_growing_delay_that_even_the_right_token_waits_out(browser, browser_clock):
    for _ in range(3):
        assert sign_in(browser, WRONG).status_code == 401
    refused = sign_in(browser, ADMIN_TOKEN)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert "Too many failed sign-ins. Try again in 1 second." in text_of(refused)

    browser_clock.advance(1)
    assert sign_in(browser, WRONG).status_code == 401
    again = sign_in(browser, WRONG)
    assert again.status_code == 429 and again.headers["retry-after"] == "2", "the delay doubles"
    browser_clock.advance(1)
    assert sign_in(browser, ADMIN_TOKEN).status_code == 429
    browser_clock.advance(1)
    assert sign_in(browser, ADMIN_TOKEN).status_code == 303
    assert sign_in(browser, WRONG).status_code == 401, "a successful sign-in clears the client's count"


def test_failed_sign_ins_from_all_clients_together_are_throttled_too():
    clock = FakeClock()
    throttle = SignInThrottle(ThrottleSettings(free_per_client=3, free_overall=5), clock)
    for address in range(5):
        assert throttle.attempt(f"10.0.0.{address}") == timedelta(0)  # each fails
    assert throttle.attempt("10.0.0.99") == timedelta(seconds=1), "a new address waits once the overall count is up"
    clock.advance(1)
    assert throttle.attempt("10.0.0.100") == timedelta(0)
    assert throttle.attempt("10.0.0.101") == timedelta(seconds=2)
    clock.advance(timedelta(minutes=15))
    assert throttle.attempt("10.0.0.101") == timedelta(0), "counts are forgotten after a quiet while"


def test_attempts_sent_at_once_count_before_their_answers():
    throttle = SignInThrottle(ThrottleSettings(free_per_client=3), FakeClock())
    started = [throttle.attempt("10.0.0.1") for _ in range(10)]  # no answer yet
    assert started[:3] == [timedelta(0)] * 3
    assert all(wait > timedelta(0) for wait in started[3:])
    throttle.undecided("10.0.0.1")  # the server was unreachable for one of them
    throttle.succeeded("10.0.0.1")
    assert throttle.attempt("10.0.0.1") == timedelta(0)


def test_failed_sign_ins_are_in_the_audit_log(browser, admin):
    assert sign_in(browser, WRONG).status_code == 401
    assert sign_in(browser, WORKER_TOKEN).status_code == 401
    events = list(admin.list_audit_events(action="AuthenticationFailed"))
    assert len(events) == 2
    role, unknown = events  # newest first
    assert (unknown.actor, unknown.parameters["reason"], unknown.parameters["sign_in_client"]) == (
        "anonymous",
        "INVALID_TOKEN",
        "testclient",
    )
    assert unknown.target == "rpc/jobqueue.v1.AdminService/GetStatistics"
    assert (role.actor, role.parameters["reason"]) == ("worker", "ROLE_NOT_ALLOWED")
    assert WRONG not in str(unknown.parameters), "the guessed token itself is never recorded"
    page = browser.get("/audit")  # signed out: the sign-in page
    assert "/login" in str(page.url)


def test_refused_calls_are_audited_a_bounded_number_a_minute(secured_service, admin):
    stub = secured_service.admin
    for _ in range(70):
        with pytest.raises(grpc.RpcError):
            stub.GetStatistics(admin_pb.GetStatisticsRequest(), metadata=(("authorization", f"Bearer {WRONG}"),))
    with pytest.raises(grpc.RpcError):
        stub.GetStatistics(admin_pb.GetStatisticsRequest())  # no token: a probe, not audited
    assert len(list(admin.list_audit_events(action="AuthenticationFailed"))) == 60
    secured_service.clock.advance(60)
    with pytest.raises(grpc.RpcError):
        stub.GetStatistics(admin_pb.GetStatisticsRequest(), metadata=(("authorization", f"Bearer {WRONG}"),))
    newest = next(iter(admin.list_audit_events(action="AuthenticationFailed")))
    assert newest.parameters["refusals_not_audited_before"] == 10


def test_logout_ends_the_session_for_good_even_for_a_copy_of_the_cookie(browser):
    assert sign_in(browser).status_code == 303
    copied = browser.cookies[SESSION_COOKIE]
    assert browser.get("/", follow_redirects=False).status_code == 200
    post(browser, "/logout", {})
    assert browser.get("/", follow_redirects=False).status_code == 303

    # Someone who copied the cookie before the logout replays it, from another browser.
    with TestClient(browser.app, base_url="https://testserver", cookies={SESSION_COOKIE: copied}) as thief:
        replayed = thief.get("/", follow_redirects=False)
        assert replayed.status_code == 303 and replayed.headers["location"].startswith("/login")
        write = thief.post("/queue/pause", data={"csrf_token": "x", "queue_name": "emails"}, follow_redirects=False)
        assert write.status_code == 401

    assert sign_in(browser).status_code == 303, "signing in again gives a new session"
    assert browser.get("/", follow_redirects=False).status_code == 200
