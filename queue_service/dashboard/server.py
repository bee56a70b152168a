"""`queue-service dashboard`: build the settings from the command line and serve under uvicorn."""

from __future__ import annotations

import argparse
import os
import socket

from jobqueue import AdminClient, JobQueueError, TlsConfig

from queue_service.config import ConfigError
from queue_service.dashboard.app import DashboardSettings, create_app

SECRET_ENV = "QUEUE_DASHBOARD_SECRET"


def settings_from_args(args: argparse.Namespace) -> DashboardSettings:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    tls = None
    if args.tls or args.tls_ca or args.tls_cert:
        tls = TlsConfig.from_files(
            args.tls_ca or None, args.tls_cert or None, args.tls_key or None, args.tls_server_name or None
        )
    settings = DashboardSettings(target=args.target, tls=tls, secure_cookies=not args.insecure_cookie)
    secret = os.environ.get(SECRET_ENV)
    if secret:
        if len(secret) < 16:
            raise ConfigError(f"{SECRET_ENV} must be at least 16 characters")
        settings.session_secret = secret
    return settings


def check_server(settings: DashboardSettings, token: str) -> None:
    """Fail fast when the server is unreachable or the token is not an admin token."""
    with AdminClient(settings.target, token=token, tls=settings.tls, timeout=10) as client:
        try:
            client.get_statistics()
        except JobQueueError as error:
            raise ConfigError(f"the queue service at {settings.target} refused the check: {error.message}") from None


def run(args: argparse.Namespace) -> int:
    import uvicorn

    try:
        port = int(args.port)
    except ValueError:
        raise ConfigError(f"--port / QUEUE_DASHBOARD_PORT must be an integer, got {args.port!r}") from None
    settings = settings_from_args(args)
    if args.token:
        check_server(settings, args.token)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, port))
    except OSError as error:
        raise ConfigError(f"cannot listen on {args.host}:{port}: {error.strerror}") from None
    # Listening before the address is printed: a client that reads it at once gets queued, not refused.
    listener.listen(128)
    host, bound_port = listener.getsockname()[:2]
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False, server_header=False)
    server = uvicorn.Server(config)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(
        f"queue-service dashboard listening on http://{shown}:{bound_port} (queue service {settings.target})",
        flush=True,
    )
    try:
        server.run(sockets=[listener])
    finally:
        app.state.dashboard.close()
        listener.close()
    return 0
