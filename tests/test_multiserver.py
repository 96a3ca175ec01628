"""Several batch servers as separate processes on one real PostgreSQL database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest

from batchtui import models as m
from batchtui import status as st
from batchtui.actor import Actor
from batchtui.engine.store import EngineStore
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus as S

from .conftest import job_status, make_job, wait_for


class Servers:
    """batchtui server processes, stopped (SIGTERM, then SIGKILL) at the end of a test."""

    def __init__(self, url, tmp_path):
        self.url = url
        self.tmp_path = tmp_path
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name, *extra, threads=4):
        log = open(self.tmp_path / f"{name}.log", "w")
        env = dict(os.environ, BATCHTUI_DB=self.url)
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "batchtui", "server", "--name", name, "--threads", str(threads),
             "--poll", "0.5", "--retry-base", "0", "--heartbeat", "0.5", "--dead-after", "3", *extra],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: m.BatchServer.get_or_none(m.BatchServer.name == name) is not None
                 and m.BatchServer.get_by_id(name).stopped is None
                 and m.BatchServer.get_by_id(name).pid == self.procs[name].pid, timeout=20)
        return self.procs[name]

    def kill(self, name):
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self):
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


@pytest.fixture
def servers(pg_database, pg_url, tmp_path):
    s = Servers(pg_url, tmp_path)
    yield s
    s.stop_all()


def attempts_by_task():
    out: dict[int, list] = {}
    for a in m.TaskAttempt.select().order_by(m.TaskAttempt.attempt):
        out.setdefault(a.task_id, []).append(a)
    return out


def test_three_servers_run_a_thousand_tasks_with_conditions_exactly_once(servers):
    # The chains' steps take 20 ms, as real tasks take time: a server claims ahead only
    # tasks shorter than AHEAD_UNDER (engine/server.py), and one that holds every Ready
    # step of ten chains of no-op tasks may rightly keep them all (tests/test_claim_ahead.py).
    step_task = {"class_name": "Sleep", "params": {"seconds": 0.02}}
    tasks = [{"key": "root"}]
    for chain in range(10):
        prev = "root"
        for step in range(99):
            key = f"c{chain}.{step}"
            tasks.append({"key": key, "conditions": [(prev, "ended")], **step_task})
            prev = key
    tasks.append({"key": "join", "conditions": [(f"c{c}.98", "ended") for c in range(10)]})
    tasks += [{"key": f"free{i}"} for i in range(1000 - len(tasks))]
    assert len(tasks) == 1000
    job_id, ids = make_job(tasks, status=S.HOLD)
    for name in ("S1", "S2", "S3"):
        servers.start(name)
    st.set_job_status(job_id, S.WAITING, Actor.current("ops"))
    wait_for(lambda: job_status(job_id) in (S.FINISHED, S.ERROR), timeout=180)
    assert job_status(job_id) == S.FINISHED
    runs = attempts_by_task()
    assert sorted(runs) == sorted(ids.values())
    assert all(len(a) == 1 for a in runs.values()), "a task ran more than once"
    spread = Counter(a[0].server for a in runs.values())
    assert set(spread) == {"S1", "S2", "S3"}, spread
    assert min(spread.values()) >= 50, spread  # every server did a real share
    join = runs[ids["join"]][0]
    assert all(join.started >= runs[ids[f"c{c}.98"]][0].ended for c in range(10))


@pytest.mark.slow
def test_a_killed_server_has_its_tasks_taken_back_by_another(servers):
    tasks = [{"key": f"slow{i}", "class_name": "Sleep", "params": {"seconds": 4}, "max_retries": 1}
             for i in range(6)]
    tasks.append({"key": "after", "conditions": [(f"slow{i}", "ended") for i in range(6)]})
    job_id, ids = make_job(tasks, status=S.HOLD)
    servers.start("S1", threads=2)
    st.set_job_status(job_id, S.WAITING, Actor.current("ops"))
    wait_for(lambda: m.BatchTask.select().where((m.BatchTask.server == "S1")
                                                & (m.BatchTask.status == S.EXECUTING)).count() == 2)
    servers.start("S2", threads=4)
    servers.start("S3", threads=4)
    victims = {t.id for t in m.BatchTask.select().where(
        (m.BatchTask.server == "S1") & (m.BatchTask.status == S.EXECUTING))}
    killed_at = utcnow()
    servers.kill("S1")
    wait_for(lambda: job_status(job_id) in (S.FINISHED, S.ERROR), timeout=60)
    assert job_status(job_id) == S.FINISHED
    runs = attempts_by_task()
    for tid in victims:
        first, second = runs[tid]
        assert first.server == "S1" and first.status == S.ERROR
        assert "S1 stopped answering" in first.log
        assert second.server in ("S2", "S3") and second.status == S.FINISHED
        # taken back within the dead-server timeout (3 s) plus a heartbeat or two
        assert (second.started - killed_at) < timedelta(seconds=3 + 10)
    assert m.BatchServer.get_by_id("S1").stopped is not None
    assert all(len(runs[t]) == 1 for t in ids.values() if t not in victims)


def test_a_recurring_job_seen_by_several_servers_runs_once_per_occurrence(servers):
    # Daily, from 12 h ago: the next real occurrence is 12 h away, so none comes due on its own
    # while the test runs (every minute, a slow run crossed a minute and saw a sixth run).
    start = (utcnow() - timedelta(hours=12)).replace(microsecond=0).isoformat()
    job_id, ids = make_job([{"key": "tick"}], status=S.HOLD,
                           recurrence={"pattern": "days", "every": 1, "start": start, "end": {"never": True}})
    for name in ("S1", "S2", "S3"):
        servers.start(name)
    st.set_job_status(job_id, S.WAITING, Actor.current("ops"))  # its start has passed: one made-up run
    for occurrence in range(1, 5):
        wait_for(lambda occurrence=occurrence: m.BatchJob.get_by_id(job_id).run_count == occurrence
                 and job_status(job_id) == S.WAITING, timeout=30)
        # Bring the next occurrence close: every server knows it before it is due.
        m.BatchJob.update(scheduled_start=utcnow() + timedelta(seconds=0.5)).where(
            m.BatchJob.id == job_id).execute()
        EngineStore().notify()
    wait_for(lambda: m.BatchJob.get_by_id(job_id).run_count == 5, timeout=30)
    time.sleep(1)
    runs = list(m.JobRun.select().where(m.JobRun.job == job_id).order_by(m.JobRun.run_no))
    assert [r.run_no for r in runs] == [1, 2, 3, 4, 5]
    assert len({r.scheduled for r in runs}) == 5
    assert m.TaskAttempt.select().count() == 5
    job = m.BatchJob.get_by_id(job_id)
    assert job.status == S.WAITING and job.scheduled_start > utcnow()


def test_batch_groups_route_tasks_to_their_servers_across_processes(servers):
    m.BatchGroup.create(name="FIN", description="Finance")
    job_id, ids = make_job([{"key": f"fin{i}", "batch_group": "FIN"} for i in range(20)]
                           + [{"key": f"any{i}"} for i in range(20)], status=S.HOLD)
    servers.start("S1")
    servers.start("S2", "--groups", "FIN")
    st.set_job_status(job_id, S.WAITING, Actor.current("ops"))
    wait_for(lambda: job_status(job_id) == S.FINISHED, timeout=60)
    runs = attempts_by_task()
    fin = {runs[ids[f"fin{i}"]][0].server for i in range(20)}
    assert fin == {"S2"}
