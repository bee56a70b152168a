"""Assembles the dashboard: its routes, static files, sessions and security headers."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from queue_service.dashboard import jobs, login, routes, schedules
from queue_service.dashboard.pages import (
    PACKAGE,
    Dashboard,
    DashboardSettings,
    SecurityHeaders,
    format_duration,
    not_found,
    server_error,
)
from queue_service.dashboard.sessions import SESSION_COOKIE, SESSION_MAX_AGE

# Callers build the app from here and name its settings and cookie without knowing the modules behind it.
__all__ = ["SESSION_COOKIE", "DashboardSettings", "create_app", "format_duration"]


def create_app(settings: DashboardSettings | None = None) -> Starlette:
    settings = settings or DashboardSettings()
    dashboard = Dashboard(settings)
    app = Starlette(
        routes=[
            *login.ROUTES,
            *routes.ROUTES,
            *jobs.ROUTES,
            *schedules.ROUTES,
            Mount("/static", StaticFiles(directory=str(PACKAGE / "static")), name="static"),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=settings.session_secret,
                session_cookie=SESSION_COOKIE,
                max_age=SESSION_MAX_AGE,
                same_site="strict",
                https_only=settings.secure_cookies,
            ),
        ],
        exception_handlers={500: server_error, 404: not_found},
    )
    app.state.dashboard = dashboard
    return app
