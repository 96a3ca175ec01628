"""Finding things on the command line (issue 14): `job list --company --user --limit` with the next
run and the last run's status, in one query that reads an index, and `job history --last N`."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import pytest

from batchtui import jobs
from batchtui import models as m
from batchtui.demo.data import load_demo
from batchtui.vocabulary import BatchStatus

from .faultkit import assert_one_error_line, run_cli

NOW = datetime(2026, 3, 2, 14, 0)


class _Statements(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.sql: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.sql.append(str(record.msg))


def _expected(job: m.BatchJob) -> tuple:
    last = m.JobRun.select().where(m.JobRun.job == job.id).order_by(m.JobRun.run_no.desc()).first()
    next_run = jobs.iso_scheduled(job.scheduled_start, job.time_zone) if job.status == BatchStatus.WAITING else None
    return job.id, next_run, None if last is None else BatchStatus(last.status).cli


@pytest.mark.parametrize("which", ["sqlite", "postgres"])
def test_job_list_filters_and_shows_the_next_and_last_run_in_one_query(which, request):
    request.getfixturevalue("database" if which == "sqlite" else "pg_database")
    load_demo(now=NOW)
    from batchtui.actor import Actor

    jobs.create_job(actor=Actor.of("ann"), description="German close", company="DEMF")
    everyone = list(m.BatchJob.select().order_by(m.BatchJob.id))
    statements = _Statements()
    logger = logging.getLogger("peewee")
    logger.addHandler(statements)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        rows = jobs.list_jobs()
    finally:
        logger.removeHandler(statements)
        logger.setLevel(old_level)
    assert len(statements.sql) == 1  # one query for every job, whatever their number
    assert [(r["id"], r["next_run"], r["last_run_status"]) for r in rows] == [_expected(j) for j in everyone]
    assert {r["last_run_status"] for r in rows} >= {"ended", "error", None}
    assert any(r["next_run"] for r in rows)
    ops = [j.id for j in everyone if j.created_by == "ops"]
    assert [r["id"] for r in jobs.list_jobs(user="ops", limit=3)] == ops[:3]
    assert [r["id"] for r in jobs.list_jobs(company="DEMF")] == [everyone[-1].id]
    assert [r["id"] for r in jobs.list_jobs(company="USMF", limit=4)] == [j.id for j in everyone[:4]]
    assert jobs.list_jobs(company="USMF", user="nobody") == []


def test_on_sqlite_the_filters_read_an_index_and_the_last_run_its_key(database):
    for kwargs, index in (({"user": "ops", "limit": 5}, "batch_job_created_by_id"),
                          ({"company": "USMF", "limit": 5}, "batch_job_company_id_id")):
        sql, params = jobs.list_jobs_query(**kwargs).sql()
        plan = " ".join(row[3] for row in m.database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
        assert f"USING INDEX {index}" in plan, plan
        assert "USING INDEX job_run_job_id_run_no" in plan, plan


def test_job_list_and_history_options_on_the_command_line(db_url, database):
    load_demo(now=NOW)
    proc = run_cli(["job", "list", "--company", "USMF", "--user", "ops", "--limit", "2", "--json"], db_url)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 2 and all(r["company"] == "USMF" and r["created_by"] == "ops" for r in rows)
    assert set(rows[0]) >= {"next_run", "last_run_status"}
    text = run_cli(["job", "list", "--limit", "3"], db_url).stdout.decode().splitlines()
    assert "NEXT RUN" in text[0] and "LAST RUN" in text[0] and len(text) == 4
    hourly = m.BatchJob.get(m.BatchJob.description == "Sales order invoicing (hourly)")
    proc = run_cli(["job", "history", str(hourly.id), "--last", "2", "--json"], db_url)
    runs = json.loads(proc.stdout)
    newest = [r.run_no for r in m.JobRun.select().where(m.JobRun.job == hourly.id)
              .order_by(m.JobRun.run_no.desc()).limit(2)]
    assert [r["run"] for r in runs] == newest
    for bad in (["job", "list", "--limit", "0"], ["job", "list", "--limit", "x"], ["job", "list", "--user", ""],
                ["job", "list", "--company", "[b]toolongcompany"], ["job", "history", "1", "--last", "-1"]):
        assert_one_error_line(run_cli(bad, db_url))
