"""The USMF sample data: Contoso companies, batch groups, servers and jobs with weeks of history.

`load_demo()` fills the database that is open (``models.database``) the way
the ERP's Contoso demo data looks to a batch operator: about thirty USMF jobs
in every status a job can rest in, recurring jobs with weeks of runs behind
them (errors, retries and all), alerts for the acting user, and two batch
servers, AOS1 and AOS2, that ran all that history and are now stopped.

What the operator sees live:

* the recurring jobs are Waiting for their next occurrence, the frequent ones
  (workflow messages every 5 minutes, subledger transfer every 10) within
  minutes; every demo task is in the Empty batch group, which the console's
  own batch server serves;
* one job of the acting user, "Invoice EDI sales order backlog", is due 20
  seconds after loading: its first task fails on negative inventory, is
  retried and ends, then the invoicing and the ledger transfer run on their
  conditions, and the alert pops up.

The named batch groups (FIN, INV, MRP, WF) are served by AOS1 and AOS2 only;
tasks in them appear in jobs that are over or withheld, so that nothing
Waiting depends on a server that is down.

Times are relative to now and the figures come from a fixed seed, so the
demo looks the same, and fresh, whenever it is loaded. Statuses are written
through the status machine (`status.record_past_runs` for the history) and
jobs, tasks, conditions, recurrences and alerts through the job service.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from peewee import fn

from .. import events, jobs, recurrence
from .. import models as m
from .. import status as st
from ..actor import Actor
from ..calendars import closed_days_for
from ..classes import validate_params
from ..config import acting_user
from ..db import write
from ..history import record_past_runs
from ..rules import evaluate_conditions, retry_delay
from ..servers import alive_names
from ..timeutil import local, to_utc, utcnow, zone
from ..vocabulary import BatchStatus, ConditionStatus
from . import classes as demo_classes

__all__ = ["load_demo", "is_loaded", "describe_result", "COMPANIES", "GROUPS", "SERVERS", "MARKER_JOB"]

SEED = 20260301
TZ = "America/Chicago"
#: The job whose presence (in USMF, created by Admin) says the demo is loaded.
MARKER_JOB = "Sales order invoicing (hourly)"
#: The batch servers of the history stopped this long before the demo was loaded.
HISTORY_GAP = timedelta(seconds=60)
#: How soon after loading the acting user's demo job is due.
FIRST_LIVE_RUN = timedelta(seconds=20)

COMPANIES = [
    ("USMF", "Contoso Entertainment System USA"),
    ("USRT", "Contoso Retail USA"),
    ("USSI", "Contoso Consulting USA"),
    ("DEMF", "Contoso Entertainment System Germany"),
    ("GBSI", "Contoso Consulting UK"),
    ("FRRT", "Contoso Retail France"),
    ("JPMF", "Contoso Entertainment System Japan"),
    ("MXMF", "Contoso Entertainment System Mexico"),
    ("BRMF", "Contoso Entertainment System Brazil"),
    ("CNMF", "Contoso Entertainment System China"),
    ("INMF", "Contoso Entertainment System India"),
    ("DAT", "Company accounts data"),
]

GROUPS = [
    ("", "Empty batch group"),
    ("FIN", "Finance"),
    ("INV", "Inventory"),
    ("MRP", "Master planning"),
    ("WF", "Workflow"),
]

SERVERS = [("AOS1", "aos1.contoso.com", 8), ("AOS2", "aos2.contoso.com", 8)]


# -- the job catalogue -------------------------------------------------------------


@dataclass
class T:
    """A demo task."""

    key: str
    description: str
    cls: str
    params: dict = field(default_factory=dict)
    group: str = ""
    max_retries: int = 0
    ignore_failure: bool = False
    condition_type: str = "all"
    conditions: list[tuple[str, str]] = field(default_factory=list)
    company: str | None = None
    time_limit: float | None = None  # seconds an attempt may run (issue 14)


@dataclass
class J:
    """A demo job: its tasks, how it recurs, what its history was, how it stands now.

    `history_days`: for a recurring job, the window of occurrences that ran.
    `incidents`: run index (negative from the newest) -> what went wrong in it.
    `error_rate`: chance that any other run had an incident `rate_incident`.
    `runs`: for a job that does not recur, its runs: (days ago, "HH:MM", incident).
    `final`: "waiting", "withhold" or "cancel", after the history; None: as the history left it.
    """

    description: str
    tasks: list[T]
    created_by: str = "Admin"
    company: str = "USMF"
    priority: str = "normal"
    recurrence: dict | None = None
    start: tuple[int, str] | None = None  # (days ago, "HH:MM") local: the start date of the recurrence
    history_days: float = 0
    incidents: dict[int, dict] = field(default_factory=dict)
    error_rate: float = 0.0
    rate_incident: dict | None = None
    runs: list[tuple[float, str, dict]] = field(default_factory=list)
    alerts: dict | None = None  # the acting user's alert flags
    final: str | None = None
    scheduled: tuple[float, str] | None = None  # (days ago, "HH:MM") for a job with no runs
    late_after: float | None = None  # seconds: a run not over by then raises the late alerts (issue 14)


ME = "<acting user>"
# The plant's calendar of closed days: the month-end jobs move to the next open day.
PLANT = "USMF plant"
POPUP_ERROR = {"error": True, "popup": True}


def catalogue() -> list[J]:
    """The USMF batch jobs (in the order they get their job IDs)."""
    return [
        # -- recurring, Waiting for their next run ----------------------------------------------
        J(MARKER_JOB,
          [T("post", "Post sales invoices", "SalesInvoicePosting", {"seconds": 4, "orders": 6})],
          recurrence={"pattern": "hours", "every": 1}, start=(28, "00:15"), history_days=21,
          error_rate=0.02, rate_incident={"fail": {"post": 1}}, incidents={-7: {"fail": {"post": 1}}},
          alerts=POPUP_ERROR),
        J("Subledger transfer to general ledger",
          [T("transfer", "Transfer subledger journal entries", "SubledgerTransfer", {"seconds": 2})],
          recurrence={"pattern": "minutes", "every": 10}, start=(28, "00:00"), history_days=2,
          error_rate=0.01, rate_incident={"fail": {"transfer": 1}}),
        J("Workflow message processing",
          [T("process", "Process workflow messages", "WorkflowMessageProcessing", {"seconds": 2})],
          priority="high", recurrence={"pattern": "minutes", "every": 5}, start=(28, "00:00"), history_days=1,
          error_rate=0.005, rate_incident={"fail": {"process": 1}}),
        J("Master planning - DynPlan (nightly)",
          [T("plan", "Run master planning for DynPlan", "MasterPlanning",
             {"plan": "DynPlan", "seconds": 6}, max_retries=1)],
          created_by="ops", recurrence={"pattern": "days", "every": 1}, start=(60, "22:00"), history_days=21,
          incidents={-2: {"fail": {"plan": 1}}, -9: {"fail": {"plan": 2}}}, late_after=1800,
          alerts={"error": True, "canceled": True, "late": True, "popup": True}),
        J("System clean-up: batch job history (weekly)",
          [T("cleanup", "Delete batch job history older than 30 days", "BatchHistoryCleanup",
             {"older_than_days": 30})],
          priority="low", recurrence={"pattern": "weeks", "every": 1, "weekdays": ["sun"]},
          start=(60, "02:00"), history_days=28),
        J("Inventory close (monthly)",
          [T("recalc", "Recalculate inventory (check for negative on-hand)", "InventoryRecalculation",
             {"failures": 0, "seconds": 3}, max_retries=1),
           T("close", "Inventory close: settle issues against receipts", "InventoryClose", {"seconds": 4},
             conditions=[("recalc", "ended")]),
           T("ledger", "Transfer inventory adjustments to general ledger", "SubledgerTransfer",
             {"source": "Inventory adjustment", "seconds": 2}, conditions=[("close", "ended")]),
           T("reverse", "Cancel inventory close (reverse settlements)", "InventoryClose",
             {"cancel": True, "seconds": 2}, conditions=[("close", "error")]),
           T("report", "E-mail the close summary to cost accounting", "EmailDistributor",
             {"messages": 1, "seconds": 1}, condition_type="any",
             conditions=[("ledger", "ended_or_error"), ("reverse", "ended_or_error")])],
          created_by="ops", priority="high",
          recurrence={"pattern": "months", "every": 1, "nth": "last", "weekday": "fri", "calendar": PLANT,
                      "on_closed_day": "next_open_day"},
          start=(200, "23:00"), history_days=100,
          incidents={-3: {"fail": {"close": 1}}, -1: {"fail": {"recalc": 1}}},
          alerts={"ended": True, "error": True, "popup": True}),
        J("Release sales orders to warehouse",
          [T("release", "Release reserved sales orders to warehouse 24", "ReleaseToWarehouse", {"seconds": 3})],
          created_by="ops", recurrence={"pattern": "minutes", "every": 30}, start=(28, "00:05"), history_days=2,
          error_rate=0.02, rate_incident={"fail": {"release": 1}}),
        J("E-mail distributor (SysEmailDistributor)",
          [T("send", "Send queued e-mails", "EmailDistributor", {"seconds": 2})],
          recurrence={"pattern": "minutes", "every": 15}, start=(28, "00:02"), history_days=1,
          error_rate=0.01, rate_incident={"fail": {"send": 1}}),
        J("Customer aging snapshot (daily)",
          [T("aging", "Create the customer aging snapshot", "CustomerAgingSnapshot", {"seconds": 3})],
          created_by="ops", recurrence={"pattern": "days", "every": 1}, start=(60, "01:00"), history_days=21),
        J("Foreign currency revaluation (month-end)",
          [T("revalue", "Revalue open transactions in EUR, GBP, CAD, MXN", "ForeignCurrencyRevaluation",
             {"seconds": 3}, group="")],
          created_by="ops", recurrence={"pattern": "months", "every": 1, "day": 31, "calendar": PLANT,
                                        "on_closed_day": "next_open_day"}, start=(200, "20:00"),
          history_days=100, incidents={-2: {"fail": {"revalue": 1}}}),
        J("Inventory recalculation (weekly, warehouse 24)",
          [T("recalc", "Recalculate inventory in warehouse 24", "InventoryRecalculation",
             {"warehouse": "24", "failures": 0, "seconds": 3}, max_retries=3)],
          created_by="ops", recurrence={"pattern": "weeks", "every": 1, "weekdays": ["sat"]},
          start=(60, "03:00"), history_days=28,
          incidents={-3: {"fail": {"recalc": 1}}, -2: {"fail": {"recalc": 2}}},
          alerts=POPUP_ERROR),
        # -- recurring, withheld after some runs ---------------------------------------------------
        J("Settle and post sales tax (monthly)",
          [T("settle", "Settle and post sales tax, USA-MONTHLY", "SalesTaxSettlement", {"seconds": 3},
             group="FIN")],
          recurrence={"pattern": "months", "every": 1, "day": 3}, start=(200, "06:00"), history_days=70,
          final="withhold"),
        # -- the one that runs right after loading -----------------------------------------------
        J("Invoice EDI sales order backlog",
          [T("recalc", "Recalculate on-hand in warehouse 24", "InventoryRecalculation",
             {"warehouse": "24", "failures": 1, "seconds": 2}, max_retries=2),
           T("invoice", "Invoice the EDI sales orders", "SalesInvoicePosting", {"orders": 8, "seconds": 4},
             conditions=[("recalc", "ended")]),
           T("transfer", "Transfer the invoices to general ledger", "SubledgerTransfer",
             {"source": "Customer invoice", "seconds": 2}, conditions=[("invoice", "ended")])],
          created_by=ME, priority="high", final="waiting",
          alerts={"ended": True, "error": True, "canceled": True, "popup": True}),
        # -- jobs that ran once (or twice) and are over -------------------------------------------
        J("Inventory recalculation - warehouse 24 (after counting)",
          [T("recalc", "Recalculate inventory in warehouse 24", "InventoryRecalculation",
             {"warehouse": "24", "failures": 0}, max_retries=2)],
          created_by="ops", runs=[(0.6, "09:40", {"fail": {"recalc": 3}})], alerts=POPUP_ERROR),
        J("Master planning - full regeneration (DynPlan)",
          [T("plan", "Regenerate DynPlan", "MasterPlanning", {"plan": "DynPlan"}, group="MRP"),
           T("firm", "Firm planned orders", "MasterPlanning", {"plan": "DynPlan", "firming": True},
             group="MRP", conditions=[("plan", "ended")])],
          created_by="ops", priority="critical", runs=[(2, "13:02", {"cancel": ("plan", 0.4)})],
          alerts={"canceled": True, "popup": True}),
        J("Post free text invoices - project billing",
          [T("post", "Post free text invoices", "SalesInvoicePosting", {"customer_group": "20"}, group="FIN")],
          created_by="ops", runs=[(1, "14:05", {})]),
        J("Release wave W-004512 to warehouse 24",
          [T("release", "Release sales orders of wave W-004512", "ReleaseToWarehouse", {"orders": 12})],
          created_by="ops", runs=[(0.2, "06:30", {})]),
        J("Subledger transfer - catch-up after period reopen",
          [T("transfer", "Transfer subledger journal entries", "SubledgerTransfer", {}, group="FIN")],
          runs=[(4, "08:00", {"fail": {"transfer": 1}}), (3, "07:45", {})]),
        J("Workflow: resubmit failed purchase requisitions",
          [T("process", "Resubmit failed workflow messages", "WorkflowMessageProcessing", {"messages": 12},
             group="WF")],
          created_by="ops", runs=[(1, "10:12", {"fail": {"process": 1}})]),
        J("Sales invoicing - intercompany USMF to USRT",
          [T("usmf", "Invoice intercompany sales orders in USMF", "SalesInvoicePosting",
             {"customer_group": "80"}, group="FIN"),
           T("usrt", "Post the intercompany vendor invoices in USRT", "SalesInvoicePosting",
             {"customer_group": "80"}, group="FIN", company="USRT", conditions=[("usmf", "ended")])],
          created_by="ops", runs=[(2, "16:20", {"fail": {"usrt": 1}})]),
        J("Customer aging snapshot - quarter end",
          [T("aging", "Create the customer aging snapshot", "CustomerAgingSnapshot",
             {"aging_period": "120 days"})],
          runs=[(9, "19:00", {})]),
        J("Master planning - StaticPlan",
          [T("plan", "Run master planning for StaticPlan", "MasterPlanning", {"plan": "StaticPlan"},
             group="MRP"),
           T("firm", "Firm planned purchase orders", "MasterPlanning", {"plan": "StaticPlan", "firming": True},
             group="MRP", conditions=[("plan", "ended")])],
          created_by="ops", runs=[(5, "21:00", {})]),
        J("Settle and post sales tax - last month",
          [T("settle", "Settle and post sales tax, USA-MONTHLY", "SalesTaxSettlement", {}, group="FIN")],
          runs=[(12, "07:00", {})]),
        J("Batch job history clean-up - older than 90 days (one-off)",
          [T("cleanup", "Delete batch job history older than 90 days", "BatchHistoryCleanup",
             {"older_than_days": 90})],
          runs=[(10, "18:30", {})]),
        J("Release sales orders - weekend backlog",
          [T("release24", "Release to warehouse 24", "ReleaseToWarehouse", {"warehouse": "24", "orders": 9}),
           T("release13", "Release to warehouse 13", "ReleaseToWarehouse", {"warehouse": "13", "orders": 4},
             ignore_failure=True),
           T("transfer", "Transfer packing slips to general ledger", "SubledgerTransfer",
             {"source": "Packing slip"}, condition_type="any",
             conditions=[("release24", "ended"), ("release13", "ended")])],
          created_by="ops", runs=[(3, "05:10", {"fail": {"release13": 1}})]),
        # -- withheld ---------------------------------------------------------------------------
        J("Foreign currency revaluation - EUR, GBP (waiting for rates)",
          # The exchange rate provider hangs (seconds: an hour): the time limit stops the task after
          # 20 s, and it is tried once more (issue 14). Run it now (n) to see it.
          [T("revalue", "Revalue open transactions in EUR and GBP", "ForeignCurrencyRevaluation",
             {"currencies": "EUR,GBP", "seconds": 3600}, max_retries=1, time_limit=20)],
          created_by=ME, scheduled=(-1, "20:00"), final="withhold"),
        J("Inventory close - trial run (do not post)",
          [T("recalc", "Recalculate inventory", "InventoryRecalculation", {"failures": 0}, group="INV"),
           T("close", "Inventory close", "InventoryClose", {}, group="INV", conditions=[("recalc", "ended")])],
          scheduled=(-3, "23:00"), final="withhold"),
        J("Sales order invoicing - retail customers (group 30)",
          [T("post", "Post sales invoices for customer group 30", "SalesInvoicePosting",
             {"customer_group": "30", "orders": 10})],
          scheduled=(-1, "06:00"), final="withhold"),
        J("Master planning - scenario test (copy of DynPlan)",
          [T("plan", "Run master planning for a scenario plan", "MasterPlanning", {"plan": "Scenario1"})],
          created_by="ops", scheduled=(-2, "22:00"), final="withhold"),
        # -- canceled before it ran ---------------------------------------------------------------
        J("E-mail customer account statements",
          [T("send", "Send customer account statements", "EmailDistributor", {"messages": 40})],
          created_by="ops", scheduled=(1, "17:00"), final="cancel"),
    ]


# -- loading -------------------------------------------------------------------------


def is_loaded() -> bool:
    return (m.Company.select().where(m.Company.id == "USMF").exists()
            and m.BatchJob.select().where((m.BatchJob.company == "USMF") & (m.BatchJob.description == MARKER_JOB)
                                          & (m.BatchJob.created_by == "Admin")).exists())


def load_demo(reset: bool = False, now: datetime | None = None) -> dict:
    """Load the USMF sample data into the open database; a second call changes nothing.

    With reset, every job, run, alert, batch group and stopped batch server
    is deleted first (companies stay) and the demo is loaded again. Returns
    what the database then holds, with "loaded": whether this call loaded it.
    `now` (naive UTC) pins the demo to a moment, for screenshots and tests:
    the same moment gives the same data.
    """
    now = now or utcnow()
    loaded = False
    with write():
        if reset:
            _clear(now)
        if reset or not is_loaded():
            _load(now, random.Random(SEED))
            loaded = True
    if loaded:
        events.changed()
    return {"loaded": loaded, **counts()}


def counts() -> dict:
    statuses = {BatchStatus(s).cli: n for s, n in m.tuples(m.BatchJob.select(m.BatchJob.status, fn.COUNT(m.BatchJob.id))
                                                         .group_by(m.BatchJob.status))}
    return {
        "companies": m.Company.select().count(),
        "batch_groups": m.BatchGroup.select().count(),
        "batch_servers": m.BatchServer.select().count(),
        "jobs": m.BatchJob.select().count(),
        "tasks": m.BatchTask.select().count(),
        "runs": m.JobRun.select().count(),
        "attempts": m.TaskAttempt.select().count(),
        "alerts": m.Alert.select().count(),
        "job_statuses": dict(sorted(statuses.items())),
    }


def describe_result(result: dict) -> str:
    """One line for the command line, e.g. after `batchtui demo`."""
    what = (f"{result['jobs']} batch jobs, {result['runs']:,} runs in their history, {result['alerts']} alerts, "
            f"{result['companies']} companies")
    if result.get("loaded"):
        return f"Loaded the USMF demo data: {what}."
    return f"The USMF demo data is loaded already ({what}); use --reset to start over."


def _clear(now: datetime) -> None:
    """Delete every job and its history, the alerts, groups and stopped servers.

    A batch server that is running (this console's, say) keeps its row and
    the groups it serves, so that it carries on serving them.
    """
    alive = alive_names(now)
    for model in (m.Alert, m.TaskAttempt, m.RunTask, m.JobRun, m.BatchConstraint, m.JobAlert):
        model.delete().execute()
    m.BatchJob.update(current_run=None).execute()
    m.BatchTask.delete().execute()
    m.BatchJob.delete().execute()
    mappings, servers = m.BatchGroupServer.delete(), m.BatchServer.delete()
    if alive:
        mappings = mappings.where(m.BatchGroupServer.server.not_in(alive))
        servers = servers.where(m.BatchServer.name.not_in(alive))
    mappings.execute()
    servers.execute()
    kept = m.BatchGroupServer.select(m.BatchGroupServer.group)
    m.BatchGroup.delete().where((m.BatchGroup.name != "") & m.BatchGroup.name.not_in(kept)).execute()


def _load(now: datetime, rng: random.Random) -> None:
    me = acting_user()
    history_end = now - HISTORY_GAP
    _load_companies()
    _load_groups_and_servers(now, history_end)
    _load_calendar()
    for spec in catalogue():
        _load_job(spec, now, history_end, me, rng)
    _later_changes(me)
    # Old news is read news: only the last day's alerts wait in the Action center.
    m.Alert.update(read=True).where(m.Alert.created < now - timedelta(days=1)).execute()


def _load_calendar() -> None:
    """The plant's calendar (setup data, like the groups): weekends and US public holidays."""
    if m.ClosedCalendar.get_or_none(m.ClosedCalendar.name == PLANT) is None:
        m.ClosedCalendar.create(name=PLANT, description="Contoso USMF plant: closed weekends and US holidays",
                                dates=[], weekends=True, country="US", subdiv=None)


def _later_changes(me: str) -> None:
    """Changes made after the jobs were set up, by several users: the audit trail has something to show."""
    close = m.BatchJob.get(m.BatchJob.description == "Inventory close (monthly)")
    jobs.set_job(close.id, actor=Actor.of("ops"), priority="critical")
    jobs.set_alert(close.id, actor=Actor.of("admin"), alert_user="admin", error=True, popup=True)
    jobs.set_job(close.id, actor=Actor.of("Admin", managers=["Admin"]), priority="high")
    planning = m.BatchJob.get(m.BatchJob.description == "Master planning - scenario test (copy of DynPlan)")
    jobs.set_job(planning.id, actor=Actor.of(planning.created_by), priority="low")


def _load_companies() -> None:
    existing = {c.id: c.name for c in m.Company.select()}
    missing = [{"id": cid, "name": name} for cid, name in COMPANIES if cid not in existing]
    if missing:
        m.Company.insert_many(missing).execute()
    for cid, name in COMPANIES:
        if cid in existing and not existing[cid]:
            m.Company.update(name=name).where(m.Company.id == cid).execute()


def _load_groups_and_servers(now: datetime, history_end: datetime) -> None:
    existing = {g.name for g in m.BatchGroup.select(m.BatchGroup.name)}
    rows = [{"name": n, "description": d} for n, d in GROUPS if n not in existing]
    if rows:
        m.BatchGroup.insert_many(rows).execute()
    m.BatchGroup.update(description="Empty batch group").where(
        (m.BatchGroup.name == "") & (m.BatchGroup.description == "")).execute()
    # AOS1 and AOS2 ran the history and stopped just before the demo was loaded:
    # the Batch servers form shows them down, and the console's server takes over.
    for name, host, threads in SERVERS:
        if m.BatchServer.get_or_none(m.BatchServer.name == name) is None:
            m.BatchServer.create(name=name, host=host, pid=0, threads=threads,
                                 started=history_end - timedelta(days=41, hours=3),
                                 heartbeat=history_end, stopped=history_end + timedelta(seconds=1))
    pairs = set(m.BatchGroupServer.select(m.BatchGroupServer.group, m.BatchGroupServer.server).tuples())
    rows = [{"group": g, "server": s} for g, _ in GROUPS if g for s, _, _ in SERVERS if (g, s) not in pairs]
    if rows:
        m.BatchGroupServer.insert_many(rows).execute()


def _wall(days_ago: float, hhmm: str, now: datetime, tz: str = TZ) -> datetime:
    """Naive UTC of HH:MM local time, `days_ago` days before today (local)."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    today = local(now, tz).replace(tzinfo=None)
    day = (today - timedelta(days=days_ago)).date()
    return to_utc(datetime(day.year, day.month, day.day, hour, minute), zone(tz))


def _load_job(spec: J, now: datetime, history_end: datetime, me: str, rng: random.Random) -> None:
    owner = Actor.of(me if spec.created_by == ME else spec.created_by)
    if spec.runs:
        scheduled = _wall(spec.runs[0][0], spec.runs[0][1], now)
    elif spec.start is not None:
        scheduled = _wall(spec.start[0], spec.start[1], now)
    elif spec.scheduled is not None:
        scheduled = _wall(spec.scheduled[0], spec.scheduled[1], now)
    else:
        scheduled = now + FIRST_LIVE_RUN
    job = jobs.create_job(actor=owner, description=spec.description, company=spec.company,
                          scheduled_start=scheduled, time_zone=TZ, priority=spec.priority, status="withhold",
                          late_after=spec.late_after)
    ids: dict[str, int] = {}
    for t in spec.tasks:
        ids[t.key] = jobs.add_task(
            job.id, actor=owner, description=t.description, class_name=t.cls, params=t.params,
            company=t.company, batch_group=t.group, ignore_failure=t.ignore_failure,
            max_retries=t.max_retries, condition_type=t.condition_type, key=t.key, time_limit=t.time_limit).id
    for t in spec.tasks:
        for parent, expected in t.conditions:
            jobs.add_condition(ids[t.key], actor=owner, parent_id=ids[parent], expected=expected)
    if spec.recurrence is not None:
        start = local(scheduled, TZ).replace(tzinfo=None).isoformat(timespec="seconds")
        job = jobs.set_recurrence(job.id, {**spec.recurrence, "start": start}, actor=owner)
    if spec.alerts:
        jobs.set_alert(job.id, actor=Actor.of(me), alert_user=me, **spec.alerts)

    runs = _history(spec, job, ids, now, history_end, rng)
    if runs:
        record_past_runs(job.id, runs, now=now)
    if spec.final == "waiting":
        st.set_job_status(job.id, BatchStatus.WAITING, owner)
    elif spec.final == "withhold":
        st.set_job_status(job.id, BatchStatus.HOLD, owner)
    elif spec.final == "cancel":
        st.cancel_job(job.id, owner)


# -- history ---------------------------------------------------------------------------


def _history(spec: J, job: m.BatchJob, ids: dict[str, int], now: datetime, history_end: datetime,
             rng: random.Random) -> list[dict]:
    """The job's past runs as `status.record_past_runs` takes them, oldest first."""
    if spec.recurrence is not None and spec.history_days:
        after = history_end - timedelta(days=spec.history_days)
        occurrences = _occurrences(job, after, history_end)
        plans = []
        for i, occ in enumerate(occurrences):
            back = i - len(occurrences)  # -1 is the newest
            incident = spec.incidents.get(back)
            if incident is None and spec.error_rate and rng.random() < spec.error_rate:
                incident = spec.rate_incident
            plans.append((occ, incident or {}))
    else:
        plans = [(_wall(d, hhmm, now), incident) for d, hhmm, incident in spec.runs]
    runs = []
    for occ, incident in plans:
        run = _simulate(spec, job, ids, occ, incident, rng)
        if run["ended"] < history_end:  # a run that would still be going is left out
            runs.append(run)
    return runs


def _occurrences(job: m.BatchJob, after: datetime, before: datetime) -> list[datetime]:
    """The job's occurrences after `after` and before `before`, as naive UTC."""
    found: list[datetime] = []
    while True:
        batch = [_naive_utc(o) for o in recurrence.occurrences(job.recurrence, job.time_zone, after=after, count=200,
                                                               closed=closed_days_for(job.recurrence))]
        found += [o for o in batch if o < before]
        if len(batch) < 200 or batch[-1] >= before:
            return found
        after = batch[-1]


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _ms(rng: random.Random, lo: float, hi: float) -> timedelta:
    return timedelta(milliseconds=rng.uniform(lo, hi))


def _simulate(spec: J, job: m.BatchJob, ids: dict[str, int], scheduled: datetime, incident: dict,
              rng: random.Random) -> dict:
    """One run of the job as AOS1/AOS2 would have done it, with its logs.

    incident: {"fail": {task key: failed attempts}} (more failures than retries
    leave the task in Error); {"cancel": (task key, fraction)} cancels the run
    part way through that task.
    """
    fails = incident.get("fail", {})
    cancel_key, cancel_at = incident.get("cancel", (None, 0.0))
    started = scheduled + _ms(rng, 4, 45)
    servers = [s for s, _, _ in SERVERS]
    run_server = rng.choice(servers)
    local_when = local(scheduled, TZ).replace(tzinfo=None)
    by_key = {t.key: t for t in spec.tasks}
    status: dict[str, BatchStatus] = {}
    ends: dict[str, datetime] = {}
    results: dict[str, dict] = {}
    canceled_at: datetime | None = None
    pending = [t.key for t in spec.tasks]
    while pending:
        progressed = False
        for key in list(pending):
            t = by_key[key]
            pairs = [(ConditionStatus.from_cli(exp), status.get(parent, BatchStatus.WAITING))
                     for parent, exp in t.conditions]
            verdict = evaluate_conditions(1 if t.condition_type == "any" else 0, pairs)
            if verdict is None:
                if any(parent not in status for parent, _ in t.conditions):
                    continue
            pending.remove(key)
            progressed = True
            ready = max([ends[p] for p, _ in t.conditions if p in ends] + [started]) + _ms(rng, 5, 60)
            if verdict is False or (canceled_at is not None and ready >= canceled_at):
                status[key] = BatchStatus.NOT_RUN
                ends[key] = ready
                results[key] = {"task_id": ids[key], "status": BatchStatus.NOT_RUN, "attempts": []}
                continue
            status[key], ends[key], results[key], stop = _run_task(
                t, ids[key], ready, fails.get(key, 0), cancel_at if key == cancel_key else None,
                rng, run_server, servers, spec.company, local_when)
            if stop is not None:
                canceled_at = stop
        if not progressed:  # conditions that can never settle: nothing more runs
            for key in pending:
                status[key] = BatchStatus.NOT_RUN
                results[key] = {"task_id": ids[key], "status": BatchStatus.NOT_RUN, "attempts": []}
            break
    ended = max([a["ended"] for r in results.values() for a in r["attempts"]] + [started]) + _ms(rng, 5, 40)
    run = {"scheduled": scheduled, "started": started, "ended": ended, "server": run_server,
           "tasks": [results[t.key] for t in spec.tasks]}
    if canceled_at is not None:
        run["status"] = BatchStatus.CANCELED
    return run


def _run_task(t: T, task_id: int, ready: datetime, failures: int, cancel_at: float | None, rng: random.Random,
              run_server: str, servers: list[str], company: str, when: datetime):
    """A task's attempts: `failures` failed ones (retried while retries last), then one that ends."""
    cls = demo_classes.DEMO_CLASSES[t.cls]
    params = validate_params(cls, t.params)
    attempts = []
    at = ready
    n = 0
    stop = None
    task_company = t.company or company
    while True:
        n += 1
        server = run_server if rng.random() < 0.7 else rng.choice(servers)
        seconds = rng.uniform(*cls.history_seconds)
        if n <= failures:
            plan = cls.failed_plan(rng, params, company=task_company, attempt=n, when=when)
        else:
            # The attempt that ends must not fail on its own (InventoryRecalculation's `failures`).
            number = max(n, params.get("failures", 0) + 1)
            plan = cls.plan(rng, params, company=task_company, attempt=number, when=when)
        if cancel_at is not None:
            stop_step = int(len(plan.lines) * cancel_at)
            end = at + timedelta(seconds=seconds * cancel_at)
            attempts.append({"status": BatchStatus.CANCELED, "started": at, "ended": end, "server": server,
                             "log": cls.transcript(plan, "canceled", stop_at=stop_step)})
            return BatchStatus.CANCELED, end, _result(task_id, attempts, BatchStatus.CANCELED), end
        if n <= failures:
            end = at + timedelta(seconds=seconds * (plan.fail_at + 1) / (len(plan.lines) + 1))
            attempts.append({"status": BatchStatus.ERROR, "started": at, "ended": end, "server": server,
                             "log": cls.transcript(plan, "error")})
            if n > t.max_retries:
                return BatchStatus.ERROR, end, _result(task_id, attempts, BatchStatus.ERROR), stop
            at = end + timedelta(seconds=retry_delay(n, 5.0)) + _ms(rng, 5, 300)
            continue
        end = at + timedelta(seconds=seconds)
        attempts.append({"status": BatchStatus.FINISHED, "started": at, "ended": end, "server": server,
                         "log": cls.transcript(plan, "ended")})
        return BatchStatus.FINISHED, end, _result(task_id, attempts, BatchStatus.FINISHED), stop


def _result(task_id: int, attempts: list[dict], status: BatchStatus) -> dict:
    return {"task_id": task_id, "status": status, "attempts": attempts}
