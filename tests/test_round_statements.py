"""A batch server's round on both databases (issue 17): what each statement does and touches.

On PostgreSQL a round's updates of many rows are one statement each
(``Bulk``: ``UPDATE ... FROM unnest(arrays)``), its plans stay index lookups
whatever the statistics say, the guard triggers are not called for a batch
server's own writes, and other servers are woken (NOTIFY) only when there
may be work for them. On SQLite the same ``Bulk`` is ``UPDATE ... FROM
(VALUES ...)`` (an executemany before SQLite 3.33, checked too). Each
is checked on a real database: row counts, the plans PostgreSQL runs
(EXPLAIN ANALYZE), the trigger calls it counts, the NOTIFYs another
connection receives.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import psycopg
import pytest

from batchtui import models as m
from batchtui.engine.dialect import Bulk, RowsChanged
from batchtui.engine.store import EngineStore, Fence
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus as S
from bench.seed import add_jobs

from .conftest import make_job, wait_for

_TASK = Bulk("batch_task", (("status", "int", None), ("description", "text", "description || {v}"),
                            ("attempt", None, "NULL")), (("id", "bigint"), ("status", "int")))


def _tasks(n: int) -> list[int]:
    _, ids = make_job([{"key": f"t{i}"} for i in range(n)], status=S.HOLD)
    return [ids[f"t{i}"] for i in range(n)]


@pytest.fixture(params=["sqlite", "sqlite-executemany", "postgres"])
def any_database(request):
    yield request.getfixturevalue("pg_database" if request.param == "postgres" else "database")


@pytest.fixture
def store(any_database, request):
    store = EngineStore()
    if request.node.callspec.params["any_database"] == "sqlite-executemany":
        store.d.values_rows = False  # SQLite before 3.33: no UPDATE ... FROM
    else:
        assert store.d.pg or store.d.values_rows
    return store


def test_a_bulk_update_changes_each_row_whose_key_matches_and_counts_them(store):
    a, b, c = _tasks(3)
    withhold = int(S.HOLD)  # the ERP's Withhold
    with m.database.atomic():
        # c's compare-and-set fails (it is not Ready): it is neither changed nor counted.
        changed = store.d.bulk(_TASK, [(int(S.READY), " <a>", a, withhold), (int(S.READY), " 'b'; --", b, withhold),
                                       (int(S.FINISHED), " c", c, int(S.READY))])
    assert changed == 2
    rows = {t.id: (t.status, t.description) for t in m.BatchTask.select().where(m.BatchTask.id << [a, b, c])}
    assert rows == {a: (S.READY, "t0 <a>"), b: (S.READY, "t1 'b'; --"), c: (S.HOLD, "t2")}
    with pytest.raises(RowsChanged), m.database.atomic():
        store.d.bulk_exactly(_TASK, [(int(S.FINISHED), "", a, int(S.READY)), (int(S.FINISHED), "", b, withhold)])
    # The failed compare-and-set rolled the transaction back: a is still Ready.
    assert m.BatchTask.get_by_id(a).status == S.READY
    assert store.d.bulk(_TASK, []) == 0


def test_a_bulk_update_of_more_rows_than_one_statement_takes_changes_each_once(store):
    # SQLite: 300 rows are statements of 128, 128 and 44 rows (padded to 64 with
    # rows of NULLs, which must change nothing and count for nothing).
    from batchtui.engine.dialect import VALUES_MAX

    ids = _tasks(301)
    assert len(ids) > 2 * VALUES_MAX
    hold, ready = int(S.HOLD), int(S.READY)
    with m.database.atomic():
        changed = store.d.bulk(_TASK, [(ready, f" #{i}", tid, hold) for i, tid in enumerate(ids[:300])])
    assert changed == 300
    rows = {t.id: (t.status, t.description, t.attempt) for t in m.BatchTask.select()}
    assert rows == {**{tid: (S.READY, f"t{i} #{i}", None) for i, tid in enumerate(ids[:300])},
                    ids[300]: (S.HOLD, "t300", None)}
    for n in (1, 3, 64, 65, 129):  # each size once: a padded statement never changes a row twice
        with m.database.atomic():
            assert store.d.bulk(_TASK, [(hold, "", tid, ready) for tid in ids[:n]]) == n
            assert store.d.bulk(_TASK, [(ready, "", tid, hold) for tid in ids[:n]]) == n
    with pytest.raises(ValueError, match="a row of 3 values"), m.database.atomic():
        store.d.bulk(_TASK, [(ready, "", ids[0])])


def test_attempt_ids_come_back_in_the_order_of_the_rows(store):
    ids = _tasks(5)
    run = m.JobRun.create(job=m.BatchTask.get_by_id(ids[0]).job, run_no=1, scheduled=utcnow(), started=utcnow(),
                          status=int(S.EXECUTING))
    order = [ids[3], ids[0], ids[4], ids[1], ids[2]]
    with m.database.atomic():
        attempt_ids = store.d.insert_ids(
            "task_attempt", (("run_id", "bigint"), ("task_id", "bigint"), ("attempt", "int"), ("status", "int"),
                             ("started", "timestamp"), ("server", "text"), ("log", "text"), ("epoch", "int")),
            [(run.id, tid, 1, int(S.EXECUTING), utcnow(), "S1", f"of {tid}", None) for tid in order])
    assert len(set(attempt_ids)) == 5
    got = {a.id: (a.task_id, a.log) for a in m.TaskAttempt.select()}
    assert [got[aid] for aid in attempt_ids] == [(tid, f"of {tid}") for tid in order]
    # More rows than one statement takes (SQLite: 128 + 72, padded to 128): each inserted once, in order.
    many = [ids[i % 5] for i in range(200)]
    with m.database.atomic():
        more = store.d.insert_ids(
            "task_attempt", (("run_id", "bigint"), ("task_id", "bigint"), ("attempt", "int"), ("status", "int"),
                             ("started", "timestamp"), ("server", "text"), ("log", "text"), ("epoch", "int")),
            [(run.id, tid, 2 + i, int(S.EXECUTING), utcnow(), "S1", f"#{i}", 7) for i, tid in enumerate(many)])
    assert len(set(more)) == 200 and not set(more) & set(attempt_ids)
    got = {a.id: (a.task_id, a.attempt, a.log, a.epoch) for a in m.TaskAttempt.select()}
    assert len(got) == 205
    assert [got[aid] for aid in more] == [(tid, 2 + i, f"#{i}", 7) for i, tid in enumerate(many)]


# -- PostgreSQL: plans, triggers, wake-ups ----------------------------------------------------


def _nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _explain(sql: str, params) -> dict:
    (plan,) = m.database.execute_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params).fetchone()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]


def _backlog(store: EngineStore, jobs: int = 2_000) -> None:
    """jobs one-task jobs started (their tasks Ready), in tables never ANALYZEd, as a backlog loaded at once."""
    add_jobs([utcnow() - timedelta(seconds=5)] * jobs)
    m.BatchServer.create(name="S1", epoch=1, host="h", pid=1, threads=8, started=utcnow(), heartbeat=utcnow())
    while store.start_due_jobs("S1", limit=256):
        pass


def test_a_round_looks_rows_up_by_key_on_an_unanalyzed_backlog(pg_database):
    """Without statistics PostgreSQL planned a round's statements as scans of the whole table
    (hash joins of all tasks, an anti join of every job checked against every active task: 47,744
    rows compared to finish 16 runs). With the subquery kept per row (PgDialect.per_row), and on the
    batch server's connection (engine_session) for the updates by key, each touches a few buffers per
    row, with 2,000 tasks Ready."""
    store = EngineStore()
    _backlog(store)
    claimed = store.claim_ready_tasks("S1", [""], 8, fence=Fence("S1", 1))
    assert len(claimed) == 8
    with m.database.atomic() as tx:
        # Finishing runs is done on other connections too (finish_settled_runs): it stays per row
        # with the planner's own settings.
        finishing = _explain(store.d.sql(store.d.marked(store._settled, 8)), [c.job_id for c in claimed])
        store.d.engine_session()
        settle = _explain(_TASK.pg, [[int(S.FINISHED)] * 8, [""] * 8, [c.task_id for c in claimed],
                                     [int(S.EXECUTING)] * 8])
        tx.rollback()
    m.database.execute_sql("RESET ALL")
    for plan, most in ((finishing, 200), (settle, 400)):
        nodes = list(_nodes(plan["Plan"]))
        on_tasks = [n for n in nodes if n.get("Relation Name") == "batch_task"]
        assert on_tasks and not [n for n in on_tasks if n["Node Type"] in ("Seq Scan", "Bitmap Heap Scan")], \
            [(n["Node Type"], n.get("Index Name")) for n in on_tasks]
        assert not [n for n in nodes if n["Node Type"] in ("Hash Join", "Materialize")], \
            [n["Node Type"] for n in nodes]
        buffers = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
        assert buffers < most, f"{buffers} buffers for 8 rows out of 2,000 Ready tasks"
    # The 8 jobs still have their task Executing: none may finish.
    assert finishing["Plan"]["Actual Rows"] == 0


def test_the_retry_timer_reads_the_retry_index_not_every_ready_task(pg_database):
    store = EngineStore()
    _backlog(store, 500)
    waiting = m.BatchTask.select(m.BatchTask.id).where(m.BatchTask.status == S.READY).limit(3)
    soon = utcnow() + timedelta(minutes=5)
    m.BatchTask.update(not_before=soon).where(m.BatchTask.id << [t.id for t in waiting]).execute()
    assert abs((store.next_due() - soon).total_seconds()) < 1e-3
    with m.database.atomic() as tx:
        store.d.engine_session()
        plan = _explain(store._next_retry, ())
        tx.rollback()
    m.database.execute_sql("RESET ALL")
    nodes = list(_nodes(plan["Plan"]))
    assert {n["Index Name"] for n in nodes if "Index Name" in n} == {"batch_task_retry"}, nodes
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], nodes
    # A claim clears the time: the retry index keeps only the tasks still waiting for one.
    m.BatchTask.update(not_before=utcnow() - timedelta(seconds=1)).where(
        m.BatchTask.status == S.READY).execute()
    claimed = store.claim_ready_tasks("S1", [""], 600, fence=Fence("S1", 1))
    assert len(claimed) == 500
    assert not m.BatchTask.select().where(m.BatchTask.not_before.is_null(False)).exists()
    assert store.next_due() is None


def _trigger_calls(plan: dict) -> dict[str, int]:
    return {t["Trigger Name"]: t["Calls"] for t in plan.get("Triggers", []) if t["Trigger Name"].startswith("batchtui")}


def test_the_guard_triggers_skip_a_batch_servers_writes_and_still_check_an_operators(pg_database):
    """Step 11: the guards run for a role that is neither a batch server nor a manager, as before,
    and are not called at all for the batch server's (or a superuser's) writes."""
    job_id, ids = make_job([{"key": "a"}, {"key": "b"}], status=S.HOLD, user="guard_op")
    m.database.execute_sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'guard_op') THEN "
                           "CREATE ROLE guard_op NOLOGIN; END IF; END $$")
    m.database.execute_sql("GRANT batchtui_operator TO guard_op")
    task_update = f"UPDATE batch_task SET description = description || '.' WHERE job_id = {job_id}"
    job_update = f"UPDATE batch_job SET modified = modified WHERE id = {job_id}"
    with m.database.atomic() as tx:
        server_task = _trigger_calls(_explain(task_update, ()))
        server_job = _trigger_calls(_explain(job_update, ()))
        m.database.execute_sql("SET LOCAL ROLE guard_op")
        owner_task = _trigger_calls(_explain(task_update, ()))
        owner_job = _trigger_calls(_explain(job_update, ()))
        # The owner may not hand the job to another user: the guard keeps Run by.
        m.database.execute_sql(f"UPDATE batch_job SET run_by = 'someone' WHERE id = {job_id}")
        run_by = m.database.execute_sql(f"SELECT run_by FROM batch_job WHERE id = {job_id}").fetchone()[0]
        tx.rollback()
    assert not any(server_task.values()) and not any(server_job.values()), (server_task, server_job)
    assert owner_task == {"batchtui_guard": 2}
    assert owner_job == {}  # an owner's update that keeps Created by and Run by: nothing to check
    assert run_by == "guard_op"
    # Another operator is still refused.
    m.database.execute_sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'guard_other') THEN "
                           "CREATE ROLE guard_other NOLOGIN; END IF; END $$")
    m.database.execute_sql("GRANT batchtui_operator TO guard_other")
    for sql in (task_update, job_update, f"DELETE FROM batch_task WHERE id = {ids['a']}"):
        with pytest.raises(Exception, match="may not change batch job"), m.database.atomic():
            m.database.execute_sql("SET LOCAL ROLE guard_other")
            m.database.execute_sql(sql)


def test_a_server_wakes_the_others_only_when_it_made_work_for_them(pg_url, pg_engine_factory):
    """A NOTIFY each round woke every other server for nothing; now only rounds that made tasks
    Ready (runs started, conditions met) or moved a recurring job notify."""
    got: list[float] = []
    stop = threading.Event()
    listening = threading.Event()

    def listen():
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("LISTEN batchtui")
            listening.set()
            while not stop.is_set():
                for _ in conn.notifies(timeout=0.2):
                    got.append(time.monotonic())

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert listening.wait(10)
    # 200 one-task jobs due now: one start round makes their tasks Ready, then 25 rounds of 8 run them.
    add_jobs([utcnow() - timedelta(seconds=1)] * 200)
    make_job([{"key": "first"}, {"key": "second", "conditions": [("first", "ended")]}],
                                status=S.WAITING)
    engine = pg_engine_factory(threads=8, poll=0.2)
    with m.database.connection_context():
        wait_for(lambda: m.TaskAttempt.select().where(m.TaskAttempt.ended.is_null(False)).count() == 202,
                 timeout=60)
    stop.set()
    thread.join(5)
    assert engine.error is None
    # The starts (up to 256 jobs a round: one or two rounds) and the condition met: a few, not ~27.
    assert 1 <= len(got) <= 6, len(got)

