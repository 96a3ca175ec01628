"""The command line: `batchtui` and its sub-commands (see the command-line contract).

Exit status: 0 success; 2 bad input (usage, validation, unknown id, refused
transition, not allowed), with one line ``batchtui: error: ...`` on stderr;
1 any other failure. `job wait` adds 3 (the run ended in error), 4
(canceled) and 5 (timed out). ``--json`` prints one JSON document on stdout.

The console and the batch server are imported only when asked for, so a
script that lists jobs never loads Textual.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

try:
    from . import __version__
except ImportError:  # an editable install made while the package had no __init__.py
    from importlib.metadata import version as _version

    __version__ = _version("batchtui")

from .text import visible

PROG = "batchtui"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_RUN_ERROR = 3
EXIT_RUN_CANCELED = 4
EXIT_TIMEOUT = 5

WAIT_POLL = 0.05  # seconds between looks at the database in `job wait`
ALIVE_WITHIN = 30.0  # a server whose heartbeat is older than this is not alive


# -- argument parsing -------------------------------------------------------------


class UsageError(Exception):
    """argparse found the command line wrong."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one `batchtui: error:` line and exit 2."""

    def error(self, message: str):  # noqa: D401 - argparse's name
        raise UsageError(message)


def _db_option(parser: argparse.ArgumentParser, top: bool = False) -> None:
    # On the top-level parser the default is None; on sub-commands it is
    # SUPPRESS, so `batchtui --db X job list` and `batchtui job list --db X`
    # both work and the later one does not erase the earlier one.
    parser.add_argument(
        "--db", metavar="URL", default=None if top else argparse.SUPPRESS,
        help="database URL: sqlite:///ABSOLUTE/PATH.db or postgresql://USER@HOST/DBNAME "
             "(default: $BATCHTUI_DB, else a file in the user data folder)",
    )


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, allow_abbrev=False,
        description="Batch jobs of Dynamics 365 F&O / AX in a terminal: console, batch server and scripting.",
    )
    _db_option(parser, top=True)
    parser.add_argument("--demo", action="store_true",
                        help="open the console on the demo database (loads the USMF sample data on first use)")
    parser.add_argument("--no-server", action="store_true",
                        help="open the console without its embedded batch server")
    parser.add_argument("--guide", action="store_true", help="open the console with the task guide")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(parent, name, help_text, func, **kw):
        p = parent.add_parser(name, help=help_text, description=help_text, allow_abbrev=False, **kw)
        _db_option(p)
        p.set_defaults(func=func)
        return p

    p = command(sub, "demo", "load the USMF sample data into the selected database", cmd_demo)
    p.add_argument("--reset", action="store_true", help="start over: delete every job first")

    p = command(sub, "server", "run a headless batch server", cmd_server)
    p.add_argument("--name", help="server name (default: the host name)")
    p.add_argument("--threads", type=_positive_int, default=8, metavar="N",
                   help="batch threads (default 8)")
    p.add_argument("--groups", type=_names, default=None, metavar="G,...",
                   help="batch groups this server serves (besides those assigned to it)")
    p.add_argument("--poll", type=_positive_float, default=1.0, metavar="SECONDS",
                   help="how often to look for work created elsewhere (default 1)")
    p.add_argument("--retry-base", type=_non_negative_float, default=5.0, metavar="SECONDS",
                   help="first retry delay, doubled for each retry up to 300 s (default 5; 0 retries at once)")
    p.add_argument("--exit-when-idle", action="store_true",
                   help="exit 0 once nothing is executing, ready, due or waiting for a retry")
    p.add_argument("--heartbeat", type=_positive_float, default=5.0, metavar="SECONDS",
                   help="how often the server writes its heartbeat (default 5)")
    p.add_argument("--dead-after", type=_positive_float, default=30.0, metavar="SECONDS",
                   help="a server whose heartbeat is older than this is declared dead and its "
                        "tasks taken back (default 30)")

    job = command(sub, "job", "batch jobs: import, export, list, change status, cancel, copy, delete, wait, "
                              "history", None)
    jobs_sub = job.add_subparsers(dest="job_command", metavar="ACTION", parser_class=_Parser, required=True)

    p = command(jobs_sub, "import", "create the jobs of a job file (- reads stdin)", cmd_job_import)
    p.add_argument("file", metavar="FILE")
    _json_option(p)

    p = command(jobs_sub, "export", "print a job as JSON (job-file shape plus run-time fields)", cmd_job_export)
    p.add_argument("id", type=_job_id, metavar="ID")
    _json_option(p)

    p = command(jobs_sub, "list", "one line per job", cmd_job_list)
    p.add_argument("--status", metavar="S", help="only jobs with this status")
    _json_option(p)

    p = command(jobs_sub, "status", "change status: withhold (stop) or waiting (go)", cmd_job_status)
    p.add_argument("id", type=_job_id, metavar="ID")
    p.add_argument("status", choices=["waiting", "withhold"], metavar="waiting|withhold")
    _json_option(p)

    p = command(jobs_sub, "cancel", "change status to Canceling", cmd_job_cancel)
    p.add_argument("id", type=_job_id, metavar="ID")
    _json_option(p)

    p = command(jobs_sub, "copy", "copy batch job (tasks, conditions, alerts, recurrence); prints the new ID",
                cmd_job_copy)
    p.add_argument("id", type=_job_id, metavar="ID")
    p.add_argument("--description", metavar="D")
    p.add_argument("--start", metavar="TIME", help="scheduled start of the copy (ISO 8601)")
    _json_option(p)

    p = command(jobs_sub, "delete", "delete a job that is not executing", cmd_job_delete)
    p.add_argument("id", type=_job_id, metavar="ID")
    _json_option(p)

    p = command(jobs_sub, "wait", "wait until the job's current (or, if Waiting, next) run is over; "
                                  "exit 0 ended, 3 error, 4 canceled, 5 timeout", cmd_job_wait)
    p.add_argument("id", type=_job_id, metavar="ID")
    p.add_argument("--timeout", type=_non_negative_float, default=None, metavar="SECONDS")
    _json_option(p)

    p = command(jobs_sub, "history", "the job's runs, their tasks, every attempt and its log", cmd_job_history)
    p.add_argument("id", type=_job_id, metavar="ID")
    _json_option(p)

    p = command(sub, "alerts", "your alerts (unread ones unless --all)", cmd_alerts)
    p.add_argument("--all", action="store_true", help="read ones too")
    p.add_argument("--read", action="store_true", help="mark the alerts listed as read")
    _json_option(p)

    p = command(sub, "cleanup", "batch job history clean-up: delete runs that ended more than DAYS ago",
                cmd_cleanup)
    p.add_argument("--older-than", type=_non_negative_float, required=True, metavar="DAYS")
    p.add_argument("--status", type=_names, metavar="S,...", help="only runs that ended so: ended, error, canceled")
    p.add_argument("--company", metavar="C", help="only jobs of this company")
    p.add_argument("--user", metavar="U", help="only jobs created by this user")
    _json_option(p)

    group = command(sub, "group", "batch groups and the servers that serve them", None)
    group_sub = group.add_subparsers(dest="group_command", metavar="ACTION", parser_class=_Parser,
                                     required=True)
    p = command(group_sub, "list", "batch groups, their description and servers", cmd_group_list)
    _json_option(p)
    p = command(group_sub, "add", "add a batch group, or change its description and servers", cmd_group_add)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--description", metavar="D")
    p.add_argument("--servers", type=_names, metavar="S,...", help="the servers that serve it (replaces the list)")
    _json_option(p)
    p = command(group_sub, "delete", "delete a batch group no task uses", cmd_group_delete)
    p.add_argument("name", metavar="NAME")
    _json_option(p)

    p = command(sub, "servers", "batch servers: threads, groups, heartbeat, alive, tasks running", cmd_servers)
    _json_option(p)

    p = command(sub, "classes", "the batch classes tasks can name, with their parameters", cmd_classes)
    _json_option(p)

    rec = command(sub, "recurrence", "recurrence patterns", None)
    rec_sub = rec.add_subparsers(dest="recurrence_command", metavar="ACTION", parser_class=_Parser,
                                 required=True)
    p = command(rec_sub, "preview", "the first N occurrences of a recurrence object (- reads stdin)",
                cmd_recurrence_preview)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--count", type=_non_negative_int, default=10, metavar="N")
    p.add_argument("--after", metavar="TIME", help="occurrences after this time (ISO 8601)")
    _json_option(p)
    return parser


def _whole(minimum: int, name: str | None = None):
    """An argparse type: a whole number of at least minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            what = f"{name} must be" if name else "expected"
            raise argparse.ArgumentTypeError(f"{what} a whole number, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name + ' ' if name else ''}must be {minimum} or more, not {value}")
        return value

    return parse


_job_id = _whole(1, "job ID")
_positive_int = _whole(1)
_non_negative_int = _whole(0)


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, not {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


# -- output helpers ------------------------------------------------------------------


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def emit(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Aligned columns (the last one is not padded)."""
    cells = [[visible(c) if c is not None else "" for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = []
    for row in [list(headers)] + cells:
        parts = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
    return lines


def _note(message: str) -> None:
    """A remark for a person on stderr (e.g. an empty list), not an error."""
    sys.stderr.write(f"{message}\n")


# -- context -------------------------------------------------------------------------


def _open(args) -> None:
    from . import db

    db.open_database(args.db)


def _user() -> str:
    from .config import acting_user

    return acting_user()


def _managers():
    from .config import load_config
    from .identity import managers

    return managers(load_config().managers)


def _read_input(name: str) -> str:
    from .errors import UserError

    if name == "-":
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    else:
        try:
            data = Path(name).read_bytes()
        except FileNotFoundError:
            raise UserError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise UserError(f"{name}: is a folder, not a file") from None
        except OSError as exc:
            raise UserError(f"{name}: cannot read it: {exc.strerror}") from None
    return data


# -- commands ------------------------------------------------------------------------


def cmd_console(args) -> int:
    try:
        from .ui.app import run_console
    except ImportError as exc:
        sys.stderr.write(f"{PROG}: error: the console cannot start: {exc}\n")
        return EXIT_FAILURE
    return int(run_console(args.db, demo=args.demo, server=not args.no_server, guide=args.guide) or 0)


def cmd_demo(args) -> int:
    _open(args)
    from .db import redact, resolve_url
    from .demo import describe_result, load_demo

    emit(f"{describe_result(load_demo(reset=args.reset))} ({redact(resolve_url(args.db))})")
    return EXIT_OK


def cmd_server(args) -> int:
    _open(args)
    from .engine import serve

    return int(serve(name=args.name, threads=args.threads, groups=args.groups, poll=args.poll,
                     retry_base=args.retry_base, exit_when_idle=args.exit_when_idle,
                     heartbeat=args.heartbeat, dead_after=args.dead_after) or 0)


def cmd_job_import(args) -> int:
    from . import jobfile, jobs
    from .jobfile import q

    raw = _read_input(args.file)
    source = "stdin" if args.file == "-" else args.file
    data = jobfile.load_text(raw, source=f"job file {source}")
    _open(args)
    created = jobs.import_jobs(data, user=_user())
    if args.json:
        emit_json({"jobs": created})
    else:
        from . import models as m

        for row in created:
            job = m.BatchJob.get_by_id(row["id"])
            tasks = ", ".join(f"{visible(k)}={v}" for k, v in row["tasks"].items())
            emit(f"created job {row['id']} {visible(q(job.description))}"
                 + (f" (tasks: {tasks})" if tasks else " (no tasks)"))
    return EXIT_OK


def cmd_job_export(args) -> int:
    from . import jobs

    _open(args)
    emit_json(jobs.export_job(args.id))
    return EXIT_OK


def cmd_job_list(args) -> int:
    from . import jobs

    _open(args)
    rows = jobs.list_jobs(status=args.status)
    if args.json:
        emit_json(rows)
        return EXIT_OK
    if not rows:
        _note("no batch jobs" + (f" with status {args.status}" if args.status else ""))
        return EXIT_OK
    for line in table(["ID", "STATUS", "SCHEDULED START", "DESCRIPTION", "COMPANY", "CREATED BY"],
                      [[r["id"], r["status"], r["scheduled_start"], r["description"], r["company"],
                        r["created_by"]] for r in rows]):
        emit(line)
    return EXIT_OK


def _status_result(args, job) -> int:
    from .vocabulary import BatchStatus

    status = BatchStatus(job.status).cli
    if args.json:
        emit_json({"id": job.id, "status": status})
    else:
        emit(f"job {job.id}: {status}")
    return EXIT_OK


def cmd_job_status(args) -> int:
    from . import status as st

    _open(args)
    job = st.set_job_status(args.id, st.BatchStatus.from_cli(args.status), _user(), _managers())
    return _status_result(args, job)


def cmd_job_cancel(args) -> int:
    from . import status as st

    _open(args)
    job = st.cancel_job(args.id, _user(), _managers())
    return _status_result(args, job)


def cmd_job_copy(args) -> int:
    from . import jobs

    _open(args)
    job = jobs.copy_job(args.id, user=_user(), description=args.description, start=args.start)
    if args.json:
        emit_json({"id": job.id})
    else:
        emit(str(job.id))
    return EXIT_OK


def cmd_job_delete(args) -> int:
    from . import status as st

    _open(args)
    st.delete_job(args.id, _user(), _managers())
    if args.json:
        emit_json({"id": args.id, "deleted": True})
    else:
        emit(f"deleted job {args.id}")
    return EXIT_OK


_WAIT_EXIT = {"ended": EXIT_OK, "error": EXIT_RUN_ERROR, "canceled": EXIT_RUN_CANCELED}


def cmd_job_wait(args) -> int:
    from . import models as m
    from . import status as st
    from .errors import NotFound, Refused
    from .vocabulary import BatchStatus

    _open(args)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    job = st.get_job(args.id)
    current = BatchStatus(job.status)
    run_id: int | None = None  # the run we wait for, once known
    after_run_no: int | None = None  # for a Waiting job: the next run after this one
    if current == BatchStatus.HOLD:
        raise Refused(f"job {args.id} is Withhold: it does not run until it is set to Waiting "
                      f"(batchtui job status {args.id} waiting)")
    if current in st.RUNNING_JOB:
        run_id = job.current_run
        if run_id is None:  # pragma: no cover - a running job always has its run
            after_run_no = job.run_count - 1
    elif current == BatchStatus.WAITING:
        after_run_no = job.run_count
    else:  # Ended, Error or Canceled: the last run is over already
        return _wait_done(args, job.id, _last_run_no(job.id), current.cli)

    while True:
        if run_id is None:
            row = (m.JobRun.select(m.JobRun.id).where((m.JobRun.job == args.id)
                                                      & (m.JobRun.run_no > after_run_no))
                   .order_by(m.JobRun.run_no).first())
            if row is not None:
                run_id = row.id
        if run_id is not None:
            run = m.JobRun.get_or_none(m.JobRun.id == run_id)
            if run is not None and run.ended is not None:
                return _wait_done(args, args.id, run.run_no, BatchStatus(run.status).cli)
        job = m.BatchJob.get_or_none(m.BatchJob.id == args.id)
        if job is None:
            raise NotFound(f"job {args.id} was deleted while waiting for it")
        if run_id is None and job.status == BatchStatus.CANCELED:
            # Canceled before its next run started.
            return _wait_done(args, args.id, _last_run_no(args.id), "canceled")
        if deadline is not None and time.monotonic() >= deadline:
            label = BatchStatus(job.status).label
            sys.stderr.write(f"{PROG}: job {args.id}: timed out after {args.timeout:g} s "
                             f"(the job is {label})\n")
            if args.json:
                emit_json({"id": args.id, "run": None, "status": BatchStatus(job.status).cli, "timeout": True})
            return EXIT_TIMEOUT
        time.sleep(WAIT_POLL)


def _last_run_no(job_id: int) -> int | None:
    from . import models as m

    row = m.JobRun.select(m.JobRun.run_no).where(m.JobRun.job == job_id).order_by(m.JobRun.run_no.desc()).first()
    return None if row is None else row.run_no


def _wait_done(args, job_id: int, run_no: int | None, status: str) -> int:
    if args.json:
        emit_json({"id": job_id, "run": run_no, "status": status, "timeout": False})
    else:
        emit(f"job {job_id}" + (f" run {run_no}" if run_no else "") + f": {status}")
    return _WAIT_EXIT.get(status, EXIT_FAILURE)


def cmd_job_history(args) -> int:
    from . import jobs

    _open(args)
    runs = jobs.job_history(args.id)
    if args.json:
        emit_json(runs)
        return EXIT_OK
    if not runs:
        _note(f"job {args.id} has not run yet")
        return EXIT_OK
    for run in runs:
        emit(f"run {run['run']}  {run['status']}  scheduled {run['scheduled']}  started {run['started']}  "
             f"ended {run['ended'] or '-'}  server {visible(run['server']) or '-'}")
        for t in run["tasks"]:
            emit(f"  task {t['id']} {visible(t['key'])}: {t['status']}"
                 + (f"  ({visible(t['description'])})" if t["description"] != t["key"] else ""))
            if not t["attempts"]:
                emit("    (did not start)")
            for a in t["attempts"]:
                emit(f"    attempt {a['attempt']}  {a['status']}  started {a['started']}  "
                     f"ended {a['ended'] or '-'}  server {visible(a['server']) or '-'}")
                for line in visible(a["log"], keep_newlines=True).splitlines():
                    emit(f"      {line}")
    return EXIT_OK


def cmd_alerts(args) -> int:
    from . import models as m
    from .db import write
    from .timeutil import iso, machine_zone

    _open(args)
    user = _user()
    query = m.Alert.select().where(m.Alert.user == user).order_by(m.Alert.id)
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
        _note("no alerts" if args.all else "no unread alerts")
        return EXIT_OK
    for line in table(["ID", "CREATED", "JOB", "EVENT", "READ", "MESSAGE"],
                      [[r["id"], r["created"], r["job_id"] if r["job_id"] is not None else "-", r["event"],
                        "yes" if r["read"] else "no", r["message"]] for r in rows]):
        emit(line)
    return EXIT_OK


def cmd_cleanup(args) -> int:
    from . import jobs

    _open(args)
    count = jobs.cleanup_history(older_than_days=args.older_than, statuses=args.status or None,
                                 company=args.company, user=args.user, acting_user=_user())
    if args.json:
        emit_json({"deleted": count})
    else:
        emit(f"deleted {count} run{'s' if count != 1 else ''}")
    return EXIT_OK


def cmd_group_list(args) -> int:
    from .jobs import group_rows

    _open(args)
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


def cmd_group_add(args) -> int:
    from . import jobfile
    from .jobs import group_rows, save_group

    _open(args)
    created = save_group(args.name, description=args.description, servers=args.servers)
    row = next(r for r in group_rows() if r["name"] == args.name)
    if args.json:
        emit_json(row)
    else:
        emit(f"{'added' if created else 'updated'} batch group {jobfile.q(args.name)}"
             + (f" (servers: {', '.join(row['servers'])})" if row["servers"] else " (no servers)"))
    return EXIT_OK


def cmd_group_delete(args) -> int:
    from . import jobfile
    from .jobs import delete_group

    _open(args)
    delete_group(args.name)
    if args.json:
        emit_json({"name": args.name, "deleted": True})
    else:
        emit(f"deleted batch group {jobfile.q(args.name)}")
    return EXIT_OK


def cmd_servers(args) -> int:
    from peewee import fn

    from . import models as m
    from . import status as st
    from .vocabulary import BatchStatus
    from .timeutil import iso, machine_zone, utcnow

    _open(args)
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
        _note("no batch servers have run on this database")
        return EXIT_OK
    for line in table(["NAME", "THREADS", "GROUPS", "LAST HEARTBEAT", "ALIVE", "RUNNING"],
                      [[r["name"], r["threads"], ", ".join(g or '""' for g in r["groups"]),
                        r["heartbeat"] or "-", "yes" if r["alive"] else "no", r["running"]] for r in rows]):
        emit(line)
    return EXIT_OK


def cmd_classes(args) -> int:
    from . import classes

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


def cmd_recurrence_preview(args) -> int:
    from . import jobfile, recurrence
    from .errors import UserError
    from .timeutil import machine_zone, utcnow

    raw = _read_input(args.file)
    source = "stdin" if args.file == "-" else args.file
    spec = jobfile.load_text(raw, source=f"recurrence file {source}")
    if not isinstance(spec, dict):
        raise UserError(f"recurrence file {source}: expected a recurrence object, got {jobfile.kind(spec)}")
    spec = {k: v for k, v in spec.items() if k != "text"}
    tz = spec.get("time_zone")
    tz = machine_zone() if tz is None else jobfile.check_time_zone(tz, field="time_zone")
    norm, text, _first = jobfile.normalize_recurrence(spec, utcnow(), tz)
    after = None
    if args.after is not None:
        after = jobfile.check_time(args.after, tz, field="--after")
    found = recurrence.occurrences(norm, tz, after=after, count=args.count)
    times = [_iso_occurrence(at, tz) for at in found]
    warn = recurrence.warning(norm)
    if warn:
        _note(f"{PROG}: warning: {warn}")
    if args.json:
        emit_json({"text": text, "occurrences": times})
    else:
        emit(text)
        for t in times:
            emit(f"  {t}")
    return EXIT_OK


def _iso_occurrence(at, tz: str) -> str:
    from datetime import timezone

    from .jobs import iso_scheduled

    return iso_scheduled(at.astimezone(timezone.utc).replace(tzinfo=None), tz)


# -- main ------------------------------------------------------------------------------


def _error(message: str) -> None:
    line = " ".join(str(message).split()) or "failed"
    sys.stderr.write(f"{PROG}: error: {line}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        _error(exc)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)

    func = getattr(args, "func", None)
    if args.command is None:
        func = cmd_console
    try:
        return run_command(func, args)
    finally:
        _close_database()


def run_command(func, args) -> int:
    from peewee import PeeweeException

    from .db import DatabaseUnavailable, first_line
    from .errors import UserError

    try:
        return func(args)
    except UserError as exc:
        _error(exc)
        return EXIT_USAGE
    except DatabaseUnavailable as exc:
        _error(exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:
        # `batchtui job list | head`: the reader went away; that is not our failure.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_FAILURE
    except PeeweeException as exc:
        from .identity import refused_by_database

        refused = refused_by_database(exc)
        if refused is not None:  # PostgreSQL's guard triggers: the user's doing, as exit 2
            _error(refused)
            return EXIT_USAGE
        _error(f"database error: {first_line(exc)}")
        return EXIT_FAILURE
    except Exception as exc:  # a bug: say so in one line, the details with BATCHTUI_DEBUG=1
        if os.environ.get("BATCHTUI_DEBUG"):
            import traceback

            traceback.print_exc()
        _error(f"internal error: {type(exc).__name__}: {first_line(exc)} (set BATCHTUI_DEBUG=1 for details)")
        return EXIT_FAILURE


def _close_database() -> None:
    from . import models

    try:
        if models.database.obj is not None and not models.database.is_closed():
            models.database.close()
    except Exception:
        pass


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
