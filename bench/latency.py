"""3. Latency: time from due to start of one-task jobs due at scattered times.

2,000 one-task jobs (quick: 200) due over two minutes (quick: 10 s), from a
fixed seed: each falls in a random second of the span, half of them on the
whole second (several jobs due at the same instant, as schedules usually
are) and half scattered within it. The jobs are inserted, then the server
starts, a few seconds before the first becomes due.

batchtui (8 threads, poll 1 s): due to start = TaskAttempt.started -
JobRun.scheduled, as the history records it; also JobRun.started - scheduled
(the run's start) and, to compare like with like, time.time() when the
task's code began (bench.classes:Stamp) minus the due time.

Peer: APScheduler 3.11, SQLite store, ThreadPoolExecutor(8), the same due
times as date-trigger jobs; lateness = time.time() inside the job function
minus its scheduled run time.
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import UTC, timedelta

from bench.common import Row, child_main, percentile, progress, run_child, versus, within

THREADS = 8
SEED = 5
ERP_MINUTE_MS = 60_000.0


def due_offsets(count: int, span: float, seed: int = SEED) -> list[float]:
    """Seconds after the start of the span at which each job is due."""
    rng = random.Random(seed)
    offsets = []
    for _ in range(count):
        second = rng.randrange(int(span))
        offsets.append(float(second) if rng.random() < 0.5 else second + rng.random())
    return sorted(offsets)


def summary(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {"p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms), "min": min(ms), "n": len(ms)}


def batchtui_child(folder: str, offsets: list[float], lead: float) -> dict:
    from batchtui import models as m
    from batchtui.engine import BatchServerEngine
    from batchtui.timeutil import utcnow
    from bench.classes import STARTED
    from bench.seed import add_jobs, open_db

    open_db(f"sqlite:///{folder}/batchtui.db")
    base = utcnow() + timedelta(seconds=lead)
    add_jobs([base + timedelta(seconds=o) for o in offsets], class_name="bench.classes:Stamp")
    engine = BatchServerEngine(name="bench", threads=THREADS, poll=1.0, retry_base=0)
    engine.start()
    if utcnow() >= base:
        raise SystemExit("the server started after the first job was due: raise the lead time")
    deadline = time.monotonic() + lead + max(offsets) + 120
    while m.JobRun.select().where(m.JobRun.ended.is_null(False)).count() < len(offsets):
        if time.monotonic() > deadline:
            raise SystemExit("batchtui did not run every job in time")
        time.sleep(0.5)
    engine.stop()
    attempt, run, code = [], [], []
    query = (m.TaskAttempt.select(m.TaskAttempt.task, m.TaskAttempt.started, m.JobRun.scheduled, m.JobRun.started)
             .join(m.JobRun, on=(m.TaskAttempt.run == m.JobRun.id)).tuples())
    for task_id, attempt_started, scheduled, run_started in query:
        attempt.append((attempt_started - scheduled).total_seconds())
        run.append((run_started - scheduled).total_seconds())
        code.append(STARTED[task_id] - scheduled.replace(tzinfo=UTC).timestamp())
    return {"attempt": summary(attempt), "run": summary(run), "code": summary(code)}


def apscheduler_child(folder: str, offsets: list[float], lead: float) -> dict:
    from batchtui.timeutil import utcnow
    from bench.peer_apscheduler import LATENESS, Counted, stamp

    peer = Counted(folder, THREADS, expected=len(offsets))
    peer.start_paused()
    base = utcnow() + timedelta(seconds=lead)
    for o in offsets:
        due = base + timedelta(seconds=o)
        peer.add(stamp, due, args=(due.replace(tzinfo=UTC).timestamp(),))
    peer.resume()
    if utcnow() >= base:
        raise SystemExit("APScheduler resumed after the first job was due: raise the lead time")
    if not peer.wait(timeout=lead + max(offsets) + 120):
        raise SystemExit(f"APScheduler ran only {peer.executed} of {len(offsets)} jobs")
    peer.shutdown()
    return {"code": summary(LATENESS)}


def run(quick: bool) -> list[Row]:
    count, span, lead = (200, 10.0, 4.0) if quick else (2_000, 120.0, 12.0)
    offsets = due_offsets(count, span)
    progress(f"latency: APScheduler, {count:,} jobs due over {span:g} s (takes about {lead + span:.0f} s)")
    with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder:
        peer = run_child("latency", "apscheduler_child", folder=folder, offsets=offsets, lead=lead)["code"]
    progress(f"latency: batchtui, the same due times (takes about {lead + span:.0f} s)")
    with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder:
        ours = run_child("latency", "batchtui_child", folder=folder, offsets=offsets, lead=lead)
    peer_name = "APScheduler (in job function)"
    a = ours["attempt"]
    return [
        versus("latency due->attempt start (DB), p50", a["p50"], "ms", peer_name, peer["p50"]),
        versus("latency due->attempt start (DB), p99", a["p99"], "ms", peer_name, peer["p99"], at_most=1),
        versus("latency due->attempt start (DB), max", a["max"], "ms", peer_name, peer["max"]),
        within("latency due->attempt start (DB), max", a["max"], "ms", ERP_MINUTE_MS, peer="the ERP's minute"),
        versus("latency due->run start (DB), p99", ours["run"]["p99"], "ms", peer_name, peer["p99"]),
        versus("latency due->task code runs, p99", ours["code"]["p99"], "ms", peer_name, peer["p99"], at_most=1),
    ]


if __name__ == "__main__":
    child_main({"batchtui_child": batchtui_child, "apscheduler_child": apscheduler_child})
