"""`batchtui job ...`: import, export, list, set, change status, cancel, run, rerun, copy, delete, wait, history."""

from __future__ import annotations

import argparse
import sys
import time

from .. import audit, history, jobfile, jobs
from .. import models as m
from .. import status as st
from ..errors import NotFound, Refused, UserError
from ..jobfile import q
from ..vocabulary import RUNNING_JOB, BatchStatus
from .common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_RUN_CANCELED,
    EXIT_RUN_ERROR,
    EXIT_TIMEOUT,
    PROG,
    WRITE_PIECE,
    connect,
    emit,
    emit_json,
    emit_json_stream,
    note,
    open_database,
    read_input,
    table,
    visible,
    write_out,
)

WAIT_POLL = 0.05  # seconds between looks at the database in `job wait`


def cmd_job_import(args: argparse.Namespace) -> int:
    raw = read_input(args.file)
    source = "stdin" if args.file == "-" else args.file
    data = jobfile.load_text(raw, source=f"job file {source}")
    actor = connect(args)
    created = jobs.import_jobs(data, actor=actor)
    _delivery_warnings(actor, [row["id"] for row in created])
    if args.json:
        emit_json({"jobs": created})
        return EXIT_OK
    for row in created:
        job = m.BatchJob.get_by_id(row["id"])
        tasks = ", ".join(f"{visible(k)}={v}" for k, v in row["tasks"].items())
        emit(f"created job {row['id']} {q(job.description)}" + (f" (tasks: {tasks})" if tasks else " (no tasks)"))
    return EXIT_OK


def _delivery_warnings(actor, job_ids: list[int]) -> None:
    """One ``warning:`` line per way of delivery that the imported alerts ask for and this config lacks."""
    if not job_ids:
        return
    rows = list(m.JobAlert.select(m.JobAlert.job, m.JobAlert.email, m.JobAlert.notify)
                .where((m.JobAlert.job << job_ids) & (m.JobAlert.email | m.JobAlert.notify)))
    for flag in ("email", "notify"):
        asking = sorted({r.job_id for r in rows if getattr(r, flag)})
        for warning in actor.delivery.warnings(email=flag == "email", notify=flag == "notify") if asking else []:
            jobs_text = ", ".join(str(j) for j in asking[:5]) + (" ..." if len(asking) > 5 else "")
            note(f"{PROG}: warning: job {jobs_text}: {warning}")


def cmd_job_export(args: argparse.Namespace) -> int:
    open_database(args)
    emit_json(jobs.export_job(args.id))
    return EXIT_OK


def cmd_job_list(args: argparse.Namespace) -> int:
    open_database(args)
    rows = jobs.list_jobs(status=args.status, company=args.company, user=args.user, limit=args.limit)
    if args.json:
        emit_json(rows)
        return EXIT_OK
    if not rows:
        note("no batch jobs" + (f" with status {args.status}" if args.status else ""))
        return EXIT_OK
    for line in table(["ID", "STATUS", "SCHEDULED START", "NEXT RUN", "LAST RUN", "DESCRIPTION", "COMPANY",
                       "CREATED BY"],
                      [[r["id"], r["status"], r["scheduled_start"], r["next_run"] or "-", r["last_run_status"] or "-",
                        r["description"], r["company"], r["created_by"]] for r in rows]):
        emit(line)
    return EXIT_OK


def _status_result(args: argparse.Namespace, job: m.BatchJob) -> int:
    status = BatchStatus(job.status).cli
    if args.json:
        emit_json({"id": job.id, "status": status})
    else:
        emit(f"job {job.id}: {status}")
    return EXIT_OK


def cmd_job_status(args: argparse.Namespace) -> int:
    actor = connect(args)
    job = st.set_job_status(args.id, BatchStatus.from_cli(args.status), actor)
    return _status_result(args, job)


def cmd_job_cancel(args: argparse.Namespace) -> int:
    actor = connect(args)
    job = st.cancel_job(args.id, actor)
    return _status_result(args, job)


def cmd_job_run(args: argparse.Namespace) -> int:
    actor = connect(args)
    return _requested(args, st.run_now(args.id, actor), "run now")


def cmd_job_rerun(args: argparse.Namespace) -> int:
    actor = connect(args)
    return _requested(args, st.rerun_job(args.id, actor), "rerun from the failed tasks")


def _requested(args: argparse.Namespace, job: m.BatchJob, what: str) -> int:
    status = BatchStatus(job.status).cli
    if args.json:
        emit_json({"id": job.id, "status": status, "requested": job.run_request})
    else:
        emit(f"job {job.id}: {what} requested; a batch server starts it within its poll interval")
    return EXIT_OK


def cmd_job_copy(args: argparse.Namespace) -> int:
    actor = connect(args)
    job = jobs.copy_job(args.id, actor=actor, description=args.description, start=args.start)
    if args.json:
        emit_json({"id": job.id})
    else:
        emit(str(job.id))
    return EXIT_OK


def cmd_job_delete(args: argparse.Namespace) -> int:
    actor = connect(args)
    st.delete_job(args.id, actor)
    if args.json:
        emit_json({"id": args.id, "deleted": True})
    else:
        emit(f"deleted job {args.id}")
    return EXIT_OK


_SET_FIELDS = (("description", "description"), ("start", "scheduled_start"), ("priority", "priority"),
               ("company", "company"), ("active_period", "active_period"))


def cmd_job_set(args: argparse.Namespace) -> int:
    """Change fields of a job; with --if-version only if nobody changed it since that version."""
    changes = {field: getattr(args, option) for option, field in _SET_FIELDS if getattr(args, option) is not None}
    if not changes:
        raise UserError(f"job {args.id}: nothing to change (give --description, --start, --priority, --company or "
                        "--active-period)")
    actor = connect(args)
    job = jobs.set_job(args.id, actor=actor, if_version=args.if_version, **changes)
    if args.json:
        emit_json({"id": job.id, "version": job.version, "changed": sorted(changes)})
    else:
        emit(f"job {job.id}: changed {', '.join(sorted(changes))} (version {job.version})")
    return EXIT_OK


# -- job wait ----------------------------------------------------------------------

_WAIT_EXIT = {"ended": EXIT_OK, "error": EXIT_RUN_ERROR, "canceled": EXIT_RUN_CANCELED}


def cmd_job_wait(args: argparse.Namespace) -> int:
    open_database(args)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    job = st.get_job(args.id)
    current = BatchStatus(job.status)
    if current == BatchStatus.HOLD:
        raise Refused(f"job {args.id} is Withhold: it does not run until it is set to Waiting "
                      f"(batchtui job status {args.id} waiting)")
    if current not in RUNNING_JOB and current != BatchStatus.WAITING:
        # Ended, Error or Canceled: the last run is over already.
        return _wait_done(args, job.id, _last_run_no(job.id), current.cli)
    run_id: int | None = None  # the run we wait for, once known
    after_run_no = job.run_count  # for a Waiting job: the next run after this one
    if current in RUNNING_JOB:
        run_id = job.current_run
        after_run_no = job.run_count - 1  # a running job always has its run; this is the fallback
    while True:
        if run_id is None:
            run_id = _run_after(args.id, after_run_no)
        run = None if run_id is None else m.JobRun.get_or_none(m.JobRun.id == run_id)
        if run is not None and run.ended is not None:
            return _wait_done(args, args.id, run.run_no, BatchStatus(run.status).cli)
        latest = m.BatchJob.get_or_none(m.BatchJob.id == args.id)
        if latest is None:
            raise NotFound(f"job {args.id} was deleted while waiting for it")
        if run_id is None and latest.status == BatchStatus.CANCELED:
            # Canceled before its next run started.
            return _wait_done(args, args.id, _last_run_no(args.id), "canceled")
        if deadline is not None and time.monotonic() >= deadline:
            return _timed_out(args, latest)
        time.sleep(WAIT_POLL)


def _run_after(job_id: int, run_no: int) -> int | None:
    """The id of the job's first run numbered after run_no, once it has started."""
    row = (m.JobRun.select(m.JobRun.id).where((m.JobRun.job == job_id) & (m.JobRun.run_no > run_no))
           .order_by(m.JobRun.run_no).first())
    return None if row is None else int(row.id)


def _timed_out(args: argparse.Namespace, job: m.BatchJob) -> int:
    status = BatchStatus(job.status)
    sys.stderr.write(f"{PROG}: job {args.id}: timed out after {args.timeout:g} s (the job is {status.label})\n")
    if args.json:
        emit_json({"id": args.id, "run": None, "status": status.cli, "timeout": True})
    return EXIT_TIMEOUT


def _last_run_no(job_id: int) -> int | None:
    row = m.JobRun.select(m.JobRun.run_no).where(m.JobRun.job == job_id).order_by(m.JobRun.run_no.desc()).first()
    return None if row is None else int(row.run_no)


def _wait_done(args: argparse.Namespace, job_id: int, run_no: int | None, status: str) -> int:
    if args.json:
        emit_json({"id": job_id, "run": run_no, "status": status, "timeout": False})
    else:
        emit(f"job {job_id}" + (f" run {run_no}" if run_no else "") + f": {status}")
    return _WAIT_EXIT.get(status, EXIT_FAILURE)


# -- job audit ---------------------------------------------------------------------


def cmd_job_audit(args: argparse.Namespace) -> int:
    """The job's audit trail, oldest first; also for a job that was deleted."""
    open_database(args)
    rows = audit.entries(args.id)
    if not rows and (not m.storable_id(args.id) or not m.BatchJob.select().where(m.BatchJob.id == args.id).exists()):
        raise NotFound(f"job {args.id}: no such batch job, and no audit trail of one")
    if args.json:
        emit_json(rows)
        return EXIT_OK
    if not rows:
        note(f"job {args.id} has no audit entries")
        return EXIT_OK
    for line in table(["AT", "USER", "ACTION", "FIELD", "OLD", "NEW"],
                      [[r["at"], r["user"], r["action"], r["field"] or "", audit.shown(r["old"]), audit.shown(r["new"])]
                       for r in rows]):
        emit(line)
    return EXIT_OK


# -- job history -------------------------------------------------------------------


def cmd_job_history(args: argparse.Namespace) -> int:
    """The job's runs, written one run (and one attempt's log) at a time: see history.stream_job_history."""
    open_database(args)
    runs = history.stream_job_history(args.id, last=args.last)
    if args.json:
        emit_json_stream(runs)
        return EXIT_OK
    empty = True
    for run in runs:
        empty = False
        emit(f"run {run['run']}  {run['status']}  scheduled {run['scheduled']}  started {run['started']}  "
             f"ended {run['ended'] or '-'}  server {visible(run['server']) or '-'}")
        for t in run["tasks"]:
            emit(f"  task {t['id']} {visible(t['key'])}: {t['status']}"
                 + (f"  ({visible(t['description'])})" if t["description"] != t["key"] else ""))
            started = False
            for a in t["attempts"]:
                started = True
                emit(f"    attempt {a['attempt']}  {a['status']}  started {a['started']}  "
                     f"ended {a['ended'] or '-'}  server {visible(a['server']) or '-'}")
                _emit_log(a.pop("log"))
            if not started:
                emit("    (kept: ended in the run before; not run again)" if t.get("kept") else "    (did not start)")
    if empty:
        note(f"job {args.id} has not run yet")
    return EXIT_OK


LOG_INDENT = "      "


def _emit_log(log: str) -> None:
    """A log's lines, indented, as visible() shows them (only a newline still breaks a line there).

    Escaped and written a piece at a time: a log of hundreds of megabytes is never copied whole.
    """
    if not log:
        return
    end = len(log) - 1 if log.endswith("\n") else len(log)  # a last newline ends the last line
    write_out(LOG_INDENT)
    for start in range(0, end, WRITE_PIECE):
        piece = visible(log[start:min(start + WRITE_PIECE, end)], keep_newlines=True)
        write_out(piece.replace("\n", "\n" + LOG_INDENT))
    write_out("\n")
