"""The USMF demo: the loader (counts, idempotent, reset, history) and the demo batch classes."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from batchtui import history, jobs
from batchtui import models as m
from batchtui import status as st
from batchtui.actor import Actor
from batchtui.classes import TaskCanceled, TaskContext, describe_class, get_class, validate_params
from batchtui.demo import COMPANIES, MARKER_JOB, describe_result, load_demo
from batchtui.demo.classes import DEMO_CLASSES, InventoryRecalculation
from batchtui.engine.store import served_groups
from batchtui.history import record_past_runs
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus as S

from .conftest import job_status, wait_for


def _forget_demo_classes():
    # Importing the demo registers its classes by name in this process; other
    # test modules expect the built-in classes only, so the registry is put
    # back after each test here (and after this module is collected).
    import batchtui.classes as registry

    with registry._lock:
        for name in DEMO_CLASSES:
            registry._registered.pop(name, None)
    registry.clear_cache()


_forget_demo_classes()


@pytest.fixture(autouse=True)
def demo_classes_known():
    from batchtui.demo import classes

    classes.register()
    yield
    _forget_demo_classes()

NOW = utcnow().replace(microsecond=0)
FINAL = (S.FINISHED, S.ERROR, S.CANCELED)
USER = "ops"  # BATCHTUI_USER in the fixtures


def job_by(description):
    return m.BatchJob.get(m.BatchJob.description == description)


def snapshot():
    """What the demo put in the database, without ids (they change on reset)."""
    jobs_ = sorted((j.description, j.company_id, j.status, j.created_by, j.run_count, j.scheduled_start,
                    j.recurrence_text) for j in m.BatchJob.select())
    runs = sorted(m.JobRun.select(m.BatchJob.description, m.JobRun.run_no, m.JobRun.status, m.JobRun.started,
                                  m.JobRun.ended, m.JobRun.server).join(m.BatchJob).tuples())
    logs = sorted(m.TaskAttempt.select(m.BatchJob.description, m.JobRun.run_no, m.BatchTask.key,
                                       m.TaskAttempt.attempt, m.TaskAttempt.status, m.TaskAttempt.log)
                  .join(m.JobRun).join(m.BatchJob).switch(m.TaskAttempt).join(m.BatchTask).tuples())
    return jobs_, runs, logs


# -- the loader ----------------------------------------------------------------------------


def test_load_demo_fills_companies_groups_servers_and_jobs_in_every_status(database):
    result = load_demo(now=NOW)
    assert result["loaded"] is True
    assert {c.id for c in m.Company.select()} >= {cid for cid, _ in COMPANIES}
    assert m.Company.get_by_id("USMF").name == "Contoso Entertainment System USA"
    assert {g.name for g in m.BatchGroup.select()} == {"", "FIN", "INV", "MRP", "WF"}
    assert {s.name for s in m.BatchServer.select()} == {"AOS1", "AOS2"}
    # The servers of the history are down; the Empty group is mapped to no server,
    # so the console's own batch server runs the live demo jobs.
    assert all(s.stopped is not None and s.heartbeat < NOW for s in m.BatchServer.select())
    assert not m.BatchGroupServer.select().where(m.BatchGroupServer.group == "").exists()
    assert served_groups("console") == [""]

    usmf = m.BatchJob.select().where(m.BatchJob.company == "USMF").count()
    assert 25 <= usmf <= 40 and result["jobs"] == m.BatchJob.select().count()
    statuses = {S(j.status) for j in m.BatchJob.select()}
    assert statuses == {S.HOLD, S.WAITING, S.ERROR, S.FINISHED, S.CANCELED}
    assert set(result["job_statuses"]) == {"withhold", "waiting", "error", "ended", "canceled"}
    task_statuses = {S(r.status) for r in m.RunTask.select()}
    assert {S.FINISHED, S.ERROR, S.NOT_RUN, S.CANCELED} <= task_statuses
    assert m.BatchJob.select().where(m.BatchJob.created_by == "Admin").exists()
    assert m.BatchJob.select().where(m.BatchJob.created_by == USER).exists()
    assert "Loaded the USMF demo data" in describe_result(result)


def test_recurring_jobs_wait_for_their_next_run_and_one_job_is_due_in_seconds(database):
    load_demo(now=NOW)
    for description, every in (("Subledger transfer to general ledger", 10), ("Workflow message processing", 5)):
        job = job_by(description)
        assert job.status == S.WAITING and job.recurrence is not None
        assert job.scheduled_start <= NOW + timedelta(minutes=every)
    nightly = job_by("Master planning - DynPlan (nightly)")
    assert nightly.recurrence_text.startswith("Every day at 22:00") and nightly.time_zone == "America/Chicago"
    close = job_by("Inventory close (monthly)")
    assert "last Friday" in close.recurrence_text
    assert m.BatchConstraint.select().join(m.BatchTask, on=(m.BatchConstraint.task == m.BatchTask.id)).where(
        m.BatchTask.job == close.id).count() >= 4
    first = m.BatchJob.select().where((m.BatchJob.status == S.WAITING) & (m.BatchJob.recurrence.is_null())).get()
    assert first.created_by == USER
    assert NOW < first.scheduled_start <= NOW + timedelta(seconds=30)
    # Every task of a Waiting job is in the Empty batch group: nothing waits on AOS1/AOS2.
    waiting = m.BatchJob.select(m.BatchJob.id).where(m.BatchJob.status == S.WAITING)
    assert {t.batch_group for t in m.BatchTask.select().where(m.BatchTask.job << waiting)} == {""}
    # Named groups appear in the other jobs.
    assert {t.batch_group for t in m.BatchTask.select()} >= {"", "FIN", "INV", "MRP", "WF"}


def test_load_demo_twice_changes_nothing(database):
    first = load_demo(now=NOW)
    before = snapshot()
    second = load_demo(now=NOW + timedelta(minutes=7))
    assert second["loaded"] is False
    assert {k: v for k, v in second.items() if k != "loaded"} == {k: v for k, v in first.items() if k != "loaded"}
    assert snapshot() == before
    descriptions = [j.description for j in m.BatchJob.select()]
    assert len(descriptions) == len(set(descriptions))
    assert "loaded already" in describe_result(second)


def test_reset_starts_over_without_leftovers(database):
    first = load_demo(now=NOW)
    before = snapshot()
    extra = jobs.create_job(actor=Actor.current(USER), description="my own job", company="DAT")
    jobs.add_task(extra.id, actor=Actor.current(USER), description="nap", class_name="Sleep", params={"seconds": 1})
    m.BatchGroup.create(name="OLD", description="a group of mine")
    m.BatchServer.create(name="gone", host="h", pid=1, threads=2, started=NOW, heartbeat=NOW - timedelta(hours=2))
    m.BatchServer.create(name="alive", host="h", pid=1, threads=2, started=utcnow(), heartbeat=utcnow())
    m.BatchGroup.create(name="LIVE")
    m.BatchGroupServer.create(group="LIVE", server="alive")

    again = load_demo(reset=True, now=NOW)
    assert again["loaded"] is True
    assert snapshot() == before
    assert not m.BatchJob.select().where(m.BatchJob.description == "my own job").exists()
    assert m.BatchGroup.get_or_none(m.BatchGroup.name == "OLD") is None
    assert m.BatchServer.get_or_none(m.BatchServer.name == "gone") is None
    # A batch server that is running keeps its row and the group it serves.
    assert m.BatchServer.get_or_none(m.BatchServer.name == "alive") is not None
    assert m.BatchGroupServer.select().where(m.BatchGroupServer.server == "alive").count() == 1
    assert again["jobs"] == first["jobs"] and again["runs"] == first["runs"]
    assert again["attempts"] == first["attempts"] and again["alerts"] == first["alerts"]
    orphans = m.TaskAttempt.select().where(m.TaskAttempt.task.not_in(m.BatchTask.select(m.BatchTask.id)))
    assert not orphans.exists()


def test_history_has_weeks_of_runs_with_attempts_logs_errors_and_retries(database):
    result = load_demo(now=NOW)
    assert result["runs"] > 1000 and result["attempts"] >= result["runs"]
    assert m.JobRun.select().where(m.JobRun.ended >= NOW).count() == 0
    oldest = m.JobRun.select().order_by(m.JobRun.started).first()
    assert oldest.started < NOW - timedelta(days=20)
    assert {a.server for a in m.TaskAttempt.select(m.TaskAttempt.server).distinct()} == {"AOS1", "AOS2"}
    assert not m.TaskAttempt.select().where(m.TaskAttempt.log == "").exists()

    hourly = job_by(MARKER_JOB)
    assert 480 <= hourly.run_count <= 510
    runs = history.job_history(hourly.id)
    assert "Posted invoice CIV-" in runs[0]["tasks"][0]["attempts"][0]["log"]
    errors = [r for r in runs if r["status"] == "error"]
    assert errors and "Error: " in errors[0]["tasks"][0]["attempts"][0]["log"]
    # The frequent jobs keep only days of history.
    assert job_by("Workflow message processing").run_count <= 300

    # A job that fails and is retried: attempts with errors, then success.
    weekly = history.job_history(job_by("Inventory recalculation (weekly, warehouse 24)").id)
    retried = [r for r in weekly if len(r["tasks"][0]["attempts"]) == 3]
    assert retried and retried[0]["status"] == "ended"
    attempts = retried[0]["tasks"][0]["attempts"]
    assert [a["status"] for a in attempts] == ["error", "error", "ended"]
    assert "negative physical inventory in warehouse 24" in attempts[0]["log"]
    assert retried[0]["tasks"][0]["retries_used"] == 2
    failed = job_by("Inventory recalculation - warehouse 24 (after counting)")
    assert failed.status == S.ERROR
    (run,) = history.job_history(failed.id)
    assert [a["status"] for a in run["tasks"][0]["attempts"]] == ["error"] * 3

    # Conditions in the monthly inventory close: a failed close runs the reversal, not the transfer.
    close_runs = history.job_history(job_by("Inventory close (monthly)").id)
    bad = [r for r in close_runs if r["status"] == "error"][0]
    by_key = {t["key"]: t["status"] for t in bad["tasks"]}
    assert by_key == {"recalc": "ended", "close": "error", "ledger": "didnt_run", "reverse": "ended",
                      "report": "ended"}

    canceled = history.job_history(job_by("Master planning - full regeneration (DynPlan)").id)
    assert canceled[0]["status"] == "canceled"
    assert [t["status"] for t in canceled[0]["tasks"]] == ["canceled", "didnt_run"]
    assert "Canceled by the operator" in canceled[0]["tasks"][0]["attempts"][0]["log"]

    # Alerts for the acting user, some of them pop-ups, the old ones read.
    alerts = list(m.Alert.select().where(m.Alert.user == USER))
    assert alerts and all(a.popup and a.mailed for a in alerts)
    assert {a.event for a in alerts} >= {"error", "ended", "canceled"}
    assert any(not a.read for a in alerts) and any(a.read for a in alerts)
    assert m.JobAlert.select().where(m.JobAlert.user == USER).count() >= 5


def test_job_export_of_a_demo_job_reads_back(database):
    load_demo(now=NOW)
    exported = jobs.export_job(job_by("Inventory close (monthly)").id)
    assert exported["status"] == "waiting" and exported["recurrence"]["nth"] == "last"
    assert exported["last_run"]["server"] in ("AOS1", "AOS2")
    keys = {t["key"]: t for t in exported["tasks"]}
    assert keys["report"]["condition_type"] == "any"
    assert {c["status"] for c in keys["reverse"]["conditions"]} == {"error"}


def test_load_writes_its_history_in_batches(database):
    """About 4,000 rows of past runs, attempts and their tasks go in a batch of rows a statement,
    not a row a statement (that was seconds). Counted, not timed: tests assert no wall clock."""
    statements: list[str] = []
    database.connection().set_trace_callback(statements.append)
    try:
        load_demo(now=NOW)
    finally:
        database.connection().set_trace_callback(None)
    history_rows = m.JobRun.select().count() + m.RunTask.select().count() + m.TaskAttempt.select().count()
    assert history_rows > 3000
    assert 100 < len(statements) < 1500  # 990 when written; a row a statement would be over 5,000


# -- running the demo with the real engine ---------------------------------------------------


def test_the_first_live_job_runs_retries_and_ends_with_an_alert(database, engine_factory):
    load_demo(now=utcnow())
    job = m.BatchJob.select().where((m.BatchJob.status == S.WAITING) & (m.BatchJob.recurrence.is_null())).get()
    # Make it quick: no waiting for its start, no seconds of work.
    for task in m.BatchTask.select().where(m.BatchTask.job == job.id):
        jobs.update_task(task.id, actor=Actor.current(USER), version=task.version, params={**task.params, "seconds": 0})
    job = st.get_job(job.id)  # each task change moved the job's version on
    jobs.update_job(job.id, actor=Actor.current(USER), version=job.version, scheduled_start=utcnow())
    engine_factory(name="console")
    wait_for(lambda: job_status(job.id) in FINAL, timeout=30)
    assert job_status(job.id) == S.FINISHED
    (run,) = [r for r in history.job_history(job.id)]
    tasks = {t["key"]: t for t in run["tasks"]}
    assert [a["status"] for a in tasks["recalc"]["attempts"]] == ["error", "ended"]
    assert ("InventoryRecalculation: 3 items have negative physical inventory in warehouse 24 "
            "(item 1000, 1001, D0001); post the counting journals and retry") in tasks["recalc"]["attempts"][0]["log"]
    assert "no longer negative" in tasks["recalc"]["attempts"][1]["log"]
    assert tasks["invoice"]["attempts"][0]["log"].count("Posted invoice CIV-") == 8
    assert "Subledger transfer done" in tasks["transfer"]["attempts"][0]["log"]
    assert all(t["status"] == "ended" for t in run["tasks"])
    alert = m.Alert.get((m.Alert.job == job.id) & (m.Alert.user == USER))
    assert alert.event == "ended" and alert.popup and not alert.read


def _job_with(tasks, description="demo classes"):
    job = jobs.create_job(actor=Actor.current(USER), description=description, company="USMF", status="withhold")
    ids = {}
    for key, class_name, params, retries in tasks:
        ids[key] = jobs.add_task(job.id, actor=Actor.current(USER), description=key, class_name=class_name,
                                 params=params, max_retries=retries, key=key).id
    st.set_job_status(job.id, S.WAITING, Actor.current(USER))
    return job.id, ids


def test_every_demo_class_runs_through_the_engine(database, engine_factory):
    tasks = []
    for name in DEMO_CLASSES:
        params = {"seconds": 0}
        if name == "InventoryRecalculation":
            params["failures"] = 0
        if name == "BatchHistoryCleanup":
            params["older_than_days"] = 365
        tasks.append((name, name, params, 0))
    job_id, ids = _job_with(tasks)
    engine_factory()
    wait_for(lambda: job_status(job_id) in FINAL, timeout=30)
    last = history.job_history(job_id)[0]
    assert {t["key"]: t["status"] for t in last["tasks"]} == {name: "ended" for name in DEMO_CLASSES}
    for t in last["tasks"]:
        log = t["attempts"][0]["log"]
        assert len(log.splitlines()) >= 2, (t["key"], log)
        assert "Error" not in log
    assert job_status(job_id) == S.FINISHED


def test_the_failing_class_explains_itself_in_the_log(database, engine_factory):
    job_id, ids = _job_with([
        ("recalc", "InventoryRecalculation", {"seconds": 0, "failures": 1, "warehouse": "24"}, 0),
        ("invoice", "SalesInvoicePosting", {"seconds": 0, "hold_customer": "US-027"}, 0),
    ])
    engine_factory()
    wait_for(lambda: job_status(job_id) in FINAL, timeout=30)
    assert job_status(job_id) == S.ERROR
    logs = {t["key"]: t["attempts"][0]["log"] for t in history.job_history(job_id)[0]["tasks"]}
    assert ("Error: InventoryRecalculation: 3 items have negative physical inventory in warehouse 24 "
            "(item 1000, 1001, D0001); post the counting journals and retry") in logs["recalc"]
    assert "customer US-027 (Birch Company) is on credit hold" in logs["invoice"]
    assert logs["invoice"].count("Posted invoice") == 2  # the two orders before the held customer's


# -- the classes on their own --------------------------------------------------------------


def _ctx(params, cls, **kw):
    seen = []
    ctx = TaskContext(params=validate_params(cls, params), company="USMF", job_id=1, task_id=2, run_id=3,
                      attempt=kw.pop("attempt", 1), run_by=kw.pop("run_by", USER), server="test",
                      progress_sink=lambda value, text: seen.append((value, text)), **kw)
    return ctx, seen


@pytest.mark.parametrize("name", sorted(DEMO_CLASSES))
def test_demo_classes_are_found_by_name_with_typed_parameters(name):
    cls = get_class(name)
    assert cls is DEMO_CLASSES[name]
    described = describe_class(cls)
    assert described["description"]
    params = {p["name"]: p for p in described["params"]}
    assert params["seconds"]["type"] == "number" and not params["seconds"]["required"]
    assert 0 <= params["seconds"]["default"] <= 6
    assert all(p["help"] for p in described["params"])
    assert get_class(f"batchtui.demo.classes:{name}") is cls


def test_progress_goes_up_to_done_and_the_log_is_meaningful():
    cls = get_class("SalesInvoicePosting")
    ctx, seen = _ctx({"seconds": 0, "orders": 4}, cls)
    cls().run(ctx)
    values = [v for v, _ in seen]
    assert values == sorted(values) and values[-1] == 1.0 and len(values) >= 5
    assert seen[1][1] == "Invoice 1 of 4"
    assert ctx.lines[0].startswith("Sales order invoicing for USMF")
    assert sum(line.startswith("Posted invoice CIV-") for line in ctx.lines) == 4
    assert "USD" in ctx.lines[1] and ctx.lines[-1].startswith("Sales order invoicing done: 4 invoices posted")


def test_a_demo_class_stops_promptly_when_canceled():
    cls = get_class("MasterPlanning")
    ctx, _ = _ctx({"seconds": 30}, cls)
    threading.Timer(0.2, ctx.cancel_event.set).start()
    start = time.monotonic()
    with pytest.raises(TaskCanceled):
        cls().run(ctx)
    assert time.monotonic() - start < 2
    assert ctx.lines[-1].startswith("Canceled by the operator after")


def test_inventory_recalculation_fails_on_its_first_attempts_then_ends():
    cls = InventoryRecalculation
    ctx, _ = _ctx({"seconds": 0, "failures": 2}, cls, attempt=2)
    with pytest.raises(Exception, match="negative physical inventory in warehouse 24"):
        cls().run(ctx)
    ctx, _ = _ctx({"seconds": 0, "failures": 2}, cls, attempt=3)
    cls().run(ctx)
    assert "no longer negative" in ctx.lines[2]


def test_batch_history_cleanup_really_deletes_old_history(database):
    load_demo(now=NOW)
    cls = get_class("BatchHistoryCleanup")
    mine = m.JobRun.select().join(m.BatchJob).where(m.BatchJob.created_by == USER)
    old = mine.where(m.JobRun.ended < utcnow() - timedelta(days=7)).count()
    others = m.JobRun.select().join(m.BatchJob).where(m.BatchJob.created_by != USER).count()
    assert old > 0
    ctx, _ = _ctx({"seconds": 0, "older_than_days": 7}, cls)
    cls().run(ctx)
    # The job runs as its Run-by user, who is no batch job manager here: their own jobs only.
    assert f"Deleted {old:,} runs" in "\n".join(ctx.lines)
    assert mine.where(m.JobRun.ended < utcnow() - timedelta(days=7)).count() == 0
    assert m.JobRun.select().join(m.BatchJob).where(m.BatchJob.created_by != USER).count() == others


# -- status.record_past_runs -------------------------------------------------------------------


def test_record_past_runs_refuses_runs_that_could_not_have_happened(database):
    job = jobs.create_job(actor=Actor.current(USER), description="history", company="USMF")
    task = jobs.add_task(job.id, actor=Actor.current(USER), description="a", class_name="Noop")
    t0 = utcnow() - timedelta(hours=1)

    def run(**changes):
        r = {"scheduled": t0, "started": t0, "ended": t0 + timedelta(minutes=1), "server": "AOS1",
             "tasks": [{"task_id": task.id, "status": S.FINISHED,
                        "attempts": [{"status": S.FINISHED, "started": t0, "ended": t0 + timedelta(seconds=30),
                                      "server": "AOS1", "log": "ok\n"}]}]}
        r.update(changes)
        return r

    with pytest.raises(ValueError, match="not Error"):
        record_past_runs(job.id, [run(status=S.ERROR)])
    with pytest.raises(ValueError, match="over by|now"):
        record_past_runs(job.id, [run(ended=utcnow() + timedelta(hours=1))])
    with pytest.raises(ValueError, match="cannot be Executing"):
        record_past_runs(job.id, [run(tasks=[{"task_id": task.id, "status": S.EXECUTING, "attempts": []}])])
    assert not m.JobRun.select().exists()
    (run_id,) = record_past_runs(job.id, [run()])
    job = m.BatchJob.get_by_id(job.id)
    assert (job.status, job.run_count, job.current_run) == (S.FINISHED, 1, run_id)
    assert m.BatchTask.get_by_id(task.id).status == S.FINISHED


@pytest.mark.postgres
def test_load_demo_idempotent_and_reset_on_postgres(pg_database):
    first = load_demo(now=NOW)
    assert first["loaded"] and first["runs"] > 1000
    assert set(first["job_statuses"]) == {"withhold", "waiting", "error", "ended", "canceled"}
    assert load_demo(now=NOW)["loaded"] is False
    again = load_demo(reset=True, now=NOW)
    assert {k: v for k, v in again.items()} == first
