"""`queue-service` command line: serve, migrate, recover, health."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys

from queue_service.alerts.email_config import add_email_options, email_settings
from queue_service.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_METRICS_PORT,
    DEFAULT_PORT,
    PAGE_TOKEN_KEY_ENV,
    ConfigError,
    ServerConfig,
    env_float,
    env_int,
    env_str,
    parse_duration,
    server_tokens,
    tls_files,
    validate_recovery,
)
from queue_service.core.jobs import LifecycleSettings
from queue_service.core.sweep.settings import RecoverySettings
from queue_service.core.sweep.task import RecoveryCounts
from queue_service.core.validation import Limits
from queue_service.logs import LOG_FORMATS, configure_logging

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
    security.add_argument(
        "--tls-cert", default=env_str("QUEUE_TLS_CERT", ""), help="PEM certificate chain (env QUEUE_TLS_CERT)"
    )
    security.add_argument("--tls-key", default=env_str("QUEUE_TLS_KEY", ""), help="PEM private key (env QUEUE_TLS_KEY)")
    security.add_argument(
        "--tls-client-ca",
        default=env_str("QUEUE_TLS_CLIENT_CA", ""),
        help="PEM CA bundle; clients must then present a certificate it signed (env QUEUE_TLS_CLIENT_CA)",
    )


def _add_logging_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    # Accepted before and after the command name; the command's copy only overrides when given.
    parser.add_argument(
        "--log-level",
        default=env_str("QUEUE_LOG_LEVEL", "INFO") if defaults else argparse.SUPPRESS,
        help="DEBUG, INFO, WARNING or ERROR (env QUEUE_LOG_LEVEL, default INFO)",
    )
    parser.add_argument(
        "--log-format",
        default=env_str("QUEUE_LOG_FORMAT", "text") if defaults else argparse.SUPPRESS,
        help=f"{' or '.join(LOG_FORMATS)} (env QUEUE_LOG_FORMAT, default text)",
    )


def _add_recovery_options(parser: argparse.ArgumentParser, *, serving: bool) -> None:
    group = parser.add_argument_group("recovery sweep (durations: 300, 90s, 5m, 12h, 7d)")
    if serving:
        # TrackStart sets a job's deadline from the stall timeout; the sweep only compares it with now.
        group.add_argument(
            "--stall-timeout",
            default=env_str("QUEUE_STALL_TIMEOUT", "300"),
            help="a TrackStart job silent this long counts as a failed run (env QUEUE_STALL_TIMEOUT, default 300 s)",
        )
        group.add_argument(
            "--recovery-interval",
            default=env_str("QUEUE_RECOVERY_INTERVAL", "300"),
            help="time between sweeps, 0 turns the scheduler off (env QUEUE_RECOVERY_INTERVAL, default 300 s)",
        )
        group.add_argument(
            "--leader-lease-term",
            default=env_str("QUEUE_LEADER_LEASE_TERM", "30"),
            help="replicas elect one sweeper; a dead one is replaced within this (env QUEUE_LEADER_LEASE_TERM, default 30 s)",
        )
    group.add_argument(
        "--completed-retention",
        default=env_str("QUEUE_COMPLETED_RETENTION", "7d"),
        help="delete completed jobs older than this, 0 keeps them (env QUEUE_COMPLETED_RETENTION, default 7d)",
    )
    group.add_argument(
        "--retry-log-retention",
        default=env_str("QUEUE_RETRY_LOG_RETENTION", "30d"),
        help="delete retry-log rows older than this, 0 keeps them (env QUEUE_RETRY_LOG_RETENTION, default 30d)",
    )
    group.add_argument(
        "--dlq-alert-threshold",
        default=env_str("QUEUE_DLQ_ALERT_THRESHOLD", "100"),
        help="alert when a queue has this many pending DLQ entries, 0 turns alerts off "
        "(env QUEUE_DLQ_ALERT_THRESHOLD, default 100)",
    )
    group.add_argument(
        "--dlq-alert-webhook",
        default=env_str("QUEUE_DLQ_ALERT_WEBHOOK", ""),
        help="URL that receives a JSON POST for each DLQ alert (env QUEUE_DLQ_ALERT_WEBHOOK)",
    )
    add_email_options(group)
    group.add_argument(
        "--node-id",
        default=env_str("QUEUE_NODE_ID", ""),
        help="name of this replica in leases and recovery runs (env QUEUE_NODE_ID, default host:pid:random)",
    )


def _threshold(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(
            f"--dlq-alert-threshold / QUEUE_DLQ_ALERT_THRESHOLD must be an integer, got {raw!r}"
        ) from None


def recovery_settings(args: argparse.Namespace) -> RecoverySettings:
    defaults = RecoverySettings()
    scheduling = hasattr(args, "recovery_interval")
    return validate_recovery(
        RecoverySettings(
            interval=parse_duration(args.recovery_interval, "--recovery-interval / QUEUE_RECOVERY_INTERVAL")
            if scheduling
            else defaults.interval,
            leader_lease_term=parse_duration(args.leader_lease_term, "--leader-lease-term / QUEUE_LEADER_LEASE_TERM")
            if scheduling
            else defaults.leader_lease_term,
            completed_retention=parse_duration(
                args.completed_retention, "--completed-retention / QUEUE_COMPLETED_RETENTION"
            ),
            retry_log_retention=parse_duration(
                args.retry_log_retention, "--retry-log-retention / QUEUE_RETRY_LOG_RETENTION"
            ),
            dlq_alert_threshold=_threshold(args.dlq_alert_threshold),
            dlq_alert_webhook_url=args.dlq_alert_webhook,
            alert_email=email_settings(args),
            node_id=args.node_id,
        )
    )


def lifecycle_settings(args: argparse.Namespace) -> LifecycleSettings:
    max_queues = _option(args.max_queues, "QUEUE_MAX_QUEUES", Limits().max_queues)
    if max_queues < 1:
        raise ConfigError(f"--max-queues / QUEUE_MAX_QUEUES must be at least 1, got {max_queues}")
    admin_creates = args.admin_creates_queues or env_str("QUEUE_ADMIN_CREATES_QUEUES", "0").lower() in (
        "1",
        "true",
        "yes",
    )
    group_commit = args.group_commit
    if group_commit is None:
        raw = env_str("QUEUE_GROUP_COMMIT", "auto").strip().lower()
        if raw in ("1", "true", "yes", "on"):
            group_commit = True
        elif raw in ("0", "false", "no", "off"):
            group_commit = False
        elif raw not in ("", "auto"):
            raise ConfigError(f"QUEUE_GROUP_COMMIT must be on, off or auto, got {raw!r}")
    return LifecycleSettings(
        stall_timeout=parse_duration(args.stall_timeout, "--stall-timeout / QUEUE_STALL_TIMEOUT"),
        limits=Limits(max_queues=max_queues),
        admin_creates_queues=admin_creates,
        group_commit=group_commit,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="queue-service", description="Job retry and recovery service")
    _add_logging_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server")
    _add_logging_options(serve, defaults=False)
    serve.add_argument("--host", default=env_str("QUEUE_HOST", "127.0.0.1"), help="bind address (env QUEUE_HOST)")
    serve.add_argument("--port", type=int, default=None, help=f"port, default {DEFAULT_PORT} (env QUEUE_PORT)")
    _add_database_option(serve)
    migrate_group = serve.add_mutually_exclusive_group()
    migrate_group.add_argument(
        "--migrate", dest="migrate", action="store_true", default=None, help="apply migrations on start"
    )
    migrate_group.add_argument("--no-migrate", dest="migrate", action="store_false", help="never migrate on start")
    _add_security_options(serve)
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help=f"serve Prometheus /metrics on this port, 0 = off (env QUEUE_METRICS_PORT, default {DEFAULT_METRICS_PORT})",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes sharing the port (env QUEUE_WORKERS; default: CPU cores on PostgreSQL, 1 on SQLite)",
    )
    serve.add_argument(
        "--grpc-threads", type=int, default=None, help="RPC threads per process (env QUEUE_GRPC_THREADS, default 64)"
    )
    serve.add_argument(
        "--max-waiting-leases",
        type=int,
        default=None,
        help="long-polls per process that may wait at once; more get an immediate answer "
        "(env QUEUE_MAX_WAITING_LEASES, default half of --grpc-threads)",
    )
    serve.add_argument(
        "--shutdown-grace",
        type=float,
        default=None,
        help="seconds running calls may finish after SIGTERM (env QUEUE_SHUTDOWN_GRACE, default 10)",
    )
    serve.add_argument(
        "--health-check-interval",
        type=float,
        default=None,
        help="seconds between database checks behind grpc.health.v1 (env QUEUE_HEALTH_CHECK_INTERVAL, default 2)",
    )
    serve.add_argument(
        "--group-commit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="share one transaction among the reports and leases that arrive while one is being "
        "written, or give each its own (env QUEUE_GROUP_COMMIT=on|off|auto; default auto: on for "
        "SQLite, off for PostgreSQL)",
    )
    queues_group = serve.add_argument_group("queues")
    queues_group.add_argument(
        "--max-queues",
        type=int,
        default=None,
        help="queues the server holds at most; a job for a new queue beyond it is refused "
        f"(env QUEUE_MAX_QUEUES, default {Limits().max_queues})",
    )
    queues_group.add_argument(
        "--admin-creates-queues",
        action="store_true",
        help="only admin tokens create queues; a worker's job for an unknown queue gets NOT_FOUND "
        "(env QUEUE_ADMIN_CREATES_QUEUES=1)",
    )
    _add_recovery_options(serve, serving=True)

    migrate = commands.add_parser("migrate", help="apply the database migrations")
    _add_logging_options(migrate, defaults=False)
    _add_database_option(migrate)

    health = commands.add_parser("health", help="exit 0 only if the server's grpc.health.v1 check says SERVING")
    _add_logging_options(health, defaults=False)
    health.add_argument(
        "--target",
        default=None,
        help="host:port (env QUEUE_HEALTH_TARGET, default 127.0.0.1 and QUEUE_PORT or 50051)",
    )
    health.add_argument("--service", default="", help="service name to check; empty means the whole server")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds before giving up (default 3)")
    health_tls = health.add_argument_group("TLS", "for a server started with --tls-cert; plaintext without --tls-ca")
    health_tls.add_argument(
        "--tls-ca",
        default=env_str("QUEUE_HEALTH_TLS_CA", ""),
        help="PEM CA that signed the server certificate (env QUEUE_HEALTH_TLS_CA)",
    )
    health_tls.add_argument(
        "--tls-server-name",
        default=env_str("QUEUE_HEALTH_TLS_SERVER_NAME", ""),
        help="name the server certificate must carry, when it is not the target host (env QUEUE_HEALTH_TLS_SERVER_NAME)",
    )
    health_tls.add_argument(
        "--tls-cert",
        default=env_str("QUEUE_HEALTH_TLS_CERT", ""),
        help="client certificate for mutual TLS (env QUEUE_HEALTH_TLS_CERT)",
    )
    health_tls.add_argument(
        "--tls-key",
        default=env_str("QUEUE_HEALTH_TLS_KEY", ""),
        help="client key for mutual TLS (env QUEUE_HEALTH_TLS_KEY)",
    )

    dashboard = commands.add_parser("dashboard", help="serve the operators' web dashboard over AdminService")
    _add_logging_options(dashboard, defaults=False)
    dashboard.add_argument(
        "--host",
        default=env_str("QUEUE_DASHBOARD_HOST", "127.0.0.1"),
        help="address to listen on (env QUEUE_DASHBOARD_HOST, default 127.0.0.1)",
    )
    dashboard.add_argument(
        "--port",
        default=env_str("QUEUE_DASHBOARD_PORT", "8080"),
        help="HTTP port; 0 picks a free one (env QUEUE_DASHBOARD_PORT, default 8080)",
    )
    dashboard.add_argument(
        "--target",
        default=env_str("QUEUE_TARGET", "localhost:50051"),
        help="the queue service, host:port (env QUEUE_TARGET, default localhost:50051)",
    )
    dashboard.add_argument(
        "--token",
        default=env_str("QUEUE_TOKEN", ""),
        help="an admin token to check the server with at start (env QUEUE_TOKEN); operators sign in with their own",
    )
    dashboard.add_argument(
        "--insecure-cookie",
        action="store_true",
        help="send the session cookie over plain HTTP too (only for a trusted network without TLS)",
    )
    dashboard_tls = dashboard.add_argument_group("TLS to the queue service", "plaintext unless --tls or --tls-ca")
    dashboard_tls.add_argument(
        "--tls", action="store_true", help="use TLS, trusting the system's certificate authorities"
    )
    dashboard_tls.add_argument("--tls-ca", default="", help="use TLS, trusting this PEM CA bundle")
    dashboard_tls.add_argument("--tls-cert", default="", help="client certificate, for mutual TLS")
    dashboard_tls.add_argument("--tls-key", default="", help="client private key, for mutual TLS")
    dashboard_tls.add_argument("--tls-server-name", default="", help="name to verify the server certificate against")

    recover = commands.add_parser("recover", help="run one recovery sweep now and print its summary")
    _add_logging_options(recover, defaults=False)
    _add_database_option(recover)
    recover.add_argument("--json", action="store_true", help="print the run as JSON")
    _add_recovery_options(recover, serving=False)
    return parser


def _option(value, env: str, default, parse=env_int):
    return value if value is not None else parse(env, default)


def server_config(args: argparse.Namespace) -> ServerConfig:
    defaults = ServerConfig()
    tokens = server_tokens(args.tokens_file or None)
    # Chosen here, before `--workers` starts its processes, so that they all sign page tokens alike.
    page_token_key = os.environ.get(PAGE_TOKEN_KEY_ENV) or ("" if tokens else secrets.token_urlsafe(32))
    return ServerConfig(
        host=args.host,
        port=_option(args.port, "QUEUE_PORT", DEFAULT_PORT),
        database_url=args.database_url,
        migrate_on_start=args.migrate,
        tokens=tokens,
        page_token_key=page_token_key,
        insecure=args.insecure,
        tls=tls_files(args.tls_cert, args.tls_key, args.tls_client_ca),
        metrics_port=_option(args.metrics_port, "QUEUE_METRICS_PORT", DEFAULT_METRICS_PORT),
        grpc_threads=_option(args.grpc_threads, "QUEUE_GRPC_THREADS", defaults.grpc_threads),
        max_waiting_leases=_option(args.max_waiting_leases, "QUEUE_MAX_WAITING_LEASES", None),
        shutdown_grace=_option(args.shutdown_grace, "QUEUE_SHUTDOWN_GRACE", defaults.shutdown_grace, env_float),
        health_check_interval=_option(
            args.health_check_interval, "QUEUE_HEALTH_CHECK_INTERVAL", defaults.health_check_interval, env_float
        ),
        lifecycle=lifecycle_settings(args),
        recovery=recovery_settings(args),
    ).validate()


def worker_count(args: argparse.Namespace, config: ServerConfig) -> int:
    """--workers, else one per usable core on PostgreSQL and one on SQLite (a single writer anyway)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = _option(args.workers, "QUEUE_WORKERS", 1 if config.is_sqlite else cores)
    if workers < 1:
        raise ConfigError(f"--workers / QUEUE_WORKERS must be at least 1, got {workers}")
    return workers


def serve(args: argparse.Namespace) -> int:
    from queue_service.api.server import QueueServer, freeze_startup_heap
    from queue_service.stop_signals import StopSignals

    config = server_config(args)
    workers = worker_count(args, config)
    if workers > 1:
        from queue_service.multiprocess import serve_processes

        return serve_processes(config, workers, log_level=args.log_level, log_format=args.log_format)
    server = QueueServer(config).start()
    freeze_startup_heap()
    stop_signals = StopSignals().install()
    print(f"queue-service listening on {server.address}", flush=True)
    received = stop_signals.wait()
    logger.info("received %s, shutting down", received.name)
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


def health(args: argparse.Namespace) -> int:
    from queue_service.health_probe import ProbeTls, probe

    target = args.target or env_str("QUEUE_HEALTH_TARGET", f"127.0.0.1:{env_int('QUEUE_PORT', DEFAULT_PORT)}")
    tls = ProbeTls.load(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name) if args.tls_ca else None
    serving, status = probe(target, service=args.service, timeout=args.timeout, tls=tls)
    print(f"{target}: {status}", file=sys.stdout if serving else sys.stderr)
    return 0 if serving else 1


EXIT_RUN_FAILED = 1
EXIT_SWEEP_BUSY = 3


def recover(args: argparse.Namespace) -> int:
    """One sweep from the command line; SQLite is migrated first, as `serve` does."""
    from queue_service.clock import SystemClock
    from queue_service.core.errors import Aborted
    from queue_service.core.jobs import JobManager
    from queue_service.core.sweep.runner import Recovery, Trigger
    from queue_service.store import migrate
    from queue_service.store.database import Database
    from queue_service.store.errors import StoreUnavailable

    config = ServerConfig(database_url=args.database_url).validate()
    settings = recovery_settings(args)
    database = Database(config.database_url, pool_size=2, max_overflow=2)
    try:
        if config.should_migrate:
            migrate.upgrade(database.engine)
        recovery = Recovery(JobManager(database, SystemClock()), settings)
        try:
            run = recovery.run_once(Trigger.CLI)
        except Aborted as error:
            print(f"queue-service recover: {error}", file=sys.stderr)
            return EXIT_SWEEP_BUSY
        except StoreUnavailable as error:
            print(f"queue-service recover: {error}", file=sys.stderr)
            return EXIT_RUN_FAILED
    finally:
        database.dispose()
    if args.json:
        print(json.dumps(run_summary(run), indent=2))
    else:
        print(format_run(run))
    return 0 if run.error is None else EXIT_RUN_FAILED


def run_summary(run) -> dict:
    return {
        "id": run.id,
        "status": run.status.value,
        "trigger": run.trigger,
        "node_id": run.node_id,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_seconds": run.duration.total_seconds() if run.duration else None,
        "counts": run.counts,
        "error": run.error,
    }


def format_run(run) -> str:
    duration = f"{run.duration.total_seconds():.3f}s" if run.duration else "?"
    lines = [f"recovery run {run.id} {run.status.value} in {duration} (node {run.node_id}, trigger {run.trigger})"]
    order = list(RecoveryCounts.__dataclass_fields__)
    names = sorted(run.counts, key=lambda name: (order.index(name) if name in order else len(order), name))
    width = max((len(name) for name in names), default=0)
    lines += [f"  {name.ljust(width)}  {run.counts[name]}" for name in names]
    if run.error:
        lines.append(f"  error: {run.error}")
    return "\n".join(lines)


def dashboard(args: argparse.Namespace) -> int:
    from queue_service.dashboard.server import run

    return run(args)


COMMANDS = {"serve": serve, "migrate": run_migrations, "recover": recover, "health": health, "dashboard": dashboard}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging(args.log_level, args.log_format)
        return COMMANDS[args.command](args)
    except ConfigError as error:
        print(f"queue-service: configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
