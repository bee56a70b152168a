"""The sign-in and sign-out pages."""

from __future__ import annotations

import logging

import grpc
from jobqueue import JobQueueError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from queue_service.dashboard.pages import Dashboard, describe, flash, render
from queue_service.dashboard.sessions import csrf_matches, session_id, start_session
from queue_service.dashboard.sign_in import whole_seconds

logger = logging.getLogger(__name__)


async def login_page(request: Request) -> Response:
    return render(request, "login.html", {"title": "Sign in", "next": request.query_params.get("next", "/")})


async def login(request: Request) -> Response:
    data = await request.form()
    if not csrf_matches(request, data.get("csrf_token", "")):
        return render(
            request,
            "login.html",
            {"title": "Sign in", "error": "This form has expired. Try again.", "next": "/"},
            status_code=403,
        )
    token = str(data.get("token", "")).strip()
    next_page = str(data.get("next") or "/")
    if not next_page.startswith("/") or next_page.startswith("//"):
        next_page = "/"
    dashboard: Dashboard = request.app.state.dashboard
    if not token:
        return render(
            request, "login.html", {"title": "Sign in", "error": "Enter an admin token.", "next": next_page}, 400
        )
    client_address = request.client.host if request.client else "unknown"
    wait = dashboard.throttle.attempt(client_address)
    if wait:
        # Refused before the token is even checked: a guess during the wait learns nothing.
        seconds = whole_seconds(wait)
        logger.warning(
            "dashboard sign-in from %s refused: too many failed sign-ins, %ss to wait", client_address, seconds
        )
        error = f"Too many failed sign-ins. Try again in {seconds} second{'s' if seconds != 1 else ''}."
        response = render(request, "login.html", {"title": "Sign in", "error": error, "next": next_page}, 429)
        response.headers["Retry-After"] = str(seconds)
        return response
    try:
        await run_in_threadpool(dashboard.check_sign_in, token, client_address)
    except JobQueueError as error:
        if error.code == grpc.StatusCode.UNAUTHENTICATED:
            message = "The server does not know this token."
        elif error.code == grpc.StatusCode.PERMISSION_DENIED:
            message = "This token cannot use the admin API; sign in with an admin token."
        else:
            message = describe(error, dashboard.settings.target)
        if error.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            logger.warning("failed dashboard sign-in from %s: %s", client_address, error.code.name)
        else:
            dashboard.throttle.undecided(client_address)
        return render(request, "login.html", {"title": "Sign in", "error": message, "next": next_page}, 401)
    dashboard.throttle.succeeded(client_address)
    start_session(request, dashboard.seal.seal(token))
    return RedirectResponse(next_page, status_code=303)


async def logout(request: Request) -> Response:
    data = await request.form()
    # A sign-out without a matching token (a forged form) is ignored, not refused.
    if csrf_matches(request, data.get("csrf_token", "")):
        signed_in_session = session_id(request)
        if signed_in_session is not None:
            # Clearing the cookie is not enough: a copy of it must stop working too.
            request.app.state.dashboard.signed_out.revoke(signed_in_session)
        request.session.clear()
        flash(request, "Signed out.")
    return RedirectResponse("/login", status_code=303)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


ROUTES = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
]
