"""The same engine on a real PostgreSQL server."""

from __future__ import annotations

from batchtui import db as dbmod
from batchtui import models as m
from batchtui.vocabulary import BatchStatus as S

from .conftest import job_status, make_job, task_statuses, wait_for


def test_migrations_are_idempotent_on_postgres(pg_url):
    dbmod.open_database(pg_url)
    dbmod.open_database(pg_url)
    assert dbmod.is_postgres()
    assert m.BatchGroup.get_by_id("").description == "Empty batch group"


def test_conditions_retries_and_outcome_on_postgres(pg_engine_factory):
    job_id, ids = make_job([
        {"key": "a", "class_name": "Flaky", "params": {"failures": 1}, "max_retries": 1},
        {"key": "b", "class_name": "Fail", "ignore_failure": True},
        {"key": "c", "conditions": [("a", "ended"), ("b", "error")]},
        {"key": "d", "conditions": [("b", "ended")]},
    ])
    pg_engine_factory()
    pg_engine_factory()
    wait_for(lambda: job_status(job_id) == S.FINISHED)
    assert task_statuses(ids) == {"a": S.FINISHED, "b": S.ERROR, "c": S.FINISHED, "d": S.NOT_RUN}
    assert m.TaskAttempt.select().where(m.TaskAttempt.task == ids["a"]).count() == 2


def test_many_tasks_on_two_servers_run_exactly_once(pg_engine_factory):
    job_id, ids = make_job([{"key": f"t{i}"} for i in range(200)])
    pg_engine_factory(threads=4)
    pg_engine_factory(threads=4)
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=60)
    counts = {tid: 0 for tid in ids.values()}
    for a in m.TaskAttempt.select(m.TaskAttempt.task):
        counts[a.task_id] += 1
    assert set(counts.values()) == {1}
