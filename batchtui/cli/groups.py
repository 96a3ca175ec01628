"""`batchtui group list|add|set|delete`: batch groups, the servers that serve them and their limits
(add, set and delete: batch job managers only)."""

from __future__ import annotations

import argparse

from ..groups import delete_group, group_rows, limit_text, save_group
from ..jobfile import q
from .common import EXIT_OK, connect, emit, emit_json, open_database, table


def cmd_group_list(args: argparse.Namespace) -> int:
    open_database(args)
    rows = group_rows()
    if args.json:
        emit_json(rows)
        return EXIT_OK
    for line in table(["GROUP", "DESCRIPTION", "LIMIT", "RUNNING", "SERVERS"],
                      [[r["name"] or '""', r["description"], limit_text(r["max_concurrent"]), r["running"],
                        ", ".join(r["servers"]) or ("(every server)" if r["name"] == "" else "(none: never runs)")]
                       for r in rows]):
        emit(line)
    return EXIT_OK


def cmd_group_add(args: argparse.Namespace) -> int:
    return _save(args, must_exist=False)


def cmd_group_set(args: argparse.Namespace) -> int:
    return _save(args, must_exist=True)


def _save(args: argparse.Namespace, must_exist: bool) -> int:
    actor = connect(args)
    created = save_group(args.name, description=args.description, servers=args.servers,
                         max_concurrent=args.max_concurrent, actor=actor, must_exist=must_exist)
    row = next(r for r in group_rows() if r["name"] == args.name)
    if args.json:
        emit_json(row)
    else:
        emit(f"{'added' if created else 'updated'} batch group {q(args.name)}"
             + (f" (servers: {', '.join(row['servers'])})" if row["servers"] else " (no servers)")
             + f", limit: {limit_text(row['max_concurrent'])}")
    return EXIT_OK


def cmd_group_delete(args: argparse.Namespace) -> int:
    delete_group(args.name, actor=connect(args))
    if args.json:
        emit_json({"name": args.name, "deleted": True})
    else:
        emit(f"deleted batch group {q(args.name)}")
    return EXIT_OK
