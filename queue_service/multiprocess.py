"""`serve --workers N`: N server processes on one port, as grpc's examples/python/multiprocessing does.

gRPC Python serves from one process, and the GIL caps it near one core. The parent reserves
the port with SO_REUSEPORT and starts N children that each bind it again with
`grpc.so_reuseport`; the kernel spreads incoming connections across them. Children are
spawned, not forked, so that no gRPC or database state is ever copied into them.

One more child, the sweeper, serves no RPC: it runs the recovery scheduler and every sweep the
others are asked for, so that no sweep shares a GIL with the calls (see sweeper.py).

The parent migrates and checks the database (see store/readiness.py), serves /metrics (prometheus-client multiprocess mode over
a temporary PROMETHEUS_MULTIPROC_DIR it owns, plus the per-queue gauges), forwards SIGTERM
and SIGINT to the children for a graceful stop, and stops them all if one dies, so that a
supervisor (Docker, Kubernetes, systemd) sees the failure and restarts the service.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import queue
import secrets
import shutil
import signal
import socket
import tempfile
import time
from datetime import timedelta
from multiprocessing.connection import wait

from queue_service.config import ConfigError, ServerConfig, SweeperAddress
from queue_service.core.leadership import default_node_id
from queue_service.core.sweep.settings import SWEEPER_BATCH_SIZE
from queue_service.stop_signals import StopSignals

logger = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
STARTUP_TIMEOUT = 120.0


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) a SO_REUSEPORT socket that holds the port for the children.

    A plain bind first: SO_REUSEPORT alone would happily share the port with another
    service of the same user instead of reporting it in use. Both set SO_REUSEADDR, as gRPC's
    own listeners do: on Linux that still refuses a port another socket listens on, but not one
    held only by the TIME_WAIT connections of a server that was just killed.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as error:
        raise ConfigError(f"--host / QUEUE_HOST: cannot resolve {host!r}: {error.strerror}") from None
    if port:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


def _exit_with_parent() -> None:
    """Linux: get SIGTERM if the parent dies, even by SIGKILL, so that no server outlives it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def sweeping_config(config: ServerConfig, node_id: str) -> ServerConfig:
    """The sweeper process's settings: its node id, and the larger batches of a process that serves no call."""
    return dataclasses.replace(
        config, recovery=dataclasses.replace(config.recovery, node_id=node_id, batch_size=SWEEPER_BATCH_SIZE)
    )


def _child_main(
    config: ServerConfig,
    name: str,
    events,
    parent_pid: int,
    log_level: str,
    log_format: str,
    sweeps_at: SweeperAddress | None = None,
) -> None:
    """One child: a server process, or with `sweeps_at` the sweeper. Runs until SIGTERM, and reports
    readiness or the start-up error to the parent."""
    stop_signals = StopSignals((signal.SIGTERM,)).install()
    # The terminal sends SIGINT to the whole process group; the parent decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    if os.getppid() != parent_pid:
        return

    from queue_service.api.server import QueueServer, freeze_startup_heap
    from queue_service.logs import configure_logging
    from queue_service.sweeper import Sweeper

    configure_logging(log_level, log_format)
    try:
        child = Sweeper(config, sweeps_at).start() if sweeps_at else QueueServer(config).start()
    except ConfigError as error:
        events.put(("config_error", name, os.getpid(), str(error)))
        raise SystemExit(2) from None
    except Exception as error:  # noqa: BLE001 - reported to the parent, which exits non-zero
        logger.exception("%s failed to start", name)
        events.put(("error", name, os.getpid(), f"{type(error).__name__}: {error}"))
        raise SystemExit(1) from None
    if sweeps_at:
        logger.info(
            "%s takes sweeps on %s%s", name, sweeps_at.path, " (runs the scheduler)" if config.runs_scheduler else ""
        )
    else:
        logger.info("%s serving on %s", name, child.address)
    freeze_startup_heap()
    events.put(("ready", name, os.getpid(), ""))
    stop_signals.wait()
    child.stop()
    logger.info("%s stopped", name)


class ProcessGroup:
    def __init__(self, config: ServerConfig, workers: int, *, log_level: str, log_format: str) -> None:
        self.config = config
        self.workers = workers
        self.log_level = log_level
        self.log_format = log_format
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[multiprocessing.Process] = []
        self.stop_signals = StopSignals()
        self._stop_logged = False
        self.metrics_database = None

    def run(self) -> int:
        from queue_service.store.database import Database
        from queue_service.store.readiness import DatabaseReadiness, NotReady

        self.stop_signals.install()
        if self.config.tls:
            self.config.tls.read()  # an unreadable file is a ConfigError here, before any child starts
        database = Database(self.config.database_url)
        try:
            DatabaseReadiness(database).check_at_start(migrate_first=self.config.should_migrate)
        except NotReady as error:
            raise ConfigError(str(error)) from None
        finally:
            database.dispose()
        reservation = reserve_port(self.config.host, self.config.port)
        port = reservation.getsockname()[1]
        metrics_dir = tempfile.mkdtemp(prefix="queue-service-metrics-")
        os.environ[MULTIPROC_DIR_ENV] = metrics_dir  # inherited by the children at spawn
        # mkdtemp makes it 0700: only this user reaches the sweeper's socket.
        sweeper_dir = tempfile.mkdtemp(prefix="queue-service-sweeper-")
        sweeper = SweeperAddress(os.path.join(sweeper_dir, "sweeper.sock"), secrets.token_bytes(32))
        endpoint = None
        try:
            if not self._start_children(port, sweeper):
                return 0 if self._stop_requested() else 1
            endpoint = self._start_metrics(metrics_dir)
            servers, sweeper_process = self.processes[:-1], self.processes[-1]
            print(
                f"queue-service listening on {self.config.host}:{port} with {self.workers} processes "
                f"(pids {' '.join(str(process.pid) for process in servers)}) "
                f"and a sweeper (pid {sweeper_process.pid})",
                flush=True,
            )
            return self._supervise()
        finally:
            self._stop_children()
            if endpoint is not None:
                endpoint.stop()
            if self.metrics_database is not None:
                self.metrics_database.dispose()
            reservation.close()
            os.environ.pop(MULTIPROC_DIR_ENV, None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
            shutil.rmtree(sweeper_dir, ignore_errors=True)

    def _stop_requested(self) -> bool:
        received = self.stop_signals.received
        if received is not None and not self._stop_logged:
            self._stop_logged = True
            logger.info("received %s, stopping %d processes", received.name, len(self.processes))
        return received is not None

    def _start_children(self, port: int, sweeper: SweeperAddress) -> bool:
        """Start the server processes and the sweeper, the last of `processes`, and wait until all
        run; False if stopped or one died first."""
        events = self.context.Queue()
        # One name for the replica, one node id per process under it; the sweeper runs the scheduler.
        replica = self.config.recovery.node_id or default_node_id()
        sweeper_node = f"{replica}/sweeper"
        scheduling = self.config.recovery.interval > timedelta(0)
        shared = dict(port=port, migrate_on_start=False, metrics_port=0)
        children = [
            (
                f"server process {index}",
                f"queue-service-{index}",
                dataclasses.replace(
                    self.config,
                    **shared,
                    reuse_port=True,
                    runs_scheduler=False,
                    recovery=dataclasses.replace(self.config.recovery, node_id=f"{replica}/{index}"),
                    scheduler_node_id=sweeper_node if scheduling else "",
                    sweeper=sweeper,
                ),
                None,
            )
            for index in range(self.workers)
        ]
        sweeper_config = dataclasses.replace(
            sweeping_config(self.config, sweeper_node), **shared, runs_scheduler=True, scheduler_node_id=None
        )
        children.append(("sweeper process", "queue-service-sweeper", sweeper_config, sweeper))
        for name, process_name, config, sweeps_at in children:
            process = self.context.Process(
                target=_child_main,
                args=(config, name, events, os.getpid(), self.log_level, self.log_format, sweeps_at),
                name=process_name,
            )
            process.start()
            self.processes.append(process)
        ready = 0
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while ready < len(self.processes):
            if self._stop_requested():
                return False
            try:
                kind, name, pid, detail = events.get(timeout=0.5)
            except queue.Empty:
                dead = [process for process in self.processes if process.exitcode is not None]
                if dead:
                    logger.error("%s exited with code %s while starting", dead[0].name, dead[0].exitcode)
                    return False
                if time.monotonic() > deadline:
                    logger.error("server processes did not start within %.0f s", STARTUP_TIMEOUT)
                    return False
                continue
            if kind == "config_error":
                raise ConfigError(detail)
            if kind == "error":
                logger.error("%s (pid %d) failed to start: %s", name, pid, detail)
                return False
            ready += 1
        return True

    def _start_metrics(self, metrics_dir: str):
        if not self.config.metrics_port:
            return None
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        from queue_service.clock import SystemClock
        from queue_service.core.jobs import JobManager
        from queue_service.core.queues import QueueManager
        from queue_service.core.sweep.runs import RecoveryRuns
        from queue_service.metrics import LastSweepCollector, MetricsEndpoint, QueueGaugeCollector, statistics_gauges
        from queue_service.store.database import Database

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=metrics_dir)
        self.metrics_database = Database(self.config.database_url, pool_size=1, max_overflow=1)
        queues = QueueManager(JobManager(self.metrics_database, SystemClock(), self.config.lifecycle))
        registry.register(QueueGaugeCollector(statistics_gauges(queues), ttl=self.config.queue_gauge_ttl))
        runs = RecoveryRuns(self.metrics_database, SystemClock(), node_id="")
        registry.register(LastSweepCollector(runs.last_succeeded_at, ttl=self.config.queue_gauge_ttl))
        return MetricsEndpoint(registry, self.config.host, self.config.metrics_port)

    def _supervise(self) -> int:
        while not self._stop_requested():
            for process in self.processes:
                if process.exitcode is not None and not self._stop_requested():
                    logger.error(
                        "server process %s (pid %d) exited with code %s; stopping the others",
                        process.name,
                        process.pid,
                        process.exitcode,
                    )
                    return 1
            wait([process.sentinel for process in self.processes], timeout=0.5)
        return 0

    def _stop_children(self) -> None:
        for process in self.processes:
            if process.exitcode is None:
                process.terminate()  # SIGTERM: each child stops gracefully
        deadline = time.monotonic() + self.config.shutdown_grace + 10
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                logger.error("server process %s (pid %d) did not stop in time; killing it", process.name, process.pid)
                process.kill()
                process.join()


def serve_processes(config: ServerConfig, workers: int, *, log_level: str, log_format: str) -> int:
    return ProcessGroup(config, workers, log_level=log_level, log_format=log_format).run()
