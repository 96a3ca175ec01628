"""The scheduling controls on the command line: the contract's shapes, manager-only
settings, and every bad input refused with exit 2, one line, and nothing changed."""

from __future__ import annotations

import json

import pytest

from batchtui import models as m

from . import test_cli
from .test_cli import import_job, run

env = test_cli.env  # the same fixture: companies, a batch group Finance, user ops, manager boss

MANAGER = "boss"


def as_manager(monkeypatch):
    monkeypatch.setenv("BATCHTUI_USER", MANAGER)


def counts():
    return (m.ActivePeriod.select().count(), m.ServerConfig.select().count(),
            [(g.name, g.max_concurrent) for g in m.BatchGroup.select().order_by(m.BatchGroup.name)],
            [(j.id, j.active_period, j.version) for j in m.BatchJob.select().order_by(m.BatchJob.id)])


def test_periods_list_add_delete(env, capsys, monkeypatch):
    as_manager(monkeypatch)
    code, out, err = run(capsys, "period", "add", "Night", "--from", "22:00", "--to", "06:00", "--days",
                         "fri,mon", "--start-date", "2026-01-01", "--json")
    assert code == 0, err
    assert json.loads(out) == {"name": "Night", "description": "", "from": "22:00", "to": "06:00",
                               "days": ["mon", "fri"], "start_date": "2026-01-01", "end_date": None,
                               "text": "22:00-06:00 Mon, Fri from 2026-01-01", "jobs": 0}
    code, out, _ = run(capsys, "period", "list", "--json")
    assert [p["name"] for p in json.loads(out)] == ["Night"]
    code, out, _ = run(capsys, "period", "list")
    assert out.splitlines()[1].split()[:4] == ["Night", "22:00", "06:00", "mon,fri"]
    code, out, err = run(capsys, "period", "delete", "Night")
    assert code == 0 and m.ActivePeriod.select().count() == 0


def test_job_file_job_set_and_export_carry_the_active_period(env, capsys, monkeypatch, tmp_path):
    as_manager(monkeypatch)
    run(capsys, "period", "add", "Night", "--from", "22:00", "--to", "06:00")
    monkeypatch.setenv("BATCHTUI_USER", "ops")
    job = import_job(capsys, tmp_path, {"description": "Close", "active_period": "Night",
                                        "tasks": [{"description": "a", "class": "Noop"}]})["jobs"][0]
    code, out, _ = run(capsys, "job", "export", str(job["id"]))
    exported = json.loads(out)
    assert exported["active_period"] == "Night"
    assert exported["tasks"][0]["waiting_reason"] is None
    # What export printed imports again (waiting_reason is a run-time field).
    again = import_job(capsys, tmp_path, exported)["jobs"][0]
    assert m.BatchJob.get_by_id(again["id"]).active_period == "Night"
    code, out, err = run(capsys, "job", "set", str(job["id"]), "--active-period", "")
    assert code == 0, err
    assert m.BatchJob.get_by_id(job["id"]).active_period is None


def test_group_set_limit_and_list(env, capsys, monkeypatch):
    as_manager(monkeypatch)
    code, out, err = run(capsys, "group", "add", "INV", "--max-concurrent", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["max_concurrent"] == 2 and json.loads(out)["running"] == 0
    code, out, err = run(capsys, "group", "set", "INV", "--max-concurrent", "-1")
    assert code == 0, err
    code, out, _ = run(capsys, "group", "list")
    row = next(line for line in out.splitlines() if line.startswith("INV"))
    assert "stopped" in row


def test_servers_set_pause_resume_and_json(env, capsys, monkeypatch):
    as_manager(monkeypatch)
    code, out, err = run(capsys, "servers", "set", "AOS1", "--threads", "6", "--reserved", "2", "--schedule",
                         "18:00-06:00=8,06:00-18:00=0", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert (s["threads"], s["reserved"], s["schedule"], s["paused"], s["threads_now"]) == \
        (6, 2, "18:00-06:00=8,06:00-18:00=0", False, 0)
    code, out, err = run(capsys, "servers", "pause", "AOS1")
    assert code == 0, err
    code, out, _ = run(capsys, "servers", "--json")
    assert json.loads(out)[0]["paused"] is True
    code, out, err = run(capsys, "servers", "resume", "AOS1", "--json")
    assert code == 0 and json.loads(out)["paused"] is False
    code, out, err = run(capsys, "servers", "set", "AOS1", "--schedule", "")
    assert code == 0 and m.ServerConfig.get_by_id("AOS1").schedule is None


@pytest.mark.parametrize("user, args, says", [
    (MANAGER, ["period", "add", "N", "--from", "25:00", "--to", "06:00"], "not a time of day"),
    (MANAGER, ["period", "add", "N", "--from", "22:00", "--to", "6"], "not a time HH:MM"),
    (MANAGER, ["period", "add", "N", "--from", "22:00", "--to", "06:00", "--days", "mon,xyz"], "not a weekday"),
    (MANAGER, ["period", "add", "N", "--from", "22:00", "--to", "06:00", "--start-date", "2026-02-30"],
     "not a date"),
    (MANAGER, ["period", "delete", "Nope"], "no such active period"),
    (MANAGER, ["period", "delete", "Used"], "is used by job"),
    ("ops", ["period", "add", "N", "--from", "22:00", "--to", "06:00"], "only a batch job manager may"),
    ("ops", ["period", "delete", "Used"], "only a batch job manager may"),
    (MANAGER, ["servers", "set", "AOS1", "--schedule", "18:00-26:00=2"], "not a time of day"),
    (MANAGER, ["servers", "set", "AOS1", "--schedule", "18:00-06:00=-1"], "threads must be 0 to 256"),
    (MANAGER, ["servers", "set", "AOS1", "--threads", "-1"], "threads"),
    (MANAGER, ["servers", "set", "AOS1", "--threads", "0"], "threads"),
    (MANAGER, ["servers", "set", "AOS1", "--threads", "2", "--reserved", "3"], "more than its 2 threads"),
    (MANAGER, ["servers", "set", "AOS1", "--reserved", "-1"], "--reserved"),
    (MANAGER, ["servers", "pause", "NOPE"], "no such batch server"),
    ("ops", ["servers", "set", "AOS1", "--threads", "2"], "only a batch job manager may"),
    ("ops", ["servers", "pause", "AOS1"], "only a batch job manager may"),
    ("ops", ["servers", "resume", "AOS1"], "only a batch job manager may"),
    (MANAGER, ["group", "set", "NOPE", "--max-concurrent", "2"], "no such batch group"),
    (MANAGER, ["group", "set", "Finance", "--max-concurrent", "-2"], "-1 or more"),
    (MANAGER, ["group", "set", "Finance", "--max-concurrent", "x"], "whole number"),
    ("ops", ["group", "set", "Finance", "--max-concurrent", "2"], "only a batch job manager may"),
    (MANAGER, ["job", "set", "1", "--active-period", "Nope"], "unknown active period 'Nope'"),
    (MANAGER, ["server", "--threads", "300"], "1 to 256"),
])
def test_bad_input_is_refused_with_one_line_and_changes_nothing(env, capsys, monkeypatch, tmp_path,
                                                                user, args, says):
    as_manager(monkeypatch)
    run(capsys, "period", "add", "Used", "--from", "22:00", "--to", "06:00")
    import_job(capsys, tmp_path, {"description": "Close", "active_period": "Used",
                                  "tasks": [{"description": "a", "class": "Noop"}]})
    m.BatchServer.create(name="AOS1", threads=4)
    before = counts()
    monkeypatch.setenv("BATCHTUI_USER", user)
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert len(err) == 1 and err[0].startswith("batchtui: error: ") and says in err[0], err
    assert counts() == before
