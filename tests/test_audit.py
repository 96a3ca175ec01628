"""The audit trail (issue 14): every operator change to a job is recorded in its own
transaction, refused changes leave nothing, the trail outlives the job, and on PostgreSQL
nobody writes an entry in another's name or rewrites the trail."""

from __future__ import annotations

import json
import os

import psycopg
import pytest

from batchtui import audit, jobs
from batchtui import models as m
from batchtui import status as st
from batchtui.actor import Actor
from batchtui.errors import Conflict, Refused, UserError
from batchtui.vocabulary import BatchStatus

from .faultkit import assert_one_error_line, run_cli
from .test_pg_identity import ALICE, BOB, as_role, import_job, shared_db, sql  # noqa: F401

OPS = Actor.of("ops")
BOSS = Actor.of("boss", managers=["boss"])


def _trail(job_id):
    return [(e["user"], e["action"], e["field"], e["old"], e["new"]) for e in audit.entries(job_id)]


def _every_change(job_id):
    """Every kind of operator change, through the services the console and the command line call."""
    job = st.get_job(job_id)
    jobs.update_job(job_id, actor=OPS, version=job.version, description="Close [b]books", priority="high")
    a = jobs.add_task(job_id, actor=OPS, description="Post", class_name="Noop", key="post")
    b = jobs.add_task(job_id, actor=OPS, description="Close", class_name="Noop", key="close")
    jobs.update_task(b.id, actor=OPS, version=b.version, max_retries=2, description="Close books")
    cond = jobs.add_condition(b.id, actor=OPS, parent_id=a.id, expected="error")
    jobs.delete_condition(cond.id, actor=OPS)
    jobs.set_recurrence(job_id, {"pattern": "days", "every": 1}, actor=OPS)
    jobs.set_alert(job_id, actor=OPS, alert_user="ops", error=True, popup=True)
    jobs.delete_task(a.id, actor=OPS)
    st.set_job_status(job_id, BatchStatus.WAITING, BOSS)
    st.run_now(job_id, OPS)
    for refused in (st.run_now, st.rerun_job):  # one is pending already; and it never ran: no entry
        with pytest.raises(Refused):
            refused(job_id, OPS)
    st.cancel_job(job_id, OPS)
    st.delete_job(job_id, OPS)


def _expected(job_id):
    return [
        ("ops", "created", None, None, "Close"),
        ("ops", "changed", "description", "Close", "Close [b]books"),
        ("ops", "changed", "priority", "normal", "high"),
        ("ops", "task_added", "post", None, {"description": "Post", "class": "Noop"}),
        ("ops", "task_added", "close", None, {"description": "Close", "class": "Noop"}),
        ("ops", "task_changed", "close.description", "Close", "Close books"),
        ("ops", "task_changed", "close.max_retries", 0, 2),
        ("ops", "condition_added", "close", None, {"task": "post", "status": "error"}),
        ("ops", "condition_deleted", "close", {"task": "post", "status": "error"}, None),
        ("ops", "recurrence", "recurrence", None, "Every day at 22:00, no end date"),
        ("ops", "alerts", "ops", None, ["error", "popup"]),
        ("ops", "task_deleted", "post", {"description": "Post", "class": "Noop"}, None),
        ("boss", "status", "status", "withhold", "waiting"),
        ("ops", "run_now", None, None, None),
        ("ops", "canceled", "status", "waiting", "canceled"),
        ("ops", "deleted", None, "Close [b]books", None),
    ]


@pytest.mark.parametrize("which", ["sqlite", "postgres"])
def test_every_change_is_recorded_once_and_the_trail_outlives_the_job(which, request):
    request.getfixturevalue("database" if which == "sqlite" else "pg_database")
    job = jobs.create_job(actor=OPS, description="Close", scheduled_start="2027-01-04T22:00:00", time_zone="UTC")
    _every_change(job.id)
    assert m.BatchJob.get_or_none(m.BatchJob.id == job.id) is None
    got = _trail(job.id)
    if which == "postgres":
        # The test's session is the database owner (a superuser): it acts as the client says, as elsewhere.
        assert {u for u, *_ in got} == {"ops", "boss"}
    assert got == _expected(job.id)
    stamps = [e["at"] for e in audit.entries(job.id)]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("which", ["sqlite", "postgres"])
def test_a_refused_change_leaves_no_entry(which, request):
    request.getfixturevalue("database" if which == "sqlite" else "pg_database")
    job = jobs.create_job(actor=OPS, description="Close", time_zone="UTC")
    task = jobs.add_task(job.id, actor=OPS, description="Post", class_name="Noop")
    before = _trail(job.id)
    with pytest.raises(UserError):  # validation
        jobs.update_job(job.id, actor=OPS, version=st.get_job(job.id).version, description="ok", priority="urgent")
    with pytest.raises(Conflict):  # a stale version: the compare-and-set refuses
        jobs.update_job(job.id, actor=OPS, version=1, description="stale")
    with pytest.raises(Conflict):
        jobs.update_task(task.id, actor=OPS, version=task.version + 5, description="stale")
    with pytest.raises(UserError):  # not the owner nor a manager
        st.set_job_status(job.id, BatchStatus.WAITING, Actor.of("mallory"))
    # The job is Executing (as a batch server leaves it): status, cancel-free edits and delete are refused.
    m.BatchJob.update(status=int(BatchStatus.EXECUTING)).where(m.BatchJob.id == job.id).execute()
    for attempt in (lambda: st.set_job_status(job.id, BatchStatus.HOLD, OPS), lambda: st.delete_job(job.id, OPS),
                    lambda: jobs.set_recurrence(job.id, {"pattern": "days"}, actor=OPS)):
        with pytest.raises(Refused):
            attempt()
    m.BatchJob.update(status=int(BatchStatus.HOLD)).where(m.BatchJob.id == job.id).execute()
    # An import whose second job is bad creates neither job, so neither "created" entry stays.
    newest = m.JobAudit.select().count()
    with pytest.raises(UserError, match="unknown batch group"):
        jobs.import_jobs([{"description": "good", "tasks": []},
                          {"description": "bad", "tasks": [{"key": "t", "description": "t", "class": "Noop",
                                                            "batch_group": "NOSUCH"}]}], actor=OPS)
    assert m.JobAudit.select().count() == newest
    assert _trail(job.id) == before
    # record() itself refuses to write outside a transaction or an action the contract does not list.
    with pytest.raises(RuntimeError):
        audit.record(OPS, job.id, "changed", "description", "a", "b")
    with pytest.raises(ValueError):
        with m.database.atomic():
            audit.record(OPS, job.id, "renamed")


def test_a_compare_and_set_that_loses_a_race_leaves_no_entry(pg_url, pg_database):
    """A delete that read the job Withhold, wrote its entry, and then found it Executing (a batch
    server's start committed meanwhile): refused, and its entry rolled back with it."""
    import threading
    import time

    job = jobs.create_job(actor=OPS, description="Close", time_zone="UTC")
    before = _trail(job.id)
    server = psycopg.connect(pg_url)  # a batch server's session: the job's row locked, then Executing
    server.execute("UPDATE batch_job SET status = %s WHERE id = %s", (int(BatchStatus.EXECUTING), job.id))
    outcome: list = []

    def delete():
        try:
            st.delete_job(job.id, OPS)
            outcome.append("deleted")
        except Refused as exc:
            outcome.append(exc)

    worker = threading.Thread(target=delete)
    worker.start()
    # The delete has read Withhold, written its entry, and waits for the row: seen in pg_stat_activity.
    with psycopg.connect(pg_url, autocommit=True) as watcher:
        for _ in range(400):
            waiting = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                      "AND wait_event_type = 'Lock'").fetchone()[0]
            if waiting:
                break
            time.sleep(0.025)
    assert waiting and not outcome
    server.commit()
    server.close()
    worker.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], Refused), outcome
    assert "changed status meanwhile" in str(outcome[0])
    assert _trail(job.id) == before
    assert m.BatchJob.get_or_none(m.BatchJob.id == job.id) is not None


def test_job_audit_on_the_command_line_also_for_a_deleted_job(db_url, database):
    job_file = json.dumps({"description": "Month-end [red]close", "tasks": [
        {"key": "a", "description": "A", "class": "Noop"}]}).encode()
    proc = run_cli(["job", "import", "-", "--json"], db_url, stdin=job_file)
    assert proc.returncode == 0, proc.stderr
    job_id = json.loads(proc.stdout)["jobs"][0]["id"]
    assert run_cli(["job", "copy", str(job_id)], db_url, user="ann").returncode == 0
    assert run_cli(["job", "set", str(job_id), "--priority", "low"], db_url).returncode == 0
    assert run_cli(["job", "delete", str(job_id)], db_url).returncode == 0
    proc = run_cli(["job", "audit", str(job_id), "--json"], db_url)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["user"], r["action"], r["field"], r["old"], r["new"]) for r in rows] == [
        ("ops", "created", None, None, "Month-end [red]close"),
        ("ops", "changed", "priority", "normal", "low"),
        ("ops", "deleted", None, "Month-end [red]close", None)]
    assert set(rows[0]) == {"at", "user", "action", "field", "old", "new"}
    copy = json.loads(run_cli(["job", "audit", str(job_id + 1), "--json"], db_url).stdout)
    assert [(r["user"], r["action"], r["field"], r["new"]) for r in copy] == [("ann", "created", "copy_of", job_id)]
    text = run_cli(["job", "audit", str(job_id)], db_url).stdout.decode()
    assert "deleted" in text and "Month-end [red]close" in text
    assert_one_error_line(run_cli(["job", "audit", "999"], db_url))
    assert_one_error_line(run_cli(["job", "audit", "9" * 25], db_url))
    assert_one_error_line(run_cli(["job", "audit", "x"], db_url))


def test_on_postgres_the_session_is_the_author_and_the_trail_is_insert_only(shared_db):  # noqa: F811
    job_id = import_job(shared_db, ALICE)
    assert as_role(shared_db, ALICE, ["job", "set", str(job_id), "--priority", "high"]).returncode == 0
    # bob may set his own alerts on alice's job (the Alerts dialog is per user), nothing else.
    assert sql(shared_db, BOB, "SELECT count(*) FROM batch_job") == [(1,)]
    from .test_pg_identity import _role_url  # noqa: PLC0415
    proc = as_role(shared_db, BOB, ["job", "status", str(job_id), "waiting"])
    assert_one_error_line(proc)
    url = _role_url(shared_db[0], BOB)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO job_alert (job_id, \"user\", ended, error, canceled, popup, email) "
                     "VALUES (%s, %s, true, false, false, true, false)", (job_id, BOB))
        conn.execute("INSERT INTO job_audit (job_id, at, \"user\", action, field, old, new) "
                     "VALUES (%s, now(), %s, 'alerts', %s, NULL, '[\"ended\"]')", (job_id, BOB, BOB))
        conn.execute("COMMIT")
    trail = json.loads(as_role(shared_db, ALICE, ["job", "audit", str(job_id), "--json"]).stdout)
    assert [(r["user"], r["action"], r["field"]) for r in trail] == [
        (ALICE, "created", None), (ALICE, "changed", "priority"), (BOB, "alerts", BOB)]
    # Forgeries by hand: in another's name, back-dated, for a job bob may not change, edits and deletes.
    (row,) = sql(shared_db, ALICE, "INSERT INTO job_audit (job_id, at, \"user\", action) VALUES "
                 "(%s, '2001-01-01', 'root', 'status') RETURNING \"user\", at", (job_id,))
    assert row[0] == ALICE and row[1].year > 2001
    for statement in (f"INSERT INTO job_audit (job_id, at, \"user\", action) VALUES ({job_id}, now(), 'x', 'status')",
                      "INSERT INTO job_audit (job_id, at, \"user\", action) VALUES (99999, now(), 'x', 'created')",
                      f"INSERT INTO job_audit (job_id, at, \"user\", action, field) VALUES ({job_id}, now(), 'x', "
                      f"'alerts', '{ALICE}')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sql(shared_db, BOB, statement)
    for role in (ALICE, BOB):
        for statement in ("UPDATE job_audit SET \"user\" = 'root'", "DELETE FROM job_audit",
                          "TRUNCATE job_audit"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                sql(shared_db, role, statement)
    assert sql(shared_db, "postgres", "SELECT count(*) FROM job_audit WHERE job_id = %s", (job_id,)) == [(4,)]
    # Deleted by its owner: the trail stays, readable by its id.
    assert as_role(shared_db, ALICE, ["job", "delete", str(job_id)]).returncode == 0
    trail = json.loads(as_role(shared_db, BOB, ["job", "audit", str(job_id), "--json"]).stdout)
    assert [(r["user"], r["action"]) for r in trail][-1] == (ALICE, "deleted")


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_the_console_records_its_changes_and_shows_the_trail_on_key_u(size, tmp_path, monkeypatch):
    os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
    from batchtui.ui.widgets.paged_grid import PagedGrid

    from .test_ui import grid_rows, make_app, seed_data, sync

    monkeypatch.setenv("BATCHTUI_USER", "ops")
    monkeypatch.setenv("BATCHTUI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("TZ", "UTC")
    from batchtui import db

    database = db.open_database(f"sqlite:///{tmp_path / 'ui.db'}")

    @sync
    async def run():
        seed_data()
        job = m.BatchJob.get(m.BatchJob.description == "Month-end close")
        app = make_app()
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            screen = app.screen
            screen.query_one("#jobs-grid").focus()
            while screen.job_id != job.id:
                await pilot.press("down")
                await pilot.pause()
            screen.query_one("#job-description").focus()
            await pilot.press("end", *" [b]2", "ctrl+s")
            await pilot.pause()
            assert st.get_job(job.id).description == "Month-end close [b]2"
            screen.query_one("#jobs-grid").focus()
            await pilot.press("u")
            await pilot.pause()
            audit_screen = app.screen
            assert type(audit_screen).__name__ == "AuditScreen"
            rows = grid_rows(audit_screen.query_one(PagedGrid))
            assert [r[2] for r in rows] == ["created", "task_added", "task_added", "condition_added", "recurrence",
                                            "changed"]
            assert rows[-1][1:4] == ["ops", "changed", "description"]
            await pilot.press("end")
            await pilot.pause()
            detail = str(audit_screen.query_one("#audit-detail").render())
            assert "New: Month-end close [b]2" in detail  # shown as typed, never as markup
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is screen

    try:
        run()
    finally:
        database.close()
