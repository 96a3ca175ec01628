"""`batchtui server` as a service: its log, its signals, its metrics.

- SIGTERM (systemd's stop) and SIGINT: a clean stop. The server claims
  nothing new; running tasks get ``stop_timeout`` seconds to end; those still
  running then are handed back (BatchServerEngine.stop: Ready again, no
  retry used up, so another server or the next start runs them), and the
  process exits 0.
- SIGHUP: the config file is read again. ``[log] level`` applies at once
  (unless --log-level was given: the command line wins); the mailer reads its
  [smtp] settings from the file at each send, so a change there applies to
  the next alert e-mail; the Server configuration form's settings are read
  from the database every poll interval anyway.

The signal handlers only set flags: what a signal asks for is done, and
logged, by the main thread's loop below.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import TYPE_CHECKING

from .. import logs
from ..errors import UserError
from ..servers import ALIVE_WITHIN

if TYPE_CHECKING:
    from .metrics import ServerMetrics
    from .server import BatchServerEngine

log = logging.getLogger("batchtui.engine")

STOP_TIMEOUT = 30.0  # seconds running tasks get to end at a stop (--stop-timeout)


def config_log_level() -> str | None:
    """``[log] level`` of the config file (debug, info, warning, error), or None when it sets none.

    A broken file or a wrong level is a UserError naming the file.
    """
    import tomllib

    from ..config import config_path

    path = config_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path}: {exc}") from None
    table = data.get("log", {})
    if not isinstance(table, dict):
        raise UserError(f"config file {path}: [log] must be a table")
    level = table.get("level")
    if level is None:
        return None
    if level not in logs.LEVELS:
        raise UserError(f"config file {path}: [log] level must be one of {', '.join(logs.LEVELS)}, not {level!r}")
    return str(level)


class _Signals:
    """What the signals asked for, set by the handlers, done by the main thread."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.stop_by = ""
        self.reload = threading.Event()
        self.wake = threading.Event()

    def on_stop(self, signum, frame) -> None:
        self.stop_by = self.stop_by or signal.Signals(signum).name
        self.stop.set()
        self.wake.set()

    def on_hup(self, signum, frame) -> None:
        self.reload.set()
        self.wake.set()


def _thread_died(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    log.critical("thread %s died: %s: %s", name, args.exc_type.__name__, args.exc_value,
                 exc_info=args.exc_value, extra={"event": "thread_died"})


def reload_config(engine: BatchServerEngine, fixed_level: str | None) -> None:
    """SIGHUP: read the config file again and apply what can change while the server runs."""
    from ..config import config_path, load_config

    path = config_path()
    try:
        level = config_log_level()
        cfg = load_config()
    except UserError as exc:
        log.error("SIGHUP: config not re-read, the settings in use stay: %s", exc,
                  extra={"event": "config_error", "server": engine.name})
        return
    if fixed_level is None:
        logs.set_level(level or "info")
        said = f"log level {logs.level_name()}"
    else:
        said = f"log level stays {fixed_level} (--log-level)"
    smtp = (f"SMTP {cfg.smtp.host}:{cfg.smtp.port} for the next alert e-mail" if cfg.smtp.configured
            else "no SMTP server (alert e-mail off)")
    log.info("SIGHUP: config file %s re-read: %s; %s; the Server configuration form is read from the database "
             "every poll interval", path, said, smtp, extra={"event": "config_reloaded", "server": engine.name})


def serve(name: str | None = None, threads: int = 8, groups: list[str] | None = None, poll: float = 1.0,
          retry_base: float = 5.0, exit_when_idle: bool = False, heartbeat: float = 5.0,
          dead_after: float = ALIVE_WITHIN, stop_timeout: float = STOP_TIMEOUT,
          metrics: ServerMetrics | None = None, fixed_level: str | None = None, db_url: str | None = None) -> int:
    """``batchtui server``: run a batch server in the foreground until SIGTERM/SIGINT (see the module)."""
    from contextlib import nullcontext

    # Called from Python rather than the command line: still one line per event, for that time.
    with logs.configured() if not logging.getLogger(logs.LOGGER).handlers else nullcontext():
        return _serve(name, threads, groups, poll, retry_base, exit_when_idle, heartbeat, dead_after, stop_timeout,
                      metrics, fixed_level, db_url)


def _serve(name: str | None, threads: int, groups: list[str] | None, poll: float, retry_base: float,
           exit_when_idle: bool, heartbeat: float, dead_after: float, stop_timeout: float,
           metrics: ServerMetrics | None, fixed_level: str | None, db_url: str | None) -> int:
    from ..db import redact, resolve_url
    from .server import BatchServerEngine

    engine = BatchServerEngine(name=name, threads=threads, poll=poll, retry_base=retry_base, groups=groups,
                               exit_when_idle=exit_when_idle, heartbeat=heartbeat, dead_after=dead_after)
    if metrics is not None:
        engine.metrics = metrics
        metrics.engine = engine
    sig = _Signals()
    handlers = {signal.SIGINT: sig.on_stop, signal.SIGTERM: sig.on_stop, signal.SIGHUP: sig.on_hup}
    old = {s: signal.signal(s, h) for s, h in handlers.items()}
    old_hook = threading.excepthook
    threading.excepthook = _thread_died  # a thread's traceback as one log line too, not raw on stderr
    try:
        engine.on_registered = lambda: log.info(
            "batch server %s started: pid %d, %d threads, groups %s, database %s", engine.name, os.getpid(),
            engine.threads, ", ".join(repr(g) for g in engine._served), redact(resolve_url(db_url)),
            extra={"event": "server_started", "server": engine.name})
        engine.start()
        rule = engine.run_by_rule()
        if rule is not None:  # a root server on a SQLite file it does not own alone (runas.py)
            log.warning("batch server %s: %s", engine.name, rule.summary,
                        extra={"event": "run_by_rule", "server": engine.name})
        try:
            while not sig.stop.is_set() and not engine.wait(0):
                sig.wake.wait(0.2)
                sig.wake.clear()
                if sig.reload.is_set():
                    sig.reload.clear()
                    reload_config(engine, fixed_level)
        finally:
            if sig.stop.is_set():
                log.info("batch server %s: %s received: stopping (running tasks get %g s to end, then are "
                         "handed back)", engine.name, sig.stop_by, stop_timeout,
                         extra={"event": "signal", "server": engine.name})
            engine.stop(grace=stop_timeout)
    finally:
        threading.excepthook = old_hook
        for s, h in old.items():
            signal.signal(s, h)
        if metrics is not None:
            metrics.close()
    log.info("batch server %s stopped", engine.name, extra={"event": "server_stopped", "server": engine.name})
    return 0
