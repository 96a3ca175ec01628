"""Running `batchtui server` for real: its log lines, its metrics, its signals (issue #15).

Every test runs a real `batchtui server` process on a real SQLite file and
reads what it wrote to stderr, scrapes its /metrics over HTTP, or signals it.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from batchtui import models as m
from batchtui.vocabulary import BatchStatus as S

from .conftest import make_job, poll, wait_for

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S")
# Whose shell tasks run: the login user, or, for a root server, an account it switches to (classes/shell.py).
RUN_BY = "nobody" if os.geteuid() == 0 else getpass.getuser()
HOSTILE = "pay \x1b[2J\x1b]0;owned\x07 [b]bold[/b] \u202e fin\nFORGED LINE"


class Server:
    """A `batchtui server` process whose stderr goes to a file the test reads."""

    def __init__(self, tmp_path: Path, name: str, *extra: str, env: dict | None = None):
        self.err_path = tmp_path / f"{name}.err"
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchtui", "server", "--name", name, "--poll", "0.2", "--retry-base", "0",
             "--heartbeat", "0.3", *extra],
            env=dict(os.environ, **(env or {})), stdout=subprocess.DEVNULL, stderr=self.err)

    @property
    def text(self) -> str:
        return self.err_path.read_bytes().decode("utf-8", "replace")

    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line]

    def records(self) -> list[dict]:
        """Every stderr line, each parsed as JSON (a line that is not JSON fails the test)."""
        out = []
        for line in self.lines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"stderr line is not JSON: {line!r}")
        return out

    def wait_line(self, pattern: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no stderr line matching {pattern!r}:\n{self.text}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.err.close()

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for a server that stops on its own (--exit-when-idle)."""
        try:
            return self.proc.wait(timeout)
        finally:
            self.err.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


def _spawner(tmp_path):
    made: list[Server] = []

    def start(name: str = "aos1", *extra: str, env: dict | None = None) -> Server:
        s = Server(tmp_path, name, *extra, env=env)
        made.append(s)
        return s

    def kill_all() -> None:
        for s in made:
            s.kill()

    return start, kill_all


@pytest.fixture
def spawn(database, tmp_path):
    start, kill_all = _spawner(tmp_path)
    yield start
    kill_all()


@pytest.fixture
def pg_spawn(pg_database, tmp_path):
    start, kill_all = _spawner(tmp_path)
    yield start
    kill_all()


def attempts() -> list[m.TaskAttempt]:
    with m.database.connection_context():
        return list(m.TaskAttempt.select().order_by(m.TaskAttempt.id))


# -- logging -------------------------------------------------------------------------------


def test_every_line_is_json_and_each_attempt_has_its_start_and_end(spawn):
    job_id, ids = make_job([
        {"key": "first", "class_name": "Noop", "description": HOSTILE},
        {"key": "flaky", "class_name": "Fail", "max_retries": 1, "conditions": [("first", "ended")]},
        {"key": "shell", "class_name": "ShellCommand", "params": {"command": "echo hi"},
         "conditions": [("first", "ended")]},
    ], description=HOSTILE, status=S.WAITING, user=RUN_BY)
    server = spawn("aos1", "--exit-when-idle", "--log-format", "json")
    assert server.finish() == 0  # --exit-when-idle: it stops on its own once all is done
    raw = server.err_path.read_bytes()
    assert b"\x1b" not in raw and b"\x07" not in raw and "\u202e".encode() not in raw
    records = server.records()
    assert records, "the server logged nothing"
    for r in records:
        assert {"time", "level", "message"} <= r.keys()
        assert r["level"] in ("debug", "info", "warning", "error")
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", r["time"])
    done = attempts()
    assert len(done) == 4  # first, flaky twice (one retry), shell
    cli = {int(S.FINISHED): "ended", int(S.ERROR): "error", int(S.CANCELED): "canceled"}
    for a in done:
        mine = [r for r in records if r.get("task") == a.task_id and r.get("attempt") == a.attempt]
        started = [r for r in mine if r.get("event") == "attempt_started"]
        ended = [r for r in mine if r.get("event") == "attempt_ended"]
        assert len(started) == 1 and len(ended) == 1, (a.task_id, a.attempt, mine)
        for r in started + ended:
            assert r["level"] == "info" and r["job"] == job_id
            assert all(type(r[k]) is int for k in ("job", "task", "attempt"))
        assert started[0]["status"] == "executing"
        assert ended[0]["status"] == cli[a.status]
        assert records.index(started[0]) < records.index(ended[0])
    # The hostile description is there, intact once the JSON is parsed, with no raw escape on the terminal.
    first = next(r for r in records if r.get("task") == ids["first"] and r.get("event") == "attempt_started")
    assert first["description"] == HOSTILE and HOSTILE in first["message"]
    assert [r["status"] for r in records if r.get("task") == ids["flaky"] and r.get("event") == "attempt_ended"] \
        == ["error", "error"]
    events = [r.get("event") for r in records]
    assert events[0] == "server_started" and events[-1] == "server_stopped"
    assert "sqlite:///" in records[0]["message"]


def test_text_lines_start_with_a_time_and_a_level_and_hold_no_raw_escape(spawn):
    make_job([{"key": "a", "class_name": "Noop", "description": HOSTILE}])
    server = spawn("aos1", "--exit-when-idle")
    assert server.finish() == 0
    lines = server.lines()
    assert len(lines) >= 4  # started, the attempt's start and end, stopped
    for line in lines:
        assert TEXT_LINE.match(line), line
    assert "\x1b" not in server.text and "\u202e" not in server.text
    # The description's newline is escaped: the forged line is not a line of its own.
    assert not any(line.startswith("FORGED") for line in lines)
    assert any("\\x1b[2J" in line and "attempt=1" in line and "status=ended" in line for line in lines)


def test_a_database_outage_and_its_end_are_logged(spawn, db_url):
    db_file = Path(db_url.removeprefix("sqlite:///"))
    server = spawn("aos1", "--log-format", "json")
    server.wait_line("server_started")
    away = db_file.with_name("away.db")
    db_file.rename(away)
    try:
        # Seen once in CI (loaded machine): no line at all within 20 s, never here in 17 runs; a
        # longer wait, so that a slow first round does not fail the test (the line must still come).
        down = json.loads(server.wait_line('"event": "database_down"', timeout=60))
    finally:
        away.rename(db_file)
    assert down["level"] == "error" and "database" in down["message"]
    up = json.loads(server.wait_line('"event": "database_up"', timeout=40))
    assert up["seconds"] > 0
    assert server.stop() == 0
    assert sum(1 for r in server.records() if r.get("event") == "database_down" and r["level"] == "error") == 1


def test_a_take_back_of_a_killed_server_s_work_is_logged(spawn):
    _, ids = make_job([{"key": "long", "class_name": "Sleep", "params": {"seconds": 60}, "max_retries": 1}])
    first = spawn("aos1", "--log-format", "json")
    wait_for(lambda: m.BatchTask.get_by_id(ids["long"]).status == S.EXECUTING)
    first.kill()  # SIGKILL: no stop, no hand-back
    second = spawn("aos2", "--log-format", "json", "--dead-after", "1", "--stop-timeout", "0.2")
    dead = json.loads(second.wait_line('"event": "declared_dead"'))
    taken = json.loads(second.wait_line('"event": "taken_back"'))
    assert dead["level"] == "warning" and "aos1" in dead["message"]
    assert taken["level"] == "warning" and str(ids["long"]) in taken["message"] and "aos1" in taken["message"]
    again = json.loads(second.wait_line('"event": "attempt_started"'))
    assert (again["task"], again["attempt"]) == (ids["long"], 2)
    assert second.stop() == 0


def test_a_thread_that_dies_is_one_json_line_too(database, tmp_path):
    code = """if True:
        import os, signal, sys, threading, time
        def boom():
            time.sleep(1.0)
            raise ZeroDivisionError("in a \x1b[2J thread")
        threading.Thread(target=boom, name="boom").start()
        threading.Timer(2.0, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
        from batchtui.cli import main
        sys.exit(main(["server", "--name", "aos1", "--log-format", "json"]))
    """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stderr.splitlines()]
    [died] = [r for r in records if r.get("event") == "thread_died"]
    assert died["level"] == "critical" and "boom" in died["message"] and "ZeroDivisionError" in died["exception"]
    assert "\x1b" not in proc.stderr


def test_the_server_s_log_keeps_the_order_writes_warnings_at_once_and_loses_nothing_at_exit(tmp_path):
    """`batchtui server` hands its info lines to a writer thread (logs._Buffered, issue 17): a
    warning is out when log.warning returns, after every line logged before it; closing the
    log writes what is still queued; a process that exits normally has written every line."""
    import io
    import logging
    import threading

    from batchtui import logs

    stream = io.StringIO()
    log = logging.getLogger("batchtui.engine")
    with logs.configured("info", "json", stream, buffered=True):
        writer = [t for t in threading.enumerate() if t.name == "batchtui-log-writer"]
        assert writer
        assert logging._srcfile is None and not logging.logThreads and not logging.logProcesses
        for i in range(500):
            log.info("line %d", i, extra={"event": "attempt_started", "task": i})
        log.warning("then a warning", extra={"event": "database_down"})
        seen = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [r["message"] for r in seen] == [f"line {i}" for i in range(500)] + ["then a warning"]
        log.info("queued at the end")
    assert stream.getvalue().splitlines()[-1].startswith('{"time"')
    assert json.loads(stream.getvalue().splitlines()[-1])["message"] == "queued at the end"
    # Its records skip what no format shows (caller, thread, process) for the block only:
    # in-process code after it (a test, a command) gets logging's defaults back.
    assert logging._srcfile is not None and logging.logThreads and logging.logProcesses

    code = """if True:
        import logging, sys
        from batchtui import logs
        logs.configure("info", "text", buffered=True)
        log = logging.getLogger("batchtui.engine")
        for i in range(2000):
            log.info("attempt line %d", i)
        sys.exit(0)
    """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2000 and lines[-1].endswith("attempt line 1999"), lines[-3:]


def test_the_console_s_embedded_server_logs_to_a_file_not_the_terminal(database, tmp_path, monkeypatch, capfd):
    import logging

    from batchtui import cli
    from batchtui.ui import app

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    logger = logging.getLogger("batchtui")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate

    def console(*args, **kw):  # stands for the console: its engine logs while it runs
        logging.getLogger("batchtui.engine").error("batch server x: database error: \x1b[31mred")
        return 0

    monkeypatch.setattr(app, "run_console", console)
    assert cli.main([]) == 0
    # As it was once the console has quit (a command run in-process leaves no handler behind).
    assert (logger.handlers, logger.level, logger.propagate) == (handlers, level, propagate)
    assert capfd.readouterr().err == ""
    written = (tmp_path / "state" / "batchtui" / "log" / "console.log").read_text()
    assert "ERROR" in written and "\\x1b[31mred" in written and "\x1b" not in written


# -- metrics -------------------------------------------------------------------------------


def _scrape(port: int) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            key = sample.name + "".join(f"{{{k}={v}}}" for k, v in sorted(sample.labels.items()))
            out[key] = sample.value
    return out


def _port_of(server: Server) -> int:
    line = server.wait_line(r"metrics served at http://127\.0\.0\.1:\d+/metrics")
    return int(re.search(r"127\.0\.0\.1:(\d+)/metrics", line).group(1))


def test_metrics_count_the_attempts_really_run(spawn):
    job_id, ids = make_job(
        [{"key": f"ok{i}", "class_name": "Noop"} for i in range(5)]
        + [{"key": "bad", "class_name": "Fail", "max_retries": 2}]
        + [{"key": "held", "class_name": "Noop", "batch_group": "NOBODY"}])
    server = spawn("aos1", "--threads", "3", "--metrics-port", "0")
    port = _port_of(server)
    wait_for(lambda: m.BatchTask.get_by_id(ids["bad"]).status == S.ERROR
             and all(m.BatchTask.get_by_id(ids[f"ok{i}"]).status == S.FINISHED for i in range(5)))
    done = attempts()
    assert len(done) == 8  # five Noop, Fail three times
    # The end of the last attempt is counted once its transaction has committed: scrape until it shows.
    deadline = time.monotonic() + 10
    while True:
        got = _scrape(port)
        if got.get("batchtui_task_attempts_total{status=error}") == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert got["batchtui_task_attempts_total{status=ended}"] == 5
    assert got["batchtui_task_attempts_total{status=error}"] == 3
    assert got["batchtui_task_attempts_total{status=canceled}"] == 0
    assert got["batchtui_start_delay_seconds_count"] == 8
    assert got["batchtui_start_delay_seconds_sum"] >= 0
    assert got["batchtui_start_delay_seconds_bucket{le=+Inf}"] == 8
    # "held" is Ready in a group no server serves: the database's backlog, read at scrape time.
    assert got["batchtui_tasks_ready"] == 1
    assert got["batchtui_tasks_running"] == 0
    assert got["batchtui_threads"] == 3
    assert got["batchtui_database_up"] == 1
    assert 0 <= got["batchtui_heartbeat_age_seconds"] < 60
    assert server.stop() == 0


def test_a_canceled_attempt_is_counted_and_logged_as_canceled(spawn):
    from batchtui import status as st
    from batchtui.actor import Actor

    job_id, ids = make_job([{"key": "long", "class_name": "Sleep", "params": {"seconds": 60}}])
    server = spawn("aos1", "--metrics-port", "0", "--log-format", "json")
    port = _port_of(server)
    wait_for(lambda: m.BatchTask.get_by_id(ids["long"]).status == S.EXECUTING)
    with m.database.connection_context():
        st.cancel_job(job_id, Actor.current("ops"))
    wait_for(lambda: m.BatchTask.get_by_id(ids["long"]).status == S.CANCELED)
    deadline = time.monotonic() + 10
    while (got := _scrape(port)).get("batchtui_task_attempts_total{status=canceled}") != 1:
        assert time.monotonic() < deadline, got
        time.sleep(0.1)
    assert got["batchtui_task_attempts_total{status=ended}"] == 0
    assert got["batchtui_task_attempts_total{status=error}"] == 0
    ended = json.loads(server.wait_line('"event": "attempt_ended"'))
    assert (ended["task"], ended["status"]) == (ids["long"], "canceled")
    assert server.stop() == 0


@pytest.mark.postgres
def test_metrics_and_json_log_on_postgresql(pg_spawn):
    _, ids = make_job([{"key": f"ok{i}", "class_name": "Noop"} for i in range(3)]
                      + [{"key": "held", "class_name": "Noop", "batch_group": "NOBODY"}])
    server = pg_spawn("pg1", "--metrics-port", "0", "--log-format", "json")
    port = _port_of(server)
    wait_for(lambda: all(m.BatchTask.get_by_id(ids[f"ok{i}"]).status == S.FINISHED for i in range(3)))
    deadline = time.monotonic() + 10
    while (got := _scrape(port)).get("batchtui_task_attempts_total{status=ended}") != 3:
        assert time.monotonic() < deadline, got
        time.sleep(0.1)
    assert got["batchtui_tasks_ready"] == 1 and got["batchtui_tasks_running"] == 0
    assert got["batchtui_start_delay_seconds_count"] == 3
    assert server.stop() == 0
    records = server.records()
    started = next(r for r in records if r.get("event") == "server_started")
    assert "postgresql://" in started["message"]
    assert sum(1 for r in records if r.get("event") == "attempt_ended" and r["status"] == "ended") == 3


def test_metrics_port_errors_are_one_line_and_exit_2(database, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, what in (
                (["--metrics-port", str(port)], f"--metrics-port {port}: cannot serve metrics on 127.0.0.1:{port}"),
                (["--metrics-port", "70000"], "--metrics-port must be from 0 to 65535"),
                (["--metrics-port", "x"], "--metrics-port must be a whole number"),
                (["--metrics-port", "9999", "--metrics-host", "no.such.host.invalid"], "cannot serve metrics on"),
        ):
            proc = subprocess.run([sys.executable, "-m", "batchtui", "server", "--exit-when-idle", *args],
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == 2, (args, proc.stderr)
            lines = proc.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("batchtui: error: ") and what in lines[0], lines
    with m.database.connection_context():
        assert m.BatchServer.select().count() == 0  # refused before it registered


def test_metrics_without_the_extra_say_what_to_install(database):
    code = ("import sys; sys.modules['prometheus_client'] = None; from batchtui.cli import main; "
            "sys.exit(main(['server', '--metrics-port', '0', '--exit-when-idle']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == ("batchtui: error: --metrics-port needs prometheus-client: "
                           "pip install 'batchtui[metrics]'\n")


# -- signals -------------------------------------------------------------------------------


def _task(task_id: int) -> m.BatchTask:
    with m.database.connection_context():
        return m.BatchTask.get_by_id(task_id)


def _gone(pgid: int) -> bool:
    """No live process left in the group (a zombie that no one reaped yet has exited)."""
    from batchtui import procs

    return procs.group_members(pgid) == []


def test_sigterm_lets_a_short_task_end_and_exits_0(spawn):
    _, ids = make_job([{"key": "sh", "class_name": "ShellCommand", "params": {"command": "sleep 1.5; echo done"}}],
                        user=RUN_BY)
    server = spawn("aos1", "--stop-timeout", "20", "--log-format", "json")
    wait_for(lambda: m.BatchTask.get_by_id(ids["sh"]).status == S.EXECUTING)
    assert server.stop(signal.SIGTERM, timeout=40) == 0
    task = _task(ids["sh"])
    assert task.status == S.FINISHED
    [a] = attempts()
    assert a.status == S.FINISHED and "done" in a.log
    events = [r.get("event") for r in server.records()]
    assert "signal" in events and events[-1] == "server_stopped"
    assert events.index("signal") < events.index("attempt_ended")  # it waited for the task to end
    with m.database.connection_context():
        assert m.BatchServer.get_by_id("aos1").stopped is not None


def test_sigterm_hands_a_long_task_back_and_another_server_runs_it_once(spawn):
    _, ids = make_job([{"key": "sh", "class_name": "ShellCommand", "params": {"command": "sleep 2.5; echo done"},
                        "max_retries": 0}], user=RUN_BY)
    first = spawn("aos1", "--stop-timeout", "0.5", "--log-format", "json")
    wait_for(lambda: m.BatchTask.get_by_id(ids["sh"]).status == S.EXECUTING
             and m.TaskAttempt.get_or_none(m.TaskAttempt.pgid.is_null(False)) is not None)
    assert first.stop(signal.SIGTERM, timeout=30) == 0
    [a1] = attempts()
    task = _task(ids["sh"])
    # Handed back: Ready again, no retry used (it allows none), its attempt closed, its command gone.
    assert task.status == S.READY and task.retries_used == 0
    assert a1.status == S.CANCELED and a1.ended is not None and "handed back" in a1.log
    assert _gone(int(a1.pgid))
    handed = [r for r in first.records() if r.get("event") == "attempt_handed_back"]
    assert len(handed) == 1 and handed[0]["task"] == ids["sh"] and handed[0]["attempt"] == 1

    second = spawn("aos2", "--exit-when-idle", "--log-format", "json")
    assert second.finish() == 0
    a1, a2 = attempts()
    assert (a2.attempt, a2.server, a2.status) == (2, "aos2", S.FINISHED) and "done" in a2.log
    assert a1.ended <= a2.started  # never two at once
    assert _task(ids["sh"]).status == S.FINISHED


def test_sighup_rereads_the_log_level(spawn, tmp_path, monkeypatch):
    cfg = tmp_path / "service.toml"
    cfg.write_text('default_company = "DAT"\n[log]\nlevel = "info"\n')
    server = spawn("aos1", "--log-format", "json", env={"BATCHTUI_CONFIG": str(cfg)})
    server.wait_line("server_started")
    time.sleep(1.0)  # three heartbeats: none logged at info
    assert not [r for r in server.records() if r["level"] == "debug"]
    cfg.write_text('default_company = "DAT"\n[log]\nlevel = "debug"\n')
    server.proc.send_signal(signal.SIGHUP)
    reloaded = json.loads(server.wait_line('"event": "config_reloaded"'))
    assert "log level debug" in reloaded["message"]
    beat = json.loads(server.wait_line('"event": "heartbeat"'))
    assert beat["level"] == "debug"
    # A broken file is said, and the settings in use stay.
    cfg.write_text("[log]\nlevel = 'loud'\n")
    server.proc.send_signal(signal.SIGHUP)
    bad = json.loads(server.wait_line('"event": "config_error"'))
    assert bad["level"] == "error" and "loud" in bad["message"]
    n = len(server.records())
    assert poll(lambda: len([r for r in server.records()[n:] if r.get("event") == "heartbeat"]) > 0, timeout=10)
    assert server.stop() == 0


# -- the systemd unit ---------------------------------------------------------------------

UNIT = Path(__file__).resolve().parent.parent / "contrib" / "batchtui-server.service"


def _unit() -> dict[str, dict[str, str]]:
    import configparser

    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return {name: dict(parser[name]) for name in parser.sections()}


def test_the_systemd_unit_runs_a_real_server_command_and_outlasts_its_stop_timeout(tmp_path):
    import shlex

    from batchtui.cli import build_parser

    service = _unit()["Service"]
    assert service["User"] == "batchtui" and service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/batchtui/env" and service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # SIGTERM to the server only: it stops its tasks' processes itself
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "batchtui" and argv[1] == "server"
    args = build_parser().parse_args(argv[1:])  # every flag of the unit is one the server takes
    assert int(service["TimeoutStopSec"]) > args.stop_timeout + 10
    # The command itself, run with --help by the installed script.
    script = Path(sys.executable).with_name("batchtui")
    proc = subprocess.run([str(script), *argv[1:], "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--stop-timeout" in proc.stdout
    # The environment file names the variable the command line reads.
    assert "BATCHTUI_DB=" in UNIT.read_text() and "BATCHTUI_DB" in build_parser().epilog


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not on this machine")
def test_systemd_analyze_finds_nothing_wrong_with_the_unit(tmp_path):
    script = Path(sys.executable).with_name("batchtui")
    unit = tmp_path / "batchtui-server.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/batchtui", str(script)))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_a_lone_surrogate_or_a_traceback_stays_one_safe_line(capsys):
    import io
    import logging

    from batchtui import logs

    for fmt in ("json", "text"):
        out = io.StringIO()
        with logs.configured("debug", fmt, out):
            log = logging.getLogger("batchtui.engine")
            log.info("task %s", "bad \ud800 \x9b2J", extra={"job": 1, "task": 2, "attempt": 3, "status": "ended"})
            try:
                raise ValueError("boom\x1b[2J")
            except ValueError:
                log.exception("failed")
        lines = out.getvalue().splitlines()
        assert len(lines) == 2, lines
        assert all(ch.isprintable() for line in lines for ch in line), lines
        if fmt == "json":
            first, second = (json.loads(line) for line in lines)
            assert first["message"] == "task bad \ud800 \x9b2J" and first["attempt"] == 3
            assert "ValueError: boom\x1b[2J" in second["exception"]
        else:
            assert "\\ud800" in lines[0] and "Traceback" in lines[1] and "\\x1b[2J" in lines[1]
    assert logging.getLogger("batchtui").handlers == [] or all(
        not isinstance(h, logging.StreamHandler) or h.stream is not out for h in logging.getLogger("batchtui").handlers)
