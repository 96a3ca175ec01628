"""The command line against a real SQLite file: the contract's commands, outputs and exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from batchtui import cli
from batchtui import models as m
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus

REPO = Path(__file__).resolve().parents[1]

FULL_JOB = {
    "description": "Month-end close",
    "company": "USMF",
    "scheduled_start": "2026-12-25T22:00:00",
    "time_zone": "America/Chicago",
    "status": "waiting",
    "priority": "high",
    "recurrence": {"pattern": "months", "every": 1, "nth": "last", "weekday": "fri",
                   "end": {"after": 12}},
    "late_after": 600,
    "alerts": [{"user": "ops", "ended": False, "error": True, "canceled": True, "popup": True, "email": False,
                "notify": True, "late": True},
               {"user": "cfo", "ended": True, "error": False, "canceled": False, "popup": False,
                "email": True, "notify": False, "late": False}],
    "tasks": [
        {"key": "invoice", "description": "Post invoices", "class": "Sleep", "params": {"seconds": 2},
         "company": "DAT", "batch_group": "Finance", "ignore_failure": True, "max_retries": 2,
         "time_limit": 90.5},
        {"key": "planning", "description": "Master planning", "class": "Fail",
         "params": {"message": "no plan"}},
        {"key": "close", "description": "Inventory close", "class": "Noop", "condition_type": "any",
         "conditions": [{"task": "invoice", "status": "ended"},
                        {"task": "planning", "status": "ended_or_error"}]},
    ],
}


@pytest.fixture
def env(database, tmp_path):
    """A database with companies DAT and USMF, a batch group Finance; user ops, manager boss."""
    m.BatchGroup.get_or_create(name="Finance", defaults={"description": "Finance batch"})
    database.close()
    return tmp_path


def run(capsys, *args, stdin: str | None = None, monkeypatch=None):
    """cli.main in this process: (exit code, stdout, stderr lines)."""
    capsys.readouterr()
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def write_file(tmp_path: Path, data, name="job.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def import_job(capsys, tmp_path, data, *extra) -> dict:
    code, out, err = run(capsys, "job", "import", write_file(tmp_path, data), "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def job_count() -> int:
    with m.database.connection_context():
        return m.BatchJob.select().count()


def assert_one_error(err: list[str], *fragments: str) -> None:
    assert len(err) == 1, err
    assert err[0].startswith("batchtui: error: "), err
    for fragment in fragments:
        assert fragment in err[0], (fragment, err[0])


# -- import / export ---------------------------------------------------------------


def test_import_export_round_trip_keeps_every_field(env, capsys):
    result = import_job(capsys, env, FULL_JOB)
    assert len(result["jobs"]) == 1
    created = result["jobs"][0]
    assert set(created["tasks"]) == {"invoice", "planning", "close"}
    code, out, err = run(capsys, "job", "export", str(created["id"]))
    assert code == 0, err
    exported = json.loads(out)

    assert exported["id"] == created["id"]
    assert exported["created_by"] == "ops"
    assert exported["last_run"] is None
    for key in ("description", "company", "time_zone", "status", "priority"):
        assert exported[key] == FULL_JOB[key], key
    assert exported["scheduled_start"] == "2026-12-25T22:00:00-06:00"
    rec = exported["recurrence"]
    for key, value in FULL_JOB["recurrence"].items():
        assert rec[key] == value, key
    assert rec["text"].startswith("Every month on the last Friday")
    assert sorted(exported["alerts"], key=lambda a: a["user"]) == sorted(FULL_JOB["alerts"],
                                                                        key=lambda a: a["user"])
    by_key = {t["key"]: t for t in exported["tasks"]}
    for task in FULL_JOB["tasks"]:
        got = by_key[task["key"]]
        assert got["id"] == created["tasks"][task["key"]]
        assert got["status"] == "waiting" and got["retries_used"] == 0
        assert got["description"] == task["description"]
        assert got["class"] == task["class"]
        assert got["params"] == task.get("params", {})
        assert got["company"] == task.get("company", FULL_JOB["company"])
        assert got["batch_group"] == task.get("batch_group", "")
        assert got["ignore_failure"] == task.get("ignore_failure", False)
        assert got["max_retries"] == task.get("max_retries", 0)
        assert got["condition_type"] == task.get("condition_type", "all")
        assert got["conditions"] == task.get("conditions", [])

    # The export imports again as an identical copy (run-time fields are ignored).
    code, out, err = run(capsys, "job", "import", write_file(env, out, "export.json"), "--json")
    assert code == 0, err
    again = json.loads(out)["jobs"][0]
    code, out2, _ = run(capsys, "job", "export", str(again["id"]))
    second = json.loads(out2)
    for doc in (exported, second):
        doc.pop("id")
        doc.pop("version")
        for t in doc["tasks"]:
            t.pop("id")
    assert second == exported


def test_import_defaults(env, capsys, monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Paris")
    before = utcnow()
    result = import_job(capsys, env, {"description": "Defaults", "tasks": [
        {"description": "Only task", "class": "Noop"}]})
    code, out, _ = run(capsys, "job", "export", str(result["jobs"][0]["id"]))
    job = json.loads(out)
    assert job["company"] == "DAT" and job["status"] == "withhold" and job["priority"] == "normal"
    assert job["time_zone"] == "Europe/Paris"
    assert job["recurrence"] is None and job["alerts"] == []
    start = datetime.fromisoformat(job["scheduled_start"])
    assert abs((start.replace(tzinfo=None) - start.utcoffset()) - before) < timedelta(seconds=30)
    (task,) = job["tasks"]
    assert task["key"] == "Only task"
    assert (task["company"], task["batch_group"], task["ignore_failure"], task["max_retries"],
            task["condition_type"], task["conditions"]) == ("DAT", "", False, 0, "all", [])


def test_import_from_stdin_and_text_output(env, capsys, monkeypatch):
    code, out, err = run(capsys, "job", "import", "-", stdin=json.dumps([
        {"description": "One", "tasks": [{"key": "a", "description": "A", "class": "Noop"}]},
        {"description": "Two"}]), monkeypatch=monkeypatch)
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("created job 1 'One'") and "a=1" in lines[0]
    assert lines[1].startswith("created job 2 'Two'")


def _task(**over):
    task = {"key": "t", "description": "T", "class": "Noop"}
    task.update(over)
    return task


BAD_FILES = [
    # (id, file content, fragments the one error line must hold)
    ("malformed-json", '{"description": "x", "tasks": [', ["malformed JSON", "line 1"]),
    ("unknown-class", {"description": "J", "tasks": [_task(**{"class": "Nope"})]},
     ["job 'J'", "task 't'", "field class", "Nope"]),
    ("unknown-company", {"description": "J", "company": "ZZZZ"}, ["job 'J'", "field company", "ZZZZ"]),
    ("unknown-task-company", {"description": "J", "tasks": [_task(company="ZZZZ")]},
     ["job 'J'", "task 't'", "field company"]),
    ("unknown-group", {"description": "J", "tasks": [_task(batch_group="Nightly")]},
     ["job 'J'", "task 't'", "field batch_group", "Nightly"]),
    ("unknown-param", {"description": "J", "tasks": [_task(**{"class": "Sleep", "params": {"secs": 1}})]},
     ["job 'J'", "task 't'", "field params.secs"]),
    ("wrong-param-type", {"description": "J", "tasks": [_task(**{"class": "Sleep", "params": {"seconds": "2"}})]},
     ["job 'J'", "task 't'", "field params.seconds"]),
    ("bool-is-not-int", {"description": "J", "tasks": [_task(**{"class": "Flaky", "params": {"failures": True}})]},
     ["job 'J'", "task 't'", "field params.failures"]),
    ("condition-unknown-task", {"description": "J", "tasks": [
        _task(key="close", conditions=[{"task": "invoce", "status": "ended"}])]},
     ["job 'J'", "task 'close'", "field conditions[0].task", "no task 'invoce' in this job"]),
    ("condition-on-itself", {"description": "J", "tasks": [_task(conditions=[{"task": "t"}])]},
     ["job 'J'", "task 't'", "field conditions[0].task", "itself"]),
    ("cycle", {"description": "J", "tasks": [
        _task(key="a", conditions=[{"task": "c"}]), _task(key="b", conditions=[{"task": "a"}]),
        _task(key="c", conditions=[{"task": "b"}])]},
     ["job 'J'", "task 'a'", "field conditions", "cycle"]),
    ("max-retries-6", {"description": "J", "tasks": [_task(max_retries=6)]},
     ["job 'J'", "task 't'", "field max_retries", "0 to 5"]),
    ("max-retries-bool", {"description": "J", "tasks": [_task(max_retries=True)]},
     ["job 'J'", "task 't'", "field max_retries"]),
    ("ignore-failure-int", {"description": "J", "tasks": [_task(ignore_failure=1)]},
     ["job 'J'", "task 't'", "field ignore_failure"]),
    ("bad-priority", {"description": "J", "priority": "urgent"}, ["job 'J'", "field priority", "urgent"]),
    # A run-time status ("ended") imports as withhold (tests/test_inputs.py), a status no job has is refused.
    ("unknown-status", {"description": "J", "status": "paused"}, ["job 'J'", "field status"]),
    ("bad-condition-status", {"description": "J", "tasks": [
        _task(key="a"), _task(key="b", conditions=[{"task": "a", "status": "done"}])]},
     ["job 'J'", "task 'b'", "field conditions[0].status", "done"]),
    ("bad-condition-type", {"description": "J", "tasks": [_task(condition_type="some")]},
     ["job 'J'", "task 't'", "field condition_type"]),
    ("recurrence-without-occurrence", {"description": "J", "recurrence": {
        "pattern": "days", "start": "2026-01-10T08:00:00", "end": {"by": "2026-01-01"}}},
     ["job 'J'", "field recurrence.end.by"]),
    ("recurrence-bad-every", {"description": "J", "recurrence": {"pattern": "days", "every": 0}},
     ["job 'J'", "field recurrence.every"]),
    ("unknown-job-key", {"description": "J", "owner": "me"}, ["job 'J'", "field owner", "unknown key"]),
    ("unknown-task-key", {"description": "J", "tasks": [_task(retry=1)]},
     ["job 'J'", "task 't'", "field retry", "unknown key"]),
    ("missing-description", {"tasks": []}, ["job #1", "field description"]),
    ("too-long-description", {"description": "x" * 201}, ["job #1", "field description", "at most 200"]),
    ("bad-start", {"description": "J", "scheduled_start": "tomorrow"}, ["job 'J'", "field scheduled_start"]),
    ("bad-zone", {"description": "J", "time_zone": "Mars/Olympus"}, ["job 'J'", "field time_zone"]),
    ("duplicate-key", {"description": "J", "tasks": [_task(), _task()]}, ["job 'J'", "task 't'", "field key"]),
    ("alert-flag-not-bool", {"description": "J", "alerts": [{"user": "ops", "error": "yes"}]},
     ["job 'J'", "field alerts[0].error"]),
    ("missing-class", {"description": "J", "tasks": [{"description": "T"}]},
     ["job 'J'", "task 'T'", "field class"]),
    ("not-a-job", "42", ["job object"]),
]


@pytest.mark.parametrize("content,fragments", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_bad_job_file_exit_2_one_line_nothing_created(env, capsys, content, fragments):
    code, out, err = run(capsys, "job", "import", write_file(env, content), "--json")
    assert code == 2
    assert out == ""
    assert_one_error(err, *fragments)
    assert job_count() == 0


def test_file_with_three_jobs_third_wrong_creates_none(env, capsys):
    jobs = [{"description": f"Job {i}", "tasks": [_task()]} for i in (1, 2)]
    jobs.append({"description": "Job 3", "tasks": [_task(key="x", conditions=[{"task": "nope"}])]})
    code, out, err = run(capsys, "job", "import", write_file(env, jobs))
    assert code == 2 and out == ""
    assert_one_error(err, "job 'Job 3'", "task 'x'", "field conditions[0].task")
    assert job_count() == 0
    # A database check (unknown company) on the third job also leaves nothing behind.
    jobs[2] = {"description": "Job 3", "company": "NOPE"}
    code, _, err = run(capsys, "job", "import", write_file(env, jobs))
    assert code == 2
    assert_one_error(err, "job 'Job 3'", "field company")
    assert job_count() == 0


def test_missing_file_is_bad_input(env, capsys):
    code, _, err = run(capsys, "job", "import", str(env / "nope.json"))
    assert code == 2
    assert_one_error(err, "nope.json", "no such file")


# -- job list, status, cancel, delete, copy ----------------------------------------------


def test_job_list_json_keys_and_text_columns(env, capsys):
    import_job(capsys, env, [{"description": "First job", "time_zone": "UTC",
                              "scheduled_start": "2026-01-02T03:04:05"},
                             {"description": "Second", "status": "waiting", "company": "USMF"}])
    code, out, _ = run(capsys, "job", "list", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 2
    for row in rows:
        assert set(row) == {"id", "status", "scheduled_start", "description", "company", "created_by",
                            "next_run", "last_run_status"}
    assert rows[0] == {"id": 1, "status": "withhold", "scheduled_start": "2026-01-02T03:04:05+00:00",
                       "description": "First job", "company": "DAT", "created_by": "ops", "next_run": None,
                       "last_run_status": None}
    code, out, _ = run(capsys, "job", "list", "--status", "waiting", "--json")
    assert [r["id"] for r in json.loads(out)] == [2]

    code, out, _ = run(capsys, "job", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "SCHEDULED", "START", "NEXT", "RUN", "LAST", "RUN", "DESCRIPTION",
                                "COMPANY", "CREATED", "BY"]
    assert len(lines) == 3
    # Aligned: every column starts at the same offset on every line.
    col = lines[0].index("DESCRIPTION")
    assert lines[1][col:].startswith("First job") and lines[2][col:].startswith("Second")

    code, _, err = run(capsys, "job", "list", "--status", "sleeping")
    assert code == 2
    assert_one_error(err, "sleeping")


def test_status_cancel_copy_delete(env, capsys):
    job_id = import_job(capsys, env, FULL_JOB)["jobs"][0]["id"]
    code, out, _ = run(capsys, "job", "status", str(job_id), "withhold")
    assert code == 0 and out.strip() == f"job {job_id}: withhold"
    code, out, _ = run(capsys, "job", "status", str(job_id), "waiting", "--json")
    assert json.loads(out) == {"id": job_id, "status": "waiting"}

    code, out, err = run(capsys, "job", "copy", str(job_id), "--description", "Copy of close",
                         "--start", "2027-03-01T08:00:00")
    assert code == 0, err
    copy_id = int(out.strip())
    code, out, _ = run(capsys, "job", "export", str(copy_id))
    copy = json.loads(out)
    assert copy["status"] == "withhold" and copy["description"] == "Copy of close"
    assert copy["created_by"] == "ops"
    assert copy["scheduled_start"] == "2027-03-26T08:00:00-05:00"  # the last Friday of March
    assert copy["recurrence"]["start"] == "2027-03-01T08:00:00"
    assert len(copy["tasks"]) == 3 and len(copy["alerts"]) == 2
    close = next(t for t in copy["tasks"] if t["key"] == "close")
    assert close["conditions"] == FULL_JOB["tasks"][2]["conditions"]
    assert all(t["status"] == "withhold" for t in copy["tasks"])

    code, out, _ = run(capsys, "job", "cancel", str(job_id))
    assert code == 0 and out.strip() == f"job {job_id}: canceled"
    code, _, err = run(capsys, "job", "cancel", str(job_id))
    assert code == 2
    assert_one_error(err, f"job {job_id}", "nothing to cancel")

    code, out, _ = run(capsys, "job", "delete", str(copy_id))
    assert code == 0 and out.strip() == f"deleted job {copy_id}"
    with m.database.connection_context():
        assert m.BatchJob.get_or_none(m.BatchJob.id == copy_id) is None
        assert m.BatchTask.select().where(m.BatchTask.job == copy_id).count() == 0


@pytest.mark.parametrize("args", [
    ["job", "export", "99"], ["job", "status", "99", "waiting"], ["job", "cancel", "99"],
    ["job", "delete", "99"], ["job", "copy", "99"], ["job", "history", "99"], ["job", "wait", "99"],
])
def test_unknown_job_id_exit_2(env, capsys, args):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert_one_error(err, "job 99")


def test_delete_refused_while_executing(env, capsys):
    job_id = import_job(capsys, env, {"description": "J"})["jobs"][0]["id"]
    with m.database.connection_context():
        m.BatchJob.update(status=BatchStatus.EXECUTING).where(m.BatchJob.id == job_id).execute()
    code, _, err = run(capsys, "job", "delete", str(job_id))
    assert code == 2
    assert_one_error(err, f"job {job_id}", "Executing")
    code, _, err = run(capsys, "job", "status", str(job_id), "withhold")
    assert code == 2
    assert_one_error(err, "Executing")


def test_another_user_is_refused_and_a_manager_allowed(env, capsys, monkeypatch):
    job_id = import_job(capsys, env, {"description": "Owned by ops"})["jobs"][0]["id"]
    monkeypatch.setenv("BATCHTUI_USER", "eve")
    for args in (["job", "status", str(job_id), "waiting"], ["job", "cancel", str(job_id)],
                 ["job", "delete", str(job_id)]):
        code, _, err = run(capsys, *args)
        assert code == 2, args
        assert_one_error(err, "'eve'", "may not")
    with m.database.connection_context():
        assert m.BatchJob.get_by_id(job_id).status == BatchStatus.HOLD
    monkeypatch.setenv("BATCHTUI_USER", "boss")
    code, out, _ = run(capsys, "job", "status", str(job_id), "waiting")
    assert code == 0 and out.strip().endswith("waiting")
    code, _, _ = run(capsys, "job", "delete", str(job_id))
    assert code == 0
    assert job_count() == 0


# -- job set ------------------------------------------------------------------------------


def _export(capsys, job_id) -> dict:
    code, out, err = run(capsys, "job", "export", str(job_id))
    assert code == 0, err
    return json.loads(out)


def _set_job(capsys, tmp_path) -> int:
    return import_job(capsys, tmp_path, {"description": "Nightly", "company": "DAT", "time_zone": "America/Chicago",
                                         "scheduled_start": "2026-12-01T22:00:00", "priority": "normal",
                                         "tasks": [_task()]})["jobs"][0]["id"]


def test_job_set_changes_each_field_and_bumps_the_version(env, capsys):
    job_id = _set_job(capsys, env)
    version = _export(capsys, job_id)["version"]
    for option, value, key, shown in [
        ("--description", "Nightly close", "description", "Nightly close"),
        ("--start", "2026-12-24T23:30:00", "scheduled_start", "2026-12-24T23:30:00-06:00"),  # the job's zone
        ("--start", "2026-12-25T08:00:00+00:00", "scheduled_start", "2026-12-25T02:00:00-06:00"),
        ("--priority", "critical", "priority", "critical"),
        ("--company", "USMF", "company", "USMF"),
    ]:
        code, out, err = run(capsys, "job", "set", str(job_id), option, value)
        assert code == 0 and err == [], (option, err)
        assert out.strip() == f"job {job_id}: changed {key} (version {version + 1})"
        job = _export(capsys, job_id)
        assert job[key] == shown and job["version"] == version + 1
        version += 1
    # Several at once, with --if-version and --json; the tasks and status are as they were.
    code, out, err = run(capsys, "job", "set", str(job_id), "--priority", "low", "--description", "Close",
                         "--if-version", str(version), "--json")
    assert code == 0, err
    assert json.loads(out) == {"id": job_id, "version": version + 1, "changed": ["description", "priority"]}
    job = _export(capsys, job_id)
    assert (job["description"], job["priority"], job["status"], len(job["tasks"])) == ("Close", "low", "withhold", 1)


def test_job_set_with_a_stale_version_is_refused_and_changes_nothing(env, capsys):
    job_id = _set_job(capsys, env)
    seen = _export(capsys, job_id)["version"]
    assert run(capsys, "job", "set", str(job_id), "--priority", "high")[0] == 0  # someone else's change
    before = _export(capsys, job_id)
    code, out, err = run(capsys, "job", "set", str(job_id), "--description", "Mine", "--priority", "low",
                         "--if-version", str(seen))
    assert code == 2 and out == ""
    assert err == [f"batchtui: error: job {job_id} was changed since version {seen}"]
    assert _export(capsys, job_id) == before
    code, _, err = run(capsys, "job", "set", str(job_id), "--description", "Mine",
                       "--if-version", str(before["version"]))
    assert code == 0, err


@pytest.mark.parametrize("status, label", [(BatchStatus.EXECUTING, "Executing"),
                                           (BatchStatus.CANCELLING, "Canceling")])
def test_job_set_is_refused_while_the_job_runs(env, capsys, status, label):
    job_id = _set_job(capsys, env)
    with m.database.connection_context():
        m.BatchJob.update(status=status).where(m.BatchJob.id == job_id).execute()
    before = _export(capsys, job_id)
    for extra in ([], ["--if-version", str(before["version"])]):
        code, out, err = run(capsys, "job", "set", str(job_id), "--description", "Changed", *extra)
        assert code == 2 and out == ""
        assert_one_error(err, f"job {job_id} 'Nightly' is {label}", "cannot be changed while it runs")
    assert _export(capsys, job_id) == before


@pytest.mark.parametrize("option, value, field", [
    ("--priority", "urgent", "field priority"),
    ("--start", "next tuesday", "field scheduled_start"),
    ("--start", "2026-13-01T00:00:00", "field scheduled_start"),
    ("--company", "NOPE", "field company"),
    ("--company", "WAYTOOLONGCOMPANY", "field company"),
    ("--description", "", "field description"),
    ("--description", "two\nlines", "field description"),
])
def test_job_set_bad_values_name_the_field(env, capsys, option, value, field):
    job_id = _set_job(capsys, env)
    before = _export(capsys, job_id)
    code, out, err = run(capsys, "job", "set", str(job_id), option, value)
    assert code == 2 and out == ""
    assert_one_error(err, f"job {job_id} 'Nightly'", field)
    assert "Traceback" not in "".join(err)
    assert _export(capsys, job_id) == before


@pytest.mark.parametrize("args, fragment", [
    (["--if-version", "3"], "nothing to change"),
    ([], "nothing to change"),
    (["--priority", "low", "--if-version", "0"], "--if-version must be 1 or more"),
    (["--priority", "low", "--if-version", "x"], "--if-version must be a whole number"),
])
def test_job_set_usage(env, capsys, args, fragment):
    job_id = _set_job(capsys, env)
    code, out, err = run(capsys, "job", "set", str(job_id), *args)
    assert code == 2 and out == ""
    assert_one_error(err, fragment)
    code, _, err = run(capsys, "job", "set", "999", "--priority", "low")
    assert code == 2
    assert_one_error(err, "job 999: no such batch job")


def test_job_set_on_another_users_job_is_refused_and_a_manager_allowed(env, capsys, monkeypatch):
    job_id = _set_job(capsys, env)
    before = _export(capsys, job_id)
    monkeypatch.setenv("BATCHTUI_USER", "eve")
    code, out, err = run(capsys, "job", "set", str(job_id), "--description", "Eve's now")
    assert code == 2 and out == ""
    assert_one_error(err, "'eve'", "may not change it", "'ops'")
    assert _export(capsys, job_id) == before
    monkeypatch.setenv("BATCHTUI_USER", "boss")
    code, _, err = run(capsys, "job", "set", str(job_id), "--description", "Boss's change")
    assert code == 0, err
    job = _export(capsys, job_id)
    assert job["description"] == "Boss's change" and job["created_by"] == "ops"


# -- usage errors, database errors ------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["nope"], ["job"], ["job", "status", "1", "running"], ["job", "export", "x"], ["job", "import"],
    ["cleanup"], ["cleanup", "--older-than", "-1"], ["--bogus"], ["job", "list", "--bogus"],
    ["server", "--threads", "0"], ["recurrence", "preview"],
])
def test_usage_errors_are_one_line_exit_2(env, capsys, args):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert_one_error(err)


def test_db_option_before_or_after_the_command(env, capsys, monkeypatch, tmp_path):
    url = os.environ["BATCHTUI_DB"]
    monkeypatch.delenv("BATCHTUI_DB")
    import_job(capsys, env, {"description": "Here"}, "--db", url)
    code, out, _ = run(capsys, "--db", url, "job", "list", "--json")
    assert [r["description"] for r in json.loads(out)] == ["Here"]
    code, out, _ = run(capsys, "job", "list", "--json", "--db", url)
    assert [r["description"] for r in json.loads(out)] == ["Here"]
    other = f"sqlite:///{tmp_path}/other.db"
    code, out, _ = run(capsys, "--db", url, "job", "list", "--db", other, "--json")
    assert json.loads(out) == []


def test_unreachable_database_exit_1(env, capsys):
    code, out, err = run(capsys, "--db", "postgresql://nobody@127.0.0.1:1/none", "job", "list")
    assert code == 1 and out == ""
    assert_one_error(err, "cannot open the database")
    code, _, err = run(capsys, "--db", "mysql://x/y", "job", "list")
    assert code == 2
    assert_one_error(err, "unsupported database URL")


# -- alerts, cleanup, groups, classes, recurrence, servers ---------------------------------


def _alert(user, job_id, event, read=False, minutes_ago=0):
    return m.Alert.create(user=user, job=job_id, event=event, message=f"Batch job {job_id} {event}.",
                          created=utcnow() - timedelta(minutes=minutes_ago), read=read)


def test_alerts_unread_all_and_read(env, capsys):
    job_id = import_job(capsys, env, {"description": "J", "time_zone": "UTC"})["jobs"][0]["id"]
    with m.database.connection_context():
        a1 = _alert("ops", job_id, "error", minutes_ago=2)
        a2 = _alert("ops", job_id, "ended")
        _alert("ops", job_id, "canceled", read=True)
        _alert("eve", job_id, "ended")
    code, out, _ = run(capsys, "alerts", "--json")
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [a1.id, a2.id]
    assert set(rows[0]) == {"id", "job_id", "event", "message", "created", "read", "email", "notify"}
    assert rows[0]["email"] is None and rows[0]["notify"] is None  # asked for neither
    assert rows[0]["job_id"] == job_id and rows[0]["event"] == "error" and rows[0]["read"] is False
    assert rows[0]["created"].endswith("+00:00")
    code, out, _ = run(capsys, "alerts", "--all", "--json")
    assert len(json.loads(out)) == 3
    code, out, _ = run(capsys, "alerts", "--read")
    assert code == 0 and len(out.splitlines()) == 3  # header and two alerts
    code, out, err = run(capsys, "alerts", "--json")
    assert json.loads(out) == []
    with m.database.connection_context():
        assert m.Alert.select().where((m.Alert.user == "eve") & (m.Alert.read == False)).count() == 1  # noqa: E712


def _run_row(job_id, run_no, status, days_ago):
    ended = utcnow() - timedelta(days=days_ago)
    run = m.JobRun.create(job=job_id, run_no=run_no, scheduled=ended, started=ended, ended=ended,
                          status=status, server="S1")
    task = m.BatchTask.get(m.BatchTask.job == job_id)
    m.RunTask.create(run=run, task=task, status=status)
    m.TaskAttempt.create(run=run, task=task, attempt=1, status=status, started=ended, ended=ended, log="x")
    return run.id


def test_cleanup_deletes_old_runs_with_filters(env, capsys, monkeypatch):
    ids = [import_job(capsys, env, {"description": d, "company": c, "tasks": [_task()]})["jobs"][0]["id"]
           for d, c in (("A", "DAT"), ("B", "USMF"))]
    with m.database.connection_context():
        old_ok = _run_row(ids[0], 1, BatchStatus.FINISHED, 40)
        _run_row(ids[0], 2, BatchStatus.ERROR, 40)
        _run_row(ids[0], 3, BatchStatus.FINISHED, 1)
        _run_row(ids[1], 1, BatchStatus.FINISHED, 40)
    code, out, _ = run(capsys, "cleanup", "--older-than", "30", "--status", "ended", "--company", "DAT")
    assert code == 0 and out.strip() == "deleted 1 run"
    with m.database.connection_context():
        assert m.JobRun.get_or_none(m.JobRun.id == old_ok) is None
        assert m.TaskAttempt.select().where(m.TaskAttempt.run == old_ok).count() == 0
        assert m.RunTask.select().where(m.RunTask.run == old_ok).count() == 0
    code, out, _ = run(capsys, "cleanup", "--older-than", "30", "--json")
    assert json.loads(out) == {"deleted": 2}
    with m.database.connection_context():
        assert m.JobRun.select().count() == 1  # the recent one
    code, _, err = run(capsys, "cleanup", "--older-than", "30", "--status", "waiting")
    assert code == 2
    assert_one_error(err, "waiting")
    # Someone else may clean up only their own jobs' history.
    monkeypatch.setenv("BATCHTUI_USER", "eve")
    code, out, _ = run(capsys, "cleanup", "--older-than", "0")
    assert code == 0 and out.strip() == "deleted 0 runs"
    code, _, err = run(capsys, "cleanup", "--older-than", "0", "--user", "ops")
    assert code == 2
    assert_one_error(err, "'eve'")
    monkeypatch.setenv("BATCHTUI_USER", "boss")
    code, out, _ = run(capsys, "cleanup", "--older-than", "0", "--user", "ops")
    assert out.strip() == "deleted 1 run"


def test_group_add_list_delete(env, capsys, monkeypatch):
    monkeypatch.setenv("BATCHTUI_USER", "boss")  # batch groups are changed by batch job managers
    code, out, _ = run(capsys, "group", "add", "Nightly", "--description", "Night work", "--servers", "AOS1,AOS2")
    assert code == 0 and "added" in out
    code, out, _ = run(capsys, "group", "list", "--json")
    groups = {g["name"]: g for g in json.loads(out)}
    assert groups["Nightly"] == {"name": "Nightly", "description": "Night work", "servers": ["AOS1", "AOS2"],
                                 "max_concurrent": 0, "running": 0}
    assert groups[""]["servers"] == []
    with m.database.connection_context():
        assert sorted(r.server for r in m.BatchGroupServer.select()) == ["AOS1", "AOS2"]
    code, out, _ = run(capsys, "group", "add", "Nightly", "--servers", "AOS3")
    assert code == 0 and "updated" in out
    code, out, _ = run(capsys, "group", "list")
    line = next(ln for ln in out.splitlines() if ln.startswith("Nightly"))
    assert "Night work" in line and "AOS3" in line and "AOS1" not in line

    job_id = import_job(capsys, env, {"description": "J", "tasks": [_task(batch_group="Nightly")]})["jobs"][0]["id"]
    code, _, err = run(capsys, "group", "delete", "Nightly")
    assert code == 2
    assert_one_error(err, "'Nightly'", f"job {job_id}")
    run(capsys, "job", "delete", str(job_id))
    code, out, _ = run(capsys, "group", "delete", "Nightly")
    assert code == 0
    with m.database.connection_context():
        assert m.BatchGroup.get_or_none(m.BatchGroup.name == "Nightly") is None
        assert m.BatchGroupServer.select().count() == 0
    code, _, err = run(capsys, "group", "delete", "Nightly")
    assert code == 2
    assert_one_error(err, "no such batch group")


def test_classes_json(env, capsys):
    code, out, _ = run(capsys, "classes", "--json")
    classes = {c["name"]: c for c in json.loads(out)}
    assert {"Noop", "Sleep", "Fail", "Flaky", "ShellCommand"} <= set(classes)
    (seconds,) = classes["Sleep"]["params"]
    assert seconds["name"] == "seconds" and seconds["type"] == "number"
    code, out, _ = run(capsys, "classes")
    assert code == 0 and "Sleep" in out and "seconds" in out


def test_recurrence_preview_json(env, capsys, monkeypatch):
    spec = {"pattern": "months", "every": 1, "nth": "last", "weekday": "fri", "start": "2026-12-01T22:00:00",
            "end": {"after": 3}, "time_zone": "America/Chicago"}
    code, out, err = run(capsys, "recurrence", "preview", write_file(env, spec, "rec.json"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"text", "occurrences"}
    assert doc["text"] == "Every month on the last Friday at 22:00, 3 times"
    assert doc["occurrences"] == ["2026-12-25T22:00:00-06:00", "2027-01-29T22:00:00-06:00",
                                  "2027-02-26T22:00:00-06:00"]
    code, out, _ = run(capsys, "recurrence", "preview", "-", "--count", "2", "--after", "2027-01-01T00:00:00",
                       "--json", stdin=json.dumps(spec), monkeypatch=monkeypatch)
    assert json.loads(out)["occurrences"] == ["2027-01-29T22:00:00-06:00", "2027-02-26T22:00:00-06:00"]
    code, out, _ = run(capsys, "recurrence", "preview", write_file(env, spec, "rec.json"))
    assert out.splitlines()[0].startswith("Every month") and len(out.splitlines()) == 4

    bad = dict(spec, end={"by": "2026-11-01"})
    code, out, err = run(capsys, "recurrence", "preview", write_file(env, bad, "bad.json"), "--json")
    assert code == 2 and out == ""
    assert_one_error(err, "recurrence.end.by")
    code, _, err = run(capsys, "recurrence", "preview", write_file(env, "{", "broken.json"))
    assert code == 2
    assert_one_error(err, "malformed JSON")


def test_servers_json(env, capsys):
    now = utcnow()
    with m.database.connection_context():
        m.BatchServer.create(name="AOS1", host="h1", pid=1, threads=4, started=now, heartbeat=now)
        m.BatchServer.create(name="AOS2", host="h2", pid=2, threads=8, started=now,
                             heartbeat=now - timedelta(minutes=5))
        m.BatchServer.create(name="AOS3", host="h3", pid=3, threads=8, started=now, heartbeat=now, stopped=now)
    job_id = import_job(capsys, env, {"description": "J", "tasks": [_task(key="a"), _task(key="b")]})["jobs"][0]["id"]
    with m.database.connection_context():
        m.BatchTask.update(status=BatchStatus.EXECUTING, server="AOS1").where(m.BatchTask.job == job_id).execute()
    code, out, _ = run(capsys, "servers", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["AOS1"]["alive"] is True and rows["AOS1"]["running"] == 2 and rows["AOS1"]["threads"] == 4
    assert rows["AOS1"]["groups"] == [""]
    assert rows["AOS2"]["alive"] is False and rows["AOS3"]["alive"] is False
    assert rows["AOS2"]["running"] == 0
    code, out, _ = run(capsys, "servers")
    assert out.splitlines()[0].split()[:3] == ["NAME", "THREADS", "GROUPS"]


def test_history_of_a_job_that_has_not_run(env, capsys):
    job_id = import_job(capsys, env, {"description": "J"})["jobs"][0]["id"]
    code, out, _ = run(capsys, "job", "history", str(job_id), "--json")
    assert code == 0 and json.loads(out) == []


# -- job wait with a real batch server ---------------------------------------------------


def _subprocess_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _start_server(name="T1"):
    return subprocess.Popen(
        [sys.executable, "-m", "batchtui", "server", "--name", name, "--poll", "0.05", "--retry-base", "0"],
        env=_subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture
def server(env):
    proc = _start_server()
    yield proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


def test_job_wait_exit_codes_with_a_real_server(env, capsys, server):
    result = import_job(capsys, env, [
        {"description": "Ends", "status": "waiting", "tasks": [
            {"key": "a", "description": "A", "class": "Flaky", "params": {"failures": 1}, "max_retries": 1},
            {"key": "b", "description": "B", "class": "Noop", "conditions": [{"task": "a"}]}]},
        {"description": "Fails", "status": "waiting", "tasks": [
            {"description": "F", "class": "Fail", "params": {"message": "boom"}}]},
        {"description": "Long", "status": "waiting", "tasks": [
            {"description": "S", "class": "Sleep", "params": {"seconds": 30}}]},
    ])
    ok, bad, long = (j["id"] for j in result["jobs"])
    code, out, err = run(capsys, "job", "wait", str(ok), "--timeout", "30")
    assert code == 0, err
    assert out.strip() == f"job {ok} run 1: ended"
    code, out, err = run(capsys, "job", "wait", str(bad), "--timeout", "30", "--json")
    assert code == 3, err
    assert json.loads(out) == {"id": bad, "run": 1, "status": "error", "timeout": False}
    # Waiting again on a job whose run is over reports that run at once.
    code, _, _ = run(capsys, "job", "wait", str(bad))
    assert code == 3

    code, _, err = run(capsys, "job", "wait", str(long), "--timeout", "0.3")
    assert code == 5
    assert len(err) == 1 and "timed out" in err[0]
    deadline = time.monotonic() + 20
    while True:
        with m.database.connection_context():
            if m.BatchTask.get(m.BatchTask.job == long).status == BatchStatus.EXECUTING:
                break
        assert time.monotonic() < deadline, "Sleep task never started"
        time.sleep(0.05)
    assert run(capsys, "job", "cancel", str(long))[0] == 0
    code, out, err = run(capsys, "job", "wait", str(long), "--timeout", "30")
    assert code == 4, err
    assert out.strip() == f"job {long} run 1: canceled"

    code, out, _ = run(capsys, "job", "history", str(ok), "--json")
    (run1,) = json.loads(out)
    assert run1["run"] == 1 and run1["status"] == "ended" and run1["server"] == "T1"
    a = next(t for t in run1["tasks"] if t["key"] == "a")
    assert [x["status"] for x in a["attempts"]] == ["error", "ended"]
    assert "fails on purpose" in a["attempts"][0]["log"]
    assert "." in a["attempts"][0]["started"].split("T")[1]  # milliseconds
    code, out, _ = run(capsys, "job", "history", str(bad))
    assert "boom" in out


def test_job_wait_refuses_a_withheld_job(env, capsys):
    job_id = import_job(capsys, env, {"description": "Held"})["jobs"][0]["id"]
    code, _, err = run(capsys, "job", "wait", str(job_id), "--timeout", "1")
    assert code == 2
    assert_one_error(err, "Withhold", "waiting")


# -- as real processes -------------------------------------------------------------------


def test_python_dash_m_and_script_as_subprocesses(env, tmp_path):
    path = write_file(tmp_path, {"description": "From a process", "tasks": [_task()]})
    proc = subprocess.run([sys.executable, "-m", "batchtui", "job", "import", path, "--json"],
                          env=_subprocess_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"jobs": [{"id": 1, "tasks": {"t": 1}}]}

    script = Path(sys.executable).with_name("batchtui")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "batchtui"]
    proc = subprocess.run(cmd + ["job", "list", "--json"], env=_subprocess_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [r["description"] for r in json.loads(proc.stdout)] == ["From a process"]

    proc = subprocess.run(cmd + ["job", "import", "-"], input='{"description": "x", "tasks": [{"description": "t", '
                          '"class": "Sleep", "params": {"seconds": "2"}}]}', env=_subprocess_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchtui: error: job 'x', task 't', field params.seconds")
    assert "Traceback" not in proc.stderr

    proc = subprocess.run(cmd + ["job", "bogus"], env=_subprocess_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1


# -- console, demo and server dispatch -------------------------------------------------------


def test_console_and_demo_options_reach_run_console(env, capsys, monkeypatch):
    import batchtui.ui.app as app

    calls = []
    monkeypatch.setattr(app, "run_console", lambda db_url, **kw: calls.append((db_url, kw)) or 0)
    assert cli.main([]) == 0
    assert cli.main(["--demo", "--no-server", "--guide"]) == 0
    assert cli.main(["--db", "sqlite:////tmp/x.db"]) == 0
    assert calls == [
        (None, {"demo": False, "server": True, "guide": False}),
        (None, {"demo": True, "server": False, "guide": True}),
        ("sqlite:////tmp/x.db", {"demo": False, "server": True, "guide": False}),
    ]


def test_demo_command_loads_once_and_resets(env, capsys):
    code, out, _ = run(capsys, "demo")
    assert code == 0 and out.startswith("Loaded the USMF demo data: 30 batch jobs")
    code, out, _ = run(capsys, "demo")
    assert code == 0 and "loaded already" in out and "--reset" in out
    code, out, _ = run(capsys, "job", "list", "--json")
    assert len(json.loads(out)) == 30
    code, out, _ = run(capsys, "demo", "--reset")
    assert code == 0 and out.startswith("Loaded the USMF demo data")
    code, out, _ = run(capsys, "job", "list", "--json")
    assert len(json.loads(out)) == 30


def test_server_exits_when_idle(env):
    proc = subprocess.run([sys.executable, "-m", "batchtui", "server", "--name", "idle", "--exit-when-idle",
                           "--poll", "0.05"], env=_subprocess_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_help_and_version_exit_0(env, capsys):
    assert cli.main(["--help"]) == 0
    assert "job" in capsys.readouterr().out
    assert cli.main(["job", "import", "--help"]) == 0
    assert cli.main(["--version"]) == 0


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_import_export_list_cleanup_on_postgres(pg_database, capsys, tmp_path):
    m.Company.get_or_create(id="USMF")
    m.BatchGroup.get_or_create(name="Finance")
    pg_database.close()
    job_id = import_job(capsys, tmp_path, FULL_JOB)["jobs"][0]["id"]
    code, out, err = run(capsys, "job", "export", str(job_id))
    assert code == 0, err
    assert json.loads(out)["scheduled_start"] == "2026-12-25T22:00:00-06:00"
    code, out, _ = run(capsys, "job", "list", "--json")
    assert [r["id"] for r in json.loads(out)] == [job_id]
    bad = dict(FULL_JOB, company="NOPE")
    code, _, err = run(capsys, "job", "import", write_file(tmp_path, [FULL_JOB, bad], "two.json"))
    assert code == 2
    assert_one_error(err, "field company")
    with m.database.connection_context():
        assert m.BatchJob.select().count() == 1
        _run_row(job_id, 1, BatchStatus.FINISHED, 40)
    code, out, _ = run(capsys, "cleanup", "--older-than", "30")
    assert out.strip() == "deleted 1 run"
    code, out, _ = run(capsys, "job", "copy", str(job_id))
    assert code == 0 and int(out) > job_id
