"""Where one PostgreSQL batch server's time goes (issue 17): per statement, on the server's side.

    python -m bench.pg_profile [--jobs 5000] [--top 20] [--no-guards]

Starts a throw-away PostgreSQL (tests/pgserver.py) with pg_stat_statements
(planning time tracked), loads JOBS one-task jobs due now, runs one batch
server in this process until they have all ended, and prints:

- tasks/s, timed as bench/peers.py times batchtui (first attempt start to
  last attempt end);
- the CPU time the PostgreSQL backends used meanwhile (read from /proc), and
  this process's;
- the statements that cost the backend most (calls, execution ms, planning
  ms, plans made), the jobs' loading left out.

``--no-guards`` drops the guard triggers first (a diagnostic: what they
cost; never do it to a real database).
"""

from __future__ import annotations

import argparse
import os
import resource
import threading
import time
from datetime import timedelta

GUARDED = ("batch_job", "batch_task", "batch_constraint", "job_alert", "job_run", "run_task", "task_attempt", "alert")


class _BackendCpu(threading.Thread):
    """CPU ticks of every process named postgres, sampled until stopped (a backend's last sample counts)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.ticks: dict[str, int] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                if stat[stat.index("(") + 1:stat.rindex(")")] != "postgres":
                    continue
                fields = stat[stat.rindex(")") + 2:].split()
                self.ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
            time.sleep(0.05)

    def seconds(self, since: dict[str, int]) -> float:
        return sum(t - since.get(pid, 0) for pid, t in self.ticks.items()) / os.sysconf("SC_CLK_TCK")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=_positive, default=5000, help="one-task jobs to run (default 5000)")
    parser.add_argument("--top", type=_positive, default=20, help="statements to list (default 20)")
    parser.add_argument("--no-guards", action="store_true")
    args = parser.parse_args()

    import psycopg
    from peewee import fn

    from batchtui import models as m
    from batchtui.engine import BatchServerEngine
    from batchtui.timeutil import utcnow
    from bench.seed import add_jobs, open_db
    from tests.pgserver import PgServer, create_database

    server = PgServer()
    admin = server.start("-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=on")
    try:
        url = create_database(admin, "pg_profile")
        open_db(url)
        add_jobs([utcnow() - timedelta(seconds=1)] * args.jobs, tasks_per_job=1)
        if args.no_guards:
            for table in GUARDED:
                m.database.execute_sql(f"DROP TRIGGER IF EXISTS batchtui_guard ON {table}")
        m.database.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
        cpu = _BackendCpu()
        cpu.start()
        time.sleep(0.2)
        before = dict(cpu.ticks)
        ours = resource.getrusage(resource.RUSAGE_SELF)
        engine = BatchServerEngine(name="P1", threads=8, poll=1.0, retry_base=0, exit_when_idle=True)
        engine.start()
        engine.wait()
        engine.stop()
        cpu.stopped.set()
        cpu.join(1)
        after = resource.getrusage(resource.RUSAGE_SELF)
        with m.database.connection_context():
            first, last = m.TaskAttempt.select(fn.MIN(m.TaskAttempt.started), fn.MAX(m.TaskAttempt.ended)).tuples()[0]
        seconds = (last - first).total_seconds()
        print(f"{args.jobs:,} one-task jobs in {seconds:.2f} s: {args.jobs / seconds:,.0f} tasks/s"
              f"{' (guard triggers dropped)' if args.no_guards else ''}")
        print(f"CPU: PostgreSQL backends {cpu.seconds(before):.2f} s, this process "
              f"{after.ru_utime + after.ru_stime - ours.ru_utime - ours.ru_stime:.2f} s")
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT calls, total_exec_time, total_plan_time, plans, "
                "left(regexp_replace(query, '\\s+', ' ', 'g'), 100) FROM pg_stat_statements "
                "WHERE query NOT LIKE '%%pg_stat_statements%%' "
                "ORDER BY total_exec_time + total_plan_time DESC LIMIT %s", (args.top,)).fetchall()
            total = conn.execute("SELECT sum(calls), sum(total_exec_time), sum(total_plan_time) "
                                 "FROM pg_stat_statements").fetchone()
        print(f"statements: {int(total[0]):,} calls, {total[1]:,.0f} ms executing, {total[2]:,.0f} ms planning")
        print(f"{'calls':>7} {'exec ms':>8} {'plan ms':>8} {'plans':>6}  statement")
        for calls, exec_ms, plan_ms, plans, query in rows:
            print(f"{calls:>7,} {exec_ms:>8.1f} {plan_ms:>8.1f} {plans:>6,}  {query}")
    finally:
        m.database.close()
        server.stop()


if __name__ == "__main__":
    main()
