"""Issue 17: batchtui against its peers, side by side, several repetitions.

    python bench/run.py --peers [--reps 3] [--scale 0.25]

Every system runs the same workload of no-op tasks, in a fresh child process,
and is timed by the same rule: from the first attempt's start to the last
attempt's end, **as that system's own records say** (for a system that
records nothing, as its job function and its listener see it):

- batchtui: TaskAttempt.started (min) to TaskAttempt.ended (max);
- APScheduler 3.11, memory store (nothing saved): time.time() when the
  first job function began to the last EVENT_JOB_EXECUTED (it keeps no
  history). Its SQLAlchemy SQLite store is in the latency comparison only
  (bench/throughput.py measures its throughput: 20,000 jobs take it minutes);
- huey 3.5 SqliteHuey, synchronous=NORMAL (as batchtui opens SQLite),
  results stored: SIGNAL_EXECUTING (first) to SIGNAL_COMPLETE (last), which
  huey sends after it has stored the result;
- procrastinate 3.10 (concurrency 8): procrastinate_events, first
  ``started`` to last ``succeeded``;
- pgqueuer 1.6 (its defaults: batch of 10, buffered log): pgqueuer_log,
  first ``picked`` to last ``successful``.

Workloads (``--scale`` multiplies the counts): SQLite: 20,000 one-task jobs;
one job of 20,000 tasks (for the peers, which have no jobs of several tasks,
the same 20,000 no-op jobs). PostgreSQL: 5,000 one-task jobs, one and two
batchtui servers (separate ``batchtui server`` processes). Latency: 2,000
jobs due at scattered times over 120 s (bench/latency.py), due -> attempt
start p99 against APScheduler's memory and SQLite stores.

Raw limits, same run: SQLite one-row commits/s and batched rows/s (1,000
rows a transaction), PostgreSQL one-row commits/s from 1 and 8 connections.

PostgreSQL: BATCHTUI_BENCH_PG_URL or BATCHTUI_TEST_PG_URL (admin URLs;
each measurement creates and drops its own database), else a throw-away
server started with tests/pgserver.py, as the tests do.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, timedelta
from pathlib import Path

from bench.common import ROOT, child_main, fmt, progress, run_child

THREADS = 8


# -- children: SQLite -----------------------------------------------------------------


def batchtui_sqlite(folder: str, tasks: int, layout: str) -> dict:
    from peewee import fn

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
    engine = BatchServerEngine(name="bench", threads=THREADS, poll=1.0, retry_base=0, exit_when_idle=True)
    engine.start()
    engine.wait()
    engine.stop()
    ended = m.TaskAttempt.select().where(m.TaskAttempt.status == BatchStatus.FINISHED).count()
    if ended != tasks:
        raise SystemExit(f"batchtui ran {ended}/{tasks} tasks")
    first, last = m.TaskAttempt.select(fn.MIN(m.TaskAttempt.started), fn.MAX(m.TaskAttempt.ended)).tuples()[0]
    seconds = (last - first).total_seconds()
    return {"tasks": tasks, "seconds": seconds, "per_second": tasks / seconds}


def apscheduler(folder: str, jobs: int, store: str) -> dict:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from batchtui.timeutil import utcnow
    from bench.peer_apscheduler import FIRST, first_noop

    jobstore = (MemoryJobStore() if store == "memory"
                else SQLAlchemyJobStore(url=f"sqlite:///{Path(folder) / 'apscheduler.db'}"))
    sched = BackgroundScheduler(jobstores={"default": jobstore}, executors={"default": ThreadPoolExecutor(THREADS)},
                                job_defaults={"misfire_grace_time": None, "coalesce": False}, timezone="UTC")
    done = threading.Event()
    counts = {"ok": 0, "bad": 0, "last": 0.0}
    lock = threading.Lock()

    def listener(event) -> None:
        with lock:
            counts["ok" if event.code == EVENT_JOB_EXECUTED else "bad"] += 1
            counts["last"] = time.time()
            if counts["ok"] + counts["bad"] >= jobs:
                done.set()

    sched.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    sched.start(paused=True)
    due = utcnow().replace(tzinfo=UTC)
    for _ in range(jobs):
        sched.add_job(first_noop, "date", run_date=due)
    sched.resume()
    if not done.wait(3600) or counts["bad"]:
        raise SystemExit(f"APScheduler ({store}): {counts}")
    sched.shutdown(wait=True)
    seconds = counts["last"] - FIRST[0]
    return {"tasks": jobs, "seconds": seconds, "per_second": jobs / seconds}


def huey(folder: str, jobs: int) -> dict:
    from huey import SqliteHuey, signals
    from huey.consumer import Consumer

    class NormalSqliteHuey(SqliteHuey):
        """SqliteHuey with synchronous=NORMAL (batchtui's setting; huey's fsync flag offers only FULL or OFF)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            create = self.storage._create_connection

            def normal():
                conn = create()
                conn.execute("pragma synchronous=1")
                return conn

            self.storage._create_connection = normal

    h = NormalSqliteHuey("bench", filename=str(Path(folder) / "huey.db"), results=True, store_none=True)

    @h.task()
    def noop():
        return None

    seen = {"first": None, "last": 0.0, "done": 0, "bad": 0}
    lock = threading.Lock()
    finished = threading.Event()

    @h.signal(signals.SIGNAL_EXECUTING)
    def executing(signal, task, *args):
        with lock:
            if seen["first"] is None:
                seen["first"] = time.time()

    @h.signal(signals.SIGNAL_COMPLETE, signals.SIGNAL_ERROR)
    def complete(signal, task, *args):
        with lock:
            seen["done" if signal == signals.SIGNAL_COMPLETE else "bad"] += 1
            seen["last"] = time.time()
            if seen["done"] + seen["bad"] >= jobs:
                finished.set()

    for _ in range(jobs):
        noop()
    consumer = Consumer(h, workers=THREADS, worker_type="thread", periodic=False, initial_delay=0.01,
                        max_delay=0.05, check_worker_health=False)
    consumer.start()
    if not finished.wait(3600) or seen["bad"]:
        raise SystemExit(f"huey: {seen}")
    consumer.stop(graceful=True)
    results = sum(1 for _ in h.storage.conn.execute("SELECT 1 FROM kv WHERE queue = ?", ("bench",)))
    if results != jobs:
        raise SystemExit(f"huey stored {results} results of {jobs}")
    seconds = seen["last"] - seen["first"]
    return {"tasks": jobs, "seconds": seconds, "per_second": jobs / seconds}


def sqlite_limits(folder: str, seconds: float) -> dict:
    """One-row commits/s and batched rows/s (1,000 inserts a transaction), WAL, synchronous=NORMAL."""
    conn = sqlite3.connect(Path(folder) / "limits.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)")
    conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
    conn.execute("INSERT INTO counter VALUES (1, 0)")
    commits, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE counter SET value = value + 1 WHERE id = 1")
            conn.execute("COMMIT")
        commits += 100
    one = commits / (time.perf_counter() - start)
    rows, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO rows (a, b) VALUES (?, ?)", [(i, "x" * 40) for i in range(1000)])
        conn.execute("COMMIT")
        rows += 1000
    batched = rows / (time.perf_counter() - start)
    return {"commits": one, "rows": batched}


# -- children: PostgreSQL ----------------------------------------------------------------


def _fresh(admin_url: str, prefix: str) -> tuple[str, str]:
    from tests.pgserver import create_database

    name = f"bench_{prefix}_{os.getpid()}"
    return create_database(admin_url, name), name


def _drop(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def batchtui_pg(admin_url: str, jobs: int, servers: int) -> dict:
    from peewee import fn

    from batchtui import models as m
    from batchtui.timeutil import utcnow
    from batchtui.vocabulary import BatchStatus
    from bench.postgres import Servers, _wait_until
    from bench.seed import add_jobs, open_db

    url, name = _fresh(admin_url, f"batchtui_{servers}")
    try:
        open_db(url)
        lead = 6.0
        base = utcnow() + timedelta(seconds=lead)
        add_jobs([base] * jobs, tasks_per_job=1)
        with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder, Servers(url, folder) as procs:
            for i in range(1, servers + 1):
                procs.start(f"S{i}")
            procs.wait_registered()
            if utcnow() >= base:
                raise SystemExit("the servers registered after the jobs were due: raise the lead")
            ended = m.TaskAttempt.select().where(m.TaskAttempt.ended.is_null(False))
            _wait_until(lambda: ended.count() == jobs, 600, "every task to end", every=0.2)
        finished = m.TaskAttempt.select().where(m.TaskAttempt.status == BatchStatus.FINISHED).count()
        if finished != jobs:
            raise SystemExit(f"batchtui on PostgreSQL: {finished}/{jobs} attempts Finished")
        first, last = m.TaskAttempt.select(fn.MIN(m.TaskAttempt.started), fn.MAX(m.TaskAttempt.ended)).tuples()[0]
        seconds = (last - first).total_seconds()
        return {"tasks": jobs, "seconds": seconds, "per_second": jobs / seconds}
    finally:
        from batchtui import models as m

        m.database.close()
        _drop(admin_url, name)


def procrastinate_child(admin_url: str, jobs: int) -> dict:
    import procrastinate

    url, name = _fresh(admin_url, "procrastinate")
    try:
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

        @app.task(name="noop")
        async def noop() -> None:
            return None

        async def main() -> dict:
            async with app.open_async():
                await app.schema_manager.apply_schema_async()
                for start in range(0, jobs, 1000):
                    await noop.batch_defer_async(*({} for _ in range(min(1000, jobs - start))))
                await app.run_worker_async(concurrency=THREADS, wait=False, install_signal_handlers=False)
            import psycopg

            with psycopg.connect(url) as conn:
                done = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()[0]
                first, last = conn.execute(
                    "SELECT (SELECT min(at) FROM procrastinate_events WHERE type = 'started'), "
                    "(SELECT max(at) FROM procrastinate_events WHERE type = 'succeeded')").fetchone()
            if done != jobs:
                raise SystemExit(f"procrastinate: {done}/{jobs} succeeded")
            seconds = (last - first).total_seconds()
            return {"tasks": jobs, "seconds": seconds, "per_second": jobs / seconds}

        return asyncio.run(main())
    finally:
        _drop(admin_url, name)


def pgqueuer_child(admin_url: str, jobs: int) -> dict:
    import psycopg
    from pgqueuer import PsycopgDriver, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode

    url, name = _fresh(admin_url, "pgqueuer")
    try:
        async def main() -> dict:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            driver = PsycopgDriver(conn)
            queries = Queries(driver)
            await queries.install()
            qm = QueueManager(queries)

            @qm.entrypoint("noop")
            async def noop(job) -> None:
                return None

            for start in range(0, jobs, 1000):
                n = min(1000, jobs - start)
                await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
            await qm.run(mode=QueueExecutionMode.drain)
            await conn.close()
            with psycopg.connect(url) as sync:
                done = sync.execute("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'").fetchone()[0]
                first, last = sync.execute(
                    "SELECT (SELECT min(created) FROM pgqueuer_log WHERE status = 'picked'), "
                    "(SELECT max(created) FROM pgqueuer_log WHERE status = 'successful')").fetchone()
            if done != jobs:
                raise SystemExit(f"pgqueuer: {done}/{jobs} successful")
            seconds = (last - first).total_seconds()
            return {"tasks": jobs, "seconds": seconds, "per_second": jobs / seconds}

        return asyncio.run(main())
    finally:
        _drop(admin_url, name)


def pg_limits(admin_url: str, seconds: float) -> dict:
    """One-row UPDATE commits/s (autocommit) from 1 and from 8 connections, each on its own row."""
    import psycopg

    url, name = _fresh(admin_url, "limits")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE counter (id int PRIMARY KEY, value bigint NOT NULL)")
            conn.execute("INSERT INTO counter SELECT i, 0 FROM generate_series(1, 8) i")

        def hammer(row: int, out: list[int], until: float) -> None:
            with psycopg.connect(url, autocommit=True) as c:
                n = 0
                while time.perf_counter() < until:
                    for _ in range(20):
                        c.execute("UPDATE counter SET value = value + 1 WHERE id = %s", (row,))
                    n += 20
                out.append(n)

        result = {}
        for conns in (1, 8):
            counts: list[int] = []
            start = time.perf_counter()
            threads = [threading.Thread(target=hammer, args=(i + 1, counts, start + seconds)) for i in range(conns)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            result[f"c{conns}"] = sum(counts) / (time.perf_counter() - start)
        return result
    finally:
        _drop(admin_url, name)


# -- latency ---------------------------------------------------------------------------------


def apscheduler_latency(folder: str, offsets: list[float], lead: float, store: str) -> dict:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    from batchtui.timeutil import utcnow
    from bench.latency import summary
    from bench.peer_apscheduler import LATENESS, stamp

    jobstore = (MemoryJobStore() if store == "memory"
                else SQLAlchemyJobStore(url=f"sqlite:///{Path(folder) / 'apscheduler.db'}"))
    sched = BackgroundScheduler(jobstores={"default": jobstore}, executors={"default": ThreadPoolExecutor(THREADS)},
                                job_defaults={"misfire_grace_time": None, "coalesce": False}, timezone="UTC")
    done = threading.Event()
    n = [0]

    def listener(event) -> None:
        n[0] += 1
        if n[0] >= len(offsets):
            done.set()

    sched.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    sched.start(paused=True)
    base = utcnow().replace(tzinfo=UTC) + timedelta(seconds=lead)
    for o in offsets:
        due = base + timedelta(seconds=o)
        sched.add_job(stamp, "date", run_date=due, args=(due.timestamp(),))
    sched.resume()
    if not done.wait(lead + max(offsets) + 120):
        raise SystemExit(f"APScheduler ({store}) ran only {n[0]} of {len(offsets)} jobs")
    sched.shutdown(wait=True)
    return summary(LATENESS)


# -- the table ----------------------------------------------------------------------------------


def _admin_url():
    url = os.environ.get("BATCHTUI_BENCH_PG_URL") or os.environ.get("BATCHTUI_TEST_PG_URL")
    if url:
        return url, None
    sys.path.insert(0, str(ROOT))
    from tests.pgserver import PgServer

    server = PgServer()
    if not server.available:
        return None, None
    try:
        return server.start(), server
    except (subprocess.CalledProcessError, OSError, LookupError):
        return None, None


def _fresh_folder(module_entry: str, root: str | None = None, **kwargs) -> dict:
    with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder:
        return run_child("peers", module_entry, folder=folder, root=root, **kwargs)


def _base() -> str | None:
    """BENCH_BASE: a checkout of the code before a change (with this bench/ copied in), measured too."""
    base = os.environ.get("BENCH_BASE")
    return base if base and (Path(base) / "batchtui").is_dir() else None


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{fmt(med)} [{fmt(min(values))}-{fmt(max(values))}]"


def run_peers(reps: int, scale: float, only: set[str] | None = None) -> str:  # noqa: C901  (one loop per part, read top to bottom)
    """Measure everything `reps` times, interleaved; return the table (medians and ranges)."""
    n_sqlite = max(100, int(20_000 * scale))
    n_pg = max(100, int(5_000 * scale))
    lat_count, lat_span, lat_lead = max(50, int(2_000 * scale)), max(10.0, 120.0 * scale), 8.0
    from bench.latency import due_offsets

    offsets = due_offsets(lat_count, lat_span)
    want = (lambda k: True) if not only else (lambda k: k in only)
    admin_url, server = _admin_url() if (want("pg") or want("limits")) else (None, None)
    figures: dict[str, list[float]] = {}
    base = _base()

    def add(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)

    try:
        for rep in range(1, reps + 1):
            progress(f"peers: repetition {rep} of {reps} (uptime: {os.getloadavg()[0]:.2f} load)")
            if want("limits"):
                lim = _fresh_folder("sqlite_limits", seconds=2.0)
                add("sqlite commits", lim["commits"])
                add("sqlite rows", lim["rows"])
                if admin_url:
                    pg = run_child("peers", "pg_limits", admin_url=admin_url, seconds=2.0)
                    add("pg commits 1", pg["c1"])
                    add("pg commits 8", pg["c8"])
            if want("sqlite"):
                for key, entry, kw in (
                        ("aps memory", "apscheduler", {"jobs": n_sqlite, "store": "memory"}),
                        ("huey", "huey", {"jobs": n_sqlite}),
                        ("batchtui many", "batchtui_sqlite", {"tasks": n_sqlite, "layout": "many_jobs"}),
                        ("batchtui one", "batchtui_sqlite", {"tasks": n_sqlite, "layout": "one_job"}),
                        ("before many", "batchtui_sqlite", {"tasks": n_sqlite, "layout": "many_jobs", "root": base}),
                        ("before one", "batchtui_sqlite", {"tasks": n_sqlite, "layout": "one_job", "root": base})):
                    if key.startswith("before") and not base:
                        continue
                    progress(f"peers: {key}, {n_sqlite:,} tasks")
                    r = _fresh_folder(entry, **kw)
                    progress(f"peers: {key}: {r['per_second']:,.0f} tasks/s")
                    add(key, r["per_second"])
            if want("pg") and admin_url:
                for key, entry, kw in (
                        ("pgqueuer", "pgqueuer_child", {}),
                        ("procrastinate", "procrastinate_child", {}),
                        ("batchtui pg 1", "batchtui_pg", {"servers": 1}),
                        ("batchtui pg 2", "batchtui_pg", {"servers": 2}),
                        ("before pg 1", "batchtui_pg", {"servers": 1, "root": base}),
                        ("before pg 2", "batchtui_pg", {"servers": 2, "root": base})):
                    if key.startswith("before") and not base:
                        continue
                    progress(f"peers: {key}, {n_pg:,} one-task jobs on PostgreSQL")
                    r = run_child("peers", entry, timeout=1800, admin_url=admin_url, jobs=n_pg, **kw)
                    progress(f"peers: {key}: {r['per_second']:,.0f} tasks/s")
                    add(key, r["per_second"])
            if want("latency"):
                for key, entry, kw in (("lat aps memory", "apscheduler_latency", {"store": "memory"}),
                                       ("lat aps sqlite", "apscheduler_latency", {"store": "sqlite"})):
                    progress(f"peers: {key}, {lat_count} jobs over {lat_span:g} s")
                    add(key, _fresh_folder(entry, offsets=offsets, lead=lat_lead, **kw)["p99"])
                for key, root in (("lat batchtui", None), ("lat before", base)):
                    if key == "lat before" and not base:
                        continue
                    progress(f"peers: {key}, {lat_count} jobs over {lat_span:g} s")
                    with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder:
                        ours = run_child("latency", "batchtui_child", folder=folder, offsets=offsets, lead=lat_lead,
                                         root=root)
                    add(key, ours["attempt"]["p99"])
    finally:
        if server is not None:
            server.stop()
    return _table(figures, reps, scale, n_sqlite, n_pg, lat_count, lat_span)


def _table(f: dict[str, list[float]], reps: int, scale: float, n_sqlite: int, n_pg: int, lat_count: int,
           lat_span: float) -> str:
    def ratios(a: str, b: str, invert: bool = False) -> list[float]:
        xs, ys = f.get(a, []), f.get(b, [])
        return [(y / x if invert else x / y) for x, y in zip(xs, ys, strict=False) if x and y]

    lines: list[list[str]] = []

    def row(label: str, key: str, unit: str, peer: str = "", target: str = "", invert: bool = False,
            peer_label: str = "", at_least: float | None = None, at_most: float | None = None) -> None:
        if key not in f:
            return
        r = ratios(key, peer, invert) if peer else []
        met = ""
        if r and at_least is not None:
            met = "yes" if statistics.median(r) >= at_least else "NO"
        if r and at_most is not None:
            met = "yes" if statistics.median(r) <= at_most else "NO"
        lines.append([label, _stats(f[key]), unit, peer_label, _stats(r) + "x" if r else "", target, met])

    s, p = f"{n_sqlite:,}", f"{n_pg:,}"
    row("SQLite one-row commits (limit)", "sqlite commits", "/s")
    row("SQLite batched rows, 1,000 a commit (limit)", "sqlite rows", "rows/s")
    row("PostgreSQL one-row commits, 1 connection (limit)", "pg commits 1", "/s")
    row("PostgreSQL one-row commits, 8 connections (limit)", "pg commits 8", "/s")
    for key, label in (("aps memory", "APScheduler 3.11, memory store (not durable)"),
                       ("huey", "huey 3.5 SqliteHuey, sync=NORMAL, results")):
        row(f"{label}, {s} jobs", key, "tasks/s")
    row(f"batchtui, {s} one-task jobs", "batchtui many", "tasks/s", "aps memory", ">= 1x",
        peer_label="APScheduler memory", at_least=1.0)
    row(f"batchtui, 1 job x {s} tasks", "batchtui one", "tasks/s", "aps memory", ">= 1.3x",
        peer_label="APScheduler memory", at_least=1.3)
    row(f"batchtui, {s} one-task jobs", "batchtui many", "tasks/s", "huey", ">= 4x", peer_label="huey",
        at_least=4.0)
    row(f"batchtui, 1 job x {s} tasks", "batchtui one", "tasks/s", "huey", "", peer_label="huey")
    row(f"batchtui, {s} one-task jobs", "batchtui many", "tasks/s", "sqlite commits", "",
        peer_label="SQLite commit limit")
    row(f"pgqueuer 1.6 (defaults), {p} jobs", "pgqueuer", "tasks/s")
    row(f"procrastinate 3.10 (concurrency 8), {p} jobs", "procrastinate", "tasks/s")
    row(f"batchtui PG, 1 server, {p} one-task jobs", "batchtui pg 1", "tasks/s", "pgqueuer", ">= 1x",
        peer_label="pgqueuer", at_least=1.0)
    row(f"batchtui PG, 1 server, {p} one-task jobs", "batchtui pg 1", "tasks/s", "procrastinate", ">= 3x",
        peer_label="procrastinate", at_least=3.0)
    row(f"batchtui PG, 2 servers, {p} one-task jobs", "batchtui pg 2", "tasks/s", "batchtui pg 1", ">= 1.5x",
        peer_label="1 server", at_least=1.5)
    row(f"batchtui PG, 2 servers, {p} one-task jobs", "batchtui pg 2", "tasks/s", "pgqueuer", "",
        peer_label="pgqueuer")
    row(f"APScheduler memory, due->start p99, {lat_count} jobs/{lat_span:g} s", "lat aps memory", "ms")
    row(f"APScheduler SQLite, due->start p99, {lat_count} jobs/{lat_span:g} s", "lat aps sqlite", "ms")
    row("batchtui due->attempt start p99", "lat batchtui", "ms", "lat aps sqlite", "<= 0.5x",
        peer_label="APScheduler SQLite", at_most=0.5)
    row("batchtui due->attempt start p99", "lat batchtui", "ms", "lat aps memory", "<= 10x",
        peer_label="APScheduler memory", at_most=10.0)
    row(f"batchtui, {s} one-task jobs (this code)", "batchtui many", "tasks/s", "before many", "",
        peer_label="BENCH_BASE code")
    row(f"batchtui, 1 job x {s} tasks (this code)", "batchtui one", "tasks/s", "before one", "",
        peer_label="BENCH_BASE code")
    row("batchtui PG, 1 server (this code)", "batchtui pg 1", "tasks/s", "before pg 1", "",
        peer_label="BENCH_BASE code")
    row("batchtui PG, 2 servers (this code)", "batchtui pg 2", "tasks/s", "before pg 2", "",
        peer_label="BENCH_BASE code")
    row("batchtui due->attempt start p99 (this code)", "lat batchtui", "ms", "lat before", "",
        peer_label="BENCH_BASE code")
    header = ["figure", "median [range]", "unit", "vs (same run)", "ratio median [range]", "target", "met"]
    widths = [max(len(str(x[i])) for x in [header] + lines) for i in range(len(header))]
    out = [f"batchtui vs peers: {reps} repetition(s), scale {scale:g}, load at the end "
           f"{os.getloadavg()[0]:.2f} (1 min)",
           "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(x, widths, strict=True)).rstrip() for x in lines]
    return "\n".join(out)


if __name__ == "__main__":
    child_main({"batchtui_sqlite": batchtui_sqlite, "apscheduler": apscheduler, "huey": huey,
                "sqlite_limits": sqlite_limits, "batchtui_pg": batchtui_pg,
                "procrastinate_child": procrastinate_child, "pgqueuer_child": pgqueuer_child,
                "pg_limits": pg_limits, "apscheduler_latency": apscheduler_latency})
