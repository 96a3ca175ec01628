"""`batchtui group list|add|delete`: batch groups and the servers that serve them (add and delete:
batch job managers only)."""

from __future__ import annotations

import argparse

from ..groups import delete_group, group_rows, save_group
from ..jobfile import q
from .common import EXIT_OK, connect, emit, emit_json, open_database, table


def cmd_group_list(args: argparse.Namespace) -> int:
    open_database(args)
    rows = group_rows()
    if args.json:
        emit_json(rows)
        return EXIT_OK
    for line in table(["GROUP", "DESCRIPTION", "SERVERS"],
                      [[r["name"] or '""', r["description"],
                        ", ".join(r["servers"]) or ("(every server)" if r["name"] == "" else "(none: never runs)")]
                       for r in rows]):
        emit(line)
    return EXIT_OK


def cmd_group_add(args: argparse.Namespace) -> int:
    actor = connect(args)
    created = save_group(args.name, actor=actor, description=args.description, servers=args.servers)
    row = next(r for r in group_rows() if r["name"] == args.name)
    if args.json:
        emit_json(row)
    else:
        emit(f"{'added' if created else 'updated'} batch group {q(args.name)}"
             + (f" (servers: {', '.join(row['servers'])})" if row["servers"] else " (no servers)"))
    return EXIT_OK


def cmd_group_delete(args: argparse.Namespace) -> int:
    delete_group(args.name, actor=connect(args))
    if args.json:
        emit_json({"name": args.name, "deleted": True})
    else:
        emit(f"deleted batch group {q(args.name)}")
    return EXIT_OK
