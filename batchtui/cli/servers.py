"""`batchtui server` (a headless batch server) and `batchtui servers` (what they are doing)."""

from __future__ import annotations

import argparse
from datetime import timedelta

from peewee import fn

from .. import models as m
from .. import status as st
from ..timeutil import iso, machine_zone, utcnow
from ..vocabulary import BatchStatus
from .common import EXIT_OK, emit, emit_json, note, open_database, table

ALIVE_WITHIN = 30.0  # a server whose heartbeat is older than this is not alive


def cmd_server(args: argparse.Namespace) -> int:
    open_database(args)
    from ..engine import serve

    return int(serve(name=args.name, threads=args.threads, groups=args.groups, poll=args.poll,
                     retry_base=args.retry_base, exit_when_idle=args.exit_when_idle,
                     heartbeat=args.heartbeat, dead_after=args.dead_after) or 0)


def cmd_servers(args: argparse.Namespace) -> int:
    open_database(args)
    now = utcnow()
    tz = machine_zone()
    running = dict(m.BatchTask.select(m.BatchTask.server, fn.COUNT(m.BatchTask.id))
                   .where(m.BatchTask.status == BatchStatus.EXECUTING)
                   .group_by(m.BatchTask.server).tuples())
    rows = []
    for s in m.BatchServer.select().order_by(m.BatchServer.name):
        alive = (s.stopped is None and s.heartbeat is not None
                 and s.heartbeat >= now - timedelta(seconds=ALIVE_WITHIN))
        rows.append({
            "name": s.name, "host": s.host, "pid": s.pid, "threads": s.threads,
            "groups": st.served_groups(s.name), "started": iso(s.started, tz),
            "heartbeat": iso(s.heartbeat, tz), "stopped": iso(s.stopped, tz), "alive": bool(alive),
            "running": int(running.get(s.name, 0)),
        })
    if args.json:
        emit_json(rows)
        return EXIT_OK
    if not rows:
        note("no batch servers have run on this database")
        return EXIT_OK
    for line in table(["NAME", "THREADS", "GROUPS", "LAST HEARTBEAT", "ALIVE", "RUNNING"],
                      [[r["name"], r["threads"], ", ".join(g or '""' for g in r["groups"]),
                        r["heartbeat"] or "-", "yes" if r["alive"] else "no", r["running"]] for r in rows]):
        emit(line)
    return EXIT_OK
