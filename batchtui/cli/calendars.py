"""`batchtui calendar list|add|delete|show`: calendars of closed days."""

from __future__ import annotations

import argparse

from ..calendars import add_calendar, calendar_rows, closed_dates, delete_calendar
from ..jobfile import q
from .common import EXIT_OK, connect, emit, emit_json, note, open_database, table


def _what(row: dict) -> str:
    parts = []
    if row["weekends"]:
        parts.append("weekends")
    if row["country"]:
        parts.append(f"public holidays of {row['country']}" + (f"-{row['subdiv']}" if row["subdiv"] else ""))
    if row["dates"]:
        parts.append(f"{len(row['dates'])} date{'s' if len(row['dates']) != 1 else ''}")
    return ", ".join(parts) or "nothing closed"


def cmd_calendar_list(args: argparse.Namespace) -> int:
    open_database(args)
    rows = calendar_rows()
    if args.json:
        emit_json(rows)
        return EXIT_OK
    if not rows:
        note("no calendars (add one with `batchtui calendar add NAME --weekends --country US`)")
        return EXIT_OK
    for line in table(["CALENDAR", "CLOSED", "JOBS", "DESCRIPTION"],
                      [[r["name"], _what(r), ",".join(str(j) for j in r["jobs"]) or "-", r["description"]]
                       for r in rows]):
        emit(line)
    return EXIT_OK


def cmd_calendar_add(args: argparse.Namespace) -> int:
    actor = connect(args)
    row = add_calendar(args.name, actor=actor, dates=args.dates, weekends=args.weekends, country=args.country,
                       subdiv=args.subdiv, description=args.description or "")
    if args.json:
        emit_json(row)
    else:
        emit(f"added calendar {q(row['name'])}: closed on {_what(row)}")
    return EXIT_OK


def cmd_calendar_delete(args: argparse.Namespace) -> int:
    actor = connect(args)
    delete_calendar(args.name, actor=actor)
    if args.json:
        emit_json({"name": args.name, "deleted": True})
    else:
        emit(f"deleted calendar {q(args.name)}")
    return EXIT_OK


def cmd_calendar_show(args: argparse.Namespace) -> int:
    open_database(args)
    dates = closed_dates(args.name, args.start, args.end)
    if args.json:
        emit_json(dates)
        return EXIT_OK
    if not dates:
        note(f"calendar {q(args.name)} has no closed day from {args.start} to {args.end}")
    for d in dates:
        emit(d)
    return EXIT_OK
