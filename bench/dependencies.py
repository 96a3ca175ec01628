"""4. Dependencies: a chain of Noop tasks and a fan-out 1 -> 500 -> 1.

Chain: 200 Noop tasks (quick: 50), each with a condition "previous task
Ended"; overhead per hop = (run end - run start) / tasks, from the JobRun
row. Nothing runs in parallel, so it is all the server's own time between a
task's end and the next one's start.

Fan-out: a root task, 500 tasks (quick: 100) that wait for it, and a join
task with an All condition on all of them; time from run start to run end.

Both run on SQLite in a BatchServerEngine with 8 threads and
exit_when_idle, each in a fresh process and database.
"""

from __future__ import annotations

import tempfile

from bench.common import Row, child_main, plain, progress, run_child, within

THREADS = 8
HOP_TARGET_MS = 5.0


def batchtui_child(folder: str, shape: str, size: int) -> dict:
    from batchtui import models as m
    from batchtui.engine import BatchServerEngine
    from batchtui.vocabulary import BatchStatus
    from bench.seed import add_job_with_conditions, open_db

    open_db(f"sqlite:///{folder}/batchtui.db")
    if shape == "chain":
        tasks = [{"key": "t0"}] + [{"key": f"t{i}", "after": [f"t{i - 1}"]} for i in range(1, size)]
    else:
        middle = [f"m{i}" for i in range(size)]
        tasks = ([{"key": "root"}] + [{"key": k, "after": ["root"]} for k in middle]
                 + [{"key": "join", "after": middle}])
    job_id, ids = add_job_with_conditions(tasks)
    engine = BatchServerEngine(name="bench", threads=THREADS, poll=1.0, retry_base=0, exit_when_idle=True)
    engine.start()
    engine.wait()
    engine.stop()
    run = m.JobRun.get(m.JobRun.job == job_id)
    ran = m.TaskAttempt.select().where(m.TaskAttempt.status == BatchStatus.FINISHED).count()
    if run.status != BatchStatus.FINISHED or ran != len(tasks):
        raise SystemExit(f"the {shape} job ended {BatchStatus(run.status).label} with {ran}/{len(tasks)} tasks")
    if shape == "chain":  # every hop waited for the previous task to end
        starts = {t: a for t, a in m.TaskAttempt.select(m.TaskAttempt.task, m.TaskAttempt.started).tuples()}
        ends = {t: a for t, a in m.TaskAttempt.select(m.TaskAttempt.task, m.TaskAttempt.ended).tuples()}
        for i in range(1, size):
            assert starts[ids[f"t{i}"]] >= ends[ids[f"t{i - 1}"]], "a chained task started before its parent ended"
    return {"seconds": (run.ended - run.started).total_seconds(), "tasks": len(tasks)}


def _measure(shape: str, size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder:
        return run_child("dependencies", "batchtui_child", folder=folder, shape=shape, size=size)


def run(quick: bool) -> list[Row]:
    chain, fan = (50, 100) if quick else (200, 500)
    progress(f"dependencies: a chain of {chain} tasks")
    c = _measure("chain", chain)
    progress(f"dependencies: fan-out 1 -> {fan} -> 1")
    f = _measure("fanout", fan)
    return [
        within(f"chain of {chain}: overhead per hop", c["seconds"] / chain * 1000, "ms", HOP_TARGET_MS),
        plain(f"fan-out 1 -> {fan} -> 1 (All join): run start to end", f["seconds"] * 1000, "ms"),
        plain(f"fan-out 1 -> {fan} -> 1: per task", f["seconds"] / f["tasks"] * 1000, "ms"),
    ]


if __name__ == "__main__":
    child_main({"batchtui_child": batchtui_child})
