"""The ERP's scheduling controls (issue 13), end to end on real SQLite and PostgreSQL.

Batch concurrency control on batch groups (two servers claiming at once),
active periods, the Server configuration form (threads, schedule windows,
reserved threads, pause), priority order, and the waiting reasons that each
control gives. The pure rules of periods and windows are tested at the end.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta

import pytest

from batchtui import controls
from batchtui import models as m
from batchtui.actor import Actor
from batchtui.engine.store import EngineStore
from batchtui.groups import save_group
from batchtui.jobs import export_job
from batchtui.periods import add_period
from batchtui.servers import pause_server, server_rows, set_server
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus as S
from batchtui.vocabulary import Priority

from .conftest import job_status, poll, task_statuses, wait_for

BOSS = Actor.of("boss", ["boss"])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def servers(request):
    """A factory of batch server threads on SQLite or on PostgreSQL."""
    name = "engine_factory" if request.param == "sqlite" else "pg_engine_factory"
    return request.getfixturevalue(name)


def _max_overlap(task_ids) -> int:
    """The most attempts of these tasks that ran at the same moment (from their start and end times)."""
    events = []
    for a in m.TaskAttempt.select().where(m.TaskAttempt.task << list(task_ids)):
        assert a.ended is not None
        events += [(a.started, 1), (a.ended, -1)]
    # An end and a start at the same instant do not overlap: ends first.
    events.sort(key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def make_job(tasks, **kw):
    """conftest.make_job made whole before a running server can see it: created Withhold
    (a server would start a Waiting job between its row and its tasks' rows), then
    set Waiting in one transaction."""
    from batchtui.db import write

    from .conftest import make_job as make_rows

    status = kw.pop("status", S.WAITING)
    job_id, ids = make_rows(tasks, status=S.HOLD, **kw)
    if status != S.HOLD:
        with m.database.connection_context(), write():
            m.BatchJob.update(status=status).where(m.BatchJob.id == job_id).execute()
            m.BatchTask.update(status=status).where(m.BatchTask.job == job_id).execute()
    return job_id, ids


def _reason(job_id: int, key: str, ids: dict) -> str | None:
    with m.database.connection_context():
        tasks = {t["id"]: t for t in export_job(job_id)["tasks"]}
    return tasks[ids[key]]["waiting_reason"]


def _group(name: str, limit: int) -> None:
    with m.database.connection_context():
        save_group(name, max_concurrent=limit, actor=BOSS)


# -- batch concurrency control ---------------------------------------------------------------


def test_a_group_limited_to_2_never_runs_3_on_two_servers(servers):
    _group("INV", 2)
    job_id, ids = make_job([{"key": f"t{i}", "class_name": "Sleep", "params": {"seconds": 0.15},
                             "batch_group": "INV"} for i in range(12)])
    servers(threads=4, groups=["INV"])
    servers(threads=4, groups=["INV"])
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=60)
    assert set(task_statuses(ids).values()) == {S.FINISHED}
    assert _max_overlap(ids.values()) == 2


def test_the_limit_holds_when_two_stores_claim_in_the_same_instant(servers):
    """Claims of two servers racing (a barrier), each asking for 4: together at most 2 of the group."""
    _group("INV", 2)
    job_id, ids = make_job([{"key": f"t{i}", "class_name": "Sleep", "params": {"seconds": 30},
                             "batch_group": "INV"} for i in range(8)])
    # Start the run without a server thread, then claim from two threads at once.
    with m.database.connection_context():
        EngineStore().start_due_jobs("setup")
    barrier = threading.Barrier(2)
    got: list[int] = []

    def claim(name: str) -> None:
        with m.database.connection_context():
            barrier.wait()
            got.append(len(EngineStore().claim_ready_tasks(name, ["INV"], 4, limited=["INV"])))

    threads = [threading.Thread(target=claim, args=(f"S{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(got) == [0, 2]
    with m.database.connection_context():
        running = m.BatchTask.select().where(m.BatchTask.status == S.EXECUTING).count()
    assert running == 2


def test_a_stopped_group_starts_nothing_and_says_so_until_it_is_released(servers):
    _group("INV", -1)
    job_id, ids = make_job([{"key": "a", "batch_group": "INV"}, {"key": "b"}])
    servers(groups=["INV"])
    wait_for(lambda: task_statuses(ids)["b"] == S.FINISHED)
    assert task_statuses(ids)["a"] == S.READY
    assert _reason(job_id, "a", ids) == "batch group 'INV' is stopped"
    _group("INV", 0)
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=10)
    assert _reason(job_id, "a", ids) is None


def test_a_group_at_its_limit_says_so_and_lowering_a_limit_stops_no_running_task(servers):
    _group("INV", 2)
    job_id, ids = make_job([{"key": f"t{i}", "class_name": "Sleep", "params": {"seconds": 1.5},
                             "batch_group": "INV"} for i in range(3)])
    servers(threads=4, groups=["INV"])
    wait_for(lambda: list(task_statuses(ids).values()).count(S.EXECUTING) == 2)
    waiting = next(k for k, v in task_statuses(ids).items() if v == S.READY)
    assert _reason(job_id, waiting, ids) == "batch group 'INV' is at its limit of 2 running tasks"
    _group("INV", 1)  # the two running go on
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=20)
    assert set(task_statuses(ids).values()) == {S.FINISHED}


def test_no_live_server_serves_the_group(database):
    m.BatchGroup.create(name="FIN")
    job_id, ids = make_job([{"key": "a", "batch_group": "FIN"}])
    EngineStore().start_due_jobs("setup")
    assert _reason(job_id, "a", ids) == "no live batch server serves batch group 'FIN'"


# -- the Server configuration form ---------------------------------------------------------------


def test_a_paused_server_finishes_what_it_runs_and_starts_nothing_until_resumed(servers):
    first, ids1 = make_job([{"key": "long", "class_name": "Sleep", "params": {"seconds": 1}}])
    server = servers(name="AOS1", threads=2)
    wait_for(lambda: task_statuses(ids1)["long"] == S.EXECUTING)
    with m.database.connection_context():
        pause_server("AOS1", actor=BOSS)
    wait_for(lambda: server.capacity == 0, timeout=5)
    second, ids2 = make_job([{"key": "next"}])
    wait_for(lambda: job_status(first) == S.FINISHED, timeout=10)
    wait_for(lambda: job_status(second) == S.EXECUTING)
    assert task_statuses(ids2)["next"] == S.READY
    assert _reason(second, "next", ids2) == "every batch server of batch group '' is paused"
    with m.database.connection_context():
        info = next(s for s in server_rows() if s.name == "AOS1")
    assert info.paused and info.threads_now == 0
    with m.database.connection_context():
        pause_server("AOS1", actor=BOSS, paused=False)
    wait_for(lambda: job_status(second) == S.FINISHED, timeout=10)


def test_the_configured_thread_count_wins_over_the_flag_and_applies_while_running(servers):
    with m.database.connection_context():
        set_server("AOS1", actor=BOSS, threads=1)
    job_id, ids = make_job([{"key": f"t{i}", "class_name": "Sleep", "params": {"seconds": 0.2}}
                            for i in range(4)])
    server = servers(name="AOS1", threads=4)
    assert server.capacity == 1
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=20)
    assert _max_overlap(ids.values()) == 1
    with m.database.connection_context():
        set_server("AOS1", actor=BOSS, threads=3)
    wait_for(lambda: server.capacity == 3, timeout=5)
    job_id, ids = make_job([{"key": f"u{i}", "class_name": "Sleep", "params": {"seconds": 0.5}}
                            for i in range(3)])
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=20)
    assert _max_overlap(ids.values()) == 3


def test_a_schedule_window_of_zero_threads_starts_nothing_and_says_why(servers):
    with m.database.connection_context():
        set_server("AOS1", actor=BOSS, schedule="00:00-00:00=0")  # all day
    servers(name="AOS1", threads=4)
    job_id, ids = make_job([{"key": "a"}])
    wait_for(lambda: job_status(job_id) == S.EXECUTING)
    assert poll(lambda: task_statuses(ids)["a"] != S.READY, timeout=0.6) is None
    assert _reason(job_id, "a", ids) == \
        "no batch server of batch group '' has a free thread in its current window"
    with m.database.connection_context():
        set_server("AOS1", actor=BOSS, schedule="")
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=10)


def test_reserved_threads_take_only_reserved_capacity_jobs(servers):
    with m.database.connection_context():
        set_server("AOS1", actor=BOSS, threads=3, reserved=1)
    normal, nids = make_job([{"key": f"n{i}", "class_name": "Sleep", "params": {"seconds": 0.4}}
                             for i in range(6)])
    servers(name="AOS1", threads=3)
    wait_for(lambda: list(task_statuses(nids).values()).count(S.EXECUTING) == 2)
    reserved, rids = make_job([{"key": f"r{i}", "class_name": "Sleep", "params": {"seconds": 0.4}}
                               for i in range(2)], priority=int(Priority.RESERVED))
    # The reserved thread is free at once: one reserved task starts while two normal ones run.
    wait_for(lambda: S.EXECUTING in task_statuses(rids).values(), timeout=5)
    wait_for(lambda: job_status(normal) == S.FINISHED and job_status(reserved) == S.FINISHED, timeout=30)
    assert _max_overlap(nids.values()) == 2  # normal tasks never took the reserved thread


def test_a_free_thread_takes_the_highest_priority_first(servers):
    with m.database.connection_context():
        set_server("AOS1", actor=BOSS, threads=1)
        pause_server("AOS1", actor=BOSS)
    server = servers(name="AOS1", threads=1)
    order = [Priority.LOW, Priority.NORMAL, Priority.CRITICAL, Priority.HIGH, Priority.RESERVED]
    jobs = {p: make_job([{"key": "a"}, {"key": "b"}], priority=int(p), description=p.label)[0] for p in order}
    assert poll(lambda: all(job_status(j) == S.EXECUTING for j in jobs.values())), \
        (server.error, [job_status(j) for j in jobs.values()], server.capacity,
         [(a.server, a.task_id) for a in m.TaskAttempt.select()])
    with m.database.connection_context():
        pause_server("AOS1", actor=BOSS, paused=False)
    wait_for(lambda: all(job_status(j) == S.FINISHED for j in jobs.values()), timeout=20)
    assert server.capacity == 1
    attempts = list(m.TaskAttempt.select().order_by(m.TaskAttempt.started, m.TaskAttempt.id))
    by_job = {v: k for k, v in jobs.items()}
    ran = [by_job[m.BatchTask.get_by_id(a.task_id).job_id] for a in attempts]
    assert ran == [Priority.RESERVED] * 2 + [Priority.CRITICAL] * 2 + [Priority.HIGH] * 2 \
        + [Priority.NORMAL] * 2 + [Priority.LOW] * 2


# -- active periods ------------------------------------------------------------------------


def _period_now(open_now: bool) -> tuple[str, str]:
    """A window (UTC) that is open now or closed now, for at least 30 minutes either way."""
    now = datetime.now(UTC)
    if open_now:
        start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    else:
        start, end = now + timedelta(hours=1), now + timedelta(hours=2)
    return f"{start:%H:%M}", f"{end:%H:%M}"


def test_a_due_job_outside_its_period_waits_for_the_opening_then_runs_once(servers):
    start, end = _period_now(open_now=False)
    with m.database.connection_context():
        add_period("Night", actor=BOSS, start=start, end=end)
    due = utcnow() - timedelta(minutes=5)
    job_id, ids = make_job([{"key": "a"}], start=due,
                           recurrence={"pattern": "minutes", "every": 1, "start": due.isoformat()})
    m.BatchJob.update(active_period="Night").where(m.BatchJob.id == job_id).execute()
    servers()
    wait_for(lambda: m.BatchJob.get_by_id(job_id).deferred_from is not None)
    job = m.BatchJob.get_by_id(job_id)
    assert job.status == S.WAITING and job.deferred_from == due
    period = controls.make_period("Night", start, end)
    assert job.scheduled_start == period.next_open(utcnow(), "UTC") or \
        job.scheduled_start > utcnow()  # the next opening, a little later than when the server looked
    assert _reason(job_id, "a", ids) == "outside active period 'Night'"
    # At the opening (the store asked with that time): one run, for the occurrence held back.
    opening = job.scheduled_start
    with m.database.connection_context():
        assert EngineStore().start_due_jobs("AOS9", now=opening) == [job_id]
    wait_for(lambda: job_status(job_id) == S.WAITING and m.BatchJob.get_by_id(job_id).run_count == 1)
    run = m.JobRun.get(m.JobRun.job == job_id)
    assert run.scheduled == due and m.BatchJob.get_by_id(job_id).deferred_from is None


def test_a_job_inside_its_period_runs_at_once(servers):
    start, end = _period_now(open_now=True)
    with m.database.connection_context():
        add_period("Day", actor=BOSS, start=start, end=end)
    job_id, ids = make_job([{"key": "a"}])
    m.BatchJob.update(active_period="Day").where(m.BatchJob.id == job_id).execute()
    servers()
    wait_for(lambda: job_status(job_id) == S.FINISHED)
    assert m.BatchJob.get_by_id(job_id).deferred_from is None


def test_clearing_the_period_of_a_held_job_runs_it_at_its_own_time(database):
    start, end = _period_now(open_now=False)
    add_period("Night", actor=BOSS, start=start, end=end)
    due = utcnow() - timedelta(minutes=1)
    job_id, _ = make_job([{"key": "a"}], start=due, user="ops")
    m.BatchJob.update(active_period="Night").where(m.BatchJob.id == job_id).execute()
    assert EngineStore().start_due_jobs("S") == []
    from batchtui.jobs import set_job

    set_job(job_id, actor=Actor.of("ops"), active_period="")
    job = m.BatchJob.get_by_id(job_id)
    assert job.scheduled_start == due and job.deferred_from is None and job.active_period is None
    assert EngineStore().start_due_jobs("S") == [job_id]


def test_every_control_at_once_on_two_servers(servers):
    """A limited group, a stopped one, a paused server, a closed period and reserved threads together."""
    _group("INV", 2)
    _group("OLD", -1)
    start, end = _period_now(open_now=False)
    with m.database.connection_context():
        add_period("Night", actor=BOSS, start=start, end=end)
        set_server("AOS2", actor=BOSS, threads=4, reserved=1)
    inv, inv_ids = make_job([{"key": f"i{i}", "class_name": "Sleep", "params": {"seconds": 0.1},
                              "batch_group": "INV"} for i in range(8)])
    old, old_ids = make_job([{"key": "o", "batch_group": "OLD"}])
    night, night_ids = make_job([{"key": "n"}])
    m.BatchJob.update(active_period="Night").where(m.BatchJob.id == night).execute()
    servers(name="AOS1", threads=4, groups=["INV", "OLD"])
    servers(name="AOS2", threads=4, groups=["INV", "OLD"])
    wait_for(lambda: job_status(inv) == S.FINISHED, timeout=30)
    assert _max_overlap(inv_ids.values()) == 2
    assert task_statuses(old_ids)["o"] == S.READY
    assert _reason(old, "o", old_ids) == "batch group 'OLD' is stopped"
    assert job_status(night) == S.WAITING
    assert _reason(night, "n", night_ids) == "outside active period 'Night'"


# -- the rules ----------------------------------------------------------------------------


def _utc(y, mo, d, h, mi, tz="UTC"):
    from zoneinfo import ZoneInfo

    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(tz)).astimezone(UTC).replace(tzinfo=None)


def test_a_window_past_midnight_opened_on_friday_covers_saturday_morning():
    p = controls.make_period("Night", "22:00", "06:00", "fri")
    # 2026-12-04 is a Friday.
    assert not p.is_open(_utc(2026, 12, 4, 21, 59), "UTC")
    assert p.is_open(_utc(2026, 12, 4, 22, 0), "UTC")
    assert p.is_open(_utc(2026, 12, 5, 5, 59), "UTC")
    assert not p.is_open(_utc(2026, 12, 5, 6, 0), "UTC")
    assert not p.is_open(_utc(2026, 12, 5, 22, 30), "UTC")  # Saturday evening: not a listed day
    assert p.next_open(_utc(2026, 12, 5, 7, 0), "UTC") == _utc(2026, 12, 11, 22, 0)


def test_periods_follow_the_jobs_time_zone_and_dates():
    p = controls.make_period("Day", "08:00", "17:00", None, "2026-12-01", "2026-12-02")
    assert p.is_open(_utc(2026, 12, 1, 9, 0, "America/Chicago"), "America/Chicago")
    assert not p.is_open(_utc(2026, 12, 1, 9, 0, "America/Chicago"), "Asia/Tokyo")
    assert p.next_open(_utc(2026, 11, 20, 0, 0), "UTC") == _utc(2026, 12, 1, 8, 0)
    assert p.next_open(_utc(2026, 12, 2, 18, 0), "UTC") is None  # its end date has passed
    whole = controls.make_period("All", "00:00", "00:00")
    assert whole.is_open(_utc(2026, 3, 8, 2, 30), "UTC")


def test_an_opening_in_a_daylight_saving_gap_is_the_first_instant_after_it():
    p = controls.make_period("Early", "02:30", "04:00")
    # 2026-03-08: Chicago springs forward at 02:00 to 03:00.
    assert p.next_open(_utc(2026, 3, 8, 1, 0, "America/Chicago"), "America/Chicago") == \
        datetime(2026, 3, 8, 8, 0)


@pytest.mark.parametrize("spec, message", [
    ("25:00-06:00=2", "not a time of day"),
    ("18:00-06:00", "not a window"),
    ("18:00-06:00=-1", "threads must be 0 to 256"),
    ("18:00-06:00=x", "not a whole number"),
])
def test_a_bad_schedule_window_is_refused(spec, message):
    with pytest.raises(controls.ControlError, match=message):
        controls.parse_schedule(spec)


def test_threads_now_follows_the_window_and_the_pause():
    windows = controls.parse_schedule("18:00-06:00=8,06:00-18:00=2")
    assert controls.threads_now(4, windows, False, time(19, 0)) == 8
    assert controls.threads_now(4, windows, False, time(5, 59)) == 8
    assert controls.threads_now(4, windows, False, time(12, 0)) == 2
    assert controls.threads_now(4, windows, True, time(12, 0)) == 0
    assert controls.threads_now(4, controls.parse_schedule("09:00-10:00=0"), False, time(12, 0)) == 4
    assert controls.most_threads(4, windows) == 8
    assert controls.parse_date("2026-01-02", "d") == date(2026, 1, 2)


# -- separate batch server processes --------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def processes(request, tmp_path):
    """`batchtui server` processes on one SQLite file or one PostgreSQL database."""
    from .test_multiserver import Servers

    if request.param == "sqlite":
        request.getfixturevalue("database")
        url = request.getfixturevalue("db_url")
    else:
        request.getfixturevalue("pg_database")
        url = request.getfixturevalue("pg_url")
    s = Servers(url, tmp_path)
    yield s
    s.stop_all()


@pytest.mark.slow
def test_three_server_processes_hold_a_group_limit_and_apply_a_pause(processes):
    m.BatchGroup.create(name="INV")
    job_id, ids = make_job([{"key": f"t{i}", "class_name": "Sleep", "params": {"seconds": 0.2},
                             "batch_group": "INV"} for i in range(30)], status=S.HOLD)
    save_group("INV", max_concurrent=2, actor=BOSS)
    for name in ("P1", "P2", "P3"):
        processes.start(name, "--groups", "INV", threads=4)
    m.BatchJob.update(status=S.WAITING).where(m.BatchJob.id == job_id).execute()
    m.BatchTask.update(status=S.WAITING).where(m.BatchTask.job == job_id).execute()
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=90)
    assert _max_overlap(ids.values()) == 2
    # Paused from the command line's service: a process applies it within its poll interval (0.5 s).
    for name in ("P1", "P2", "P3"):
        pause_server(name, actor=BOSS)
    wait_for(lambda: all(s.threads_now == 0 for s in server_rows() if s.name in ("P1", "P2", "P3")), timeout=10)
    held, held_ids = make_job([{"key": "a", "batch_group": "INV"}])
    wait_for(lambda: job_status(held) == S.EXECUTING, timeout=10)
    assert poll(lambda: task_statuses(held_ids)["a"] != S.READY, timeout=1.5) is None
    pause_server("P2", actor=BOSS, paused=False)
    wait_for(lambda: job_status(held) == S.FINISHED, timeout=10)
    assert m.TaskAttempt.get(m.TaskAttempt.task == held_ids["a"]).server == "P2"
