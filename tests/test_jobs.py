"""The job service (batchtui.jobs) that the command line and the console share."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from batchtui import history, jobfile, jobs
from batchtui import models as m
from batchtui import status as st
from batchtui.actor import Actor
from batchtui.errors import Conflict, NotAllowed, NotFound, Refused, UserError
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus, ConditionStatus, ConditionType, Priority


@pytest.fixture
def svc(database):
    m.BatchGroup.get_or_create(name="Finance", defaults={"description": "Finance batch"})
    return database


def new_job(**kw):
    user = kw.pop("user", "ops")
    kw.setdefault("description", "Month-end close")
    return jobs.create_job(actor=Actor.current(user), **kw)


def set_status(job_id, status):
    """Stand in for the batch server: put a job in a status the service cannot set."""
    m.BatchJob.update(status=status).where(m.BatchJob.id == job_id).execute()


# -- jobs ---------------------------------------------------------------------------


def test_create_job_defaults(svc, monkeypatch):
    monkeypatch.setenv("TZ", "America/Chicago")
    before = utcnow()
    job = new_job()
    assert job.status == BatchStatus.HOLD and job.priority == Priority.NORMAL
    assert job.company_id == "DAT" and job.time_zone == "America/Chicago"
    assert job.created_by == job.run_by == "ops" and job.version == 1
    assert before <= job.scheduled_start <= utcnow()
    assert job.recurrence is None and job.recurrence_text == ""


def test_create_job_reads_start_in_its_zone_and_takes_waiting(svc):
    job = new_job(scheduled_start="2026-12-01T22:00:00", time_zone="America/Chicago", priority="critical",
                  status="waiting", company="USMF")
    assert job.scheduled_start == datetime(2026, 12, 2, 4, 0)
    assert job.status == BatchStatus.WAITING and job.priority == Priority.CRITICAL
    job = new_job(scheduled_start="2026-12-01T22:00:00+01:00", time_zone="America/Chicago")
    assert job.scheduled_start == datetime(2026, 12, 1, 21, 0)
    job = new_job(scheduled_start=datetime(2030, 1, 1, 12, 0))
    assert job.scheduled_start == datetime(2030, 1, 1, 12, 0)


def test_default_company_exists_on_a_fresh_database(db_url):
    from batchtui import db as dbmod

    d = dbmod.open_database(db_url)
    try:
        assert [c.id for c in m.Company.select()] == ["DAT"]
        job = new_job()
        assert job.company_id == "DAT"
        with pytest.raises(UserError, match="field company: unknown company 'USMF'"):
            new_job(company="USMF")
    finally:
        d.close()


@pytest.mark.parametrize("kw,fragment", [
    ({"description": ""}, "field description"),
    ({"description": "x" * 201}, "at most 200"),
    ({"description": "two\nlines"}, "one line"),
    ({"company": "NOPE"}, "unknown company 'NOPE'"),
    ({"priority": "urgent"}, "field priority"),
    ({"status": "ended"}, "field status"),
    ({"time_zone": "Nowhere/City"}, "field time_zone"),
    ({"scheduled_start": "someday"}, "field scheduled_start"),
])
def test_create_job_refuses_bad_values(svc, kw, fragment):
    with pytest.raises(UserError, match=fragment.replace("(", r"\(")):
        new_job(**kw)
    assert m.BatchJob.select().count() == 0


def test_update_job_checks_version_and_bumps_it(svc):
    job = new_job()
    updated = jobs.update_job(job.id, actor=Actor.current("ops"), version=1, description="Renamed", priority="high",
                              scheduled_start="2027-01-01T00:00:00", time_zone="UTC", company="USMF")
    assert updated.version == 2
    assert (updated.description, updated.priority, updated.company_id) == ("Renamed", Priority.HIGH, "USMF")
    assert updated.scheduled_start == datetime(2027, 1, 1)
    with pytest.raises(Conflict, match=f"job {job.id} was changed since you read it"):
        jobs.update_job(job.id, actor=Actor.current("ops"), version=1, description="Stale")
    assert st.get_job(job.id).description == "Renamed"
    # Only the fields given change.
    again = jobs.update_job(job.id, actor=Actor.current("ops"), version=2, priority="low")
    assert (again.description, again.priority, again.version) == ("Renamed", Priority.LOW, 3)


def test_update_job_permission_and_running(svc):
    job = new_job()
    with pytest.raises(NotAllowed):
        jobs.update_job(job.id, actor=Actor.current("eve"), version=1, description="Mine now")
    assert jobs.update_job(job.id, actor=Actor.current("boss"), version=1, description="By a manager").version == 2
    for status in (BatchStatus.EXECUTING, BatchStatus.CANCELLING):
        set_status(job.id, status)
        with pytest.raises(Refused, match=status.label):
            jobs.update_job(job.id, actor=Actor.current("ops"), version=2, description="While it runs")
    with pytest.raises(NotFound):
        jobs.update_job(999, actor=Actor.current("ops"), version=1, description="x")


def test_set_recurrence_sets_text_and_first_occurrence(svc):
    job = new_job(scheduled_start="2026-12-01T22:00:00", time_zone="America/Chicago")
    job = jobs.set_recurrence(job.id, {"pattern": "months", "nth": "last", "weekday": "fri",
                                       "end": {"after": 12}}, actor=Actor.current("ops"))
    assert job.recurrence["start"] == "2026-12-01T22:00:00" and job.recurrence["every"] == 1
    assert job.recurrence_text == "Every month on the last Friday at 22:00, 12 times"
    assert job.scheduled_start == datetime(2026, 12, 26, 4, 0)  # Fri 25 Dec 22:00 in Chicago
    assert job.version == 2
    with pytest.raises(UserError, match="field recurrence.every"):
        jobs.set_recurrence(job.id, {"pattern": "days", "every": 0}, actor=Actor.current("ops"))
    with pytest.raises(UserError, match="field recurrence.end.by"):
        jobs.set_recurrence(job.id, {"pattern": "days", "start": "2026-05-01T00:00:00",
                                     "end": {"by": "2026-04-01"}}, actor=Actor.current("ops"))
    job = jobs.set_recurrence(job.id, None, actor=Actor.current("ops"))
    assert job.recurrence is None and job.recurrence_text == ""


def test_set_alert_replaces_and_is_per_user(svc):
    job = new_job()
    jobs.set_alert(job.id, actor=Actor.current("ops"), alert_user="ops", error=True, popup=True)
    jobs.set_alert(job.id, actor=Actor.current("ops"), alert_user="ops", ended=True)
    rows = list(m.JobAlert.select().where(m.JobAlert.job == job.id))
    assert len(rows) == 1
    assert (rows[0].ended, rows[0].error, rows[0].popup) == (True, False, False)
    # Anyone may subscribe themselves; setting someone else's takes the right to manage the job.
    jobs.set_alert(job.id, actor=Actor.current("eve"), alert_user="eve", canceled=True)
    with pytest.raises(NotAllowed):
        jobs.set_alert(job.id, actor=Actor.current("eve"), alert_user="cfo", ended=True)
    jobs.set_alert(job.id, actor=Actor.current("ops"), alert_user="cfo", ended=True, email=True)
    assert m.JobAlert.select().where(m.JobAlert.job == job.id).count() == 3
    with pytest.raises(UserError, match="field alerts.error"):
        jobs.set_alert(job.id, actor=Actor.current("ops"), alert_user="ops", error="yes")


# -- tasks and conditions ----------------------------------------------------------


def test_add_task_takes_the_job_status_and_defaults(svc):
    job = new_job(company="USMF")
    task = jobs.add_task(job.id, actor=Actor.current("ops"), description="Post invoices", class_name="Sleep",
                         params={"seconds": 2})
    assert task.status == BatchStatus.HOLD and task.key == "Post invoices"
    assert (task.company_id, task.batch_group, task.ignore_failure, task.max_retries, task.condition_type) == (
        "USMF", "", False, 0, ConditionType.ALL)
    assert task.params == {"seconds": 2}
    st.set_job_status(job.id, BatchStatus.WAITING, Actor.current("ops"))
    second = jobs.add_task(job.id, actor=Actor.current("ops"), description="Post invoices", class_name="Noop",
                           batch_group="Finance", ignore_failure=True, max_retries=5, condition_type="any",
                           company="DAT")
    assert second.status == BatchStatus.WAITING
    assert second.key == "Post invoices (2)"  # keys stay unique within the job
    assert (second.batch_group, second.ignore_failure, second.max_retries, second.condition_type) == (
        "Finance", True, 5, ConditionType.ANY)
    with pytest.raises(UserError, match="field key"):
        jobs.add_task(job.id, actor=Actor.current("ops"), description="x", class_name="Noop", key="Post invoices")


@pytest.mark.parametrize("kw,fragment", [
    ({"class_name": "Nope"}, "field class: unknown class 'Nope'"),
    ({"class_name": "Sleep", "params": {"seconds": "2"}}, "field params.seconds"),
    ({"class_name": "Sleep", "params": {"minutes": 2}}, "field params.minutes"),
    ({"company": "NOPE"}, "field company"),
    ({"batch_group": "Nightly"}, "field batch_group"),
    ({"max_retries": 6}, "field max_retries"),
    ({"max_retries": -1}, "field max_retries"),
    ({"max_retries": True}, "field max_retries"),
    ({"ignore_failure": "no"}, "field ignore_failure"),
    ({"condition_type": "some"}, "field condition_type"),
    ({"description": " "}, "field description"),
])
def test_add_task_refuses_bad_values_naming_job_task_field(svc, kw, fragment):
    job = new_job()
    args = {"description": "close", "class_name": "Noop"}
    args.update(kw)
    with pytest.raises(UserError) as info:
        jobs.add_task(job.id, actor=Actor.current("ops"), **args)
    message = str(info.value)
    assert message.startswith(f"job {job.id} 'Month-end close'"), message
    assert fragment in message
    assert "\n" not in message
    assert m.BatchTask.select().count() == 0


def test_param_error_exposes_the_parameter(svc):
    job = new_job()
    with pytest.raises(UserError) as info:
        jobs.add_task(job.id, actor=Actor.current("ops"), description="t", class_name="Sleep", params={"seconds": "x"})
    assert info.value.param == "seconds" and info.value.field == "params.seconds"


def test_add_task_refused_while_running_or_for_others(svc):
    job = new_job()
    with pytest.raises(NotAllowed):
        jobs.add_task(job.id, actor=Actor.current("eve"), description="t", class_name="Noop")
    set_status(job.id, BatchStatus.EXECUTING)
    with pytest.raises(Refused, match="Executing"):
        jobs.add_task(job.id, actor=Actor.current("ops"), description="t", class_name="Noop")


def test_update_task_checks_version_and_validates(svc):
    job = new_job()
    task = jobs.add_task(job.id, actor=Actor.current("ops"), description="t", class_name="Sleep", params={"seconds": 1})
    updated = jobs.update_task(task.id, actor=Actor.current("ops"), version=1, description="Renamed", max_retries=3,
                               params={"seconds": 5}, condition_type="any", batch_group="Finance")
    assert updated.version == 2
    assert (updated.description, updated.max_retries, updated.params, updated.condition_type,
            updated.batch_group) == ("Renamed", 3, {"seconds": 5}, ConditionType.ANY, "Finance")
    assert updated.key == "t"  # the key is the task's identifier in job files: it stays
    with pytest.raises(Conflict, match=f"task {task.id} was changed since you read it"):
        jobs.update_task(task.id, actor=Actor.current("ops"), version=1, description="Stale")
    # Changing the class checks the kept parameters against the new class.
    with pytest.raises(UserError, match="field params.seconds"):
        jobs.update_task(task.id, actor=Actor.current("ops"), version=2, class_name="Noop")
    saved = jobs.update_task(task.id, actor=Actor.current("ops"), version=2, class_name="Noop", params={})
    assert saved.class_name == "Noop"
    with pytest.raises(UserError, match="field max_retries"):
        jobs.update_task(task.id, actor=Actor.current("ops"), version=3, max_retries=9)
    with pytest.raises(UserError, match="unknown field"):
        jobs.update_task(task.id, actor=Actor.current("ops"), version=3, colour="red")
    with pytest.raises(NotFound):
        jobs.update_task(999, actor=Actor.current("ops"), version=1, description="x")


def test_delete_task_takes_its_conditions(svc):
    job = new_job()
    a = jobs.add_task(job.id, actor=Actor.current("ops"), description="a", class_name="Noop")
    b = jobs.add_task(job.id, actor=Actor.current("ops"), description="b", class_name="Noop")
    jobs.add_condition(b.id, actor=Actor.current("ops"), parent_id=a.id)
    with pytest.raises(NotAllowed):
        jobs.delete_task(a.id, actor=Actor.current("eve"))
    jobs.delete_task(a.id, actor=Actor.current("ops"))
    assert m.BatchConstraint.select().count() == 0
    assert [t.key for t in m.BatchTask.select()] == ["b"]


def test_conditions_same_job_not_itself_no_cycle_no_duplicate(svc):
    job = new_job()
    a, b, c = (jobs.add_task(job.id, actor=Actor.current("ops"), description=k, class_name="Noop") for k in "abc")
    other = jobs.add_task(new_job(description="Other").id, actor=Actor.current("ops"), description="x",
                          class_name="Noop")
    row = jobs.add_condition(b.id, actor=Actor.current("ops"), parent_id=a.id, expected="ended_or_error")
    assert row.expected == ConditionStatus.ENDED_OR_ERROR
    jobs.add_condition(c.id, actor=Actor.current("ops"), parent_id=b.id)
    with pytest.raises(UserError, match="task 'b', field conditions.task: a task cannot depend on itself"):
        jobs.add_condition(b.id, actor=Actor.current("ops"), parent_id=b.id)
    with pytest.raises(UserError, match="cycle: 'a' -> 'c' -> 'b' -> 'a'"):
        jobs.add_condition(a.id, actor=Actor.current("ops"), parent_id=c.id)
    with pytest.raises(UserError, match="condition on task 'a' already"):
        jobs.add_condition(b.id, actor=Actor.current("ops"), parent_id=a.id)
    with pytest.raises(UserError, match=f"no task {other.id} in this job"):
        jobs.add_condition(b.id, actor=Actor.current("ops"), parent_id=other.id)
    with pytest.raises(UserError, match="field conditions.status"):
        jobs.add_condition(c.id, actor=Actor.current("ops"), parent_id=a.id, expected="done")
    assert m.BatchConstraint.select().count() == 2
    jobs.delete_condition(row.id, actor=Actor.current("ops"))
    assert m.BatchConstraint.select().count() == 1
    with pytest.raises(NotFound):
        jobs.delete_condition(row.id, actor=Actor.current("ops"))


# -- import, export, copy ------------------------------------------------------------


def test_import_jobs_returns_ids_and_accepts_text(svc):
    created = jobs.import_jobs('[{"description": "A", "tasks": [{"key": "k", "description": "K", '
                               '"class": "Noop"}]}, {"description": "B"}]', actor=Actor.current("ops"))
    assert [list(c) for c in created] == [["id", "tasks"], ["id", "tasks"]]
    assert created[1]["tasks"] == {}
    task = m.BatchTask.get_by_id(created[0]["tasks"]["k"])
    assert task.job_id == created[0]["id"] and task.status == BatchStatus.HOLD
    assert st.get_job(created[0]["id"]).created_by == "ops"


def test_import_is_whole_or_nothing(svc):
    data = [{"description": "A"}, {"description": "B"},
            {"description": "C", "tasks": [{"description": "t", "class": "Noop", "batch_group": "Nope"}]}]
    with pytest.raises(UserError, match="job 'C', task 't', field batch_group"):
        jobs.import_jobs(data, actor=Actor.current("ops"))
    assert m.BatchJob.select().count() == 0 and m.BatchTask.select().count() == 0


def test_copy_job_brings_everything_and_starts_withhold(svc):
    (created,) = jobs.import_jobs({
        "description": "Source", "status": "waiting", "priority": "high", "time_zone": "UTC",
        "scheduled_start": "2026-06-01T08:00:00",
        "recurrence": {"pattern": "days", "every": 2},
        "alerts": [{"user": "cfo", "error": True, "notify": True, "late": True}], "late_after": 120,
        "tasks": [{"key": "a", "description": "A", "class": "Noop", "time_limit": 5},
                  {"key": "b", "description": "B", "class": "Noop", "conditions": [{"task": "a", "status": "error"}]}],
    }, actor=Actor.current("ops"))
    copy = jobs.copy_job(created["id"], actor=Actor.current("eve"))
    assert copy.status == BatchStatus.HOLD and copy.created_by == copy.run_by == "eve"
    assert copy.description == "Source" and copy.priority == Priority.HIGH
    assert copy.scheduled_start == datetime(2026, 6, 1, 8) and copy.recurrence_text.startswith("Every 2 days")
    exported = jobs.export_job(copy.id)
    assert [t["status"] for t in exported["tasks"]] == ["withhold", "withhold"]
    assert exported["tasks"][1]["conditions"] == [{"task": "a", "status": "error"}]
    assert exported["alerts"] == [{"user": "cfo", "ended": False, "error": True, "canceled": False,
                                   "popup": False, "email": False, "notify": True, "late": True}]
    assert exported["late_after"] == 120 and [t["time_limit"] for t in exported["tasks"]] == [5, None]
    moved = jobs.copy_job(created["id"], actor=Actor.current("ops"), description="Moved", start="2026-07-01T09:30:00")
    assert moved.scheduled_start == datetime(2026, 7, 1, 9, 30)
    assert moved.recurrence["start"] == "2026-07-01T09:30:00"
    with pytest.raises(NotFound):
        jobs.copy_job(999, actor=Actor.current("ops"))


def test_export_reports_last_run_and_retries(svc):
    (created,) = jobs.import_jobs({"description": "J", "time_zone": "UTC",
                                   "tasks": [{"key": "a", "description": "A", "class": "Noop"}]},
                                  actor=Actor.current("ops"))
    job_id, task_id = created["id"], created["tasks"]["a"]
    t0 = datetime(2026, 3, 1, 12, 0, 0, 4000)
    run = m.JobRun.create(job=job_id, run_no=1, scheduled=t0.replace(microsecond=0), started=t0,
                          ended=t0 + timedelta(seconds=2), status=BatchStatus.ERROR, server="AOS1")
    m.BatchTask.update(status=BatchStatus.FINISHED, retries_used=1).where(m.BatchTask.id == task_id).execute()
    m.RunTask.create(run=run, task=task_id, status=BatchStatus.FINISHED, retries_used=1)
    m.TaskAttempt.create(run=run, task=task_id, attempt=2, status=BatchStatus.FINISHED, started=t0, ended=t0,
                         server="AOS1", log="second")
    m.TaskAttempt.create(run=run, task=task_id, attempt=1, status=BatchStatus.ERROR, started=t0, ended=t0,
                         server="AOS1", log="first")
    exported = jobs.export_job(job_id)
    assert exported["last_run"] == {"run": 1, "status": "error", "scheduled": "2026-03-01T12:00:00+00:00",
                                    "started": "2026-03-01T12:00:00.004+00:00",
                                    "ended": "2026-03-01T12:00:02.004+00:00", "server": "AOS1"}
    assert exported["tasks"][0]["status"] == "ended" and exported["tasks"][0]["retries_used"] == 1

    (hist,) = history.job_history(job_id)
    assert hist["run"] == 1 and hist["status"] == "error" and hist["server"] == "AOS1"
    (task,) = hist["tasks"]
    assert (task["id"], task["key"], task["description"], task["status"]) == (task_id, "a", "A", "ended")
    assert [a["attempt"] for a in task["attempts"]] == [1, 2]
    assert [a["log"] for a in task["attempts"]] == ["first", "second"]
    assert set(task["attempts"][0]) == {"attempt", "status", "started", "ended", "server", "log"}


def test_history_newest_first_and_task_without_attempts(svc):
    (created,) = jobs.import_jobs({"description": "J", "time_zone": "UTC",
                                   "tasks": [{"key": "a", "description": "A", "class": "Noop"}]},
                                  actor=Actor.current("ops"))
    job_id, task_id = created["id"], created["tasks"]["a"]
    now = utcnow()
    for n in (1, 2):
        run = m.JobRun.create(job=job_id, run_no=n, scheduled=now, started=now, ended=now,
                              status=BatchStatus.FINISHED, server="S")
        m.RunTask.create(run=run, task=task_id, status=BatchStatus.NOT_RUN)
    runs = history.job_history(job_id)
    assert [r["run"] for r in runs] == [2, 1]
    assert runs[0]["tasks"][0]["attempts"] == [] and runs[0]["tasks"][0]["status"] == "didnt_run"


def test_list_jobs(svc):
    a = new_job(description="A", time_zone="UTC", scheduled_start="2026-01-01T00:00:00")
    new_job(description="B", status="waiting")
    rows = jobs.list_jobs()
    assert [r["description"] for r in rows] == ["A", "B"]
    assert rows[0] == {"id": a.id, "status": "withhold", "scheduled_start": "2026-01-01T00:00:00+00:00",
                       "description": "A", "company": "DAT", "created_by": "ops", "next_run": None,
                       "last_run_status": None}
    assert [r["description"] for r in jobs.list_jobs(status="waiting")] == ["B"]
    assert [r["description"] for r in jobs.list_jobs(status=BatchStatus.HOLD)] == ["A"]
    with pytest.raises(UserError):
        jobs.list_jobs(status="sleeping")


def test_cleanup_history_filters(svc):
    a = new_job(description="A")
    b = new_job(description="B", company="USMF", user="eve")
    old, recent = utcnow() - timedelta(days=10), utcnow() - timedelta(hours=1)
    for job, n, status, ended in ((a, 1, BatchStatus.FINISHED, old), (a, 2, BatchStatus.ERROR, old),
                                  (a, 3, BatchStatus.FINISHED, recent), (b, 1, BatchStatus.CANCELED, old)):
        m.JobRun.create(job=job.id, run_no=n, scheduled=ended, started=ended, ended=ended, status=status)
    running = m.JobRun.create(job=a.id, run_no=4, scheduled=old, started=old, ended=None,
                              status=BatchStatus.EXECUTING)
    assert history.cleanup_history(older_than_days=5, statuses=["error"]) == 1
    assert history.cleanup_history(older_than_days=5, company="USMF") == 1
    assert history.cleanup_history(older_than_days=5, user="ops") == 1
    assert history.cleanup_history(older_than_days=0) == 1
    assert list(m.JobRun.select()) == [running]  # a run not over is never deleted
    with pytest.raises(UserError, match="field status"):
        history.cleanup_history(older_than_days=1, statuses=["executing"])
    with pytest.raises(UserError, match="older_than"):
        history.cleanup_history(older_than_days=-1)
    with pytest.raises(NotAllowed):
        history.cleanup_history(older_than_days=1, user="ops", actor=Actor.current("eve"))


# -- the job file parser on its own --------------------------------------------------------


def test_jobfile_refuses_duplicate_keys_and_nan():
    with pytest.raises(UserError, match="appears twice"):
        jobfile.load_text('{"description": "a", "description": "b"}')
    with pytest.raises(UserError, match="NaN"):
        jobfile.load_text('{"description": "a", "priority": NaN}')
    with pytest.raises(UserError, match="empty list"):
        jobfile.parse_jobs([])


def test_jobfile_messages_are_one_line_for_any_description():
    with pytest.raises(UserError) as info:
        jobfile.parse_jobs({"description": "x", "tasks": [{"key": "a\x1b[31m", "description": "d",
                                                            "class": "Noop"}]})
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)


def test_set_recurrence_on_a_job_that_ran_skips_past_occurrences(svc):
    job = new_job(scheduled_start="2020-01-01T06:00:00", time_zone="UTC")
    fresh = jobs.set_recurrence(job.id, {"pattern": "days"}, actor=Actor.current("ops"))
    assert fresh.scheduled_start == datetime(2020, 1, 1, 6)  # never ran: due at once, as in the ERP
    m.BatchJob.update(run_count=1).where(m.BatchJob.id == job.id).execute()
    ran = jobs.set_recurrence(job.id, {"pattern": "days", "start": "2020-01-01T06:00:00"}, actor=Actor.current("ops"))
    now = utcnow()
    assert now < ran.scheduled_start <= now + timedelta(days=1)
    assert (ran.scheduled_start.hour, ran.scheduled_start.minute) == (6, 0)
