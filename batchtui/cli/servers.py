"""`batchtui server` (a headless batch server) and `batchtui servers` (what they are doing)."""

from __future__ import annotations

import argparse

from .. import servers
from ..timeutil import iso, machine_zone
from .common import EXIT_OK, emit, emit_json, note, open_database, table


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
        emit_json([{"name": s.name, "host": s.host, "pid": s.pid, "threads": s.threads, "groups": list(s.groups),
                    "started": iso(s.started, tz), "heartbeat": iso(s.heartbeat, tz), "stopped": iso(s.stopped, tz),
                    "alive": s.alive, "running": s.running}
                   for s in listed])
        return EXIT_OK
    if not listed:
        note("no batch servers have run on this database")
        return EXIT_OK
    for line in table(["NAME", "THREADS", "GROUPS", "LAST HEARTBEAT", "ALIVE", "RUNNING"],
                      [[s.name, s.threads, ", ".join(g or '""' for g in s.groups), iso(s.heartbeat, tz) or "-",
                        "yes" if s.alive else "no", s.running] for s in listed]):
        emit(line)
    return EXIT_OK
