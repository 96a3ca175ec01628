"""The console, the demo data, history clean-up, batch classes and recurrence previews."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from .. import history, jobfile, jobs, recurrence
from ..errors import UserError
from ..timeutil import machine_zone, utcnow
from .common import EXIT_FAILURE, EXIT_OK, PROG, connect, emit, emit_json, note, open_database, read_input, visible


def cmd_console(args: argparse.Namespace) -> int:
    from ..logs import to_file

    try:
        from ..ui.app import run_console
    except ImportError as exc:
        sys.stderr.write(f"{PROG}: error: the console cannot start: {exc}\n")
        return EXIT_FAILURE
    # What the embedded batch server logs goes to a file, never over the console's screen.
    with to_file(console_log_path()):
        return int(run_console(args.db, demo=args.demo, server=not args.no_server, guide=args.guide) or 0)


def console_log_path():
    """Where the console's embedded batch server logs (warnings and errors): console.log in the user log folder."""
    from pathlib import Path

    import platformdirs

    return Path(platformdirs.user_log_dir("batchtui")) / "console.log"


def cmd_demo(args: argparse.Namespace) -> int:
    open_database(args)
    from ..db import redact, resolve_url
    from ..demo import describe_result, load_demo

    emit(f"{describe_result(load_demo(reset=args.reset))} ({redact(resolve_url(args.db))})")
    return EXIT_OK


def cmd_cleanup(args: argparse.Namespace) -> int:
    actor = connect(args)
    count = history.cleanup_history(older_than_days=args.older_than, statuses=args.status or None,
                                 company=args.company, user=args.user, actor=actor)
    if args.json:
        emit_json({"deleted": count})
    else:
        emit(f"deleted {count} run{'s' if count != 1 else ''}")
    return EXIT_OK


def cmd_classes(args: argparse.Namespace) -> int:
    from .. import classes

    rows = [classes.describe_class(c) for c in classes.list_classes()]
    if args.json:
        emit_json(rows)
        return EXIT_OK
    for i, c in enumerate(rows):
        if i:
            emit()
        emit(f"{visible(c['name'])}  {visible(c['description'])}".rstrip())
        if not c["params"]:
            emit("    (no parameters)")
        for p in c["params"]:
            detail = p["type"] + (", required" if p["required"] else f", default {json.dumps(p['default'])}")
            emit(f"    {visible(p['name'])} ({detail})" + (f": {visible(p['help'])}" if p["help"] else ""))
    return EXIT_OK


def cmd_recurrence_preview(args: argparse.Namespace) -> int:
    raw = read_input(args.file)
    source = "stdin" if args.file == "-" else args.file
    spec = jobfile.load_text(raw, source=f"recurrence file {source}", jobs=False)
    if not isinstance(spec, dict):
        raise UserError(f"recurrence file {source}: expected a recurrence object, got {jobfile.kind(spec)}")
    spec = {k: v for k, v in spec.items() if k != "text"}
    tz = spec.get("time_zone")
    tz = machine_zone() if tz is None else jobfile.check_time_zone(tz, field="time_zone")
    if spec.get("calendar") not in (None, ""):
        open_database(args)  # the calendar's closed days are in the database
    norm, text, _first = jobfile.normalize_recurrence(spec, utcnow(), tz)
    after = None
    if args.after is not None:
        after = jobfile.check_time(args.after, tz, field="--after")
    found = recurrence.occurrences(norm, tz, after=after, count=args.count,
                                   closed=jobfile.closed_days_of(norm))
    times = [_iso_occurrence(at, tz) for at in found]
    warn = recurrence.warning(norm)
    if warn:
        note(f"{PROG}: warning: {warn}")
    if args.json:
        emit_json({"text": text, "occurrences": times})
    else:
        emit(text)
        for t in times:
            emit(f"  {t}")
    return EXIT_OK


def _iso_occurrence(at: datetime, tz: str) -> str | None:
    return jobs.iso_scheduled(at.astimezone(UTC).replace(tzinfo=None), tz)
