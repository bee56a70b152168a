"""The page machinery every handler shares: settings, the channel, templates, rendering, error pages."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from jobqueue import AdminClient, JobQueueError, TlsConfig
from jobqueue.connection import open_channel
from jobqueue.errors import NotFound, Unauthenticated, Unavailable, from_rpc_error
from jobqueue.v1 import admin_service_pb2, admin_service_pb2_grpc
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from queue_service.api.auth import SIGN_IN_CLIENT_METADATA
from queue_service.clock import Clock, SystemClock
from queue_service.dashboard.sessions import (
    SESSION_MAX_AGE,
    TokenSeal,
    csrf_matches,
    csrf_token,
    sealed_token,
    session_id,
)
from queue_service.dashboard.sign_in import SignedOutSessions, SignInThrottle, ThrottleSettings
from queue_service.durations import human_duration

logger = logging.getLogger(__name__)

PACKAGE = Path(__file__).parent
CALL_TIMEOUT = 10.0


@dataclass
class DashboardSettings:
    target: str = "localhost:50051"
    tls: TlsConfig | None = None
    # Signs the session cookie; a random one per process signs everyone out on restart.
    session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # Secure cookies travel over HTTPS only (browsers treat http://localhost as secure too).
    secure_cookies: bool = True
    sign_in_throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    clock: Clock = field(default_factory=SystemClock)


@dataclass
class Redrive:
    """A bulk redrive running in the background, and the progress the stream last reported."""

    id: str
    owner: str
    fingerprint: str
    matched: int = 0
    retried: int = 0
    skipped: int = 0
    done: bool = False
    error: str = ""
    skip_reasons: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Dashboard:
    """What every request handler shares: the channel to the server, templates, redrives in flight."""

    def __init__(self, settings: DashboardSettings) -> None:
        self.settings = settings
        self.seal = TokenSeal(settings.session_secret)
        self.throttle = SignInThrottle(settings.sign_in_throttle, settings.clock)
        self.signed_out = SignedOutSessions(timedelta(seconds=SESSION_MAX_AGE), settings.clock)
        # Set up as AdminClient sets up its own; the token rides on each call as metadata.
        self.channel = open_channel(
            settings.target, tls=settings.tls, idempotent_methods=AdminClient.idempotent_methods
        )
        self.templates = Jinja2Templates(directory=str(PACKAGE / "templates"))
        self.templates.env.filters["dt"] = format_time
        self.templates.env.filters["duration"] = format_duration
        self.templates.env.filters["plural"] = plural
        self.templates.env.filters["label"] = lambda value: str(getattr(value, "value", value) or "").replace("_", " ")
        self.templates.env.globals["field_error"] = field_error
        self.redrives: dict[str, Redrive] = {}
        self.redrives_lock = threading.Lock()

    def client(self, token: str) -> AdminClient:
        # One shared channel; the token rides on each call as metadata.
        return AdminClient(self.settings.target, token=token, channel=self.channel, timeout=CALL_TIMEOUT)

    def check_sign_in(self, token: str, client_address: str) -> None:
        """A cheap admin call proves the token is known and of the admin role; raises JobQueueError if not.

        The browser's address goes along, so the server's audit record of a refused token names it.
        """
        stub = admin_service_pb2_grpc.AdminServiceStub(self.channel)
        metadata = (("authorization", f"Bearer {token}"), (SIGN_IN_CLIENT_METADATA, client_address))
        try:
            stub.GetStatistics(admin_service_pb2.GetStatisticsRequest(), metadata=metadata, timeout=CALL_TIMEOUT)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def session_token(self, request: Request) -> str | None:
        """The signed-in operator's token, or None: no session, a forged or old one, or signed out."""
        signed_in_session = session_id(request)
        if signed_in_session is None or self.signed_out.is_revoked(signed_in_session):
            return None
        return self.seal.open(sealed_token(request))

    def close(self) -> None:
        self.channel.close()


def format_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "–"


def format_duration(value: timedelta | None) -> str:
    return human_duration(value, missing="–")


def plural(count: int, singular: str, plural_form: str = "") -> str:
    """The count with the word that fits it: "1 entry", "3 entries"."""
    return f"{count} {singular if count == 1 else plural_form or singular + 's'}"


class PageError(Exception):
    """A problem to show the operator as a message on the page, with an HTTP status."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class FieldError(PageError):
    """A form value the dashboard refuses: shown next to the field `field` (its form name), status 400."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, 400)
        self.field = field


def field_error(errors: dict[str, str] | None, field: str) -> Markup:
    """The message for `field` as a paragraph to place right after its input, or nothing."""
    message = (errors or {}).get(field)
    if not message:
        return Markup("")
    return Markup('<p class="field-error" id="{0}-error" role="alert">{1}</p>').format(field, message)


def describe(error: JobQueueError, target: str) -> str:
    """A readable sentence for a server error, never a traceback."""
    if isinstance(error, Unavailable):
        return f"The queue service at {target} is not reachable right now. Try again in a moment."
    message = error.message.strip() or error.code.name.replace("_", " ").lower()
    return message[0].upper() + message[1:]


def status_for(error: JobQueueError) -> int:
    return {
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.OUT_OF_RANGE: 400,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.FAILED_PRECONDITION: 409,
        grpc.StatusCode.ABORTED: 409,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.UNAUTHENTICATED: 401,
        grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.UNAVAILABLE: 503,
        grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    }.get(error.code, 502)


def flash(request: Request, message: str, kind: str = "info") -> None:
    request.session.setdefault("flash", []).append({"kind": kind, "message": message})


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> Response:
    dashboard: Dashboard = request.app.state.dashboard
    context = {
        "csrf_token": csrf_token(request),
        "messages": request.session.pop("flash", []),
        "signed_in": dashboard.session_token(request) is not None,
        "target": dashboard.settings.target,
        "errors": {},
        **context,
    }
    response = dashboard.templates.TemplateResponse(request, template, context, status_code=status_code)
    # Pages carry operator data and a CSRF token: never cache them.
    response.headers["Cache-Control"] = "no-store"
    return response


Handler = Callable[[Request, AdminClient, dict[str, Any]], Response]
# Renders the page holding a form again, with the refused fields' messages: (request, client, form, errors).
FormPage = Callable[[Request, AdminClient, dict[str, Any], dict[str, str]], Response]


def page(
    handler: Handler, *, write: bool = False, form_page: FormPage | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a synchronous handler: sign-in check, CSRF check on writes, errors as readable pages.

    A write whose form value is refused (FieldError) answers 400 with `form_page`: the form
    again, the message next to the field. The handler runs in a worker thread, as AdminClient
    calls block.
    """

    async def endpoint(request: Request) -> Response:
        dashboard: Dashboard = request.app.state.dashboard
        token = dashboard.session_token(request)
        if not token:
            if write:
                return PlainTextResponse("Sign in first.", status_code=401)
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        form: dict[str, Any] = {}
        if request.method == "POST":
            data = await request.form()
            form = {key: data.getlist(key) if key == "ids" else data.get(key) for key in data.keys()}
            if not csrf_matches(request, form.get("csrf_token", "")):
                return render(
                    request,
                    "error.html",
                    {"title": "Form expired", "message": "This form has expired. Reload the page and try again."},
                    status_code=403,
                )
        client = dashboard.client(token)
        try:
            try:
                return await run_in_threadpool(handler, request, client, form)
            except FieldError as error:
                if not (write and form_page):
                    raise
                return await run_in_threadpool(form_page, request, client, form, {error.field: error.message})
        except Unauthenticated:
            request.session.clear()
            flash(request, "Your token is no longer accepted by the server. Sign in again.", "error")
            return RedirectResponse("/login", status_code=303)
        except (JobQueueError, PageError) as error:
            if isinstance(error, PageError):
                message, status_code = error.message, error.status_code
            else:
                message, status_code = describe(error, dashboard.settings.target), status_for(error)
            if write:
                flash(request, message, "error")
                return RedirectResponse(back(request, form), status_code=303)
            title = "Not found" if isinstance(error, NotFound) else "Something went wrong"
            return render(request, "error.html", {"title": title, "message": message}, status_code=status_code)

    return endpoint


def back(request: Request, form: dict[str, Any]) -> str:
    """Where a write action returns to: the page the form names, if it is one of ours."""
    target = str(form.get("back") or "")
    if target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


async def server_error(request: Request, exc: Exception) -> Response:
    logger.exception("dashboard request failed: %s %s", request.method, request.url.path, exc_info=exc)
    return HTMLResponse(
        "<!doctype html><html lang=en><title>Error</title><link rel=stylesheet href=/static/style.css>"
        "<main class=narrow><h1>Something went wrong</h1><p>The dashboard could not show this page. "
        "The details are in its log.</p><p><a href=/>Back to the overview</a></p></main></html>",
        status_code=500,
    )


async def not_found(request: Request, exc: Exception) -> Response:
    return HTMLResponse(
        "<!doctype html><html lang=en><title>Not found</title><link rel=stylesheet href=/static/style.css>"
        "<main class=narrow><h1>Not found</h1><p>There is no such page.</p><p><a href=/>Back to the overview</a></p></main></html>",
        status_code=404,
    )


SECURITY_HEADERS = [
    # Everything comes from the dashboard itself; no inline script, no framing by other sites.
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)
