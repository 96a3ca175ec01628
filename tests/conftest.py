"""Shared fixtures: an isolated database file per test, a config file, a user."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from batchtui import db as dbmod
from batchtui import models as m
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus, ConditionStatus, ConditionType


def _use_database(url, tmp_path, monkeypatch):
    """Point the process at url, as user "ops", with "boss" as the batch job manager."""
    monkeypatch.setenv("BATCHTUI_DB", url)
    monkeypatch.setenv("BATCHTUI_USER", "ops")
    cfg = tmp_path / "config.toml"
    cfg.write_text('default_company = "DAT"\nmanagers = ["boss"]\n')
    monkeypatch.setenv("BATCHTUI_CONFIG", str(cfg))
    return url


@pytest.fixture
def db_url(tmp_path, monkeypatch):
    return _use_database(f"sqlite:///{tmp_path}/batch.db", tmp_path, monkeypatch)


@pytest.fixture
def database(db_url):
    d = dbmod.open_database(db_url)
    m.Company.get_or_create(id="DAT", defaults={"name": "Default company"})
    m.Company.get_or_create(id="USMF", defaults={"name": "Contoso Entertainment System USA"})
    yield d
    d.close()


def make_job(tasks, *, description="test job", status=BatchStatus.WAITING, start=None, priority=1,
             recurrence=None, time_zone="UTC", user="ops", company="DAT"):
    """Create a job straight in the tables (engine tests do not depend on the job service).

    tasks: list of dicts with key, class_name, params, conditions [(key, 'ended')], condition_type,
    ignore_failure, max_retries, batch_group.
    """
    now = utcnow()
    job = m.BatchJob.create(
        description=description, company=company, scheduled_start=start or now, time_zone=time_zone,
        status=status, priority=priority, recurrence=recurrence, created_by=user, run_by=user,
        created=now, modified=now,
    )
    ids = {}
    for t in tasks:
        task = m.BatchTask.create(
            job=job, key=t["key"], description=t.get("description", t["key"]), company=company,
            class_name=t.get("class_name", "Noop"), params=t.get("params", {}),
            batch_group=t.get("batch_group", ""), status=status,
            ignore_failure=t.get("ignore_failure", False), max_retries=t.get("max_retries", 0),
            condition_type=ConditionType.ANY if t.get("condition_type") == "any" else ConditionType.ALL,
        )
        ids[t["key"]] = task.id
    for t in tasks:
        for parent, expected in t.get("conditions", []):
            m.BatchConstraint.create(task=ids[t["key"]], parent=ids[parent],
                                     expected=ConditionStatus.from_cli(expected))
    return job.id, ids


def poll(predicate, timeout=20.0, interval=0.02):
    """Poll a condition another thread or process brings about: its value, or None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with m.database.connection_context():
            value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def wait_for(predicate, timeout=20.0, interval=0.02):
    """Poll a condition the engine thread brings about; fail with a clear message on timeout."""
    value = poll(predicate, timeout, interval)
    if not value:
        raise AssertionError(f"condition not reached within {timeout} s")
    return value


def job_status(job_id):
    return BatchStatus(m.BatchJob.get_by_id(job_id).status)


def task_statuses(ids):
    return {k: BatchStatus(m.BatchTask.get_by_id(v).status) for k, v in ids.items()}


def _engines(prefix):
    """A factory of real batch server threads, and the step that stops them."""
    from batchtui.engine import BatchServerEngine

    engines = []

    def make(**kw):
        kw.setdefault("name", f"{prefix}-{len(engines)}")
        kw.setdefault("retry_base", 0)
        kw.setdefault("poll", 0.2)
        e = BatchServerEngine(**kw)
        e.start()
        engines.append(e)
        return e

    def stop_all():
        for e in engines:
            e.stop(grace=1)

    return make, stop_all


@pytest.fixture
def engine_factory(database):
    make, stop_all = _engines("test")
    yield make
    stop_all()


# -- PostgreSQL --------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_admin_url():
    """A PostgreSQL server: BATCHTUI_TEST_PG_URL, or one started for this session."""
    url = os.environ.get("BATCHTUI_TEST_PG_URL")
    if url:
        yield url
        return
    from .pgserver import PgServer

    server = PgServer()
    if not server.available:
        pytest.skip("PostgreSQL's initdb/pg_ctl not found and BATCHTUI_TEST_PG_URL not set")
    try:
        url = server.start()
    except (OSError, LookupError, subprocess.SubprocessError) as exc:  # no postgres user, initdb/pg_ctl failed
        pytest.skip(f"could not start PostgreSQL: {exc}")
    yield url
    server.stop()


_pg_counter = iter(range(1, 10**6))


@pytest.fixture
def pg_url(pg_admin_url, monkeypatch, tmp_path):
    from .pgserver import create_database

    url = create_database(pg_admin_url, f"bt_{os.getpid()}_{next(_pg_counter)}")
    return _use_database(url, tmp_path, monkeypatch)


@pytest.fixture
def pg_database(pg_url):
    d = dbmod.open_database(pg_url)
    m.Company.get_or_create(id="DAT", defaults={"name": "Default company"})
    yield d
    d.close()


@pytest.fixture
def pg_engine_factory(pg_database):
    make, stop_all = _engines("pg")
    yield make
    stop_all()
