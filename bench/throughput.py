"""2. Throughput: no-op tasks due now, until all have ended, with 8 threads.

batchtui: N Noop tasks (a) in one job and (b) in N one-task jobs, inserted
before the clock starts; a BatchServerEngine with 8 threads and
exit_when_idle runs them all. Tasks per second = N / wall time from start()
to the engine's exit; CPU per task = time.process_time() of that process
(every thread) / N. Every task keeps its full history (a TaskAttempt, a
JobRun and RunTask rows), which is checked before the figure counts.

Peer: APScheduler 3.11 with its SQLAlchemy SQLite job store and
ThreadPoolExecutor(8), N no-op date-trigger jobs due now, added while the
scheduler is paused; the clock runs from resume() until N executions.

Limit: the raw SQLite commit ceiling (bench/ceiling.py), same run.

Scheduling controls (issue 13), against the plain figure of the same run:
"every control present, none limiting": every job names an active period
open all day, the server has a Server configuration row (9 threads, 1 of
them reserved, so 8 for these Normal jobs; a schedule window of 9 all day),
and it serves a stopped batch group besides the Empty one (so every claim
takes the limited-groups path); "a group limit that does not bind": the
Empty batch group limited to 100 running tasks (the server runs 8).
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta

from bench import ceiling
from bench.common import Row, child_main, peak_rss_mb, progress, run_child, versus

THREADS = 8


def _controls(m, controls: str) -> None:
    """Set up the scheduling controls of a case (see the module docstring); "none": as before issue 13."""
    if controls == "all":
        m.ActivePeriod.create(name="Always", start="00:00", end="00:00", weekdays="")
        m.BatchJob.update(active_period="Always").execute()
        m.ServerConfig.create(name="bench", threads=9, reserved=1, schedule=["00:00-00:00=9"], paused=False,
                              modified_by="bench")
        m.BatchGroup.create(name="OLD", max_concurrent=-1)
        m.BatchGroupServer.create(group="OLD", server="bench")
    elif controls == "limit":
        m.BatchGroup.update(max_concurrent=100).where(m.BatchGroup.name == "").execute()


def batchtui_child(folder: str, tasks: int, layout: str, threads: int = THREADS, controls: str = "none") -> dict:
    """Child: run `tasks` Noop tasks in one job (layout "one_job") or one per job ("many_jobs")."""
    from batchtui import models as m
    from batchtui.engine import BatchServerEngine
    from batchtui.timeutil import utcnow
    from batchtui.vocabulary import BatchStatus
    from bench.seed import add_jobs, open_db

    open_db(f"sqlite:///{folder}/batchtui.db")
    due = utcnow() - timedelta(seconds=1)
    if layout == "one_job":
        add_jobs([due], tasks_per_job=tasks)
    else:
        add_jobs([due] * tasks, tasks_per_job=1)
    _controls(m, controls)
    engine = BatchServerEngine(name="bench", threads=threads, poll=1.0, retry_base=0, exit_when_idle=True)
    cpu0, t0 = time.process_time(), time.perf_counter()
    engine.start()
    engine.wait()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    engine.stop()
    ended = m.TaskAttempt.select().where(m.TaskAttempt.status == BatchStatus.FINISHED).count()
    jobs_ended = m.BatchJob.select().where(m.BatchJob.status == BatchStatus.FINISHED).count()
    jobs_total = m.BatchJob.select().count()
    if ended != tasks or jobs_ended != jobs_total:
        raise SystemExit(f"batchtui ran {ended}/{tasks} tasks, ended {jobs_ended}/{jobs_total} jobs")
    return {"tasks": tasks, "seconds": wall, "cpu": cpu, "per_second": tasks / wall,
            "cpu_per_task": cpu / tasks, "peak_mb": peak_rss_mb()}


def apscheduler_child(folder: str, jobs: int, threads: int = THREADS) -> dict:
    """Child: `jobs` no-op date-trigger jobs due now on APScheduler's SQLite job store."""
    from batchtui.timeutil import utcnow
    from bench.peer_apscheduler import Counted, noop

    peer = Counted(folder, threads, expected=jobs)
    peer.start_paused()
    due = utcnow()
    for _ in range(jobs):
        peer.add(noop, due)
    cpu0, t0 = time.process_time(), time.perf_counter()
    peer.resume()
    if not peer.wait(timeout=3600):
        raise SystemExit(f"APScheduler ran only {peer.executed} of {jobs} jobs")
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peer.shutdown()
    if peer.failed:
        raise SystemExit(f"APScheduler: {peer.failed} job(s) missed or failed")
    return {"tasks": jobs, "seconds": wall, "cpu": cpu, "per_second": jobs / wall,
            "cpu_per_task": cpu / jobs, "peak_mb": peak_rss_mb()}


def _in_fresh_folder(entry: str, **kwargs) -> dict:
    with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder:
        return run_child("throughput", entry, folder=folder, **kwargs)


def run(quick: bool) -> list[Row]:
    n = 2_000 if quick else 20_000
    limit = ceiling.measure(quick)
    progress(f"throughput: APScheduler, {n:,} no-op jobs (adding them to its store first)")
    peer = _in_fresh_folder("apscheduler_child", jobs=n)
    progress(f"throughput: APScheduler {peer['per_second']:,.0f} jobs/s")
    rows: list[Row] = []
    plain: dict[str, float] = {}
    for layout, label in (("one_job", f"1 job x {n:,} tasks"), ("many_jobs", f"{n:,} one-task jobs")):
        progress(f"throughput: batchtui, {label}")
        ours = _in_fresh_folder("batchtui_child", tasks=n, layout=layout)
        plain[layout] = ours["per_second"]
        progress(f"throughput: batchtui {ours['per_second']:,.0f} tasks/s")
        rows += [
            versus(f"throughput, {label}", ours["per_second"], "tasks/s",
                   "APScheduler 3.11 SQLite store", peer["per_second"], at_least=5),
            versus(f"throughput, {label}", ours["per_second"], "tasks/s",
                   "SQLite commit ceiling", limit, at_least=0.1),
            versus(f"CPU per task, {label}", ours["cpu_per_task"] * 1000, "ms",
                   "APScheduler CPU per job", peer["cpu_per_task"] * 1000),
        ]
    for layout, controls, label in (
            ("one_job", "all", f"1 job x {n:,} tasks, every control present, none limiting"),
            ("many_jobs", "all", f"{n:,} one-task jobs, every control present, none limiting"),
            ("one_job", "limit", f"1 job x {n:,} tasks, a group limit that does not bind")):
        progress(f"throughput: batchtui, {label}")
        ours = _in_fresh_folder("batchtui_child", tasks=n, layout=layout, controls=controls)
        progress(f"throughput: batchtui {ours['per_second']:,.0f} tasks/s")
        rows.append(versus(f"throughput, {label}", ours["per_second"], "tasks/s", "no controls, same run",
                           plain[layout]))
    return rows


if __name__ == "__main__":
    child_main({"batchtui_child": batchtui_child, "apscheduler_child": apscheduler_child})
