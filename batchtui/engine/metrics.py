"""Prometheus metrics of one `batchtui server` (``--metrics-port``), with prometheus-client.

Every server has its own CollectorRegistry (no module-level state: tests and
a process may make several). The engine reports what happens to it
(``attempt_started``, ``attempt_ended``, ``beat``); what the database holds
(tasks Ready and Executing) is read by one COUNT statement when Prometheus
scrapes, on the scraping thread's own connection, so it costs the loop
nothing.

- ``batchtui_task_attempts_total{status="ended|error|canceled"}``: attempts
  this server ran, by how they ended (a task handed back at a stop counts as
  canceled: its attempt is closed as Canceled; one handed back before its
  class began is not counted: it never ran, and history does not show it).
- ``batchtui_tasks_running`` / ``batchtui_tasks_ready``: tasks Executing (or
  Canceling) and Ready in the whole database, at scrape time.
- ``batchtui_server_tasks_running``: the attempts this server runs now.
- ``batchtui_start_delay_seconds``: histogram of due -> started, where due is
  the later of the run's scheduled start and a retry's not-before time (a
  task that waited for its conditions counts its parents' run time too).
- ``batchtui_threads``: the threads the server may use now (its capacity).
- ``batchtui_heartbeat_age_seconds``: seconds since it last wrote its
  heartbeat (absent until the first one).
- ``batchtui_database_up``: 1 while the loop reaches the database, else 0.

prometheus-client is the optional extra ``batchtui[metrics]``: this module is
imported only when ``--metrics-port`` is given.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .. import models as m
from ..timeutil import utcnow
from ..vocabulary import BatchStatus

if TYPE_CHECKING:
    from .server import BatchServerEngine

# Due -> started, in seconds: a claim in the same poll round is well under a
# second; a backlog shows as minutes.
DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_ENDS = ("ended", "error", "canceled")
_COUNT = (f"SELECT status, COUNT(*) FROM batch_task WHERE status IN "
          f"({int(BatchStatus.READY)}, {int(BatchStatus.EXECUTING)}, {int(BatchStatus.CANCELLING)}) GROUP BY status")


class ServerMetrics:
    """The metrics of one batch server, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.attempts = Counter("batchtui_task_attempts", "Task attempts this batch server ran, by how they ended",
                                ["status"], registry=self.registry)
        for status in _ENDS:
            self.attempts.labels(status)  # each series exists (0) before its first attempt
        self.start_delay = Histogram("batchtui_start_delay_seconds",
                                     "Seconds from a task being due to its attempt starting",
                                     buckets=DELAY_BUCKETS, registry=self.registry)
        self.engine: BatchServerEngine | None = None
        self.last_beat: float | None = None  # time.monotonic() of the last heartbeat written
        self._server: Any = None
        self._thread: Any = None
        self.registry.register(_State(self))

    # -- what the engine reports ------------------------------------------------------

    def attempt_started(self, due: Any, started: datetime | None = None) -> None:
        at = _as_datetime(due)
        if at is not None:
            self.start_delay.observe(max(0.0, ((started or utcnow()) - at).total_seconds()))

    def attempt_ended(self, status: str) -> None:
        """An attempt closed with this status (ended, error, canceled)."""
        self.attempts.labels(status if status in _ENDS else "error").inc()

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    # -- serving ------------------------------------------------------------------------

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve /metrics on host:port in a daemon thread; OSError if the port cannot be bound."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)

    @property
    def port(self) -> int:
        """The port it serves on (the one the system chose for --metrics-port 0)."""
        return int(self._server.server_port) if self._server is not None else 0

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _State(Collector):
    """What is read at scrape time: the engine's threads and heartbeat, the database's task counts."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Any]:
        return iter(())  # made at scrape time: nothing to check at registration

    def collect(self) -> Iterator[Any]:
        engine = self.metrics.engine
        if engine is not None:
            yield GaugeMetricFamily("batchtui_threads", "Batch threads this server may use now",
                                    value=engine.capacity)
            yield GaugeMetricFamily("batchtui_server_tasks_running", "Attempts this batch server runs now",
                                    value=engine.running_count)
            yield GaugeMetricFamily("batchtui_database_up", "1 while the server's loop reaches the database",
                                    value=0 if engine.database_down else 1)
        if self.metrics.last_beat is not None:
            yield GaugeMetricFamily("batchtui_heartbeat_age_seconds",
                                    "Seconds since this server last wrote its heartbeat",
                                    value=time.monotonic() - self.metrics.last_beat)
        counts = _task_counts()
        if counts is not None:
            yield GaugeMetricFamily("batchtui_tasks_ready", "Tasks Ready in the database",
                                    value=counts.get(int(BatchStatus.READY), 0))
            yield GaugeMetricFamily("batchtui_tasks_running", "Tasks Executing or Canceling in the database",
                                    value=counts.get(int(BatchStatus.EXECUTING), 0)
                                    + counts.get(int(BatchStatus.CANCELLING), 0))


def _task_counts() -> dict[int, int] | None:
    """Tasks by status (one statement on this thread's connection), or None while the database is away."""
    try:
        with m.database.connection_context():
            return {int(s): int(n) for s, n in m.database.execute_sql(_COUNT).fetchall()}
    except Exception:  # noqa: BLE001  (a scrape during an outage: those two gauges are left out, the rest served)
        return None


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
