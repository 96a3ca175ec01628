"""Claiming ahead (issue 17): a server that ends short attempts holds more tasks than threads.

The extra tasks wait in the server's own queue and start as soon as a thread
frees. What must hold, through the real scheduler thread on a real database:
never more attempts run at once than the server has threads; the recorded
start of each attempt is when its class began (not when it was claimed); a
task that waited for a thread too long, or when the server stops, is handed
back without running and without using a retry, and so is one left waiting
by a server that was SIGKILLed; and every task runs once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from batchtui import history
from batchtui import models as m
from batchtui.classes import BatchClass, Param, TaskContext, register_class, unregister_class
from batchtui.engine.metrics import ServerMetrics
from batchtui.engine.server import AHEAD_MAX, AHEAD_WAIT, BatchServerEngine, Running, _ahead_factor
from batchtui.engine.store import Claimed
from batchtui.vocabulary import BatchStatus as S

from .conftest import job_status, make_job, wait_for
from .faultkit import Procs


class _Probe(BatchClass):
    """Counts how many of its attempts run at once, in this process."""

    name = "AheadProbe"
    params = (Param("seconds", "number", 0.001, "how long to run"),)
    lock = threading.Lock()
    now = 0
    most = 0

    def run(self, ctx: TaskContext) -> None:
        cls = type(self)
        with cls.lock:
            cls.now += 1
            cls.most = max(cls.most, cls.now)
        try:
            time.sleep(float(ctx.params.get("seconds", 0.001)))
        finally:
            with cls.lock:
                cls.now -= 1


@pytest.fixture
def probe():
    _Probe.now = _Probe.most = 0
    register_class(_Probe)
    yield _Probe
    unregister_class(_Probe.name)


@pytest.fixture(params=["sqlite", "postgres"])
def engines(request):
    return request.getfixturevalue("engine_factory" if request.param == "sqlite" else "pg_engine_factory")


def _overlap(intervals: list[tuple]) -> int:
    """The most intervals (start, end) that overlap at one moment (an end before a start at a tie)."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda p: (p[0], p[1]))
    now = most = 0
    for _, step in points:
        now += step
        most = max(most, now)
    return most


def _attempts(ids: dict[str, int]) -> dict[str, list[m.TaskAttempt]]:
    by_id = {v: k for k, v in ids.items()}
    out: dict[str, list[m.TaskAttempt]] = {k: [] for k in ids}
    for a in m.TaskAttempt.select().where(m.TaskAttempt.task << list(ids.values())).order_by(m.TaskAttempt.id):
        out[by_id[a.task_id]].append(a)
    return out


def test_the_ahead_factor_follows_the_longest_attempt():
    assert _ahead_factor([0.00001, 0.0001]) == AHEAD_MAX
    assert _ahead_factor([0.001, 0.009]) == 3  # threads run ~2 more of these within AHEAD_UNDER
    assert _ahead_factor([0.001, 0.019]) == 2
    assert _ahead_factor([0.001, 0.02]) == 1  # a long one: only free threads
    assert _ahead_factor([0.001, None]) == 1  # one never started (handed back): threads were busy


def test_short_tasks_are_claimed_ahead_yet_no_more_run_at_once_than_threads(engines, probe):
    n = 400
    job_id, ids = make_job([{"key": f"t{i}", "class_name": "AheadProbe"} for i in range(n)], status=S.WAITING)
    most_claimed = 0
    engines(threads=2, poll=0.05)
    deadline = time.monotonic() + 60
    with m.database.connection_context():
        while job_status(job_id) != S.FINISHED and time.monotonic() < deadline:
            claimed = m.BatchTask.select().where(m.BatchTask.status == S.EXECUTING).count()
            most_claimed = max(most_claimed, claimed)
            time.sleep(0.002)
        assert job_status(job_id) == S.FINISHED
        attempts = _attempts(ids)
    assert all(len(a) == 1 and a[0].status == S.FINISHED for a in attempts.values())
    assert probe.most <= 2, f"{probe.most} attempts ran at once on a server of 2 threads"
    assert most_claimed > 2, "the server never held more tasks than threads: nothing was claimed ahead"
    assert most_claimed <= 2 * AHEAD_MAX
    # The starts recorded are when the class began: the attempts' intervals never overlap more than
    # the threads (with the claim time as the start, those that waited in the queue would).
    spans = [(a[0].started, a[0].ended) for a in attempts.values()]
    assert all(s <= e for s, e in spans)
    assert _overlap(spans) <= 2


def test_a_task_claimed_ahead_behind_a_long_one_is_handed_back_unrun_and_runs_later(engine_factory, probe):
    # One thread. 30 short tasks let the server claim ahead; then a long one takes the
    # thread, and the short ones claimed behind it wait past AHEAD_WAIT: they go back.
    tasks = [{"key": f"a{i}", "class_name": "AheadProbe"} for i in range(30)]
    tasks.append({"key": "long", "class_name": "Sleep", "params": {"seconds": 2 * AHEAD_WAIT}})
    tasks += [{"key": f"b{i}", "class_name": "AheadProbe"} for i in range(6)]
    job_id, ids = make_job(tasks, status=S.WAITING)
    engine = engine_factory(threads=1, poll=0.05)
    engine.metrics = metrics = ServerMetrics()  # long before the first hand-back (AHEAD_WAIT)
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=60)
    attempts = _attempts(ids)
    handed_back = {k: a for k, a in attempts.items() if len(a) > 1}
    assert handed_back, "no task claimed ahead behind the long one was handed back"
    (run,) = history.job_history(job_id)
    shown = {t["id"]: t["attempts"] for t in run["tasks"]}
    for key, tries in handed_back.items():
        first, *rest = tries
        assert key.startswith("b")
        assert first.status == S.CANCELED and "Not started" in first.log and "handed back" in first.log
        assert first.queued == 1  # closed, and marked as never begun
        assert len(rest) == 1 and rest[0].status == S.FINISHED and rest[0].queued is None
        # History shows the attempt that ran, under the number it was given; not the hand-back.
        assert [(a["attempt"], a["status"]) for a in shown[ids[key]]] == [(2, "ended")]
    # Counted as the attempts that ran: ended ones, and no Canceled for the hand-backs.
    counted = lambda status: metrics.registry.get_sample_value(  # noqa: E731
        "batchtui_task_attempts_total", {"status": status}) or 0
    assert counted("ended") > 0 and counted("canceled") == 0
    tasks_now = {t.id: t for t in m.BatchTask.select().where(m.BatchTask.job == job_id)}
    assert all(tasks_now[ids[k]].retries_used == 0 for k in handed_back)
    assert probe.most == 1
    ran = [(a.started, a.ended) for tries in attempts.values() for a in tries if a.status == S.FINISHED]
    assert _overlap(ran) == 1  # nothing ran beside the long task: it had the only thread


def test_a_stopping_server_hands_back_what_it_claimed_ahead_at_once(engine_factory, probe):
    tasks = [{"key": f"a{i}", "class_name": "AheadProbe"} for i in range(30)]
    tasks.append({"key": "long", "class_name": "Sleep", "params": {"seconds": 30}})
    tasks += [{"key": f"b{i}", "class_name": "AheadProbe"} for i in range(6)]
    job_id, ids = make_job(tasks, status=S.WAITING)
    engine = engine_factory(threads=1, poll=0.05, retry_base=0)
    long_began = m.TaskAttempt.select().where((m.TaskAttempt.task == ids["long"]) & m.TaskAttempt.queued.is_null())
    wait_for(lambda: m.BatchTask.get_by_id(ids["long"]).status == S.EXECUTING and long_began.exists(), timeout=30)
    waiting = [k for k in ids if k.startswith("b") and m.BatchTask.get_by_id(ids[k]).status == S.EXECUTING]
    started = time.monotonic()
    engine.stop(grace=1)
    assert time.monotonic() - started < 10
    attempts = _attempts(ids)
    (run,) = history.job_history(job_id)
    shown = {t["id"]: t["attempts"] for t in run["tasks"]}
    assert waiting
    for key in waiting:
        (only,) = attempts[key]
        assert only.status == S.CANCELED and "Not started" in only.log, only.log
        assert m.BatchTask.get_by_id(ids[key]).status == S.READY
        assert shown[ids[key]] == []  # "a task that never started in a run has an empty attempts list"
    assert [a["status"] for a in shown[ids["long"]]] == ["canceled"]  # it began: handed back, shown
    assert not any(a.status == S.FINISHED for k in ids if k.startswith("b") for a in attempts[k])
    assert m.BatchTask.get_by_id(ids["long"]).status == S.READY  # handed back after the grace


def test_a_worker_never_starts_a_task_claimed_ahead_that_waited_too_long(probe):
    """After a stall (SIGSTOP, a frozen VM) the server may have been declared dead and its tasks
    given to another server; only the loop's next write finds out. A task claimed ahead that has
    waited AHEAD_WAIT is therefore never started by a worker: the loop hands it back (or, fenced,
    drops it). A task claimed for a free thread is started whatever the wait (it never waits for
    a thread; only the machine can delay it)."""
    engine = BatchServerEngine(name="W", threads=1)
    long_ago = time.monotonic() - AHEAD_WAIT - 0.1

    def running(attempt_id: int, ahead: bool) -> Running:
        c = Claimed(attempt_id, attempt_id, 1, 1, 1, "AheadProbe", {}, "DAT", "ops", "probe")
        r = Running(c, queued=long_ago, ahead=ahead)
        engine._running[attempt_id] = r
        return r

    stale, fresh = running(1, ahead=True), running(2, ahead=False)
    engine._run(stale)
    engine._run(fresh)
    assert stale.started_mono is None and stale.result is None
    assert probe.most == 1 and fresh.result == "ended"  # only the task claimed for a free thread ran
    engine._withdraw_waiting(False, time.monotonic())
    assert engine._ended == [stale] and stale.withdrawn and stale.result == "handback"
    assert "Not started" in stale.lines[-1]
    engine._run(stale)  # a worker that dequeues it afterwards leaves it alone
    assert stale.started_mono is None and engine._drain() == [fresh]


def test_servers_sharing_a_sqlite_file_do_not_claim_ahead(engine_factory, probe):
    """Two servers claiming ahead by turns left SQLite's one write lock too rarely free for an
    operator's save; with another live server on the file, each claims only its free threads."""
    job_id, ids = make_job([{"key": f"t{i}", "class_name": "AheadProbe"} for i in range(400)], status=S.HOLD)
    engine_factory(threads=2, poll=0.05, name="share-1")
    engine_factory(threads=2, poll=0.05, name="share-2")
    time.sleep(0.3)  # both registered and each has seen the other in its first heartbeat
    m.BatchJob.update(status=S.WAITING).where(m.BatchJob.id == job_id).execute()
    most_claimed = 0
    deadline = time.monotonic() + 60
    while job_status(job_id) != S.FINISHED and time.monotonic() < deadline:
        most_claimed = max(most_claimed, m.BatchTask.select().where(m.BatchTask.status == S.EXECUTING).count())
        time.sleep(0.002)
    assert job_status(job_id) == S.FINISHED
    assert most_claimed <= 4, f"{most_claimed} tasks claimed at once by two servers of 2 threads"
    servers = {a.server for a in m.TaskAttempt.select().where(m.TaskAttempt.task << list(ids.values()))}
    assert servers == {"share-1", "share-2"}


def test_the_start_of_a_task_claimed_ahead_is_recorded_while_it_runs(engine_factory, probe):
    """An attempt claimed ahead is written queued; once a worker starts it, the loop's next round
    records its real start (no longer queued) while it still runs."""
    tasks = [{"key": f"a{i}", "class_name": "AheadProbe"} for i in range(100)]
    tasks += [{"key": f"s{i}", "class_name": "AheadProbe", "params": {"seconds": 1.0}} for i in range(4)]
    job_id, ids = make_job(tasks, status=S.WAITING)
    slow = {ids[f"s{i}"] for i in range(4)}
    engine = engine_factory(threads=2, poll=0.05)

    def started_ahead() -> list[Running]:
        return [r for r in list(engine._running.values())
                if r.claimed.task_id in slow and r.ahead and r.started is not None]

    wait_for(started_ahead, timeout=30, interval=0.001)
    r = started_ahead()[0]
    wait_for(lambda: m.TaskAttempt.get_by_id(r.claimed.attempt_id).queued is None, timeout=5, interval=0.005)
    attempt = m.TaskAttempt.get_by_id(r.claimed.attempt_id)
    assert attempt.ended is None and attempt.status == S.EXECUTING  # recorded while it runs
    assert attempt.started == r.started  # the real start, not the claim
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=60)
    still_queued = list(m.TaskAttempt.select().where(m.TaskAttempt.queued.is_null(False)))
    # None left open; closed ones are only those handed back unstarted (threads busy for AHEAD_WAIT).
    assert all(a.ended is not None and a.status == S.CANCELED and "Not started" in a.log for a in still_queued)


class _SeesItsAttempt(BatchClass):
    """Notes, as it begins, whether its attempt row still says queued (its start not recorded)."""

    name = "SeesItsAttempt"
    seen: list[tuple[int, int | None]] = []

    def run(self, ctx: TaskContext) -> None:
        with m.database.connection_context():
            queued = (m.TaskAttempt.select(m.TaskAttempt.queued)
                      .where(m.TaskAttempt.task == ctx.task_id, m.TaskAttempt.attempt == ctx.attempt).scalar())
        type(self).seen.append((ctx.task_id, queued))


class _SeesItsAttemptSafe(_SeesItsAttempt):
    name = "SeesItsAttemptSafe"
    rerun_safe = True


@pytest.mark.parametrize("cls", [_SeesItsAttempt, _SeesItsAttemptSafe])
def test_a_class_claimed_ahead_waits_for_its_start_to_be_recorded_unless_rerun_safe(engine_factory, cls):
    """A class that is not rerun_safe, claimed ahead, runs only once its start is recorded (so a
    crash never hands back as unstarted one that ran); a rerun_safe one starts at once."""
    cls.seen = []
    register_class(cls)
    try:
        job_id, ids = make_job([{"key": f"t{i}", "class_name": cls.name} for i in range(300)], status=S.HOLD)
        engine = engine_factory(threads=2, poll=0.05)
        was_ahead: dict[int, bool] = {}
        launch = engine._launch

        def noting(c: Claimed, refused: str | None = None, ahead: bool = False) -> None:
            was_ahead[c.task_id] = ahead
            launch(c, refused, ahead)

        engine._launch = noting  # type: ignore[method-assign]
        m.BatchJob.update(status=S.WAITING).where(m.BatchJob.id == job_id).execute()
        wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=60)
    finally:
        unregister_class(cls.name)
    assert len(cls.seen) == 300 and sum(was_ahead.values()) > 50, sum(was_ahead.values())
    queued_at_start = [tid for tid, queued in cls.seen if queued is not None]
    assert all(was_ahead[tid] for tid in queued_at_start)  # only one claimed ahead is ever written queued
    if cls.rerun_safe:
        assert queued_at_start, "no rerun_safe task claimed ahead started before its start was recorded"
    else:
        assert queued_at_start == []


def test_tasks_claimed_ahead_by_a_sigkilled_server_go_back_without_using_a_retry(database, db_url, tmp_path):
    """A real `batchtui server` of one thread runs short tasks (it claims ahead), then a long one,
    and claims more short ones behind it, which wait for the thread. SIGKILLed then, it recorded
    the long task's start (in the round after it) but not those of the waiting ones, which never
    started: started again under its name, it takes the long one back as interrupted (its retry
    used: none left, Error) and hands the waiting ones back Ready, no retry used (none left
    either: before, they went to Error without ever running)."""
    tasks = [{"key": f"a{i}"} for i in range(40)]  # Noop: ends at once
    tasks.append({"key": "long", "class_name": "Sleep", "params": {"seconds": 60}})
    tasks += [{"key": f"b{i}"} for i in range(20)]
    job_id, ids = make_job(tasks, status=S.HOLD)  # every task: max_retries 0
    procs = Procs(db_url, Path(tmp_path))
    try:
        procs.start("K", threads=1, poll=0.05)
        wait_for(lambda: m.BatchServer.get_or_none(m.BatchServer.name == "K") is not None, timeout=30)
        m.BatchJob.update(status=S.WAITING).where(m.BatchJob.id == job_id).execute()
        long_attempt = m.TaskAttempt.select().where(m.TaskAttempt.task == ids["long"])

        def long_running_and_b_waiting() -> bool:
            recorded = long_attempt.where(m.TaskAttempt.queued.is_null()).exists()
            waiting = m.BatchTask.select().where(m.BatchTask.id << [ids[f"b{i}"] for i in range(20)],
                                                 m.BatchTask.status == S.EXECUTING).exists()
            return recorded and waiting

        wait_for(long_running_and_b_waiting, timeout=30, interval=0.002)
        procs.kill("K")  # at once: within AHEAD_WAIT, before the server hands the waiting ones back itself
        waiting = {k for k in ids if k.startswith("b")
                   and m.BatchTask.get_by_id(ids[k]).status == S.EXECUTING}
        queued = {k for k in waiting
                  if m.TaskAttempt.get(m.TaskAttempt.task == ids[k]).queued == 1}
        assert waiting and queued == waiting, (waiting, queued)
        proc = procs.start("K", "--exit-when-idle", threads=1, poll=0.05)
        assert proc.wait(90) == 0, procs.log_text()
    finally:
        procs.stop_all()
    attempts = _attempts(ids)
    tasks_now = {t.id: t for t in m.BatchTask.select().where(m.BatchTask.job == job_id)}
    (cut,) = attempts["long"]
    assert cut.status == S.ERROR and "interrupted" in cut.log, cut.log
    assert tasks_now[ids["long"]].status == S.ERROR
    (run,) = history.job_history(job_id)
    shown = {t["id"]: t["attempts"] for t in run["tasks"]}
    for key in waiting:
        first, second = attempts[key]
        assert first.status == S.CANCELED and "it had not started" in first.log, first.log
        assert "no retry used" in first.log and first.queued == 1
        assert second.status == S.FINISHED and second.queued is None
        assert [(a["attempt"], a["status"]) for a in shown[ids[key]]] == [(2, "ended")]
        assert tasks_now[ids[key]].status == S.FINISHED and tasks_now[ids[key]].retries_used == 0
    assert [a["status"] for a in shown[ids["long"]]] == ["error"]  # it began: an attempt, cut
    assert all(len(attempts[k]) == 1 and attempts[k][0].status == S.FINISHED
               for k in ids if k.startswith("b") and k not in waiting)
    assert job_status(job_id) == S.ERROR  # the long task failed, every other one ended


def test_a_take_back_shows_a_queued_attempt_that_logged_and_hides_one_that_did_not(database):
    """After a crash, a queued attempt (claimed ahead, start not recorded) is handed back either
    way. A rerun_safe class may have begun in that gap: if it logged, history shows the attempt
    with its log; one that logged nothing never began, and history leaves it out."""
    from datetime import datetime, timedelta

    from batchtui.engine.store import EngineStore

    store = EngineStore()
    now = datetime(2031, 3, 3, 9, 0)
    job_id, ids = make_job([{"key": "a", "class_name": "Noop"}, {"key": "b", "class_name": "Noop"}], start=now)
    store.start_due_jobs("AOS-A", now=now)
    claimed = {c.task_id: c for c in store.claim_ready_tasks("AOS-A", [""], 8, now=now, queued_from=0)}
    assert m.TaskAttempt.select().where(m.TaskAttempt.queued == 1).count() == 2
    store.append_log(claimed[ids["a"]].attempt_id, "posted 12 invoices\n")
    orphans = store.orphaned_attempts()  # AOS-A has no row: nobody owns its attempts
    assert store.take_back([(o, "AOS-A stopped answering") for o in orphans], now=now + timedelta(minutes=1)) == 2
    assert {t.key: (S(t.status), t.retries_used) for t in m.BatchTask.select()} == {
        "a": (S.READY, 0), "b": (S.READY, 0)}
    (run,) = history.job_history(job_id)
    shown = {t["id"]: t["attempts"] for t in run["tasks"]}
    assert shown[ids["b"]] == []
    ((a,),) = [shown[ids["a"]]]
    assert a["status"] == "canceled" and a["log"].startswith("posted 12 invoices\n")
    assert "began before its start was recorded" in a["log"] and "no retry used" in a["log"]
