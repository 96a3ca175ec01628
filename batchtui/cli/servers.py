"""`batchtui server` (a headless batch server) and `batchtui servers` (what they are doing)."""

from __future__ import annotations

import argparse

from .. import servers
from ..timeutil import iso, machine_zone
from .common import EXIT_OK, connect, emit, emit_json, note, open_database, table

#: Seconds running tasks get to end at SIGTERM (engine/service.py; here too so that --help needs no engine).
STOP_TIMEOUT = 30.0


def cmd_server(args: argparse.Namespace) -> int:
    from .. import logs

    # The log first (so that what follows is logged as asked), then the metrics port (a port in use
    # is the operator's error, found before the server registers), then the database.
    fixed = args.log_level
    if fixed is None:
        from ..engine.service import config_log_level

        level = config_log_level() or "info"
    else:
        level = fixed
    with logs.configured(level, args.log_format, buffered=True):
        metrics = _metrics(args.metrics_port, args.metrics_host) if args.metrics_port is not None else None
        try:
            open_database(args)
            from ..engine.service import serve

            return int(serve(name=args.name, threads=args.threads, groups=args.groups, poll=args.poll,
                             retry_base=args.retry_base, exit_when_idle=args.exit_when_idle,
                             heartbeat=args.heartbeat, dead_after=args.dead_after, stop_timeout=args.stop_timeout,
                             metrics=metrics, fixed_level=fixed, db_url=args.db) or 0)
        finally:
            if metrics is not None:
                metrics.close()


def _metrics(port: int, host: str):
    """The server's metrics, served on host:port; a missing extra or a port in use is a UserError (exit 2)."""
    import logging

    from ..errors import UserError

    try:
        from ..engine.metrics import ServerMetrics
    except ImportError:
        raise UserError("--metrics-port needs prometheus-client: pip install 'batchtui[metrics]'") from None
    metrics = ServerMetrics()
    try:
        metrics.serve(port, host)
    except OSError as exc:
        raise UserError(f"--metrics-port {port}: cannot serve metrics on {host}:{port}: "
                        f"{exc.strerror or exc}") from None
    logging.getLogger("batchtui.engine").info(
        "metrics served at http://%s:%d/metrics", host if ":" not in host else f"[{host}]", metrics.port,
        extra={"event": "metrics_served"})
    return metrics


def cmd_servers(args: argparse.Namespace) -> int:
    open_database(args)
    tz = machine_zone()
    listed = servers.server_rows()
    if args.json:
        emit_json([server_json(s, tz) for s in listed])
        return EXIT_OK
    if not listed:
        note("no batch servers have run on this database")
        return EXIT_OK
    # The contract's columns first, then the Server configuration form's.
    for line in table(["NAME", "THREADS", "GROUPS", "LAST HEARTBEAT", "ALIVE", "RUNNING", "NOW", "RESERVED",
                       "PAUSED", "SCHEDULE"],
                      [[s.name, s.threads, ", ".join(g or '""' for g in s.groups), iso(s.heartbeat, tz) or "-",
                        "yes" if s.alive else "no", s.running, s.threads_now if s.alive else "-", s.reserved,
                        "yes" if s.paused else "no", ",".join(s.schedule) or "-"] for s in listed]):
        emit(line)
    return EXIT_OK


def server_json(s: servers.ServerInfo, tz: str) -> dict:
    return {"name": s.name, "host": s.host, "pid": s.pid, "threads": s.threads, "groups": list(s.groups),
            "started": iso(s.started, tz), "heartbeat": iso(s.heartbeat, tz), "stopped": iso(s.stopped, tz),
            "alive": s.alive, "running": s.running, "paused": s.paused, "reserved": s.reserved,
            "schedule": ",".join(s.schedule), "threads_now": s.threads_now}


def cmd_servers_set(args: argparse.Namespace) -> int:
    actor = connect(args)
    info = servers.set_server(args.name, actor=actor, threads=args.threads, reserved=args.reserved,
                              schedule=args.schedule)
    return _show(args, info, "configured")


def cmd_servers_pause(args: argparse.Namespace) -> int:
    actor = connect(args)
    return _show(args, servers.pause_server(args.name, actor=actor, paused=True), "paused")


def cmd_servers_resume(args: argparse.Namespace) -> int:
    actor = connect(args)
    return _show(args, servers.pause_server(args.name, actor=actor, paused=False), "resumed")


def _show(args: argparse.Namespace, s: servers.ServerInfo, done: str) -> int:
    if args.json:
        emit_json(server_json(s, machine_zone()))
    else:
        emit(f"{done} batch server {s.name}: {s.configured_threads or s.threads} threads, {s.reserved} reserved, "
             f"schedule {','.join(s.schedule) or 'none'}{', paused' if s.paused else ''} "
             "(a running server applies it within its poll interval)")
    return EXIT_OK
