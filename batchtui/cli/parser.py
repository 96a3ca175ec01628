"""The command line's grammar: every command, option and argument type of the contract."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from ..logs import FORMATS, LEVELS
from ..servers import ALIVE_WITHIN, HEARTBEAT_EVERY, MAX_THREADS
from .alerts import cmd_alerts
from .calendars import cmd_calendar_add, cmd_calendar_delete, cmd_calendar_list, cmd_calendar_show
from .common import PROG
from .completion import SHELLS, cmd_completion
from .groups import cmd_group_add, cmd_group_delete, cmd_group_list, cmd_group_set
from .helptext import ENVIRONMENT, VersionAction, add_example
from .jobs import (
    cmd_job_audit,
    cmd_job_cancel,
    cmd_job_copy,
    cmd_job_delete,
    cmd_job_export,
    cmd_job_history,
    cmd_job_import,
    cmd_job_list,
    cmd_job_rerun,
    cmd_job_run,
    cmd_job_set,
    cmd_job_status,
    cmd_job_wait,
)
from .misc import cmd_classes, cmd_cleanup, cmd_demo, cmd_recurrence_preview
from .periods import cmd_period_add, cmd_period_delete, cmd_period_list
from .servers import STOP_TIMEOUT, cmd_server, cmd_servers, cmd_servers_pause, cmd_servers_resume, cmd_servers_set

Command = Callable[[argparse.Namespace], int]

class UsageError(Exception):
    """argparse found the command line wrong."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one `batchtui: error:` line and exit 2."""

    def error(self, message: str) -> NoReturn:
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
        epilog=ENVIRONMENT, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _db_option(parser, top=True)
    parser.add_argument("--demo", action="store_true",
                        help="open the console on the demo database (loads the USMF sample data on first use)")
    parser.add_argument("--no-server", action="store_true",
                        help="open the console without its embedded batch server")
    parser.add_argument("--guide", action="store_true", help="open the console with the task guide")
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(parent: Any, name: str, help_text: str, func: Command | None, **kw: Any) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text, allow_abbrev=False,
                              formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
        add_example(p, PROG)
        _db_option(p)
        p.set_defaults(func=func)
        return p

    p = command(sub, "demo", "load the USMF sample data into the selected database", cmd_demo)
    p.add_argument("--reset", action="store_true", help="start over: delete every job first")

    p = command(sub, "server", "run a headless batch server", cmd_server)
    p.add_argument("--name", help="server name (default: the host name)")
    p.add_argument("--threads", type=_whole(1, maximum=MAX_THREADS), default=8, metavar="N",
                   help=f"batch threads, 1 to {MAX_THREADS} (default 8; the Server configuration form's setting wins)")
    p.add_argument("--groups", type=_names, default=None, metavar="G,...",
                   help="batch groups this server serves (besides those assigned to it)")
    p.add_argument("--poll", type=_positive_float, default=1.0, metavar="SECONDS",
                   help="how often to look for work created elsewhere (default 1)")
    p.add_argument("--retry-base", type=_non_negative_float, default=5.0, metavar="SECONDS",
                   help="first retry delay, doubled for each retry up to 300 s (default 5; 0 retries at once)")
    p.add_argument("--exit-when-idle", action="store_true",
                   help="exit 0 once nothing is executing, ready, due or waiting for a retry")
    p.add_argument("--heartbeat", type=_positive_float, default=HEARTBEAT_EVERY, metavar="SECONDS",
                   help=f"how often the server writes its heartbeat (default {HEARTBEAT_EVERY:g})")
    p.add_argument("--dead-after", type=_positive_float, default=ALIVE_WITHIN, metavar="SECONDS",
                   help="a server whose heartbeat is older than this is declared dead and its "
                        f"tasks taken back (default {ALIVE_WITHIN:g})")
    p.add_argument("--stop-timeout", type=_non_negative_float, default=STOP_TIMEOUT, metavar="SECONDS",
                   help="at SIGTERM, how long running tasks get to end before they are handed back "
                        f"(Ready again, no retry used; default {STOP_TIMEOUT:g})")
    p.add_argument("--log-level", choices=list(LEVELS), default=None, metavar="LEVEL",
                   help="debug, info, warning or error (default: [log] level of the config file, else info; "
                        "SIGHUP re-reads the file)")
    p.add_argument("--log-format", choices=list(FORMATS), default="text", metavar="FORMAT",
                   help="text (a line with time and level) or json (an object a line); on stderr (default text)")
    p.add_argument("--metrics-port", type=_whole(0, "--metrics-port", maximum=65535), default=None, metavar="PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (needs batchtui[metrics])")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                   help="the address the metrics are served on (default 127.0.0.1, this machine only)")

    job = command(sub, "job", "batch jobs: import, export, list, set, change status, cancel, run, rerun, copy, "
                              "delete, wait, history, audit", None)
    jobs_sub = job.add_subparsers(dest="job_command", metavar="ACTION", parser_class=_Parser, required=True)

    p = command(jobs_sub, "import", "create the jobs of a job file (- reads stdin)", cmd_job_import)
    p.add_argument("file", metavar="FILE")
    _json_option(p)

    p = command(jobs_sub, "export", "print a job as JSON (job-file shape plus run-time fields)", cmd_job_export)
    p.add_argument("id", type=_job_id, metavar="ID")
    _json_option(p)

    p = command(jobs_sub, "list", "one line per job, with its next run and its last run's status", cmd_job_list)
    p.add_argument("--status", metavar="S", help="only jobs with this status")
    p.add_argument("--company", metavar="C", help="only jobs of this company")
    p.add_argument("--user", metavar="U", help="only jobs created by this user")
    p.add_argument("--limit", type=_whole(1, "--limit"), metavar="N", help="at most N jobs (the first by ID)")
    _json_option(p)

    p = command(jobs_sub, "set", "change fields of a job that is not Executing or Canceling", cmd_job_set)
    p.add_argument("id", type=_job_id, metavar="ID")
    p.add_argument("--description", metavar="D")
    p.add_argument("--start", metavar="TIME", help="scheduled start (ISO 8601; without an offset, in the job's "
                                                   "time zone)")
    p.add_argument("--priority", metavar="P", help="low, normal, high, critical or reserved")
    p.add_argument("--company", metavar="C")
    p.add_argument("--active-period", metavar="NAME", help='an active period (see `batchtui period list`); "" '
                                                            "clears it")
    p.add_argument("--if-version", type=_whole(1, "--if-version"), metavar="N",
                   help="refuse unless the job is still at version N (see `job export`)")
    _json_option(p)

    p = command(jobs_sub, "status", "change status: withhold (stop) or waiting (go)", cmd_job_status)
    p.add_argument("id", type=_job_id, metavar="ID")
    p.add_argument("status", choices=["waiting", "withhold"], metavar="waiting|withhold")
    _json_option(p)

    p = command(jobs_sub, "cancel", "change status to Canceling", cmd_job_cancel)
    p.add_argument("id", type=_job_id, metavar="ID")
    _json_option(p)

    p = command(jobs_sub, "run", "run now: one run as soon as a batch server sees it; the recurrence "
                                 "does not move", cmd_job_run)
    p.add_argument("id", type=_job_id, metavar="ID")
    _json_option(p)

    p = command(jobs_sub, "rerun", "rerun from the failed tasks: a new run now that keeps the tasks that "
                                   "ended in the last run (Error or Canceled)", cmd_job_rerun)
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
    p.add_argument("--last", type=_whole(1, "--last"), metavar="N", help="only the newest N runs")
    _json_option(p)

    p = command(jobs_sub, "audit", "the job's audit trail, oldest first (also of a deleted job)", cmd_job_audit)
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
    for name, help_text, func in (
            ("add", "add a batch group, or change its description, servers and limit", cmd_group_add),
            ("set", "change a batch group's description, servers or limit", cmd_group_set)):
        p = command(group_sub, name, help_text, func)
        p.add_argument("name", metavar="NAME")
        p.add_argument("--description", metavar="D")
        p.add_argument("--servers", type=_names, metavar="S,...",
                       help="the servers that serve it (replaces the list)")
        p.add_argument("--max-concurrent", type=_max_concurrent, metavar="N",
                       help="batch concurrency control: at most N of its tasks run at once across every "
                            "server; 0 no limit (default), -1 the group is stopped (batch job managers only)")
        _json_option(p)
    p = command(group_sub, "delete", "delete a batch group no task uses", cmd_group_delete)
    p.add_argument("name", metavar="NAME")
    _json_option(p)

    servers = command(sub, "servers", "batch servers: threads, groups, heartbeat, alive, tasks running; "
                                      "set, pause, resume (the Server configuration form)", cmd_servers)
    _json_option(servers)
    servers_sub = servers.add_subparsers(dest="servers_command", metavar="ACTION", parser_class=_Parser)
    p = command(servers_sub, "set", "the Server configuration form: threads, reserved threads, schedule "
                                    "(batch job managers only)", cmd_servers_set)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--threads", type=_threads, metavar="N", help="maximum batch threads, 1 to 256")
    p.add_argument("--reserved", type=_whole(0, "--reserved"), metavar="N",
                   help="threads only for tasks of Reserved-capacity jobs (at most the thread count)")
    p.add_argument("--schedule", metavar="SPEC",
                   help='HH:MM-HH:MM=THREADS windows, comma-separated, in the server machine\'s time zone '
                        '(e.g. 18:00-06:00=8,06:00-18:00=2); "" clears it')
    _json_option(p)
    for name, help_text, func in (
            ("pause", "pause a batch server: it finishes what it runs and starts nothing new", cmd_servers_pause),
            ("resume", "resume a paused batch server", cmd_servers_resume)):
        p = command(servers_sub, name, help_text + " (batch job managers only)", func)
        p.add_argument("name", metavar="NAME")
        _json_option(p)

    calendar = command(sub, "calendar", "calendars of closed days that a recurrence may name", None)
    calendar_sub = calendar.add_subparsers(dest="calendar_command", metavar="ACTION", parser_class=_Parser,
                                           required=True)
    p = command(calendar_sub, "list", "calendars of closed days, with the jobs whose recurrence names them",
                cmd_calendar_list)
    _json_option(p)
    p = command(calendar_sub, "add", "add a calendar of closed days (batch job managers only)", cmd_calendar_add)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--dates", metavar="DATE,...", help="closed dates (YYYY-MM-DD, comma-separated)")
    p.add_argument("--weekends", action="store_true", help="Saturdays and Sundays are closed")
    p.add_argument("--country", metavar="CC", help="the public holidays of this country (ISO 3166 code, e.g. US)")
    p.add_argument("--subdiv", metavar="S", help="and of this subdivision (state, province: e.g. TX)")
    p.add_argument("--description", metavar="D")
    _json_option(p)
    p = command(calendar_sub, "delete", "delete a calendar no recurrence names (batch job managers only)",
                cmd_calendar_delete)
    p.add_argument("name", metavar="NAME")
    _json_option(p)
    p = command(calendar_sub, "show", "the closed days of a calendar from one date to another", cmd_calendar_show)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--from", dest="start", required=True, metavar="DATE", help="first date (YYYY-MM-DD)")
    p.add_argument("--to", dest="end", required=True, metavar="DATE", help="last date (YYYY-MM-DD), inclusive")
    _json_option(p)

    period = command(sub, "period", "Active periods for batch jobs: when a job that names one may start", None)
    period_sub = period.add_subparsers(dest="period_command", metavar="ACTION", parser_class=_Parser,
                                       required=True)
    p = command(period_sub, "list", "active periods", cmd_period_list)
    _json_option(p)
    p = command(period_sub, "add", "add an active period (batch job managers only)", cmd_period_add)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--from", dest="start", required=True, metavar="HH:MM", help="opens at (the job's time zone)")
    p.add_argument("--to", dest="end", required=True, metavar="HH:MM",
                   help="closes at; before --from wraps past midnight")
    p.add_argument("--days", metavar="mon,tue,...", help="the weekdays it opens on (default every day)")
    p.add_argument("--start-date", metavar="DATE", help="first day it opens (YYYY-MM-DD)")
    p.add_argument("--end-date", metavar="DATE", help="last day it opens (YYYY-MM-DD)")
    p.add_argument("--description", metavar="D")
    _json_option(p)
    p = command(period_sub, "delete", "delete an active period no job names (batch job managers only)",
                cmd_period_delete)
    p.add_argument("name", metavar="NAME")
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

    p = command(sub, "completion", "print a completion script for your shell", cmd_completion)
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    return parser


def _whole(minimum: int, name: str | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number of at least minimum (and at most maximum)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            what = f"{name} must be" if name else "expected"
            raise argparse.ArgumentTypeError(f"{what} a whole number, not {text!r}") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"{name + ' ' if name else ''}must be from {minimum} to {maximum}, not {value}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name + ' ' if name else ''}must be {minimum} or more, not {value}")
        return value

    return parse


_job_id = _whole(1, "job ID")


def _threads(text: str) -> int:
    value = _whole(1, "threads")(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"threads must be 1 to {MAX_THREADS}, not {value}")
    return value


def _max_concurrent(text: str) -> int:
    value = _whole(-1, "--max-concurrent")(text)
    return value


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
