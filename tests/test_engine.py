"""The real batch server thread on a real SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from batchtui import models as m
from batchtui import status as st
from batchtui.actor import Actor
from batchtui.classes import BatchClass, TaskCanceled
from batchtui.engine.store import EngineStore, Fence, Outcome, ServerFenced
from batchtui.errors import NotAllowed, Refused
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus as S

from .conftest import job_status, make_job, task_statuses, wait_for

FINAL = (S.FINISHED, S.ERROR, S.CANCELED)


def run_job(engine_factory, tasks, **kw):
    engine_kw = kw.pop("engine", {})
    job_id, ids = make_job(tasks, **kw)
    engine_factory(**engine_kw)
    wait_for(lambda: job_status(job_id) in FINAL)
    return job_id, ids


def attempts(task_id):
    return list(m.TaskAttempt.select().where(m.TaskAttempt.task == task_id).order_by(m.TaskAttempt.attempt))


def test_single_task_job_ends_and_keeps_history(engine_factory):
    job_id, ids = run_job(engine_factory, [{"key": "a"}])
    assert job_status(job_id) == S.FINISHED
    run = m.JobRun.get(m.JobRun.job == job_id)
    assert (run.run_no, run.status, run.server) == (1, S.FINISHED, "test-0")
    assert run.ended >= run.started
    (att,) = attempts(ids["a"])
    assert att.status == S.FINISHED and att.server == "test-0"
    assert m.RunTask.get(m.RunTask.run == run.id).status == S.FINISHED


def test_all_join_waits_for_every_parent(engine_factory):
    job_id, ids = run_job(engine_factory, [
        {"key": "a", "class_name": "Sleep", "params": {"seconds": 0.3}},
        {"key": "b"},
        {"key": "c", "conditions": [("a", "ended"), ("b", "ended")]},
    ])
    assert job_status(job_id) == S.FINISHED
    a, b, c = (attempts(ids[k])[0] for k in "abc")
    assert c.started >= a.ended and c.started >= b.ended


def test_any_join_runs_after_one_parent_even_if_other_fails(engine_factory):
    job_id, ids = run_job(engine_factory, [
        {"key": "a", "class_name": "Fail", "ignore_failure": True},
        {"key": "b", "class_name": "Sleep", "params": {"seconds": 0.2}},
        {"key": "c", "condition_type": "any", "conditions": [("a", "ended"), ("b", "ended")]},
    ])
    assert task_statuses(ids) == {"a": S.ERROR, "b": S.FINISHED, "c": S.FINISHED}
    assert job_status(job_id) == S.FINISHED  # a's failure is ignored


def test_any_join_with_every_parent_impossible_does_not_run(engine_factory):
    job_id, ids = run_job(engine_factory, [
        {"key": "a", "class_name": "Fail", "ignore_failure": True},
        {"key": "b", "class_name": "Fail", "ignore_failure": True},
        {"key": "c", "condition_type": "any", "conditions": [("a", "ended"), ("b", "ended")]},
    ])
    assert task_statuses(ids)["c"] == S.NOT_RUN
    assert attempts(ids["c"]) == []


def test_expected_statuses_and_didnt_run_propagates_through_a_chain(engine_factory):
    job_id, ids = run_job(engine_factory, [
        {"key": "a", "class_name": "Fail", "params": {"message": "ledger locked"}},
        {"key": "on_error", "conditions": [("a", "error")]},
        {"key": "on_either", "conditions": [("a", "ended_or_error")]},
        {"key": "on_ended", "conditions": [("a", "ended")]},
        {"key": "after_on_ended", "conditions": [("on_ended", "ended")]},
        {"key": "after_that", "conditions": [("after_on_ended", "ended_or_error")]},
    ])
    assert task_statuses(ids) == {
        "a": S.ERROR, "on_error": S.FINISHED, "on_either": S.FINISHED,
        "on_ended": S.NOT_RUN, "after_on_ended": S.NOT_RUN, "after_that": S.NOT_RUN,
    }
    assert job_status(job_id) == S.ERROR
    assert "ledger locked" in attempts(ids["a"])[0].log


def test_ignore_task_failure_lets_the_job_end(engine_factory):
    job_id, ids = run_job(engine_factory, [{"key": "a", "class_name": "Fail", "ignore_failure": True}])
    assert task_statuses(ids)["a"] == S.ERROR
    assert job_status(job_id) == S.FINISHED


def test_retries_keep_every_attempt_log(engine_factory):
    job_id, ids = run_job(engine_factory, [
        {"key": "flaky", "class_name": "Flaky", "params": {"failures": 2}, "max_retries": 2},
        {"key": "gives_up", "class_name": "Flaky", "params": {"failures": 5}, "max_retries": 1},
    ])
    ok = attempts(ids["flaky"])
    assert [a.status for a in ok] == [S.ERROR, S.ERROR, S.FINISHED]
    assert [a.attempt for a in ok] == [1, 2, 3]
    assert all(a.log for a in ok[:2]) and ok[0].log != ok[1].log
    bad = attempts(ids["gives_up"])
    assert [a.status for a in bad] == [S.ERROR, S.ERROR]
    assert task_statuses(ids) == {"flaky": S.FINISHED, "gives_up": S.ERROR}
    assert m.BatchTask.get_by_id(ids["flaky"]).retries_used == 2
    assert job_status(job_id) == S.ERROR


def test_retry_back_off_doubles(engine_factory):
    job_id, ids = run_job(engine_factory, [
        {"key": "f", "class_name": "Flaky", "params": {"failures": 2}, "max_retries": 2},
    ], engine={"retry_base": 0.3})
    a1, a2, a3 = attempts(ids["f"])
    assert (a2.started - a1.ended).total_seconds() >= 0.3
    assert (a3.started - a2.ended).total_seconds() >= 0.6


def test_cancel_stops_a_running_task(engine_factory):
    job_id, ids = make_job([
        {"key": "long", "class_name": "Sleep", "params": {"seconds": 60}},
        {"key": "next", "conditions": [("long", "ended")]},
    ])
    engine_factory()
    wait_for(lambda: task_statuses(ids)["long"] == S.EXECUTING)
    st.cancel_job(job_id, Actor.current("ops"))
    assert job_status(job_id) in (S.CANCELLING, S.CANCELED)
    wait_for(lambda: job_status(job_id) == S.CANCELED, timeout=5)
    assert task_statuses(ids) == {"long": S.CANCELED, "next": S.NOT_RUN}
    run = m.JobRun.get(m.JobRun.job == job_id)
    assert run.status == S.CANCELED and (run.ended - run.started).total_seconds() < 10


def test_cancel_a_waiting_job_and_refusals(database):
    job_id, _ = make_job([{"key": "a"}], start=utcnow() + timedelta(hours=1))
    st.cancel_job(job_id, Actor.current("ops"))
    assert job_status(job_id) == S.CANCELED
    with pytest.raises(Refused, match="nothing to cancel"):
        st.cancel_job(job_id, Actor.current("ops"))
    with pytest.raises(NotAllowed, match="may not change"):
        st.set_job_status(job_id, S.WAITING, Actor.current("intruder"))
    st.set_job_status(job_id, S.WAITING, Actor.of("boss", managers=["boss"]))
    assert job_status(job_id) == S.WAITING


def test_withhold_is_not_picked_up_and_waiting_is(engine_factory):
    job_id, ids = make_job([{"key": "a"}], status=S.HOLD)
    engine = engine_factory()
    time.sleep(0.5)
    assert job_status(job_id) == S.HOLD
    st.set_job_status(job_id, S.WAITING, Actor.current("ops"))
    wait_for(lambda: job_status(job_id) == S.FINISHED)
    with pytest.raises(Refused):
        st.set_job_status(job_id, S.CANCELLING, Actor.current("ops"))
    assert engine.running_count == 0


def test_a_job_due_later_starts_on_its_timer_not_on_a_poll(engine_factory):
    start = utcnow() + timedelta(seconds=0.5)
    job_id, ids = make_job([{"key": "a"}], start=start)
    engine_factory(poll=30)
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=5)
    run = m.JobRun.get(m.JobRun.job == job_id)
    assert run.started >= start  # never early
    assert run.scheduled == start


def test_priority_order_with_one_thread(engine_factory):
    now = utcnow() - timedelta(seconds=1)
    order = {}
    for name, prio in [("low", 0), ("normal", 1), ("critical", 3), ("high", 2)]:
        order[name] = make_job([{"key": name}], priority=prio, start=now)[0]
    engine_factory(threads=1)
    wait_for(lambda: all(job_status(j) == S.FINISHED for j in order.values()))
    started = sorted(order, key=lambda n: m.TaskAttempt.get(
        m.TaskAttempt.task == m.BatchTask.get(m.BatchTask.job == order[n]).id).started)
    assert started == ["critical", "high", "normal", "low"]


def test_batch_groups_route_tasks_to_their_servers(engine_factory):
    m.BatchGroup.create(name="REPORTS")
    m.BatchGroupServer.create(group="REPORTS", server="reporter")
    job_id, ids = make_job([{"key": "r", "batch_group": "REPORTS"}, {"key": "e"}])
    engine_factory(name="general")
    wait_for(lambda: task_statuses(ids)["e"] == S.FINISHED)
    time.sleep(0.3)
    assert task_statuses(ids)["r"] == S.READY  # no server of its group yet
    engine_factory(name="reporter")
    wait_for(lambda: job_status(job_id) == S.FINISHED)
    assert attempts(ids["r"])[0].server == "reporter"
    assert attempts(ids["e"])[0].server == "general"


def test_a_group_with_no_server_never_runs(engine_factory):
    m.BatchGroup.create(name="NOBODY")
    job_id, ids = make_job([{"key": "x", "batch_group": "NOBODY"}])
    engine_factory()
    wait_for(lambda: task_statuses(ids)["x"] == S.READY)
    time.sleep(0.3)
    assert job_status(job_id) == S.EXECUTING


def test_job_without_tasks_ends_at_once(engine_factory):
    job_id, _ = run_job(engine_factory, [])
    assert job_status(job_id) == S.FINISHED


def test_alerts_per_user_for_the_final_status(engine_factory):
    job_id, ids = make_job([{"key": "a", "class_name": "Fail"}])
    m.JobAlert.create(job=job_id, user="ops", error=True, popup=True)
    m.JobAlert.create(job=job_id, user="cfo", ended=True, email=True)
    engine_factory()
    wait_for(lambda: job_status(job_id) == S.ERROR)
    wait_for(lambda: m.Alert.select().count() == 1)
    alert = m.Alert.get()
    assert (alert.user, alert.event, alert.popup, alert.read) == ("ops", "error", True, False)
    assert str(job_id) in alert.message


def test_restart_takes_back_what_a_killed_server_left_executing(database, db_url, tmp_path):
    job_id, ids = make_job([
        {"key": "again", "class_name": "Sleep", "params": {"seconds": 30}, "max_retries": 1},
        {"key": "lost", "class_name": "Sleep", "params": {"seconds": 30}},
    ])
    env = dict(os.environ, BATCHTUI_DB=db_url)
    proc = subprocess.Popen(
        [sys.executable, "-c", "from batchtui import db; db.open_database();"
         "from batchtui.engine import serve; serve(name='aos1', poll=0.1, retry_base=0)"],
        env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: set(task_statuses(ids).values()) == {S.EXECUTING})
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert job_status(job_id) == S.EXECUTING
    from batchtui.engine import BatchServerEngine

    engine = BatchServerEngine(name="aos1", retry_base=0, poll=0.1)
    engine.start()
    try:
        wait_for(lambda: task_statuses(ids)["lost"] == S.ERROR)
        wait_for(lambda: task_statuses(ids)["again"] == S.EXECUTING and len(attempts(ids["again"])) == 2)
        first = attempts(ids["again"])[0]
        assert first.status == S.ERROR and "aos1 restarted" in first.log
        assert "interrupted" in attempts(ids["lost"])[0].log
    finally:
        st.cancel_job(job_id, Actor.current("ops"))
        engine.stop(grace=1)
    assert job_status(job_id) == S.CANCELED


def test_a_dead_server_is_declared_by_another_and_its_tasks_taken_back(engine_factory):
    job_id, ids = make_job([{"key": "a", "max_retries": 1}])
    # A server that died: its heartbeat is old and it holds an attempt.
    old = utcnow() - timedelta(minutes=5)
    m.BatchServer.create(name="ghost", host="elsewhere", pid=1, started=old, heartbeat=old)
    m.BatchJob.update(status=S.WAITING, scheduled_start=utcnow() + timedelta(days=1)).where(
        m.BatchJob.id == job_id).execute()
    with m.database.atomic():
        EngineStore().start_due_jobs("ghost", now=utcnow() + timedelta(days=2))
        (claimed,) = EngineStore().claim_ready_tasks("ghost", [""], 1)
    engine_factory(heartbeat=0.1, dead_after=30)
    wait_for(lambda: job_status(job_id) == S.FINISHED)
    first, second = attempts(ids["a"])
    assert first.server == "ghost" and first.status == S.ERROR
    assert "ghost stopped answering" in first.log
    assert second.server == "test-0" and second.status == S.FINISHED
    assert m.BatchServer.get_by_id("ghost").stopped is not None


def test_stop_hands_running_tasks_back(engine_factory):
    job_id, ids = make_job([{"key": "long", "class_name": "Sleep", "params": {"seconds": 60}}])
    engine = engine_factory()
    wait_for(lambda: task_statuses(ids)["long"] == S.EXECUTING)
    engine.stop(grace=0.2)
    assert task_statuses(ids)["long"] == S.READY
    assert m.BatchTask.get_by_id(ids["long"]).retries_used == 0
    assert m.BatchServer.get_by_id("test-0").stopped is not None


def test_a_recurring_job_returns_to_waiting_and_missed_occurrences_run_once(engine_factory):
    from batchtui import recurrence

    spec = recurrence.normalize({"pattern": "minutes", "every": 15}, default_start=utcnow() - timedelta(days=2),
                                time_zone="America/Chicago")
    job_id, ids = make_job([{"key": "a"}], recurrence=spec, start=utcnow() - timedelta(days=2),
                           time_zone="America/Chicago")
    before = utcnow()
    engine_factory()
    wait_for(lambda: m.BatchJob.get_by_id(job_id).run_count == 1 and job_status(job_id) == S.WAITING)
    time.sleep(0.3)
    job = m.BatchJob.get_by_id(job_id)
    assert job.run_count == 1  # two days of missed occurrences made up by one run
    assert m.JobRun.select().where(m.JobRun.job == job_id).count() == 1
    assert job.scheduled_start == recurrence.next_occurrence(spec, "America/Chicago", before)
    assert before < job.scheduled_start <= before + timedelta(minutes=15)


def test_a_recurrence_that_is_over_leaves_the_job_in_its_outcome(engine_factory):
    from batchtui import recurrence

    start = utcnow() - timedelta(hours=3)
    # Three occurrences passed while no server ran: made up by one run, which is the one run
    # "end after 1" allows (before issue 16, "end after 2" ended here too: it counted occurrences).
    spec = recurrence.normalize({"pattern": "hours", "every": 1, "end": {"after": 1}}, default_start=start,
                                time_zone="UTC")
    job_id, ids = make_job([{"key": "a", "class_name": "Fail", "ignore_failure": True}], recurrence=spec,
                           start=start)
    engine_factory()
    wait_for(lambda: job_status(job_id) == S.FINISHED)
    assert m.BatchJob.get_by_id(job_id).run_count == 1


def test_a_second_server_of_the_same_name_is_refused_and_consoles_pick_a_free_name(engine_factory):
    from batchtui.engine import BatchServerEngine
    from batchtui.engine.server import ServerNameInUse, default_name

    engine_factory(name="AOS1")
    with pytest.raises(ServerNameInUse, match="AOS1"):
        BatchServerEngine(name="AOS1").start()
    first = engine_factory(name=None, console=True)
    second = engine_factory(name=None, console=True)
    assert first.name == f"{default_name()}-console"
    assert second.name == f"{default_name()}-console-2"


def test_a_run_left_executing_with_every_task_settled_is_finished_by_the_heartbeat(engine_factory):
    job_id, ids = make_job([{"key": "a"}], status=S.HOLD)
    with m.database.atomic():
        m.BatchJob.update(status=S.WAITING).where(m.BatchJob.id == job_id).execute()
        EngineStore().start_due_jobs("elsewhere")
    # As if a server had settled the task but died before finishing the run.
    m.BatchTask.update(status=S.FINISHED).where(m.BatchTask.id == ids["a"]).execute()
    assert job_status(job_id) == S.EXECUTING
    engine_factory(heartbeat=0.1)
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=5)
    assert m.JobRun.get(m.JobRun.job == job_id).status == S.FINISHED


def test_a_zombie_is_not_a_live_server():
    """Issue #16 item 13: a killed server that its parent has not reaped yet is dead."""
    import subprocess

    from batchtui.engine.store import _pid_alive

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert _pid_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while _pid_alive(child.pid):
            assert time.monotonic() < deadline, "a zombie counted as alive"
            time.sleep(0.01)
        with open(f"/proc/{child.pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] == "Z"  # not reaped yet: a zombie
    finally:
        child.wait()
    assert not _pid_alive(child.pid) and not _pid_alive(0) and _pid_alive(os.getpid())



# -- fencing: a server declared dead records nothing more (issue #16 item 6) -------------------


class LongFirst(BatchClass):
    """Its first attempt waits (for its cancel) for up to 30 s; later attempts end at once."""

    def run(self, ctx) -> None:
        ctx.log(f"attempt {ctx.attempt} started")
        if ctx.attempt == 1 and ctx.wait(30):
            ctx.log("attempt 1 stopped")  # must never reach the database: its server was declared dead
            raise TaskCanceled("canceled")


@pytest.fixture(params=["sqlite", "postgres"])
def any_database(request):
    return request.getfixturevalue("database" if request.param == "sqlite" else "pg_database")


def test_the_store_refuses_a_fenced_servers_writes_about_its_attempts(any_database):
    store = EngineStore()
    job_id, ids = make_job([{"key": "a"}, {"key": "b"}])
    epoch = store.register("F1", 2, [], 30)
    fence = Fence("F1", epoch)
    store.start_due_jobs("F1")
    (c,) = store.claim_ready_tasks("F1", [""], 1, fence=fence)
    store.record_processes([(c.attempt_id, "host1", 4242, "space/7", None)], fence)
    store.append_log(c.attempt_id, "one\n", fence=fence)
    store.report_progress(c.attempt_id, 0.5, fence=fence)
    store.beat("F1", 2, utcnow(), epoch)
    assert store.orphaned_attempts() == []
    assert store.declare_dead("F1", utcnow() + timedelta(seconds=1), utcnow())
    writes = {
        "log": lambda: store.append_log(c.attempt_id, "two\n", fence=fence),
        "progress": lambda: store.report_progress(c.attempt_id, 0.9, fence=fence),
        "process": lambda: store.record_processes([(c.attempt_id, "host1", 4343, None, None)], fence),
        "start": lambda: store.record_starts([(c.attempt_id, utcnow())], fence),
        "heartbeat": lambda: store.beat("F1", 2, utcnow(), epoch),
        "end": lambda: store.finish_attempts([Outcome(c.task_id, c.attempt_id, "ended")], fence=fence),
    }
    for what, write in writes.items():
        with pytest.raises(ServerFenced):
            write()
        assert m.BatchServer.get_by_id("F1").stopped is not None, what  # the heartbeat does not clear the mark
    assert store.claim_ready_tasks("F1", [""], 1, fence=fence) == []  # "b" stays Ready
    (att,) = attempts(ids["a"])
    assert (att.log, att.progress, att.ended, att.epoch) == ("one\n", 0.5, None, epoch)
    assert (att.host, att.pgid, att.pgid_key) == ("host1", 4242, "space/7")
    (orphan,) = store.orphaned_attempts()
    assert (orphan.task_id, orphan.attempt_id, orphan.server, orphan.stopped, orphan.pgid) == (
        ids["a"], c.attempt_id, "F1", True, 4242)
    assert store.take_back([(orphan, "taken back")], retry_base=0) == 1
    assert store.take_back([(orphan, "taken back again")], retry_base=0) == 0
    (att,) = attempts(ids["a"])
    assert (S(att.status), att.log) == (S.ERROR, "one\ntaken back\n")
    assert task_statuses(ids) == {"a": S.ERROR, "b": S.READY}
    # Registering again moves the epoch on; the old one stays refused.
    assert store.register("F1", 2, [], 30) == epoch + 2
    with pytest.raises(ServerFenced):
        store.beat("F1", 2, utcnow(), epoch)
    store.beat("F1", 2, utcnow(), epoch + 2)
    (c2,) = store.claim_ready_tasks("F1", [""], 1, fence=Fence("F1", epoch + 2))
    assert c2.task_id == ids["b"] and m.TaskAttempt.get_by_id(c2.attempt_id).epoch == epoch + 2


def test_a_server_declared_dead_while_it_runs_stops_its_attempt_records_nothing_and_registers_again(
        engine_factory):
    job_id, ids = make_job([{"key": "a", "class_name": "tests.test_engine:LongFirst", "max_retries": 1}])
    engine = engine_factory(heartbeat=0.2, dead_after=30)
    wait_for(lambda: "attempt 1 started" in "".join(a.log for a in attempts(ids["a"])))
    epoch = engine.epoch
    # Another server declares it dead (as if it had stalled past --dead-after).
    assert EngineStore().declare_dead(engine.name, utcnow() + timedelta(seconds=1), utcnow())
    wait_for(lambda: job_status(job_id) == S.FINISHED)
    first, second = attempts(ids["a"])
    assert first.status == S.ERROR and "attempt 1 stopped" not in first.log, first.log
    assert first.log.splitlines() == ["attempt 1 started", f"batch server {engine.name} found it had been "
                                      "declared dead (it did not answer for over 30 s): this attempt was stopped"]
    assert second.status == S.FINISHED and second.server == engine.name and second.epoch == epoch + 2
    row = m.BatchServer.get_by_id(engine.name)
    assert row.stopped is None and row.epoch == epoch + 2 == engine.epoch
