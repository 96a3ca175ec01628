"""Beyond the ERP (issue 14): time limits, late alerts, run now, rerun from the failed tasks.

The real batch server threads on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from batchtui import models as m
from batchtui.vocabulary import BatchStatus as S

from .conftest import job_status, make_job, task_statuses, wait_for
from .faultkit import shared_folder
from .test_faults import RUN_BY, _running

FINAL = (S.FINISHED, S.ERROR, S.CANCELED)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engines(request):
    """A factory of real batch server threads on SQLite or PostgreSQL."""
    name = "engine_factory" if request.param == "sqlite" else "pg_engine_factory"
    return request.getfixturevalue(name)


def attempts(task_id):
    return list(m.TaskAttempt.select().where(m.TaskAttempt.task == task_id).order_by(m.TaskAttempt.attempt))


# -- time limit per task --------------------------------------------------------------------


def test_a_time_limit_stops_that_attempt_its_process_group_and_no_other(engines):
    folder = shared_folder()
    try:
        pidfile = os.path.join(folder, "grandchild")
        # The shell starts a shell that starts sleep: the grandchild's pid goes to the file.
        hang = f"sh -c 'sleep 30 & echo $! > {pidfile}; wait'"
        job_id, ids = make_job([
            {"key": "hang", "class_name": "ShellCommand", "params": {"command": hang}, "max_retries": 1},
            {"key": "py", "class_name": "Sleep", "params": {"seconds": 30}},
            {"key": "sibling", "class_name": "Sleep", "params": {"seconds": 4}},
        ], user=RUN_BY)
        m.BatchTask.update(time_limit=1).where(m.BatchTask.id.in_([ids["hang"], ids["py"]])).execute()
        engines(threads=4)
        wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip())
        grandchild = int(open(pidfile).read())
        wait_for(lambda: len(attempts(ids["hang"])) == 2)
        # The first attempt was stopped, its process group with it, and its retry runs.
        first = attempts(ids["hang"])[0]
        assert first.status == S.ERROR and "time limit of 1 s exceeded" in first.log, first.log
        wait_for(lambda: not _running(grandchild), timeout=10)
        wait_for(lambda: job_status(job_id) in FINAL, timeout=30)
        hang_attempts = attempts(ids["hang"])
        assert [a.status for a in hang_attempts] == [S.ERROR, S.ERROR]
        assert all("time limit of 1 s exceeded" in a.log for a in hang_attempts)
        (py,) = attempts(ids["py"])
        assert py.status == S.ERROR and "time limit of 1 s exceeded" in py.log
        # The sibling, with no limit, ran to its end.
        (sib,) = attempts(ids["sibling"])
        assert sib.status == S.FINISHED and "time limit" not in sib.log
        assert task_statuses(ids) == {"hang": S.ERROR, "py": S.ERROR, "sibling": S.FINISHED}
        assert job_status(job_id) == S.ERROR
    finally:
        shutil.rmtree(folder, ignore_errors=True)
