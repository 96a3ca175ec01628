"""Beyond the ERP (issue 14): time limits, late alerts, run now, rerun from the failed tasks.

The real batch server threads on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from batchtui import history, jobs
from batchtui import models as m
from batchtui import status as st
from batchtui.actor import Actor
from batchtui.errors import NotAllowed, Refused
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus as S

from .conftest import job_status, make_job, task_statuses, wait_for
from .faultkit import shared_folder
from .test_faults import RUN_BY, _running

FINAL = (S.FINISHED, S.ERROR, S.CANCELED)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engines(request):
    """A factory of real batch server threads on SQLite or PostgreSQL."""
    name = "engine_factory" if request.param == "sqlite" else "pg_engine_factory"
    return request.getfixturevalue(name)


def attempts(task_id):
    return list(m.TaskAttempt.select().where(m.TaskAttempt.task == task_id).order_by(m.TaskAttempt.attempt))


# -- time limit per task --------------------------------------------------------------------


def test_a_time_limit_stops_that_attempt_its_process_group_and_no_other(engines):
    folder = shared_folder()
    try:
        pidfile = os.path.join(folder, "grandchild")
        # The shell starts a shell that starts sleep: the grandchild's pid goes to the file.
        hang = f"sh -c 'sleep 30 & echo $! > {pidfile}; wait'"
        job_id, ids = make_job([
            {"key": "hang", "class_name": "ShellCommand", "params": {"command": hang}, "max_retries": 1},
            {"key": "py", "class_name": "Sleep", "params": {"seconds": 30}},
            {"key": "sibling", "class_name": "Sleep", "params": {"seconds": 4}},
        ], user=RUN_BY)
        m.BatchTask.update(time_limit=1).where(m.BatchTask.id.in_([ids["hang"], ids["py"]])).execute()
        engines(threads=4)
        wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip())
        grandchild = int(open(pidfile).read())
        wait_for(lambda: len(attempts(ids["hang"])) == 2)
        # The first attempt was stopped, its process group with it, and its retry runs.
        first = attempts(ids["hang"])[0]
        assert first.status == S.ERROR and "time limit of 1 s exceeded" in first.log, first.log
        wait_for(lambda: not _running(grandchild), timeout=10)
        wait_for(lambda: job_status(job_id) in FINAL, timeout=30)
        hang_attempts = attempts(ids["hang"])
        assert [a.status for a in hang_attempts] == [S.ERROR, S.ERROR]
        assert all("time limit of 1 s exceeded" in a.log for a in hang_attempts)
        (py,) = attempts(ids["py"])
        assert py.status == S.ERROR and "time limit of 1 s exceeded" in py.log
        # The sibling, with no limit, ran to its end.
        (sib,) = attempts(ids["sibling"])
        assert sib.status == S.FINISHED and "time limit" not in sib.log
        assert task_statuses(ids) == {"hang": S.ERROR, "py": S.ERROR, "sibling": S.FINISHED}
        assert job_status(job_id) == S.ERROR
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- run now ----------------------------------------------------------------------------------


def _import(job: dict) -> tuple[int, dict[str, int]]:
    (created,) = jobs.import_jobs(job, actor=OPS())
    return created["id"], created["tasks"]


def OPS():  # noqa: N802  (reads as the user it is)
    return Actor.current("ops")


def runs_of(job_id):
    return list(m.JobRun.select().where(m.JobRun.job == job_id).order_by(m.JobRun.run_no))


def test_run_now_leaves_the_recurrence_and_the_status_as_they_were(engines):
    tomorrow = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    recurring, _ = _import({"description": "daily", "status": "waiting", "time_zone": "UTC",
                            "scheduled_start": tomorrow.isoformat() + "+00:00",
                            "recurrence": {"pattern": "days", "every": 1},
                            "tasks": [{"key": "a", "description": "a", "class": "Noop"}]})
    held, _ = _import({"description": "held", "status": "withhold", "time_zone": "UTC",
                       "scheduled_start": tomorrow.isoformat() + "+00:00",
                       "recurrence": {"pattern": "days", "every": 1},
                       "tasks": [{"key": "a", "description": "a", "class": "Noop"}]})
    before = {j: (m.BatchJob.get_by_id(j).scheduled_start, m.BatchJob.get_by_id(j).recurrence_runs)
              for j in (recurring, held)}
    engines()
    st.run_now(recurring, OPS())
    st.run_now(held, OPS())
    wait_for(lambda: all(len(runs_of(j)) == 1 and runs_of(j)[0].ended is not None for j in (recurring, held)))
    wait_for(lambda: job_status(recurring) == S.WAITING and job_status(held) == S.HOLD)
    for j in (recurring, held):
        job = m.BatchJob.get_by_id(j)
        assert (job.scheduled_start, job.recurrence_runs) == before[j]
        assert job.run_request is None
        (run,) = runs_of(j)
        assert (run.status, run.requested) == (S.FINISHED, "run")


def test_run_now_is_refused_while_the_job_runs_and_once_pending(engines):
    job_id, ids = make_job([{"key": "a", "class_name": "Sleep", "params": {"seconds": 30}}], status=S.HOLD)
    st.run_now(job_id, OPS())
    with pytest.raises(Refused, match="requested already"):
        st.run_now(job_id, OPS())
    engines()
    wait_for(lambda: task_statuses(ids)["a"] == S.EXECUTING)
    with pytest.raises(Refused, match=f"job {job_id} is Executing"):
        st.run_now(job_id, OPS())
    with pytest.raises(Refused, match=f"job {job_id} is Executing"):
        st.rerun_job(job_id, OPS())
    st.cancel_job(job_id, OPS())
    wait_for(lambda: job_status(job_id) == S.HOLD)  # a run now of a Withhold job: back in Withhold
    assert [r.status for r in runs_of(job_id)] == [S.CANCELED]


# -- rerun from the failed tasks ---------------------------------------------------------------


def test_a_rerun_keeps_the_tasks_that_ended_and_runs_the_others_against_them(engines):
    job_id, ids = make_job([
        {"key": "a"},
        {"key": "b", "class_name": "Fail", "params": {"message": "boom"}},
        {"key": "c", "conditions": [("a", "ended")]},
        {"key": "d", "conditions": [("b", "ended")]},
        {"key": "e", "conditions": [("a", "error")]},
    ], status=S.HOLD)
    with pytest.raises(Refused, match="has not run yet"):
        st.rerun_job(job_id, OPS())
    engines()
    st.run_now(job_id, OPS())
    wait_for(lambda: len(runs_of(job_id)) == 1 and runs_of(job_id)[0].ended is not None)
    assert task_statuses(ids) == {"a": S.FINISHED, "b": S.ERROR, "c": S.FINISHED, "d": S.NOT_RUN, "e": S.NOT_RUN}
    m.BatchTask.update(class_name="Noop", params={}).where(m.BatchTask.id == ids["b"]).execute()
    st.rerun_job(job_id, OPS())
    wait_for(lambda: len(runs_of(job_id)) == 2 and runs_of(job_id)[1].ended is not None)
    first, second = runs_of(job_id)
    assert (first.status, second.status, second.requested) == (S.ERROR, S.FINISHED, "rerun")
    assert task_statuses(ids) == {"a": S.FINISHED, "b": S.FINISHED, "c": S.FINISHED, "d": S.FINISHED,
                                  "e": S.NOT_RUN}
    # The kept tasks made no new attempt; the others ran (e's condition on a kept task is dead).
    assert {k: len(attempts(t)) for k, t in ids.items()} == {"a": 1, "b": 2, "c": 1, "d": 1, "e": 0}
    (newest, older) = history.job_history(job_id)
    assert {t["key"]: t["kept"] for t in newest["tasks"]} == {"a": True, "b": False, "c": True, "d": False,
                                                              "e": False}
    assert {t["key"]: (t["status"], len(t["attempts"])) for t in newest["tasks"] if t["kept"]} == {
        "a": ("ended", 0), "c": ("ended", 0)}
    assert not any(t["kept"] for t in older["tasks"])
    exported = {t["key"]: t["kept"] for t in jobs.export_job(job_id)["tasks"]}
    assert exported == {"a": True, "b": False, "c": True, "d": False, "e": False}
    assert job_status(job_id) == S.HOLD
    with pytest.raises(Refused, match="ended Ended; a rerun is for a run that ended Error or Canceled"):
        st.rerun_job(job_id, OPS())


def _rerun_at_a_barrier(job_id: int) -> list[str]:
    """Two operators' threads ask for a rerun of the job at the same moment: what each got."""
    barrier = threading.Barrier(2)
    results: list[str] = []

    def operator():
        with m.database.connection_context():
            barrier.wait()
            try:
                st.rerun_job(job_id, OPS())
                results.append("rerun")
            except Refused as exc:
                results.append(f"refused: {exc}")

    threads = [threading.Thread(target=operator) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.postgres
def test_two_operators_asking_for_a_rerun_at_once_get_one_and_two_servers_start_it_once(pg_engine_factory):
    job_id, ids = make_job([{"key": "ok"}, {"key": "bad", "class_name": "Fail", "params": {"message": "x"}}],
                           status=S.HOLD)
    pg_engine_factory(poll=0.05)
    pg_engine_factory(poll=0.05)
    st.run_now(job_id, OPS())
    wait_for(lambda: len(runs_of(job_id)) == 1 and runs_of(job_id)[0].ended is not None)
    for round_no in range(2, 6):
        results = _rerun_at_a_barrier(job_id)
        assert len(results) == 2 and results.count("rerun") == 1, results
        wait_for(lambda: len(runs_of(job_id)) == round_no and runs_of(job_id)[-1].ended is not None)  # noqa: B023
        time.sleep(0.3)  # two servers polling: neither starts a second run for the one request
        assert len(runs_of(job_id)) == round_no
    assert len(attempts(ids["ok"])) == 1 and len(attempts(ids["bad"])) == 5


# -- late alerts ----------------------------------------------------------------------------------


def test_a_late_run_raises_one_late_alert_per_user_across_two_servers(engines):
    late, _ = _import({"description": "slow [b]close[/b]", "status": "waiting", "late_after": 1,
                       "alerts": [{"user": "ops", "late": True, "popup": True},
                                  {"user": "boss", "late": True, "error": True, "email": False},
                                  {"user": "carol", "ended": True, "popup": True}],
                       "tasks": [{"key": "a", "description": "a", "class": "Sleep", "params": {"seconds": 3}}]})
    on_time, _ = _import({"description": "quick", "status": "waiting", "late_after": 30,
                          "alerts": [{"user": "ops", "late": True, "popup": True}],
                          "tasks": [{"key": "a", "description": "a", "class": "Noop"}]})
    engines(poll=0.05)
    engines(poll=0.05)
    wait_for(lambda: job_status(late) in FINAL and job_status(on_time) in FINAL)
    rows = list(m.Alert.select().where(m.Alert.event == "late").order_by(m.Alert.user))
    assert [(a.user, a.job_id, a.popup) for a in rows] == [("boss", late, False), ("ops", late, True)]
    assert "is late" in rows[0].message and "[b]close[/b]" in rows[0].message
    (run,) = runs_of(late)
    assert run.late_alerted and rows[0].run_id == run.id
    assert not runs_of(on_time)[0].late_alerted
    # carol asked for Ended only: her alert is the end's, not a late one.
    assert [a.event for a in m.Alert.select().where(m.Alert.user == "carol")] == ["ended"]


# -- the command line -------------------------------------------------------------------------------


def test_the_command_line_runs_now_reruns_and_refuses_in_one_line(capsys, monkeypatch, tmp_path, database):
    from .test_cli import run

    database.close()
    job = {"description": "cli", "status": "withhold", "late_after": 0.3,
           "alerts": [{"user": "ops", "late": True}],
           "tasks": [{"key": "slow", "description": "slow", "class": "Sleep", "params": {"seconds": 2.5},
                      "time_limit": 30},
                     {"key": "bad", "description": "bad", "class": "Fail", "params": {"message": "no"}}]}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    code, out, err = run(capsys, "job", "import", str(path), "--json")
    assert code == 0, err
    job_id = json.loads(out)["jobs"][0]["id"]
    for bad in (0, -1, "x", 10**12):
        path.write_text(json.dumps({**job, "tasks": [{**job["tasks"][0], "time_limit": bad}]}))
        code, out, err = run(capsys, "job", "import", str(path))
        assert (code, len(err)) == (2, 1) and "field time_limit" in err[0], err
        path.write_text(json.dumps({**job, "late_after": bad}))
        code, out, err = run(capsys, "job", "import", str(path))
        assert (code, len(err)) == (2, 1) and "field late_after" in err[0], err
    code, out, err = run(capsys, "job", "rerun", str(job_id))
    assert (code, err) == (2, [f"batchtui: error: job {job_id} has not run yet: there is no run to rerun"])
    code, out, err = run(capsys, "job", "run", str(job_id), "--json")
    assert code == 0 and json.loads(out) == {"id": job_id, "status": "withhold", "requested": "run"}
    # `server --exit-when-idle` counts the request as due work: it runs it, then exits.
    code, out, err = run(capsys, "server", "--exit-when-idle", "--poll", "0.1", "--name", "cli-idle")
    assert code == 0, err
    exported = json.loads(run(capsys, "job", "export", str(job_id))[1])
    assert exported["status"] == "withhold" and exported["last_run"]["status"] == "error"
    assert exported["late_after"] == 0.3 and exported["tasks"][0]["time_limit"] == 30
    assert exported["alerts"][0]["late"] is True
    alerts = json.loads(run(capsys, "alerts", "--json")[1])
    assert [a["event"] for a in alerts] == ["late"]
    code, out, err = run(capsys, "job", "rerun", str(job_id))
    assert code == 0, err
    code, out, err = run(capsys, "job", "rerun", str(job_id))
    assert (code, len(err)) == (2, 1) and "requested already" in err[0]
    code, out, err = run(capsys, "server", "--exit-when-idle", "--poll", "0.1", "--name", "cli-idle")
    assert code == 0, err
    newest = json.loads(run(capsys, "job", "history", str(job_id), "--json")[1])[0]
    assert newest["requested"] == "rerun"
    assert {t["key"]: (t["kept"], len(t["attempts"])) for t in newest["tasks"]} == {"slow": (True, 0),
                                                                                     "bad": (False, 1)}
    assert "(kept: ended in the run before; not run again)" in run(capsys, "job", "history", str(job_id))[1]
    # What export printed imports as a new job (kept and the run-time fields ignored).
    path.write_text(run(capsys, "job", "export", str(job_id))[1])
    code, out, err = run(capsys, "job", "import", str(path), "--json")
    assert code == 0, err


def test_a_cancel_drops_a_pending_run_now(engines):
    job_id, ids = make_job([{"key": "a"}], status=S.WAITING, start=utcnow() + timedelta(days=1))
    st.run_now(job_id, OPS())
    st.cancel_job(job_id, OPS())
    engines()
    time.sleep(0.5)  # a server that polls sees no request
    assert m.BatchJob.get_by_id(job_id).run_request is None and not runs_of(job_id)
    assert job_status(job_id) == S.CANCELED


def test_the_demo_has_a_time_limit_on_a_task_that_hangs_and_a_late_alert_on_master_planning(database):
    from batchtui.demo import load_demo

    load_demo()
    planning = m.BatchJob.get(m.BatchJob.description == "Master planning - DynPlan (nightly)")
    assert planning.late_after and m.JobAlert.get(m.JobAlert.job == planning.id).late
    hangs = m.BatchTask.get(m.BatchTask.time_limit.is_null(False))
    assert hangs.params["seconds"] > 10 * hangs.time_limit and hangs.max_retries == 1


def test_a_killed_server_s_time_limited_attempt_is_taken_back_and_its_retry_has_the_limit(database, db_url):
    job_id, ids = make_job([{"key": "hang", "class_name": "Sleep", "params": {"seconds": 60}, "max_retries": 1}])
    m.BatchTask.update(time_limit=3).where(m.BatchTask.id == ids["hang"]).execute()
    env = dict(os.environ, BATCHTUI_DB=db_url)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from batchtui import db; db.open_database();"
         "from batchtui.engine import serve; serve(name='aos1', poll=0.1, retry_base=0)"],
        env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: task_statuses(ids)["hang"] == S.EXECUTING)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    from batchtui.engine import BatchServerEngine

    engine = BatchServerEngine(name="aos1", retry_base=0, poll=0.1)
    engine.start()
    try:
        wait_for(lambda: job_status(job_id) in FINAL, timeout=30)
        first, second = attempts(ids["hang"])
        assert first.status == S.ERROR and "aos1 restarted" in first.log and "time limit" not in first.log
        assert second.status == S.ERROR and "time limit of 3 s exceeded" in second.log
    finally:
        engine.stop(grace=1)


def test_only_the_owner_or_a_manager_may_run_now_or_rerun(database):
    job_id, _ = make_job([{"key": "a"}], status=S.HOLD)
    for service in (st.run_now, st.rerun_job):
        with pytest.raises(NotAllowed):
            service(job_id, Actor.current("mallory"))
    assert m.BatchJob.get_by_id(job_id).run_request is None
    st.run_now(job_id, Actor.current("boss"))  # the batch job manager of the test config
    assert m.BatchJob.get_by_id(job_id).run_request == "run"


def test_a_late_alert_that_asks_for_e_mail_is_mailed_once(database, db_url, tmp_path):
    from .smtpsink import SmtpSink
    from .test_security import MAIL_CONFIG, ROOT, env_for

    job_id, _ = _import({"description": "slow close", "status": "waiting", "late_after": 0.5,
                         "alerts": [{"user": "ops", "late": True, "email": True}],
                         "tasks": [{"key": "a", "description": "a", "class": "Sleep", "params": {"seconds": 3}}]})
    database.close()
    with SmtpSink() as sink:
        config = tmp_path / "mail.toml"
        config.write_text(MAIL_CONFIG.format(port=sink.port))
        server = subprocess.Popen([sys.executable, "-m", "batchtui", "server", "--name", "MAILER", "--poll", "0.1"],
                                  env=env_for(db_url, BATCHTUI_CONFIG=str(config)), cwd=str(ROOT),
                                  stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: job_status(job_id) in FINAL and sink.recipients(), timeout=30)
            time.sleep(1.5)  # what else it would send, it has sent by now
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        assert sink.recipients() == ["ops@example.com"]
        assert "is late" in str(sink.messages[0][1])
