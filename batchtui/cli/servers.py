"""`batchtui server` (a headless batch server) and `batchtui servers` (what they are doing)."""

from __future__ import annotations

import argparse

from .. import servers
from ..timeutil import iso, machine_zone
from .common import EXIT_OK, connect, emit, emit_json, note, open_database, table


def cmd_server(args: argparse.Namespace) -> int:
    open_database(args)
    from ..engine import serve

    return int(serve(name=args.name, threads=args.threads, groups=args.groups, poll=args.poll,
                     retry_base=args.retry_base, exit_when_idle=args.exit_when_idle,
                     heartbeat=args.heartbeat, dead_after=args.dead_after) or 0)


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
