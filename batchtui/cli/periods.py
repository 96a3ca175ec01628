"""`batchtui period list|add|delete`: Active periods for batch jobs."""

from __future__ import annotations

import argparse

from ..jobfile import q
from ..periods import add_period, delete_period, period_rows
from .common import EXIT_OK, connect, emit, emit_json, note, open_database, table


def cmd_period_list(args: argparse.Namespace) -> int:
    open_database(args)
    rows = period_rows()
    if args.json:
        emit_json(rows)
        return EXIT_OK
    if not rows:
        note("no active periods (add one with `batchtui period add NAME --from HH:MM --to HH:MM`)")
        return EXIT_OK
    for line in table(["PERIOD", "FROM", "TO", "DAYS", "START DATE", "END DATE", "JOBS", "DESCRIPTION"],
                      [[r["name"], r["from"], r["to"], ",".join(r["days"]) or "every day", r["start_date"] or "-",
                        r["end_date"] or "-", r["jobs"], r["description"]] for r in rows]):
        emit(line)
    return EXIT_OK


def cmd_period_add(args: argparse.Namespace) -> int:
    actor = connect(args)
    period = add_period(args.name, actor=actor, start=args.start, end=args.end, days=args.days,
                        start_date=args.start_date, end_date=args.end_date, description=args.description or "")
    row = next(r for r in period_rows() if r["name"] == period.name)
    if args.json:
        emit_json(row)
    else:
        emit(f"added active period {q(period.name)}: {period.text}")
    return EXIT_OK


def cmd_period_delete(args: argparse.Namespace) -> int:
    actor = connect(args)
    delete_period(args.name, actor=actor)
    if args.json:
        emit_json({"name": args.name, "deleted": True})
    else:
        emit(f"deleted active period {q(args.name)}")
    return EXIT_OK
