"""`batchtui alerts`: the acting user's alerts."""

from __future__ import annotations

import argparse

from .. import alerts
from ..timeutil import iso
from .common import EXIT_OK, connect, emit, emit_json, note, table


def cmd_alerts(args: argparse.Namespace) -> int:
    actor = connect(args)
    listed = alerts.list_alerts(actor, unread_only=not args.all)
    if args.read and listed:
        alerts.mark_read(actor, [a.id for a in listed])
    rows = [{"id": a.id, "job_id": a.job_id, "event": a.event, "message": a.message,
             "created": iso(a.created, a.time_zone), "read": a.read or args.read, "email": a.email,
             "notify": a.notify}
            for a in listed]
    if args.json:
        emit_json(rows)
        return EXIT_OK
    if not rows:
        note("no alerts" if args.all else "no unread alerts")
        return EXIT_OK
    for line in table(["ID", "CREATED", "JOB", "EVENT", "READ", "E-MAIL", "NOTICE", "MESSAGE"],
                      [[r["id"], r["created"], r["job_id"] if r["job_id"] is not None else "-", r["event"],
                        "yes" if r["read"] else "no", r["email"] or "-", r["notify"] or "-", r["message"]]
                       for r in rows]):
        emit(line)
    return EXIT_OK
