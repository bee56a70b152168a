"""`queue-service` command line: serve, migrate."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from queue_service.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_PORT,
    ConfigError,
    ServerConfig,
    env_int,
    env_str,
    server_tokens,
    tls_files,
)

logger = logging.getLogger("queue_service")


def _add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=env_str("QUEUE_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="sqlite:///path or postgresql+psycopg2://user@host/db (env QUEUE_DATABASE_URL)",
    )


def _add_security_options(parser: argparse.ArgumentParser) -> None:
    security = parser.add_argument_group(
        "authentication and TLS",
        "Tokens come from QUEUE_ADMIN_TOKEN, QUEUE_WORKER_TOKEN and the tokens file, never from flags.",
    )
    security.add_argument(
        "--tokens-file",
        default=env_str("QUEUE_TOKENS_FILE", ""),
        help="TOML file of named tokens, see README (env QUEUE_TOKENS_FILE)",
    )
    security.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback address without any token configured",
    )
    security.add_argument("--tls-cert", default=env_str("QUEUE_TLS_CERT", ""), help="PEM certificate chain (env QUEUE_TLS_CERT)")
    security.add_argument("--tls-key", default=env_str("QUEUE_TLS_KEY", ""), help="PEM private key (env QUEUE_TLS_KEY)")
    security.add_argument(
        "--tls-client-ca",
        default=env_str("QUEUE_TLS_CLIENT_CA", ""),
        help="PEM CA bundle; clients must then present a certificate it signed (env QUEUE_TLS_CLIENT_CA)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="queue-service", description="Job retry and recovery service")
    parser.add_argument("--log-level", default=env_str("QUEUE_LOG_LEVEL", "INFO"), help="env QUEUE_LOG_LEVEL")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--host", default=env_str("QUEUE_HOST", "127.0.0.1"), help="bind address (env QUEUE_HOST)")
    serve.add_argument("--port", type=int, default=None, help=f"port, default {DEFAULT_PORT} (env QUEUE_PORT)")
    _add_database_option(serve)
    migrate_group = serve.add_mutually_exclusive_group()
    migrate_group.add_argument("--migrate", dest="migrate", action="store_true", default=None, help="apply migrations on start")
    migrate_group.add_argument("--no-migrate", dest="migrate", action="store_false", help="never migrate on start")
    _add_security_options(serve)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    _add_database_option(migrate)
    return parser


def server_config(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port if args.port is not None else env_int("QUEUE_PORT", DEFAULT_PORT),
        database_url=args.database_url,
        migrate_on_start=args.migrate,
        tokens=server_tokens(args.tokens_file or None),
        insecure=args.insecure,
        tls=tls_files(args.tls_cert, args.tls_key, args.tls_client_ca),
    ).validate()


def serve(args: argparse.Namespace) -> int:
    from queue_service.api.server import QueueServer

    server = QueueServer(server_config(args)).start()
    stopping = threading.Event()

    def on_signal(signum, _frame):
        logger.info("received %s, shutting down", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"queue-service listening on {server.address}", flush=True)
    while not stopping.wait(1.0):
        pass
    server.stop()
    logger.info("stopped")
    return 0


def run_migrations(args: argparse.Namespace) -> int:
    from queue_service.store import migrate
    from queue_service.store.database import Database

    database = Database(args.database_url)
    try:
        migrate.upgrade(database.engine)
        print(f"database at revision {migrate.current_revision(database.engine)}")
    finally:
        database.dispose()
    return 0


COMMANDS = {"serve": serve, "migrate": run_migrations}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        print(f"queue-service: configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
