"""Claiming ahead (issue 17): a server that ends short attempts holds more tasks than threads.

The extra tasks wait in the server's own queue and start as soon as a thread
frees. What must hold, through the real scheduler thread on a real database:
never more attempts run at once than the server has threads; the recorded
start of each attempt is when its class began (not when it was claimed); a
task that waited for a thread too long, or when the server stops, is handed
back without running and without using a retry; and every task runs once.
"""

from __future__ import annotations

import threading
import time

import pytest

from batchtui import models as m
from batchtui.classes import BatchClass, Param, TaskContext, register_class, unregister_class
from batchtui.engine.server import AHEAD_MAX, AHEAD_WAIT, BatchServerEngine, Running, _ahead_factor
from batchtui.engine.store import Claimed
from batchtui.vocabulary import BatchStatus as S

from .conftest import job_status, make_job, wait_for


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
    engine_factory(threads=1, poll=0.05)
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=60)
    attempts = _attempts(ids)
    handed_back = {k: a for k, a in attempts.items() if len(a) > 1}
    assert handed_back, "no task claimed ahead behind the long one was handed back"
    for key, tries in handed_back.items():
        first, *rest = tries
        assert key.startswith("b")
        assert first.status == S.CANCELED and "Not started" in first.log and "handed back" in first.log
        assert len(rest) == 1 and rest[0].status == S.FINISHED
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
    wait_for(lambda: m.BatchTask.get_by_id(ids["long"]).status == S.EXECUTING, timeout=30)
    waiting = [k for k in ids if k.startswith("b") and m.BatchTask.get_by_id(ids[k]).status == S.EXECUTING]
    started = time.monotonic()
    engine.stop(grace=1)
    assert time.monotonic() - started < 10
    attempts = _attempts(ids)
    for key in waiting:
        (only,) = attempts[key]
        assert only.status == S.CANCELED and "Not started" in only.log, only.log
        assert m.BatchTask.get_by_id(ids[key]).status == S.READY
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
