"""`batchtui alerts`: the acting user's alerts."""

from __future__ import annotations

import argparse

from .. import models as m
from ..db import write
from ..timeutil import iso, machine_zone
from .common import EXIT_OK, connect, emit, emit_json, note, table


def cmd_alerts(args: argparse.Namespace) -> int:
    actor = connect(args)
    query = m.Alert.select().where(m.Alert.user == actor.user).order_by(m.Alert.id)
    if not args.all:
        query = query.where(m.Alert.read == False)  # noqa: E712 - peewee expression
    alerts = list(query)
    if args.read and alerts:
        with write():
            m.Alert.update(read=True).where(m.Alert.id << [a.id for a in alerts]).execute()
        for a in alerts:
            a.read = True
    zones = {j.id: j.time_zone for j in m.BatchJob.select(m.BatchJob.id, m.BatchJob.time_zone)
             .where(m.BatchJob.id << list({a.job_id for a in alerts if a.job_id is not None}))}
    default_zone = machine_zone()
    rows = [{"id": a.id, "job_id": a.job_id, "event": a.event, "message": a.message,
             "created": iso(a.created, zones.get(a.job_id, default_zone)), "read": bool(a.read)}
            for a in alerts]
    if args.json:
        emit_json(rows)
        return EXIT_OK
    if not rows:
        note("no alerts" if args.all else "no unread alerts")
        return EXIT_OK
    for line in table(["ID", "CREATED", "JOB", "EVENT", "READ", "MESSAGE"],
                      [[r["id"], r["created"], r["job_id"] if r["job_id"] is not None else "-", r["event"],
                        "yes" if r["read"] else "no", r["message"]] for r in rows]):
        emit(line)
    return EXIT_OK
