"""The claim's plan on PostgreSQL (issue 17): an index walk that stops after the tasks it takes.

The claim used to read every Ready task, join each to its job and sort them,
for every claim of 8: its cost grew with the backlog (10,000 buffer reads
with 3,300 Ready tasks). These tests read the plan PostgreSQL actually runs
(EXPLAIN ANALYZE, BUFFERS), with the statistics a new database has (none)
and with statistics taken while thousands of tasks were Ready, and count
the buffers it touched: a few per task claimed, whatever the backlog.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from batchtui import models as m
from batchtui.engine import store as store_module
from batchtui.engine.store import EngineStore, Fence
from batchtui.timeutil import utcnow
from bench.seed import add_jobs

BACKLOG = 2_000


def _ready_backlog(store: EngineStore, priorities: bool = False) -> None:
    due = utcnow() - timedelta(seconds=5)
    ids = add_jobs([due - timedelta(seconds=i % 7) for i in range(BACKLOG)])
    if priorities:  # 6 jobs of higher priority, scattered among the others
        m.BatchJob.update(priority=3).where(m.BatchJob.id << ids[::397][:6]).execute()
    m.BatchServer.create(name="S1", epoch=1, host="h", pid=1, threads=8, started=utcnow(), heartbeat=utcnow())
    while store.start_due_jobs("S1", limit=256):
        pass
    assert m.BatchTask.select().where(m.BatchTask.status == 5).count() == BACKLOG


def _claim_plan(store: EngineStore) -> dict:
    """The claim statement's plan as run (EXPLAIN ANALYZE), in a transaction rolled back afterwards."""
    sql = store.d.sql(store.d.marked(store._claims[False, True], 1))
    with m.database.atomic() as tx:
        store.d.x(store_module._PG_CLAIM_PLAN)
        (plan,) = m.database.execute_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql,
                                         (utcnow(), "", "S1", 1, 8)).fetchone()
        tx.rollback()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]


def _nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _assert_index_walk(plan: dict) -> None:
    nodes = list(_nodes(plan["Plan"]))
    on_tasks = [n for n in nodes if n.get("Relation Name") == "batch_task"]
    kinds = {(n["Node Type"], n.get("Index Name")) for n in on_tasks}
    assert ("Index Scan", "batch_task_claim_order") in kinds, kinds
    assert not [n for n in on_tasks if n["Node Type"] in ("Seq Scan", "Bitmap Heap Scan")], kinds
    walk = next(n for n in on_tasks if n.get("Index Name") == "batch_task_claim_order")
    assert walk["Actual Rows"] == 8  # stopped after the 8 it locked, of 2,000 Ready
    buffers = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    assert buffers < 400, f"{buffers} buffers for a claim of 8 out of {BACKLOG} Ready tasks"


@pytest.mark.parametrize("statistics", ["vacuumed", "analyzed"])
def test_the_claim_walks_the_claim_index_whatever_the_statistics_say(pg_database, statistics):
    """vacuumed: the table's size known but no statistics of its columns (what autovacuum leaves
    before its first ANALYZE): the planner then guessed a bitmap scan of every Ready task and a
    sort. analyzed: statistics taken with the backlog Ready (a join from every Executing job)."""
    store = EngineStore()
    _ready_backlog(store)
    m.database.execute_sql("VACUUM batch_task" if statistics == "vacuumed" else "ANALYZE")
    _assert_index_walk(_claim_plan(store))


def test_the_claim_takes_tasks_in_claim_order_on_postgres(pg_database):
    store = EngineStore()
    _ready_backlog(store, priorities=True)
    expected = [t.id for t in m.BatchTask.select().where(m.BatchTask.status == 5)
                .order_by(m.BatchTask.job_priority.desc(), m.BatchTask.job_start, m.BatchTask.id).limit(20)]
    claimed = store.claim_ready_tasks("S1", [""], 8, fence=Fence("S1", 1))
    claimed += store.claim_ready_tasks("S1", [""], 12, fence=Fence("S1", 1))
    assert [c.task_id for c in claimed] == expected
    assert [c.priority for c in claimed[:6]] == [3] * 6 and claimed[6].priority == 1


def test_the_claim_itself_runs_under_the_plan_settings(pg_database):
    """The settings that keep the index walk are sent with the claim (one round trip, a
    pipeline) and hold in the claim's own transaction: read back from inside it."""
    store = EngineStore()
    _ready_backlog(store)
    with m.database.atomic() as tx:  # the claim joins this transaction (write() nests without a savepoint)
        claimed = store.claim_ready_tasks("S1", [""], 8, fence=Fence("S1", 1))
        settings = m.database.execute_sql(
            "SELECT current_setting('enable_seqscan'), current_setting('enable_bitmapscan'), "
            "current_setting('enable_sort')").fetchone()
        tx.rollback()
    assert len(claimed) == 8
    assert settings == ("off", "off", "off")
    # SET LOCAL: the settings end with the transaction, the connection's other statements keep theirs
    after = m.database.execute_sql("SELECT current_setting('enable_seqscan'), current_setting('enable_sort')")
    assert after.fetchone() == ("on", "on")
