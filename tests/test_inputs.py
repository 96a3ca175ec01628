"""Issue 16, items 7-12: ids never reused, "end after N" runs N times, bad input refused
before it changes anything, export that imports again, JSON output as safe as text,
and a job history streamed rather than built in memory.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from peewee import fn

from batchtui import models as m

from .faultkit import ROOT, assert_one_error_line, call_main, env_for, sqlite_state

# -- item 9: bad input is exit 2, one line, nothing changed ---------------------------------


@pytest.fixture
def one_job(db_url):
    """A database holding one job (of user ops), no connection left open."""
    rc, out, err = call_main(["job", "import", "-"], stdin=json.dumps(
        {"description": "existing", "tasks": [{"description": "t", "class": "Noop"}]}).encode())
    assert rc == 0, err
    return Path(db_url[len("sqlite:///"):])


def _refused(argv, path, *, stdin=b"", fragment=""):
    before = sqlite_state(path)
    rc, out, err = call_main(argv, stdin=stdin)
    line = assert_one_error_line(err, rc=rc)
    assert out == ""
    assert fragment in line, line
    assert sqlite_state(path) == before, "a refused command changed the database"
    return line


def test_a_relative_sqlite_url_is_refused_and_makes_no_file(one_job, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for url in ("sqlite:///x.db", "sqlite:///sub/x.db"):
        _refused(["--db", url, "job", "list"], one_job, fragment="absolute path")
        monkeypatch.setenv("BATCHTUI_DB", url)
        _refused(["job", "list"], one_job, fragment="absolute path")
        monkeypatch.delenv("BATCHTUI_DB")
    assert list(elsewhere.iterdir()) == []


def test_a_relative_sqlite_url_is_refused_by_a_server_process(one_job, tmp_path):
    """The case of the issue: a server started from another folder would see an empty database."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = subprocess.run([sys.executable, "-m", "batchtui", "server", "--exit-when-idle"], capture_output=True,
                       env=env_for("sqlite:///batch.db", PYTHONPATH=str(ROOT)), cwd=elsewhere, timeout=60)
    assert_one_error_line(p)
    assert "absolute path" in p.stderr.decode()
    assert list(elsewhere.iterdir()) == []


def test_options_in_a_sqlite_url_are_refused_not_made_part_of_the_file_name(one_job, tmp_path):
    url = f"sqlite:///{one_job}?mode=ro"
    line = _refused(["--db", url, "job", "list"], one_job, fragment="?mode=ro")
    assert "options" in line
    assert sorted(p.name for p in one_job.parent.iterdir() if "?" in p.name) == []
    _refused(["--db", f"sqlite:///{tmp_path}/new.db?mode=rwc", "job", "list"], one_job)
    assert not any("?" in p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("args", [
    ["job", "export", "99999999999999999999999"], ["job", "history", "99999999999999999999999"],
    ["job", "wait", "99999999999999999999999", "--timeout", "0"], ["job", "cancel", "9223372036854775808"],
    ["job", "status", "-9999999999999999999999", "waiting"], ["job", "copy", "99999999999999999999999"],
    ["job", "delete", "99999999999999999999999"], ["job", "set", "99999999999999999999999", "--priority", "low"],
])
def test_a_job_id_too_large_for_any_row_is_no_such_job(one_job, args):
    _refused(args, one_job)


def test_the_largest_possible_id_is_looked_up_like_any_other(one_job):
    _refused(["job", "export", "9223372036854775807"], one_job, fragment="no such batch job")


JOB_WITH = '{{"description": "j", "tasks": [{{"description": "t", "class": "ShellCommand", "params": {params}}}]}}'


@pytest.mark.parametrize("text, fragment", [
    ('{"description": "Month-end \\ud800 close"}', "job #1, field description: holds \\ud800"),
    ('[{"description": "ok"}, {"description": "b", "tasks": [{"key": "k", "description": "d\\udfff", '
     '"class": "Noop"}]}]', "job 'b', task 'k', field description"),
    (JOB_WITH.format(params='{"command": ["ls", "\\udc80"]}'), "job 'j', task 't', field params.command[1]"),
    (JOB_WITH.format(params='{"\\ud83d": 1}'), "field params.\\ud83d"),
    ('{"description": "a", "alerts": [{"user": "\\ude00"}]}', "job 'a', field alerts[0].user"),
])
def test_a_lone_surrogate_in_a_job_file_is_refused_naming_the_field(one_job, text, fragment):
    line = _refused(["job", "import", "-"], one_job, stdin=text.encode(), fragment=fragment)
    assert "lone surrogate" in line


def test_a_lone_surrogate_in_a_recurrence_file_or_on_the_command_line_is_refused(one_job):
    _refused(["recurrence", "preview", "-"], one_job, stdin=b'{"pattern": "days", "start": "\\ud800"}',
             fragment="field start")
    # Bytes that are not UTF-8 reach Python as lone surrogates (surrogateescape).
    for argv in (["job", "set", "1", "--description", "a\udcff"], ["group", "add", "\udcff"],
                 ["cleanup", "--older-than", "1", "--user", "\udcff"]):
        _refused(argv, one_job, fragment="not UTF-8 text")


@pytest.mark.parametrize("params, fragment", [
    ('{"command": [""]}', "first item is empty"),
    ('{"command": ["", "-c", "true"]}', "first item is empty"),
    ('{"command": ["ls", "a\\u0000b"]}', "NUL"),
    ('{"command": "echo \\u0000"}', "NUL"),
])
def test_a_command_no_program_can_run_is_refused_at_import(one_job, params, fragment):
    line = _refused(["job", "import", "-"], one_job, stdin=JOB_WITH.format(params=params).encode(),
                    fragment=fragment)
    assert "field params.command" in line


def test_a_command_with_empty_arguments_is_still_accepted(one_job):
    rc, out, err = call_main(["job", "import", "-"],
                             stdin=JOB_WITH.format(params='{"command": ["printf", ""]}').encode())
    assert rc == 0, err


@pytest.mark.parametrize("threads", ["100000", "257", "0", "-1"])
def test_server_threads_out_of_1_to_256_is_refused_and_registers_nothing(one_job, threads):
    line = _refused(["server", "--threads", threads, "--exit-when-idle"], one_job, fragment="1 to 256")
    assert "--threads" in line
    with sqlite3.connect(one_job) as conn:
        assert conn.execute("SELECT COUNT(*) FROM batch_server").fetchone() == (0,)


def test_a_server_whose_start_fails_after_registering_is_not_shown_alive(database, monkeypatch):
    from batchtui import servers
    from batchtui.engine import server as server_mod

    class NoThreads:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(server_mod, "WorkerPool", NoThreads)
    engine = server_mod.BatchServerEngine(name="AOS9", threads=4)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        engine.start()
    (row,) = [s for s in servers.server_rows() if s.name == "AOS9"]
    assert row.stopped is not None and not row.alive


def test_server_threads_256_is_accepted(one_job):
    rc, out, err = call_main(["server", "--threads", "256", "--exit-when-idle", "--poll", "0.05"])
    assert rc == 0, err
    with sqlite3.connect(one_job) as conn:
        assert conn.execute("SELECT threads, stopped IS NOT NULL FROM batch_server").fetchall() == [(256, 1)]


# -- item 11: --json escapes what the text output escapes -------------------------------------

#: Characters a terminal acts on that JSON would carry raw: DEL, C1 controls (CSI, NEL),
#: the right-to-left override, a zero-width joiner, the line separator, a tag character.
ACTING = "\x7f\x9b\x85\u202e\u200d\u2028\U000e0001"


def _past_run_with_log(job_id: int, task_id: int, log: str, *, runs: int = 1, tasks=None) -> None:
    from datetime import timedelta

    from batchtui.history import record_past_runs
    from batchtui.timeutil import utcnow
    from batchtui.vocabulary import BatchStatus

    now = utcnow()
    record_past_runs(job_id, [
        {"scheduled": now - timedelta(minutes=10 * (runs - i)), "started": now - timedelta(minutes=10 * (runs - i)),
         "ended": now - timedelta(minutes=10 * (runs - i) - 1), "server": "AOS1",
         "tasks": [{"task_id": tid, "status": BatchStatus.FINISHED,
                    "attempts": [{"status": BatchStatus.FINISHED,
                                  "started": now - timedelta(minutes=10 * (runs - i)),
                                  "ended": now - timedelta(minutes=10 * (runs - i) - 1),
                                  "server": "AOS1", "log": log}]} for tid in (tasks or [task_id])]}
        for i in range(runs)], now=now)


def _assert_escaped(out: str, originals) -> None:
    for ch in ACTING:
        assert ch not in out, f"{ch!r} reached the JSON output raw"
    assert "\\u202e" in out and "\\u009b" in out and "\\udb40\\udc01" in out
    assert all(json.loads(out) is not None for _ in [0])
    for text in originals:
        assert text in out or json.dumps(text)[1:-1] not in out  # spelled as JSON escapes, not raw


def test_json_output_escapes_c1_controls_and_bidi_overrides_like_the_text_output(db_url):
    description = "Month-end \u202eesolc"  # shows as "Month-end close" reversed
    rc, out, err = call_main(["job", "import", "-", "--json"], stdin=json.dumps(
        {"description": description, "alerts": [{"user": "ops", "ended": True}],
         "tasks": [{"key": "k\u202e", "description": "d\u2028", "class": "Noop"}]}).encode())
    assert rc == 0, err
    assert "\u202e" not in out
    created = json.loads(out)["jobs"][0]
    assert created["tasks"] == {"k\u202e": created["tasks"]["k\u202e"]}
    job_id, task_id = created["id"], created["tasks"]["k\u202e"]
    log = f"colours {ACTING} done\n\x1b[2Jcleared"
    _past_run_with_log(job_id, task_id, log)
    for argv in (["job", "export", str(job_id)], ["job", "list", "--json"], ["job", "history", str(job_id), "--json"],
                 ["alerts", "--json"]):
        rc, out, err = call_main(argv)
        assert rc == 0, err
        for ch in "\u202e\u2028":
            assert ch not in out, (argv, ch)
        assert "\\u202e" in out, argv
    rc, out, err = call_main(["job", "history", str(job_id), "--json"])
    for ch in ACTING:
        assert ch not in out, f"{ch!r} reached the JSON output raw"
    assert "\\u009b" in out and "\\udb40\\udc01" in out and "\\u007f" in out
    (run,) = json.loads(out)
    assert run["tasks"][0]["attempts"][0]["log"] == log  # the same text, read back
    assert run["tasks"][0]["key"] == "k\u202e"
    # The text output says the same, in Python's spelling.
    rc, text, err = call_main(["job", "history", str(job_id)])
    assert rc == 0 and "\\u202e" in text and "\\x9b" in text and "\u202e" not in text


# -- item 10: what `job export` printed imports again ------------------------------------------

RAN = {
    "description": "Month-end close", "time_zone": "America/Chicago", "status": "waiting", "priority": "high",
    "alerts": [{"user": "ops", "error": True, "popup": True}],
    "tasks": [
        {"key": "invoice", "description": "Post invoices", "class": "Fail", "params": {"message": "no"},
         "max_retries": 1},
        {"key": "close", "description": "Inventory close", "class": "Noop", "condition_type": "any",
         "conditions": [{"task": "invoice", "status": "ended_or_error"}]},
    ],
}


def _run_once(job_id: int, statuses: dict[int, object]) -> None:
    from datetime import timedelta

    from batchtui.history import record_past_runs
    from batchtui.timeutil import utcnow
    from batchtui.vocabulary import BatchStatus

    now = utcnow()
    start, end = now - timedelta(minutes=5), now - timedelta(minutes=4)
    record_past_runs(job_id, [{"scheduled": start, "started": start, "ended": end, "server": "AOS1", "tasks": [
        {"task_id": tid, "status": status,
         "attempts": [] if status == BatchStatus.NOT_RUN else
         [{"status": status, "started": start, "ended": end, "server": "AOS1", "log": "x"}]}
        for tid, status in statuses.items()]}], now=now)


def _comparable(export: dict) -> dict:
    """An export without what a new job has of its own (ids, version, run-time fields)."""
    doc = {k: v for k, v in export.items() if k not in ("id", "version", "created_by", "run_by", "last_run",
                                                         "status")}
    doc["tasks"] = [{k: v for k, v in t.items() if k not in ("id", "status", "retries_used", "waiting_reason",
                                                               "kept")} for t in export["tasks"]]
    return doc


@pytest.mark.parametrize("outcome", ["error", "ended"])
def test_the_export_of_a_job_that_has_run_imports_as_a_new_withheld_copy(db_url, outcome):
    from batchtui.vocabulary import BatchStatus

    rc, out, err = call_main(["job", "import", "-", "--json"], stdin=json.dumps(RAN).encode())
    assert rc == 0, err
    created = json.loads(out)["jobs"][0]
    first = BatchStatus.ERROR if outcome == "error" else BatchStatus.FINISHED
    with m.database.connection_context():
        _run_once(created["id"], {created["tasks"]["invoice"]: first,
                                  created["tasks"]["close"]: BatchStatus.FINISHED})
    rc, exported_text, err = call_main(["job", "export", str(created["id"])])
    assert rc == 0, err
    exported = json.loads(exported_text)
    assert exported["status"] == outcome and exported["last_run"]["status"] == outcome
    assert {t["status"] for t in exported["tasks"]} >= {"ended"}

    rc, out, err = call_main(["job", "import", "-", "--json"], stdin=exported_text.encode())
    assert (rc, err) == (0, "")
    again = json.loads(out)["jobs"][0]
    assert again["id"] > created["id"] and set(again["tasks"]) == {"invoice", "close"}
    rc, second_text, err = call_main(["job", "export", str(again["id"])])
    second = json.loads(second_text)
    assert second["status"] == "withhold" and second["last_run"] is None
    assert {t["status"] for t in second["tasks"]} == {"withhold"}
    assert all(t["retries_used"] == 0 for t in second["tasks"])
    assert _comparable(second) == _comparable(exported)


@pytest.mark.parametrize("status", ["executing", "error", "ended", "ready", "didnt_run", "canceling", "canceled"])
def test_a_run_time_status_in_a_job_file_imports_as_withhold(db_url, status):
    job = {"description": "copy", "status": status, "id": 7, "version": 3, "created_by": "someone",
           "last_run": {"run": 1, "status": "error"},
           "tasks": [{"id": 31, "key": "a", "description": "a", "class": "Noop", "status": status,
                      "retries_used": 2, "waiting_reason": None, "kept": True}]}
    rc, out, err = call_main(["job", "import", "-", "--json"], stdin=json.dumps(job).encode())
    assert (rc, err) == (0, "")
    rc, out, err = call_main(["job", "export", str(json.loads(out)["jobs"][0]["id"])])
    exported = json.loads(out)
    assert exported["status"] == "withhold" and exported["created_by"] == "ops"
    assert [t["status"] for t in exported["tasks"]] == ["withhold"]


@pytest.mark.parametrize("status", ["running", "Waiting", "", 1, True])
def test_a_status_no_job_has_is_still_refused(one_job, status):
    line = _refused(["job", "import", "-"], one_job, stdin=json.dumps({"description": "x", "status": status}).encode(),
                    fragment="field status")
    assert "job 'x'" in line


def test_the_export_of_a_recurring_job_that_has_run_imports_waiting_with_its_recurrence(db_url):
    from batchtui.vocabulary import BatchStatus

    job = dict(RAN, recurrence={"pattern": "days", "every": 1, "end": {"after": 30}})
    rc, out, err = call_main(["job", "import", "-", "--json"], stdin=json.dumps(job).encode())
    created = json.loads(out)["jobs"][0]
    with m.database.connection_context():
        _run_once(created["id"], {t: BatchStatus.FINISHED for t in created["tasks"].values()})
    rc, exported_text, err = call_main(["job", "export", str(created["id"])])
    exported = json.loads(exported_text)
    assert exported["status"] == "waiting" and exported["recurrence"]["text"]
    rc, out, err = call_main(["job", "import", "-", "--json"], stdin=exported_text.encode())
    assert (rc, err) == (0, "")
    rc, second_text, err = call_main(["job", "export", str(json.loads(out)["jobs"][0]["id"])])
    second = json.loads(second_text)
    assert second["status"] == "waiting"
    assert second["recurrence"] == exported["recurrence"]


# -- item 12: job history streamed -------------------------------------------------------------

TRICKY_LOGS = ["", "\n", "one line", "ends\n", "two\n\nblank\n", "cr\rlf\r\nnel\x85ls\u2028tab\tend",
               "esc \x1b[2J \u202e\U000e0001", "x" * 70_000 + "\n" + "é" * 300_000 + "\x1b" * 3]


def _old_text(runs) -> str:
    """The text `job history` printed before it was streamed (the reference for the same output)."""
    from batchtui.text import visible

    lines = []
    for run in runs:
        lines.append(f"run {run['run']}  {run['status']}  scheduled {run['scheduled']}  started {run['started']}  "
                     f"ended {run['ended'] or '-'}  server {visible(run['server']) or '-'}")
        for t in run["tasks"]:
            lines.append(f"  task {t['id']} {visible(t['key'])}: {t['status']}"
                         + (f"  ({visible(t['description'])})" if t["description"] != t["key"] else ""))
            if not t["attempts"]:
                lines.append("    (did not start)")
            for a in t["attempts"]:
                lines.append(f"    attempt {a['attempt']}  {a['status']}  started {a['started']}  "
                             f"ended {a['ended'] or '-'}  server {visible(a['server']) or '-'}")
                lines += [f"      {line}" for line in visible(a["log"], keep_newlines=True).splitlines()]
    return "".join(line + "\n" for line in lines)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_url(request):
    """BATCHTUI_DB set to a new SQLite file or PostgreSQL database, not opened yet."""
    return request.getfixturevalue("db_url" if request.param == "sqlite" else "pg_url")


def test_the_streamed_history_prints_what_the_whole_one_did(any_url, monkeypatch):
    from batchtui import history
    from batchtui.cli import common
    from batchtui.cli import jobs as cli_jobs

    monkeypatch.setattr(common, "WRITE_PIECE", 1000)  # many pieces, cut anywhere
    monkeypatch.setattr(cli_jobs, "WRITE_PIECE", 999)
    monkeypatch.setattr(history, "LOG_BATCH_CHARS", 10)
    tasks = [{"key": f"t{i}", "description": "d" if i else f"t{i}", "class": "Noop"} for i in range(len(TRICKY_LOGS))]
    tasks.append({"key": "never", "description": "never", "class": "Noop"})
    rc, out, err = call_main(["job", "import", "-", "--json"],
                             stdin=json.dumps({"description": "j", "tasks": tasks}).encode())
    created = json.loads(out)["jobs"][0]
    ids = [created["tasks"][f"t{i}"] for i in range(len(TRICKY_LOGS))]
    with m.database.connection_context():
        for n, log in enumerate(TRICKY_LOGS):
            # Each run: every task, attempts with this log (and the next one), one task that never started.
            _run_with_logs(created["id"], ids, created["tasks"]["never"], [log, TRICKY_LOGS[n - 1]])
        whole = history.job_history(created["id"])
    assert len(whole) == len(TRICKY_LOGS)
    rc, out, err = call_main(["job", "history", str(created["id"]), "--json"])
    assert rc == 0, err
    assert out == common.json_escaped(json.dumps(whole, indent=2, ensure_ascii=False)) + "\n"
    assert json.loads(out) == whole
    rc, text, err = call_main(["job", "history", str(created["id"])])
    assert rc == 0, err
    assert text == _old_text(whole)


def _run_with_logs(job_id, task_ids, never_id, logs) -> None:
    from datetime import timedelta

    from batchtui.history import record_past_runs
    from batchtui.timeutil import utcnow
    from batchtui.vocabulary import BatchStatus

    now = utcnow()
    at = now - timedelta(minutes=5)
    record_past_runs(job_id, [{"scheduled": at, "started": at, "ended": at, "server": "AOS1", "tasks": [
        *({"task_id": tid, "status": BatchStatus.FINISHED,
           "attempts": [{"status": BatchStatus.ERROR if i < len(logs) - 1 else BatchStatus.FINISHED,
                         "started": at, "ended": at, "server": "AOS\u202e", "log": log}
                        for i, log in enumerate(logs)]} for tid in task_ids),
        {"task_id": never_id, "status": BatchStatus.NOT_RUN, "attempts": []}]}], now=now)


def _peak_rss_mb(argv, url) -> float:
    """The peak resident memory of `batchtui ARGV` in a process of its own (its output thrown away)."""
    code = ("import resource, subprocess, sys\n"
            "subprocess.run([sys.executable, '-m', 'batchtui', *sys.argv[1:]], stdout=subprocess.DEVNULL, "
            "check=True)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    p = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300,
                       env=env_for(url, PYTHONPATH=str(ROOT)), cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return int(p.stdout) / 1024  # ru_maxrss is in KiB on Linux


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB: Linux")
def test_job_history_of_30_mb_of_logs_takes_the_memory_of_its_largest_log_not_of_all(db_url):
    """A memory bound, not a time one: peak RSS against the same command on a job with tiny logs."""
    from datetime import timedelta

    from batchtui.history import record_past_runs
    from batchtui.timeutil import utcnow
    from batchtui.vocabulary import BatchStatus

    largest_mb = 3
    line = "2026-12-01 10:00:00 INFO posted invoice 000123 for US-001 \x1b[32mok\x1b[0m \u00e9\n"
    big = (line * (largest_mb * 2**20 // len(line) + 1))[:largest_mb * 2**20 - 1] + "\n"
    tasks = [{"key": f"t{i}", "description": f"t{i}", "class": "Noop"} for i in range(2)]
    ids = {}
    for name in ("big", "small"):
        rc, out, err = call_main(["job", "import", "-", "--json"],
                                 stdin=json.dumps({"description": name, "tasks": tasks}).encode())
        ids[name] = json.loads(out)["jobs"][0]
    now = utcnow()
    with m.database.connection_context():
        for name, log, runs in (("big", big, 5), ("small", "done\n", 1)):
            job = ids[name]
            record_past_runs(job["id"], [
                {"scheduled": now - timedelta(hours=runs - i), "started": now - timedelta(hours=runs - i),
                 "ended": now - timedelta(hours=runs - i), "server": "AOS1",
                 "tasks": [{"task_id": tid, "status": BatchStatus.FINISHED,
                            "attempts": [{"status": BatchStatus.FINISHED, "started": now - timedelta(hours=runs - i),
                                          "ended": now - timedelta(hours=runs - i), "server": "AOS1", "log": log}]}
                           for tid in job["tasks"].values()]}
                for i in range(runs)], now=now)
        total = sum(len(a.log) for a in m.TaskAttempt.select(m.TaskAttempt.log))
    assert total >= 30 * 2**20  # 10 attempts of 3 MB
    for extra in ([], ["--json"]):
        small = _peak_rss_mb(["job", "history", str(ids["small"]["id"]), *extra], db_url)
        large = _peak_rss_mb(["job", "history", str(ids["big"]["id"]), *extra], db_url)
        print(f"job history {' '.join(extra)}: {large:.0f} MB, tiny logs {small:.0f} MB")
        assert large <= small + 5 * largest_mb, (
            f"job history {' '.join(extra)}: {large:.0f} MB for 30 MB of logs, {small:.0f} MB for a few bytes")


# -- item 8: "end after N" means N runs --------------------------------------------------------

T0 = datetime(2031, 3, 3, 9, 0)  # naive UTC, as the engine keeps times


def _recurring_job(spec: dict, start: datetime = T0, time_zone: str = "UTC") -> int:
    from batchtui import recurrence
    from batchtui.vocabulary import BatchStatus

    from .conftest import make_job

    norm = recurrence.normalize(spec, default_start=start, time_zone=time_zone)
    job_id, _ = make_job([{"key": "work"}], status=BatchStatus.WAITING, start=start, recurrence=norm,
                         time_zone=time_zone)
    return job_id


def _drive(job_id: int, durations, downtimes=(), limit: int = 50) -> list[tuple[datetime, datetime]]:
    """A batch server's work on one job, driven with explicit times: each run starts when it is due
    (and the server is up), its one task takes the next of durations (seconds). Returns each run's
    (scheduled, started), once the job is no longer Waiting."""
    from batchtui.engine.store import EngineStore, Outcome
    from batchtui.vocabulary import BatchStatus

    store = EngineStore()
    free = datetime.min  # when the server can start the next run (the last one over, or back up)
    for n in range(limit):
        job = m.BatchJob.get_by_id(job_id)
        if job.status != BatchStatus.WAITING:
            break
        now = max(job.scheduled_start, free)
        if n < len(downtimes) and downtimes[n]:
            now += timedelta(seconds=downtimes[n])  # no server ran for a while
        assert store.start_due_jobs("AOS1", now=now) == [job_id]
        (claimed,) = store.claim_ready_tasks("AOS1", [""], 8, now=now)
        ended = now + timedelta(seconds=durations[n % len(durations)])
        store.finish_attempts([Outcome(claimed.task_id, claimed.attempt_id, "ended", ended=ended)],
                              retry_base=0, now=ended)
        free = ended
    else:
        raise AssertionError(f"still recurring after {limit} runs")
    return [(r.scheduled, r.started) for r in m.JobRun.select().where(m.JobRun.job == job_id).order_by(m.JobRun.run_no)]


def test_every_minute_end_after_3_with_a_65_second_task_runs_3_times(either_database):
    """The issue's case: the occurrence each run outlasts is made up by one run, and counted only then."""
    from batchtui.vocabulary import BatchStatus

    job_id = _recurring_job({"pattern": "minutes", "every": 1, "end": {"after": 3}})
    runs = _drive(job_id, [65])
    minute, s65 = timedelta(minutes=1), timedelta(seconds=65)
    assert runs == [(T0, T0), (T0 + minute, T0 + s65), (T0 + 2 * minute, T0 + 2 * s65)]
    job = m.BatchJob.get_by_id(job_id)
    assert (job.status, job.run_count, job.recurrence_runs) == (BatchStatus.FINISHED, 3, 3)


def test_occurrences_missed_while_no_server_ran_are_made_up_by_one_run_that_counts_once(database):
    from batchtui.vocabulary import BatchStatus

    job_id = _recurring_job({"pattern": "hours", "every": 1, "end": {"after": 3}})
    hour = timedelta(hours=1)
    # Down for 5 hours before the first run: one run for the 6 occurrences passed, then two more.
    runs = _drive(job_id, [10], downtimes=[5 * 3600 + 30])
    assert runs == [(T0, T0 + 5 * hour + timedelta(seconds=30)), (T0 + 6 * hour, T0 + 6 * hour),
                    (T0 + 7 * hour, T0 + 7 * hour)]
    assert m.BatchJob.get_by_id(job_id).status == BatchStatus.FINISHED


def test_a_recurrence_set_again_counts_its_runs_from_zero(database):
    from batchtui import jobs
    from batchtui.actor import Actor
    from batchtui.vocabulary import BatchStatus

    job_id = _recurring_job({"pattern": "days", "every": 1, "end": {"after": 2}})
    assert len(_drive(job_id, [5])) == 2
    job = m.BatchJob.get_by_id(job_id)
    assert (job.status, job.recurrence_runs) == (BatchStatus.FINISHED, 2)
    jobs.set_recurrence(job_id, {"pattern": "days", "every": 1, "start": "2031-03-03T09:00:00",
                                 "end": {"after": 2}}, actor=Actor.current("ops"))
    job = m.BatchJob.get_by_id(job_id)
    assert job.recurrence_runs == 0
    assert job.scheduled_start > datetime.now(UTC).replace(tzinfo=None)  # the next one to come, not one passed


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pattern=hs.sampled_from(["minutes", "hours", "days", "weeks"]), every=hs.integers(1, 3),
       n=hs.integers(1, 6), durations=hs.lists(hs.floats(0, 3.5), min_size=1, max_size=6),
       downtimes=hs.lists(hs.one_of(hs.just(0.0), hs.floats(0, 5)), max_size=6))
def test_end_after_n_means_n_runs_whatever_the_runs_take_and_however_long_no_server_ran(
        database, pattern, every, n, durations, downtimes):
    """Durations and downtimes in intervals of the pattern: a run may outlast several occurrences."""
    from batchtui import recurrence
    from batchtui.vocabulary import BatchStatus

    unit = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 7 * 86400}[pattern] * every
    job_id = _recurring_job({"pattern": pattern, "every": every, "end": {"after": n}})
    runs = _drive(job_id, [d * unit for d in durations], [d * unit for d in downtimes])
    assert len(runs) == n
    assert m.BatchJob.get_by_id(job_id).status == BatchStatus.FINISHED
    spec = m.BatchJob.get_by_id(job_id).recurrence
    never = {k: v for k, v in spec.items() if k != "end"} | {"end": {"never": True}}
    occurrences = {at.astimezone(UTC).replace(tzinfo=None)
                   for at in recurrence.occurrences(never, "UTC", count=60 * n + 10)}
    scheduled = [s for s, _ in runs]
    assert scheduled == sorted(set(scheduled)), "each run for a later occurrence than the last"
    assert all(s in occurrences for s in scheduled), "each run made for an occurrence"
    assert all(started >= s for s, started in runs), "never early"


# -- item 7: an id is never given twice --------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def either_database(request):
    """The SQLite database of `database`, or a PostgreSQL one (companies DAT and USMF)."""
    return request.getfixturevalue("database" if request.param == "sqlite" else "pg_database")


ID_TABLES = (m.BatchJob, m.BatchTask, m.BatchConstraint, m.JobAlert, m.JobRun, m.RunTask, m.TaskAttempt, m.Alert,
             m.BatchGroupServer)


def _job_that_ran(description: str, now: datetime) -> int:
    """A job with two tasks, a condition and an alert subscription, run once through the engine store."""
    from batchtui.engine.store import EngineStore, Outcome
    from batchtui.vocabulary import BatchStatus

    from .conftest import make_job

    job_id, ids = make_job([{"key": "a"}, {"key": "b", "conditions": [("a", "ended")]}], description=description,
                           start=now)
    m.JobAlert.create(job=job_id, user="ops", ended=True, popup=True)
    store = EngineStore()
    assert store.start_due_jobs("AOS1", now=now) == [job_id]
    while claimed := store.claim_ready_tasks("AOS1", [""], 8, now=now):
        store.finish_attempts([Outcome(c.task_id, c.attempt_id, "ended", ended=now) for c in claimed],
                              retry_base=0, now=now)
    assert m.BatchJob.get_by_id(job_id).status == BatchStatus.FINISHED
    m.BatchGroupServer.create(group="", server=f"{description}-server")
    return job_id


def _largest_ids() -> dict[str, int]:
    out = {}
    for model in ID_TABLES:
        largest = model.select(fn.MAX(model.id)).scalar()
        assert largest, f"{model._meta.table_name} has rows"
        out[model._meta.table_name] = largest
    return out


def test_the_ids_of_a_deleted_job_and_its_rows_are_never_given_again(either_database):
    from batchtui import status as st
    from batchtui.actor import Actor

    now = datetime(2031, 3, 3, 9, 0)
    _job_that_ran("first", now - timedelta(hours=1))
    newest = _job_that_ran("second", now - timedelta(minutes=30))
    before = _largest_ids()
    st.delete_job(newest, Actor.current("ops"))  # its tasks, conditions, runs, attempts, alerts go with it
    m.BatchGroupServer.delete().where(m.BatchGroupServer.server == "second-server").execute()
    assert _largest_ids() != before  # the newest rows are gone
    _job_that_ran("third", now)
    after = _largest_ids()
    for model in ID_TABLES:
        table = model._meta.table_name
        fresh = [r.id for r in model.select(model.id).where(model.id > before[table])]
        assert fresh and min(fresh) > before[table], f"{table}: an id of the deleted job given again"
        assert after[table] > before[table]


def test_a_stale_server_writes_nothing_into_the_job_that_came_after(database, capsys):
    """The issue's case: server A's attempt is taken back, its job deleted, a new job made and run by B.
    A then reports the attempt it still held: it must reach no row of the new job."""
    from batchtui import status as st
    from batchtui.actor import Actor
    from batchtui.engine.store import EngineStore, Outcome
    from batchtui.vocabulary import BatchStatus

    from .conftest import make_job

    store = EngineStore()
    now = datetime(2031, 3, 3, 9, 0)
    old_job, _ = make_job([{"key": "a", "class_name": "Sleep", "params": {"seconds": 60}}], start=now)
    store.start_due_jobs("AOS-A", now=now)
    (held,) = store.claim_ready_tasks("AOS-A", [""], 8, now=now)
    (orphan,) = store.orphaned_attempts()  # AOS-A has no row (any more): nobody owns its attempt
    assert store.take_back([(orphan, "AOS-A stopped answering")], now=now + timedelta(minutes=1)) == 1
    assert m.BatchJob.get_by_id(old_job).status == BatchStatus.ERROR
    st.delete_job(old_job, Actor.current("ops"))

    new_job, _ = make_job([{"key": "a", "class_name": "Sleep", "params": {"seconds": 60}}],
                          start=now + timedelta(minutes=2))
    store.start_due_jobs("AOS-B", now=now + timedelta(minutes=2))
    (running,) = store.claim_ready_tasks("AOS-B", [""], 8, now=now + timedelta(minutes=2))
    assert new_job != old_job and running.task_id != held.task_id and running.attempt_id != held.attempt_id
    assert running.run_id != held.run_id

    # A reports the attempt it held, as if nothing had happened: nothing of the new job changes.
    store.finish_attempts([Outcome(held.task_id, held.attempt_id, "ended", log="old job's output\n",
                                   ended=now + timedelta(minutes=3))], retry_base=0, now=now + timedelta(minutes=3))
    attempt = m.TaskAttempt.get_by_id(running.attempt_id)
    assert (attempt.status, attempt.ended, attempt.log) == (BatchStatus.EXECUTING, None, "")
    assert m.BatchTask.get_by_id(running.task_id).status == BatchStatus.EXECUTING
    assert m.BatchJob.get_by_id(new_job).status == BatchStatus.EXECUTING

    # `job wait OLD` follows no other job: the old one is gone.
    database.close()
    rc, out, err = call_main(["job", "wait", str(old_job), "--timeout", "0"])
    assert rc == 2 and f"job {old_job}: no such batch job" in err
