"""Faults: batch servers killed at random moments, several processes on one
SQLite file under load, the database going away and coming back, and no task
twice at once (issue #16): a killed server's shell tasks, a server stopped
past --dead-after, a restart while the killed server is a zombie."""

from __future__ import annotations

import getpass
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

import pytest

from batchtui import db as dbmod
from batchtui import models as m
from batchtui import status as st
from batchtui.actor import Actor
from batchtui.vocabulary import BatchStatus as S

from .conftest import job_status, make_job, wait_for
from .faultkit import (
    MARK,
    ROOT,
    ConsolePty,
    PausablePg,
    Procs,
    assert_one_error_line,
    env_for,
    read_marks,
    read_ticks,
    run_cli,
    shared_folder,
    stop_outside_write,
    ticker,
    twins,
)

TASK_DONE = (S.FINISHED, S.ERROR, S.NOT_RUN)
JOB_DONE = (S.FINISHED, S.ERROR, S.CANCELED)


def _sqlite_path(url: str) -> str:
    return url[len("sqlite:///"):]


def big_job(rng: random.Random, marks, n: int = 240):
    """Hundreds of short tasks: free ones, chains with conditions, retried and failing ones."""
    tasks = []

    def mark(key, **kw):
        params = {"file": str(marks), "seconds": round(rng.choice([0, 0, 0.01, 0.02, 0.05]), 3)}
        params.update(kw.pop("params", {}))
        tasks.append({"key": key, "class_name": MARK, "params": params, **kw})

    for i in range(60):
        mark(f"free{i}")
    for c in range(4):
        prev = None
        for s in range(20):
            key = f"c{c}.{s}"
            cond = [(prev, rng.choice(["ended", "ended_or_error"]))] if prev else []
            mark(key, conditions=cond, max_retries=rng.choice([0, 0, 1, 2]))
            prev = key
    for i in range(30):
        mark(f"retry{i}", params={"fail_first": 1}, max_retries=2)
    for i in range(15):
        mark(f"gives_up{i}", params={"fail_first": 3}, max_retries=1, ignore_failure=True)
        tasks.append({"key": f"on_error{i}", "conditions": [(f"gives_up{i}", "error")]})
        tasks.append({"key": f"never{i}", "conditions": [(f"gives_up{i}", "ended")]})
    for i in range(n - len(tasks) - 1):
        tasks.append({"key": f"builtin{i}", "class_name": "Sleep" if i % 2 else "Noop",
                      "params": {"seconds": 0.02} if i % 2 else {}})
    tasks.append({"key": "any_join", "condition_type": "any",
                  "conditions": [("c0.19", "ended"), ("c1.19", "ended"), ("free0", "ended")]})
    return tasks


def check_runs(job_ids, marks_path):
    """Every task of the jobs is over, and every attempt is accounted for."""
    marks = Counter(read_marks(marks_path))
    assert all(v == 1 for v in marks.values()), [k for k, v in marks.items() if v > 1]
    marks_by_task = defaultdict(set)
    for task_id, run_id, attempt in marks:
        marks_by_task[task_id].add((run_id, attempt))
    interrupted = 0
    for job_id in job_ids:
        job = m.BatchJob.get_by_id(job_id)
        assert S(job.status) in JOB_DONE, (job_id, S(job.status))
        tasks = list(m.BatchTask.select().where(m.BatchTask.job == job_id))
        failed = False
        for t in tasks:
            assert S(t.status) in TASK_DONE, (t.key, S(t.status))
            atts = list(m.TaskAttempt.select().where(m.TaskAttempt.task == t.id)
                        .order_by(m.TaskAttempt.attempt))
            assert [a.attempt for a in atts] == list(range(1, len(atts) + 1)), t.key
            # An attempt claimed ahead that never started is handed back after a kill: no retry used.
            back = [a for a in atts if a.status == S.CANCELED and "no retry used" in (a.log or "")]
            used = [a for a in atts if a not in back]
            assert len(used) <= 1 + t.max_retries, (t.key, [(a.status, a.log) for a in atts])
            for a in atts[:-1]:  # every attempt but the last failed or was handed back, and says why
                assert a in back or (a.status == S.ERROR and a.log.strip()), (t.key, a.status, a.log)
            if t.class_name == MARK:
                # Mark is not rerun_safe: claimed ahead, it runs only once its start is recorded,
                # so one handed back as never started has left no mark.
                assert not {(a.run_id, a.attempt) for a in back} & marks_by_task[t.id], (t.key, back)
            if atts:
                assert atts[-1].status == t.status, (t.key, atts[-1].status, t.status)
                assert all(a.ended is not None for a in atts)
            else:
                assert S(t.status) == S.NOT_RUN, t.key
            for a in atts:
                interrupted += "interrupted" in (a.log or "")
                if a.status == S.FINISHED and t.class_name == MARK:
                    assert (a.run_id, a.attempt) in marks_by_task[t.id], (t.key, a.attempt)
            if t.class_name == MARK:
                # Every start of the class is one attempt row: nothing ran unrecorded.
                recorded = {(a.run_id, a.attempt) for a in atts}
                assert marks_by_task[t.id] <= recorded, (t.key, marks_by_task[t.id], recorded)
            failed = failed or (S(t.status) == S.ERROR and not t.ignore_failure)
        assert S(job.status) == (S.ERROR if failed else S.FINISHED), job_id
    return interrupted


def kill_targets(rng: random.Random, marks, count: int, label: str) -> list[int]:
    """Held jobs of hundreds of tasks, to be set Waiting one at a time while something is killed."""
    return [make_job(big_job(rng, marks), description=f"{label} {j}", status=S.HOLD)[0] for j in range(count)]


@pytest.mark.slow
def test_server_sigkilled_at_random_moments_loses_nothing_and_runs_nothing_twice(database, db_url, tmp_path):
    rng = random.Random(20260601)
    marks = tmp_path / "marks.txt"
    jobs = kill_targets(rng, marks, 12, "kill target")
    procs = Procs(db_url, tmp_path)
    active: list[int] = []

    def activate_next():
        with m.database.connection_context():
            if active and S(m.BatchJob.get_by_id(active[-1]).status) not in JOB_DONE:
                return
            if len(active) < len(jobs):
                active.append(jobs[len(active)])
                st.set_job_status(active[-1], S.WAITING, Actor.current("ops"))

    try:
        moments = []
        for _ in range(24):
            activate_next()
            procs.start("K1", threads=4, poll=0.05)
            moment = rng.uniform(0.05, 1.5)
            moments.append(round(moment, 3))
            time.sleep(moment)
            procs.kill("K1")
        assert len(active) < len(jobs), "every job was over before the last kill: make the jobs bigger"
        # A last start takes back what the killed one left and finishes the work.
        proc = procs.start("K1", "--exit-when-idle", threads=4, poll=0.05)
        assert proc.wait(120) == 0, procs.log_text()
    finally:
        procs.stop_all()
    with m.database.connection_context():
        interrupted = check_runs(active, marks)
        assert not m.BatchJob.select().where(m.BatchJob.status << [S.EXECUTING, S.CANCELLING]).exists()
        assert m.BatchServer.get_by_id("K1").stopped is not None
    print(f"kill moments {moments}; jobs run {len(active)}; attempts cut by a kill {interrupted}")
    assert len(active) >= 2, "the kills never got past the first job"
    assert interrupted >= 5, f"only {interrupted} attempts were cut by a kill (moments {moments})"
    conn = sqlite3.connect(_sqlite_path(db_url))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


# -- two servers and operators on one SQLite file -------------------------------------


@pytest.mark.slow
def test_console_two_servers_and_operators_on_one_sqlite_file_never_show_database_is_locked(database, db_url,
                                                                                            tmp_path):
    procs = Procs(db_url, tmp_path)
    operators = []
    cli_results = []
    try:
        procs.start("L1", threads=4, poll=0.05)
        procs.start("L2", threads=4, poll=0.05)
        for i in range(2):
            out = tmp_path / f"operator{i}.json"
            operators.append((out, subprocess.Popen(
                [sys.executable, "-m", "tests.faultkit", "operator", db_url, str(out), "12", f"op{i}"],
                env=env_for(db_url), cwd=str(ROOT),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
        # An operator at the console (its own process) adds a job every half second meanwhile.
        console = ConsolePty(db_url, "--no-server")
        # The load runs at least 12 s, and until the operator at the console has seen 6 jobs
        # saved: on a busy CI machine the console alone may take most of 12 s to start.
        deadline = time.monotonic() + 12
        typed = []
        confirmed = []
        stopped = []  # why the typist stopped early, for a failure's message

        def shows(text, since, timeout=15.0):
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if text in console.since(since):
                    return True
                time.sleep(0.02)
            return False

        def type_jobs():
            # As an operator does: each key once the screen shows its effect.
            if not shows("Batch jobs", 0, 30):
                stopped.append("the console never showed Batch jobs")
                return
            while time.monotonic() < deadline or len(confirmed) < 6:
                mark = console.mark()
                console.type(b"\x0e")  # Ctrl+N
                if not shows("enter its description", mark):
                    stopped.append(f"no new job form 15 s after Ctrl+N number {len(typed) + 1}")
                    return
                typed.append(len(typed) + 1)
                mark = console.mark()
                console.type(f"console load {len(typed)}".encode() + b"\x13")  # Ctrl+S
                if not shows("Saved batch job", mark):
                    stopped.append(f"no 'Saved batch job' 15 s after Ctrl+S number {len(typed)}")
                    return
                confirmed.append(len(typed))
                time.sleep(0.3)

        typist = threading.Thread(target=type_jobs, daemon=True)
        typist.start()
        # Meanwhile, real command-line processes, as a script over SSH would run them (at least
        # 12, however long a loaded machine takes to start each).
        while time.monotonic() < deadline or typist.is_alive() or len(cli_results) < 12:
            for args in (["job", "list", "--json"], ["servers"], ["job", "import", "-"]):
                stdin = None
                if args[-1] == "-":
                    tasks = [{"description": f"k{i}", "class": "Noop"} for i in range(20)]
                    stdin = json.dumps({"description": "cli load", "status": "waiting", "tasks": tasks}).encode()
                p = run_cli(args, db_url, stdin=stdin)
                cli_results.append((args, p.returncode, p.stderr.decode(errors="replace")))
        typist.join()
        time.sleep(1.0)
        console.type(b"\x11")  # Ctrl+Q
        assert console.wait(60) == 0, console.output()[-3000:]
        console_output = console.output()
        for _out, proc in operators:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode(errors="replace")
        ops = [r for out, _ in operators for r in json.loads(out.read_text())]
        with m.database.connection_context():
            wait_for(lambda: not m.BatchJob.select().where(
                m.BatchJob.status << [S.WAITING, S.EXECUTING, S.CANCELLING]).exists(), timeout=120)
    finally:
        procs.stop_all()
    print(f"{len(ops)} in-process operator commands, {len(cli_results)} command-line processes, "
          f"{len(typed)} jobs typed at the console, {console.mark()} bytes of console output")
    assert len(ops) > 50 and len(cli_results) > 10
    bad = [r for r in ops if r["rc"] != 0 or r["err"].strip()]
    assert not bad, bad[:5]
    bad = [r for r in cli_results if r[1] != 0 or r[2].strip()]
    assert not bad, bad[:5]
    assert "locked" not in procs.log_text() and "database error" not in procs.log_text(), procs.log_text()
    assert len(confirmed) >= 6, console_output[-3000:]
    for text in ("locked", "Traceback", "Database unavailable", "Not saved"):
        assert text not in console_output, console_output[-3000:]
    with m.database.connection_context():
        saved = m.BatchJob.select().where(m.BatchJob.description.startswith("console load")).count()
    assert saved == len(typed), (saved, len(typed))
    with m.database.connection_context():
        logs = [a.log for a in m.TaskAttempt.select(m.TaskAttempt.log)]
        assert logs and not any("locked" in (text or "") for text in logs)
        ran = m.BatchJob.select().where(m.BatchJob.run_count > 0)
        assert ran.count() > 10
        assert {S(j.status) for j in ran} == {S.FINISHED}
        per_task = Counter(a.task_id for a in m.TaskAttempt.select(m.TaskAttempt.task))
        assert set(per_task.values()) == {1}, "a task ran more than once"
        servers = Counter(a.server for a in m.TaskAttempt.select(m.TaskAttempt.server))
        assert set(servers) == {"L1", "L2"}, servers


# -- the database going away ---------------------------------------------------------


def test_cli_against_a_missing_or_unreachable_database_exits_1_with_one_line(tmp_path):
    (tmp_path / "afile").write_text("")
    (tmp_path / "garbage.db").write_bytes(random.Random(1).randbytes(8192))
    with socket_port() as closed_port:
        urls = [
            f"postgresql://postgres@127.0.0.1:{closed_port}/nodb",
            "postgresql://postgres@nohost.invalid/db",
            f"sqlite:///{tmp_path}/afile/x.db",  # its folder cannot be made
            f"sqlite:///{tmp_path}/garbage.db",  # not a database
        ]
        for url in urls:
            for args in (["job", "list"], ["job", "status", "1", "waiting"], ["servers", "--json"],
                         ["job", "import", "-"], ["server", "--exit-when-idle"]):
                p = run_cli(args, url, stdin=b'{"description": "x", "tasks": []}')
                line = assert_one_error_line(p, exit_codes=(1,))
                assert "cannot" in line, line
                assert p.stdout == b""


class socket_port:
    """A local TCP port nothing listens on."""

    def __enter__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()


@pytest.fixture
def own_pg(tmp_path):
    server = PausablePg()
    if not server.available:
        pytest.skip("PostgreSQL's initdb/pg_ctl not found")
    try:
        admin = server.start()
    except (OSError, LookupError, subprocess.SubprocessError) as exc:  # no postgres user, initdb/pg_ctl failed
        pytest.skip(f"could not start PostgreSQL: {exc}")
    yield server, admin
    server.stop()


@pytest.mark.slow
def test_postgresql_stopped_and_started_again_while_a_server_runs(own_pg, tmp_path, monkeypatch):
    from .pgserver import create_database

    server, admin = own_pg
    url = create_database(admin, "bt_faults")
    monkeypatch.setenv("BATCHTUI_USER", "ops")
    d = dbmod.open_database(url)
    marks = tmp_path / "marks.txt"
    try:
        job_id, ids = make_job([{"key": f"t{i}", "class_name": MARK,
                                 "params": {"file": str(marks), "seconds": 0.25}} for i in range(40)]
                               + [{"key": "last", "conditions": [(f"t{i}", "ended") for i in range(40)]}],
                               status=S.HOLD)
        st.set_job_status(job_id, S.WAITING, Actor.current("ops"))
    finally:
        d.close()
    procs = Procs(url, tmp_path)
    try:
        proc = procs.start("P1", threads=4, poll=0.2)
        deadline = time.monotonic() + 30
        while len(read_marks(marks)) < 8:  # the job is well under way
            assert time.monotonic() < deadline and proc.poll() is None, procs.log_text()
            time.sleep(0.05)
        server.pause()
        time.sleep(3)
        assert proc.poll() is None, "the batch server died with its database:\n" + procs.log_text()
        server.resume()
        d = dbmod.open_database(url)
        try:
            wait_for(lambda: job_status(job_id) in JOB_DONE, timeout=60)
            assert job_status(job_id) == S.FINISHED
            atts = list(m.TaskAttempt.select())
            assert Counter(a.task_id for a in atts) == Counter(ids.values()), "lost or repeated attempts"
            assert {S(a.status) for a in atts} == {S.FINISHED}
            assert proc.poll() is None
        finally:
            d.close()
    finally:
        procs.stop_all()
    log = procs.log_text()
    assert "database error" in log, log  # it said so...
    assert "Traceback" not in log, log
    errors = [line for line in log.splitlines() if "database error" in line]
    assert len(errors) < 20, "no back-off: " + "\n".join(errors)
    assert sorted(read_marks(marks)) == sorted(set(read_marks(marks)))


def _marked_job(marks, n=40, seconds=0.2):
    tasks = [{"key": f"t{i}", "class_name": MARK, "params": {"file": str(marks), "seconds": seconds}}
             for i in range(n)]
    tasks.append({"key": "last", "conditions": [(f"t{i}", "ended") for i in range(n)]})
    return make_job(tasks, status=S.HOLD)


def _wait_marks(marks, count, proc, procs, timeout=30):
    deadline = time.monotonic() + timeout
    while len(read_marks(marks)) < count:
        assert time.monotonic() < deadline and proc.poll() is None, procs.log_text()
        time.sleep(0.05)


def test_sqlite_folder_moved_away_and_back_while_a_server_runs(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    url = f"sqlite:///{folder}/batch.db"
    monkeypatch.setenv("BATCHTUI_USER", "ops")
    monkeypatch.setenv("BATCHTUI_CONFIG", str(tmp_path / "none.toml"))
    marks = tmp_path / "marks.txt"
    d = dbmod.open_database(url)
    job_id, ids = _marked_job(marks)
    st.set_job_status(job_id, S.WAITING, Actor.current("ops"))
    d.close()
    procs = Procs(url, tmp_path)
    try:
        proc = procs.start("F1", threads=4, poll=0.1)
        _wait_marks(marks, 8, proc, procs)
        away = tmp_path / "data.away"
        folder.rename(away)  # the volume goes away
        try:
            time.sleep(0.5)
            p = run_cli(["job", "status", str(job_id), "withhold"], url)
            # Nothing to change while the folder is gone: the command must not make a new
            # empty database there and report "no such job" as if all were well.
            assert p.returncode != 0, p
            assert_one_error_line(p, exit_codes=(1, 2))
            assert proc.poll() is None, procs.log_text()
        finally:
            if folder.exists():
                shutil.rmtree(folder)
            away.rename(folder)  # and comes back
        d = dbmod.open_database(url)
        try:
            wait_for(lambda: job_status(job_id) in JOB_DONE, timeout=60)
            assert job_status(job_id) == S.FINISHED
            atts = list(m.TaskAttempt.select())
            assert Counter(a.task_id for a in atts) == Counter(ids.values())
        finally:
            d.close()
    finally:
        procs.stop_all()


def test_sqlite_file_deleted_and_restored_from_backup_server_picks_up_the_restored_file(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    path = folder / "batch.db"
    url = f"sqlite:///{path}"
    monkeypatch.setenv("BATCHTUI_USER", "ops")
    monkeypatch.setenv("BATCHTUI_CONFIG", str(tmp_path / "none.toml"))
    marks = tmp_path / "marks.txt"
    d = dbmod.open_database(url)
    job_id, ids = _marked_job(marks, n=30, seconds=0.2)
    st.set_job_status(job_id, S.WAITING, Actor.current("ops"))
    d.close()
    procs = Procs(url, tmp_path)
    try:
        proc = procs.start("F2", threads=4, poll=0.1)
        _wait_marks(marks, 8, proc, procs)
        backup = tmp_path / "backup.db"
        src = sqlite3.connect(str(path))
        dst = sqlite3.connect(str(backup))
        src.backup(dst)
        src.close()
        dst.close()
        shutil.rmtree(folder)  # the folder is deleted...
        time.sleep(1.0)
        assert proc.poll() is None, procs.log_text()
        folder.mkdir(mode=0o700)
        shutil.copy(backup, path)  # ...and the database restored from its backup
        d = dbmod.open_database(url)
        try:
            wait_for(lambda: job_status(job_id) in JOB_DONE, timeout=15)
        finally:
            d.close()
    finally:
        procs.stop_all()


# -- no task twice at once (issue #16) -------------------------------------------------------

# A shell task's command runs as the job's Run-by user: nobody when the tests
# run as root (the parent-death signal must survive the switch of user).
RUN_BY = "nobody" if os.geteuid() == 0 else getpass.getuser()


def _running(pid: int) -> bool:
    """A process with this pid runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")


@pytest.fixture
def twin_dir():
    """A folder the shell tasks (maybe running as nobody) write their ticks in."""
    folder = shared_folder()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _shell_job(path, n: int, seconds: float, max_retries: int = 1):
    return make_job([{"key": f"sh{i}", "class_name": "ShellCommand", "max_retries": max_retries,
                      "params": {"command": ticker(path, seconds)}} for i in range(n)], user=RUN_BY)


def _wait_ticks(path, want, procs, timeout=30.0, what="ticks"):
    """Until want(read_ticks(path)) holds; the servers' logs in the failure."""
    deadline = time.monotonic() + timeout
    while not want(read_ticks(path)):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s:\n{procs.log_text()}"
        time.sleep(0.05)
    return read_ticks(path)


def _attempt_rows(task_ids):
    return {tid: list(m.TaskAttempt.select().where(m.TaskAttempt.task == tid).order_by(m.TaskAttempt.attempt))
            for tid in task_ids}


@pytest.mark.slow
def test_a_killed_servers_shell_tasks_die_with_it_and_never_run_beside_their_retry(database, db_url, tmp_path,
                                                                                     twin_dir):
    """Item 5: SIGKILL of a server running shell tasks, then a restart. The kernel kills each
    command with its server (parent-death signal, after the switch to the Run-by user), and the
    restart stops what is left of each process group before the task runs again: from the
    tasks' own output, no attempt ran beside the next one."""
    out = os.path.join(twin_dir, "ticks.txt")
    job_id, ids = _shell_job(out, 3, 5.0)
    procs = Procs(db_url, tmp_path)
    try:
        procs.start("K1", threads=4)
        first = _wait_ticks(out, lambda t: len(t) == 3 and all(x.lines >= 3 for x in t.values()), procs)
        procs.kill("K1")
        killed = time.monotonic()
        pids = [t.pid for t in first.values()]
        while any(_running(p) for p in pids) and time.monotonic() - killed < 1.0:
            time.sleep(0.02)
        died_with_server = not any(_running(p) for p in pids)
        procs.start("K1", threads=4)
        wait_for(lambda: job_status(job_id) in JOB_DONE, timeout=60)
    finally:
        procs.stop_all()
    ticks = read_ticks(out)
    assert twins(ticks) == [], twins(ticks)
    assert job_status(job_id) == S.FINISHED, procs.log_text()
    for (task, attempt), t in ticks.items():
        assert t.ended == (attempt == 2), (task, attempt, t)  # every first attempt was killed
        assert not _running(t.pid)
    assert died_with_server, "a shell task outlived its SIGKILLed server by more than a second"
    for a1, a2 in _attempt_rows(ids.values()).values():
        assert a1.status == S.ERROR and "K1 restarted" in a1.log, a1.log
        assert a2.status == S.FINISHED, a2.log


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_url(request):
    """A database of each kind, open in this process: its URL."""
    if request.param == "sqlite":
        request.getfixturevalue("database")
        return request.getfixturevalue("db_url")
    request.getfixturevalue("pg_database")
    return request.getfixturevalue("pg_url")


@pytest.mark.slow
def test_a_server_stopped_past_dead_after_has_its_shell_tasks_stopped_and_records_nothing(any_db_url, tmp_path,
                                                                                          twin_dir):
    """Item 6 on one machine: server A is stopped (SIGSTOP) past --dead-after while it runs shell
    tasks; B declares it dead, stops A's process groups and runs attempt 2; then A runs again. A
    must record nothing more for attempt 1 and register again; no attempt ran beside another."""
    url = any_db_url
    out = os.path.join(twin_dir, "ticks.txt")
    job_id, ids = _shell_job(out, 2, 4.0)
    procs = Procs(url, tmp_path)
    try:
        a = procs.start("A", "--dead-after", "2", threads=2)
        _wait_ticks(out, lambda t: len(t) == 2 and all(x.lines >= 2 for x in t.values()), procs)
        procs.start("B", "--dead-after", "2", threads=2)
        wait_for(lambda: m.BatchServer.get_or_none(m.BatchServer.name == "B") is not None)
        stop_outside_write(a, url)
        try:
            _wait_ticks(out, lambda t: sum(1 for (_, n) in t if n == 2) == 2, procs, what="second attempts")
            time.sleep(1.0)
        finally:
            a.send_signal(signal.SIGCONT)
        wait_for(lambda: job_status(job_id) in JOB_DONE, timeout=60)
        # A found it had been declared dead, and registered again.
        wait_for(lambda: m.BatchServer.get_by_id("A").stopped is None, timeout=10)
        assert a.poll() is None, procs.log_text()
    finally:
        procs.stop_all()
    ticks = read_ticks(out)
    assert twins(ticks) == [], twins(ticks)
    assert job_status(job_id) == S.FINISHED, procs.log_text()
    for (task, attempt), t in ticks.items():
        assert t.ended == (attempt == 2), (task, attempt, t)
    for a1, a2 in _attempt_rows(ids.values()).values():
        assert a1.server == "A" and a1.status == S.ERROR, (a1.status, a1.log)
        # Taken back by B, and nothing written by A after that.
        last = a1.log.rstrip().splitlines()[-1]
        assert "A stopped answering" in last and "took this attempt back" in last, a1.log
        assert "was stopped (or had ended) before the task was taken back" in last, a1.log
        assert a2.status == S.FINISHED and a2.server in ("A", "B"), (a2.server, a2.log)
    ended = m.TaskAttempt.select().where(m.TaskAttempt.status == S.FINISHED).count()
    assert ended == len(ids)  # exactly one ended attempt per task
    assert "declared dead" in procs.log_text()


@pytest.mark.slow
def test_a_stalled_server_on_another_host_stops_its_own_shell_tasks_when_it_runs_again(database, db_url, tmp_path,
                                                                                       twin_dir):
    """Item 6 across hosts: B cannot stop A's commands (another pid space, as on another machine),
    so it takes the tasks back saying so, and their retries wait (back-off). When A runs again it
    finds it was declared dead: it kills its own commands at once and records nothing."""
    out = os.path.join(twin_dir, "ticks.txt")
    job_id, ids = _shell_job(out, 2, 30.0)
    far = Procs(db_url, tmp_path, env=env_for(db_url, BATCHTUI_PID_SPACE="another-host"))
    near = Procs(db_url, tmp_path)
    try:
        a = far.start("A", "--dead-after", "2", threads=2)
        _wait_ticks(out, lambda t: len(t) == 2 and all(x.lines >= 2 for x in t.values()), far)
        near.start("B", "--dead-after", "2", "--retry-base", "6", threads=2)
        stop_outside_write(a, db_url)
        try:
            wait_for(lambda: m.TaskAttempt.select().where(
                (m.TaskAttempt.server == "A") & m.TaskAttempt.ended.is_null(False)).count() == 2, timeout=20)
            time.sleep(0.5)
            taken = read_ticks(out)
            assert all(t.last > time.time() - 1.5 for t in taken.values()), "B could stop A's commands"
        finally:
            a.send_signal(signal.SIGCONT)
            resumed = time.time()
        wait_for(lambda: job_status(job_id) in JOB_DONE or all(
            (tid, 2) in read_ticks(out) for tid in ids.values()), timeout=30)
        time.sleep(0.5)
    finally:
        near.stop_all()
        far.stop_all()
    ticks = read_ticks(out)
    for tid, (a1, *_) in _attempt_rows(ids.values()).items():
        t1 = ticks[(tid, 1)]
        assert not t1.ended and not _running(t1.pid)
        assert t1.last < resumed + 3.0, f"A's command ran on {t1.last - resumed:.1f} s after A resumed"
        assert a1.status == S.ERROR and "may still run there" in a1.log.rstrip().splitlines()[-1], a1.log
        assert "A stopped answering" in a1.log.rstrip().splitlines()[-1], a1.log
    assert twins(ticks) == [], twins(ticks)
    assert "declared dead" in far.log_text()


def test_a_server_restarted_while_the_killed_one_is_still_a_zombie_is_not_refused(database, db_url, tmp_path):
    """Item 13: the restart comes before the killed server's parent has reaped it."""
    procs = Procs(db_url, tmp_path)
    old = procs.start("Z1")
    try:
        wait_for(lambda: (m.BatchServer.get_or_none(m.BatchServer.name == "Z1") or m.BatchServer()).pid == old.pid)
        old.send_signal(signal.SIGKILL)  # not reaped: a zombie until old.wait() below
        deadline = time.monotonic() + 10
        while _running(old.pid):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert os.path.exists(f"/proc/{old.pid}")  # still there, as a zombie
        new = procs.start("Z1")
        deadline = time.monotonic() + 20
        registered = False
        while not registered and time.monotonic() < deadline and new.poll() is None:
            with m.database.connection_context():
                registered = m.BatchServer.get_by_id("Z1").pid == new.pid
            time.sleep(0.05)
        assert registered, f"the restart was refused (exit {new.poll()}):\n{procs.log_text()}"
        assert os.path.exists(f"/proc/{old.pid}")  # and the old one was a zombie all along
    finally:
        old.wait()
        procs.stop_all()
