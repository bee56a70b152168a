"""Keeps grpc.health.v1 in step with the database: NOT_SERVING while it cannot be reached, its schema
is not the code's, or (SQLite) its file cannot be written or is damaged."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from grpc_health.v1 import health, health_pb2

from queue_service.store.readiness import NotReady

logger = logging.getLogger(__name__)


class DatabaseHealthMonitor:
    def __init__(
        self,
        servicer: health.HealthServicer,
        services: Sequence[str],
        check: Callable[[], None],
        interval: float,
    ) -> None:
        self.servicer = servicer
        self.services = ["", *services]
        self.check = check
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-monitor", daemon=True)
        self.serving: bool | None = None
        self.reason: str | None = None

    def check_once(self) -> bool:
        reason = None
        try:
            self.check()
        except NotReady as error:
            reason = str(error)
        except Exception as error:  # noqa: BLE001 - any failure means the database is not usable
            reason = f"database unreachable: {type(error).__name__}"
        serving = reason is None
        if reason is not None and reason != self.reason:
            logger.error("reporting NOT_SERVING: %s", reason)
        self.reason = reason
        if serving != self.serving:
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for service in self.services:
                self.servicer.set(service, status)
            if serving and self.serving is False:
                logger.info("database usable again, reporting SERVING")
            self.serving = serving
        return serving

    def start(self) -> None:
        self.check_once()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
