"""Issue 4: several batch servers on one PostgreSQL database.

Uses BATCHTUI_BENCH_PG_URL (an admin URL: each measurement creates its own
database there) or starts a throw-away server with tests/pgserver.py. Every
batch server is a separate ``python -m batchtui server --name S<i> --poll 0.5
--retry-base 0`` process with BATCHTUI_DB set; the coordinating process only
writes the jobs and reads the history.

1. Throughput of short tasks on 1, 2 and 4 servers: one job of 5,000 Noop
   tasks (quick: 1,000), held (Withhold) while the servers start, released
   (Waiting) once all have registered; tasks per second = tasks / (run end -
   release). The servers are then stopped with SIGTERM. (--exit-when-idle
   is not used here: a server started with it exits at once while the job is
   held, and starting servers with the work already due would count their
   start-up, not their throughput.) Ratio against 1 server.
2. Due to start across servers: 2 servers running, 400 one-task jobs (quick:
   100) due at scattered times over 30 s (quick: 6 s);
   TaskAttempt.started - JobRun.scheduled, p50/p99/max. Compared with the
   poll interval (0.5 s): a server must not wait for its poll.
3. Recovery of a killed server's tasks: S1 (2 threads) runs two Sleep tasks
   (one retry each), S2 is up, both with --heartbeat 0.5 --dead-after 3; S1
   is killed with SIGKILL; time from the kill to the start of the retried
   attempts on S2. Compared with dead-after + 2 heartbeats, the longest a
   correct server can take (the dead server's last beat can be up to one
   heartbeat old when it dies; the live one looks once a heartbeat).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from batchtui.actor import Actor
from bench.common import ROOT, Row, child_main, percentile, plain, progress, run_child, skipped, versus, within

POLL = 0.5
HEARTBEAT = 0.5
DEAD_AFTER = 3.0


# -- batch server processes ------------------------------------------------------


def _die_with_parent() -> None:
    """In a server process, before exec: get SIGTERM if the measuring process dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # no glibc or no prctl: the servers are still stopped by Servers.__exit__


class Servers:
    """`batchtui server` processes on one database; stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, url: str, folder: str) -> None:
        self.url = url
        self.folder = Path(folder)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *extra: str, threads: int = 8) -> subprocess.Popen:
        env = dict(os.environ, BATCHTUI_DB=self.url, BATCHTUI_USER="bench",
                   BATCHTUI_CONFIG=str(self.folder / "no-config.toml"))
        log = open(self.folder / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "batchtui", "server", "--name", name, "--threads", str(threads),
             "--poll", str(POLL), "--retry-base", "0", *extra],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        return self.procs[name]

    def wait_registered(self, timeout: float = 60) -> None:
        from batchtui import models as m

        deadline = time.monotonic() + timeout
        while True:
            up = {(s.name, s.pid) for s in m.BatchServer.select().where(m.BatchServer.stopped.is_null())}
            if all((name, p.pid) in up for name, p in self.procs.items()):
                return
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise SystemExit(f"batch server {name} exited ({p.returncode}): see {self.folder}/{name}.log")
            if time.monotonic() > deadline:
                raise SystemExit("the batch servers did not register in time")
            time.sleep(0.05)

    def show_logs(self, lines: int = 15) -> None:
        """The end of every server's log, on stderr (when a measurement fails)."""
        for log in sorted(self.folder.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            print(f"--- {log.name} (last {len(tail)} lines)", *tail, sep="\n", file=sys.stderr)

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if exc is not None:
            self.show_logs()
        self.stop_all()

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def _fresh_database(admin_url: str, name: str) -> str:
    from bench.seed import open_db
    from tests.pgserver import create_database

    url = create_database(admin_url, name)
    open_db(url)
    return url


def _drop_database(admin_url: str, name: str) -> None:
    import psycopg

    from batchtui import models as m

    m.database.close()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_until(predicate, timeout: float, what: str | None = None, every: float = 0.02) -> bool:
    """Poll until predicate() is true; False on timeout, or SystemExit naming `what`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            if what is None:
                return False
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)
    return True


# -- the measurements (each in its own process) -----------------------------------------


def throughput_child(admin_url: str, servers: int, tasks: int) -> dict:
    from peewee import fn

    from batchtui import models as m
    from batchtui import status as st
    from batchtui.timeutil import utcnow
    from batchtui.vocabulary import JOB_FINAL, TASK_FINAL
    from batchtui.vocabulary import BatchStatus as S
    from bench.seed import add_jobs

    name = f"bench_throughput_{servers}_{os.getpid()}"
    url = _fresh_database(admin_url, name)
    try:
        (job_id,) = add_jobs([utcnow()], tasks_per_job=tasks, status=S.HOLD)
        settled = m.BatchTask.select().where((m.BatchTask.job == job_id) & (m.BatchTask.status << list(TASK_FINAL)))
        with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder:
            with Servers(url, folder) as procs:
                for i in range(1, servers + 1):
                    procs.start(f"S{i}")
                procs.wait_registered()
                released = utcnow()
                st.set_job_status(job_id, S.WAITING, Actor.current("bench"))
                _wait_until(lambda: settled.count() == tasks, 300, "every task to end")
                ended = _wait_until(lambda: m.BatchJob.get_by_id(job_id).status in JOB_FINAL, 10)
        per_task = Counter(t for (t,) in m.TaskAttempt.select(m.TaskAttempt.task).tuples())
        finished = m.TaskAttempt.select().where(m.TaskAttempt.status == S.FINISHED).count()
        if finished != tasks or len(per_task) != tasks or max(per_task.values()) != 1:
            raise SystemExit(f"{servers} server(s): {finished}/{tasks} tasks ended, "
                             f"at most {max(per_task.values())} attempts of one task")
        last = m.TaskAttempt.select(fn.MAX(m.TaskAttempt.ended)).scalar()
        run = m.JobRun.get(m.JobRun.job == job_id)
        seconds = ((run.ended if ended else last) - released).total_seconds()
        spread = Counter(s for (s,) in m.TaskAttempt.select(m.TaskAttempt.server).tuples())
        problem = "" if ended else "BUG: every task ended but the job stayed Executing (run never finalised)"
        return {"seconds": seconds, "per_second": tasks / seconds, "spread": dict(spread), "problem": problem}
    finally:
        _drop_database(admin_url, name)


def latency_child(admin_url: str, jobs: int, span: float, lead: float) -> dict:
    from batchtui import models as m
    from batchtui.timeutil import utcnow
    from bench.latency import due_offsets
    from bench.seed import add_jobs

    name = f"bench_latency_{os.getpid()}"
    url = _fresh_database(admin_url, name)
    try:
        base = utcnow() + timedelta(seconds=lead)
        add_jobs([base + timedelta(seconds=o) for o in due_offsets(jobs, span)])
        with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder:
            with Servers(url, folder) as procs:
                procs.start("S1")
                procs.start("S2")
                procs.wait_registered()
                if utcnow() >= base:
                    raise SystemExit("the servers started after the first job was due: raise the lead time")
                _wait_until(lambda: m.JobRun.select().where(m.JobRun.ended.is_null(False)).count() == jobs,
                            lead + span + 120, "every job to run", every=0.5)
        late, servers = [], Counter()
        for started, scheduled, server in (m.TaskAttempt.select(m.TaskAttempt.started, m.JobRun.scheduled,
                                                                m.TaskAttempt.server)
                                           .join(m.JobRun, on=(m.TaskAttempt.run == m.JobRun.id)).tuples()):
            late.append((started - scheduled).total_seconds() * 1000)
            servers[server] += 1
        return {"p50": percentile(late, 50), "p99": percentile(late, 99), "max": max(late),
                "spread": dict(servers)}
    finally:
        _drop_database(admin_url, name)


def recovery_child(admin_url: str) -> dict:
    from batchtui import models as m
    from batchtui import status as st
    from batchtui.timeutil import utcnow
    from batchtui.vocabulary import BatchStatus as S
    from bench.seed import add_job_with_conditions

    name = f"bench_recovery_{os.getpid()}"
    url = _fresh_database(admin_url, name)
    try:
        tasks = [{"key": f"slow{i}", "class_name": "Sleep", "params": {"seconds": 30}, "max_retries": 1}
                 for i in range(2)]
        job_id, ids = add_job_with_conditions(tasks, status=S.HOLD)
        beat = ("--heartbeat", str(HEARTBEAT), "--dead-after", str(DEAD_AFTER))
        executing_on_s1 = m.BatchTask.select().where((m.BatchTask.server == "S1")
                                                     & (m.BatchTask.status == S.EXECUTING))
        retried = m.TaskAttempt.select().where((m.TaskAttempt.attempt == 2) & (m.TaskAttempt.server == "S2"))
        with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder:
            with Servers(url, folder) as procs:
                procs.start("S1", *beat, threads=2)
                procs.wait_registered()
                st.set_job_status(job_id, S.WAITING, Actor.current("bench"))
                _wait_until(lambda: executing_on_s1.count() == 2, 60, "S1 to run both tasks")
                procs.start("S2", *beat, threads=2)
                procs.wait_registered()
                time.sleep(1.0)  # S2 settled in its heartbeat rhythm
                killed = utcnow()
                procs.kill("S1")
                _wait_until(lambda: retried.count() == 2, 60, "S2 to retry S1's tasks")
                restarts = [a.started for a in retried]
        taken_back = m.TaskAttempt.select().where((m.TaskAttempt.attempt == 1) & (m.TaskAttempt.server == "S1"))
        if not all(a.status == S.ERROR and "S1" in a.log for a in taken_back):
            raise SystemExit("S1's attempts were not closed in Error with the reason in their log")
        return {"first": (min(restarts) - killed).total_seconds(), "last": (max(restarts) - killed).total_seconds()}
    finally:
        _drop_database(admin_url, name)


# -- the benchmark ------------------------------------------------------------------


def _admin_url() -> tuple[str | None, object, str]:
    """(admin URL, server to stop or None, why not available)."""
    url = os.environ.get("BATCHTUI_BENCH_PG_URL")
    if url:
        return url, None, ""
    sys.path.insert(0, str(ROOT))
    from tests.pgserver import PgServer

    server = PgServer()
    if not server.available:
        return None, None, "PostgreSQL's initdb/pg_ctl not found and BATCHTUI_BENCH_PG_URL not set"
    try:
        return server.start(), server, ""
    # initdb or pg_ctl failed, or there is no postgres user to run them as.
    except (subprocess.CalledProcessError, OSError, LookupError) as exc:
        return None, None, f"PostgreSQL did not start: {exc}"


def run(quick: bool) -> list[Row]:
    admin_url, server, why = _admin_url()
    if admin_url is None:
        progress(f"postgres: skipped ({why})")
        return [skipped("PostgreSQL, several servers", why)]
    try:
        return _measure(admin_url, quick)
    finally:
        if server is not None:
            server.stop()


def _measure(admin_url: str, quick: bool) -> list[Row]:
    tasks = 1_000 if quick else 5_000
    jobs, span, lead = (100, 6.0, 4.0) if quick else (400, 30.0, 6.0)
    rows: list[Row] = []
    one = None
    for n in (1, 2, 4):
        progress(f"postgres: {tasks:,} Noop tasks on {n} server(s)")
        r = run_child("postgres", "throughput_child", timeout=900, admin_url=admin_url, servers=n, tasks=tasks)
        shares = ", ".join(f"{k} {v}" for k, v in sorted(r["spread"].items()))
        progress(f"postgres: {r['per_second']:,.0f} tasks/s on {n} server(s) ({shares}) {r['problem']}")
        if r["problem"]:
            shares = f"{r['problem']}; {shares}"
        name = f"PG throughput, {n} server(s), {tasks:,} tasks"
        if one is None:
            one = r["per_second"]
            row = plain(name, one, "tasks/s", note=shares)
        else:
            row = versus(name, r["per_second"], "tasks/s", "1 server", one, at_least=1, note=shares)
        if r["problem"]:
            row.met = False  # every task ran, but the job never ended: not a result to accept
        rows.append(row)
    progress(f"postgres: {jobs} jobs due over {span:g} s on 2 servers")
    lat = run_child("postgres", "latency_child", timeout=900, admin_url=admin_url, jobs=jobs, span=span, lead=lead)
    shares = ", ".join(f"{k} {v}" for k, v in sorted(lat["spread"].items()))
    rows += [
        versus("PG due->attempt start, 2 servers, p50", lat["p50"], "ms", "poll interval", POLL * 1000, note=shares),
        versus("PG due->attempt start, 2 servers, p99", lat["p99"], "ms", "poll interval", POLL * 1000, at_most=1),
        versus("PG due->attempt start, 2 servers, max", lat["max"], "ms", "poll interval", POLL * 1000),
    ]
    progress("postgres: killing a server that runs two Sleep tasks")
    rec = run_child("postgres", "recovery_child", timeout=900, admin_url=admin_url)
    limit = DEAD_AFTER + 2 * HEARTBEAT
    rows += [
        within("PG recovery: kill -> retried attempt starts (last)", rec["last"], "s", limit,
               peer="dead-after + 2 heartbeats"),
    ]
    return rows


if __name__ == "__main__":
    child_main({"throughput_child": throughput_child, "latency_child": latency_child,
                "recovery_child": recovery_child})
