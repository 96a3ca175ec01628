"""Abuse: two operators saving the same job, and fuzzed job files and command lines."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from batchtui import jobs
from batchtui import models as m
from batchtui.actor import Actor
from batchtui.errors import Conflict, NotAllowed
from batchtui.vocabulary import BatchStatus

from .faultkit import assert_one_error_line, call_main, run_cli, sqlite_dump, sqlite_state

# -- two operators editing the same job ------------------------------------------------


def test_second_save_of_a_job_with_a_stale_version_is_refused_and_overwrites_nothing(database):
    job = jobs.create_job(actor=Actor.current("ops"), description="Month-end close")
    v = job.version
    jobs.update_job(job.id, actor=Actor.current("ops"), version=v, description="Alice's text", priority="high")
    alice = m.BatchJob.get_by_id(job.id).__data__.copy()
    with pytest.raises(Conflict, match="changed since you read it") as exc:
        jobs.update_job(job.id, actor=Actor.current("boss"), version=v, description="Bob's text", priority="low")
    assert "re-read it" in str(exc.value)
    saved = m.BatchJob.get_by_id(job.id)
    assert saved.__data__ == alice and saved.description == "Alice's text" and saved.version == v + 1
    # A status change made meanwhile also makes an open form stale.
    from batchtui import status as st

    st.set_job_status(job.id, BatchStatus.WAITING, Actor.current("ops"))
    with pytest.raises(Conflict, match="changed since you read it"):
        jobs.update_job(job.id, actor=Actor.current("ops"), version=v + 1, description="late")
    assert m.BatchJob.get_by_id(job.id).description == "Alice's text"


def test_second_save_of_a_task_with_a_stale_version_is_refused_and_overwrites_nothing(database):
    job = jobs.create_job(actor=Actor.current("ops"), description="j")
    task = jobs.add_task(job.id, actor=Actor.current("ops"), description="Post invoices", class_name="Sleep",
                         params={"seconds": 1})
    v = task.version
    jobs.update_task(task.id, actor=Actor.current("ops"), version=v, params={"seconds": 2}, max_retries=2)
    with pytest.raises(Conflict, match="changed since you read it") as exc:
        jobs.update_task(task.id, actor=Actor.current("boss"), version=v, params={"seconds": 9}, description="Bob")
    assert "re-read it" in str(exc.value)
    saved = m.BatchTask.get_by_id(task.id)
    assert (saved.params, saved.max_retries, saved.description) == ({"seconds": 2}, 2, "Post invoices")


def test_two_operators_saving_at_the_same_moment_exactly_one_wins(database):
    job = jobs.create_job(actor=Actor.current("ops"), description="race")
    for round_no in range(15):
        v = m.BatchJob.get_by_id(job.id).version
        results: dict[str, object] = {}
        barrier = threading.Barrier(2)

        def save(who, barrier=barrier, v=v, round_no=round_no, results=results):
            barrier.wait()
            try:
                with m.database.connection_context():
                    jobs.update_job(job.id, actor=Actor.current("ops"), version=v, description=f"{who} {round_no}")
                results[who] = "saved"
            except Conflict as exc:
                results[who] = exc

        threads = [threading.Thread(target=save, args=(who,)) for who in ("alice", "bob")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        winners = [w for w, r in results.items() if r == "saved"]
        assert len(winners) == 1, results
        loser = ({"alice", "bob"} - set(winners)).pop()
        assert "changed since you read it" in str(results[loser])
        row = m.BatchJob.get_by_id(job.id)
        assert row.description == f"{winners[0]} {round_no}" and row.version == v + 1


def test_only_owner_or_manager_may_edit_through_the_job_service(database):
    job = jobs.create_job(actor=Actor.current("ops"), description="mine")
    task = jobs.add_task(job.id, actor=Actor.current("ops"), description="t", class_name="Noop")
    with pytest.raises(NotAllowed):
        jobs.update_job(job.id, actor=Actor.current("mallory"), version=job.version, description="pwned")
    with pytest.raises(NotAllowed):
        jobs.update_task(task.id, actor=Actor.current("mallory"), version=task.version, class_name="ShellCommand",
                         params={"command": "id"})
    with pytest.raises(NotAllowed):
        jobs.add_task(job.id, actor=Actor.current("mallory"), description="extra", class_name="Noop")
    with pytest.raises(NotAllowed):
        jobs.set_alert(job.id, actor=Actor.current("mallory"), alert_user="ops", email=True)
    assert m.BatchJob.get_by_id(job.id).description == "mine"
    assert m.BatchTask.get_by_id(task.id).class_name == "Noop"
    version = m.BatchJob.get_by_id(job.id).version  # adding the task moved it on
    jobs.update_job(job.id, actor=Actor.current("boss"), version=version, description="by the manager")
    assert m.BatchJob.get_by_id(job.id).description == "by the manager"


# -- fuzz: job files -------------------------------------------------------------------

ANY_JSON = hs.recursive(
    hs.none() | hs.booleans() | hs.integers(-(10**20), 10**20) | hs.floats() | hs.text(max_size=12),
    lambda inner: hs.lists(inner, max_size=3) | hs.dictionaries(hs.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
TEXTS = hs.sampled_from(["", " ", "x", "Month-end close", "a" * 300, "\x1b]0;pwned\x07\x1b[2J", "line\nbreak",
                         "\u202etxet", "ø€𝄞", "\x00nul", "'; DROP TABLE batch_job; --"])
TIMES = hs.sampled_from(["2026-12-01T22:00:00", "2026-12-01T22:00:00-06:00", "2026-13-01T00:00:00",
                         "yesterday", "2026-03-08T02:30:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59+14:00",
                         "", "2026-12-01"])
RECURRENCES = hs.sampled_from([
    {"pattern": "months", "every": 1, "nth": "last", "weekday": "fri", "end": {"after": 12}},
    {"pattern": "minutes", "every": 0}, {"pattern": "weeks", "weekdays": []},
    {"pattern": "weeks", "weekdays": ["mon", "xyz"]}, {"pattern": "days", "every": 10**12},
    {"pattern": "months", "day": 32}, {"pattern": "years", "month": 2, "day": 30, "end": {"after": 1}},
    {"pattern": "days", "end": {"by": "2000-01-01"}}, {"rrule": "FREQ=DAILY;COUNT=0"},
    {"rrule": "FREQ=SECONDLY"}, {"rrule": "garbage"}, {"pattern": "hours", "every": 1.5},
    {"pattern": "days", "end": {"after": 2, "by": "2030-01-01"}},
])
CONDITION = hs.fixed_dictionaries({}, optional={
    "task": hs.sampled_from(["a", "b", "c", "zzz", ""]) | ANY_JSON,
    "status": hs.sampled_from(["ended", "error", "ended_or_error", "ENDED", "nope"]) | ANY_JSON,
})
TASK_KEYS = {
    "key": hs.sampled_from(["a", "b", "c"]) | TEXTS | ANY_JSON,
    "description": hs.sampled_from(["a", "b", "c"]) | TEXTS | ANY_JSON,
    "class": hs.sampled_from(["Noop", "Sleep", "Fail", "Flaky", "ShellCommand", "Nope", "os:system",
                              "batchtui.jobs:import_jobs", "builtins:object", "noop"]) | ANY_JSON,
    "params": hs.sampled_from([{}, {"seconds": 1}, {"seconds": "1"}, {"seconds": -1}, {"seconds": float("nan")},
                               {"command": "true"}, {"command": []}, {"command": ["id", 3]}, {"failures": 2.5},
                               {"message": None}, {"extra": 1}]) | ANY_JSON,
    "company": hs.sampled_from(["DAT", "USMF", "dat", "NOPE", ""]) | ANY_JSON,
    "batch_group": hs.sampled_from(["", "FIN", "nope"]) | ANY_JSON,
    "ignore_failure": hs.sampled_from([True, False, "yes", 1, None]),
    "max_retries": hs.sampled_from([0, 5, 6, -1, 2.0, 2.5, "2", True, None, 10**30]),
    "condition_type": hs.sampled_from(["all", "any", "ANY", "none", 1]),
    "conditions": hs.lists(CONDITION, max_size=3) | ANY_JSON,
    "unknown_key": ANY_JSON,
}
TASK = hs.fixed_dictionaries({}, optional=TASK_KEYS)
ALERT = hs.fixed_dictionaries({}, optional={
    "user": hs.sampled_from(["ops", "", "a" * 200]) | ANY_JSON,
    "ended": hs.booleans() | ANY_JSON, "error": hs.booleans(), "canceled": hs.booleans(),
    "popup": hs.booleans(), "email": hs.booleans() | ANY_JSON, "sms": hs.booleans(),
})
JOB_KEYS = {
    "description": TEXTS | ANY_JSON,
    "company": hs.sampled_from(["DAT", "USMF", "NOPE", ""]) | ANY_JSON,
    "scheduled_start": TIMES | ANY_JSON,
    "time_zone": hs.sampled_from(["UTC", "America/Chicago", "Mars/Base", "", "../../etc/passwd", "EST5EDT"])
    | ANY_JSON,
    "status": hs.sampled_from(["withhold", "waiting", "executing", "ended", "WAITING"]) | ANY_JSON,
    "priority": hs.sampled_from(["low", "normal", "high", "critical", "reserved", "urgent", 3]) | ANY_JSON,
    "recurrence": RECURRENCES | ANY_JSON,
    "alerts": hs.lists(ALERT, max_size=2) | ANY_JSON,
    "tasks": hs.lists(TASK, max_size=4) | ANY_JSON,
    "id": ANY_JSON,
}
JOB = hs.fixed_dictionaries({}, optional=JOB_KEYS)
VALID_TASKS = [
    {"key": "a", "description": "Post invoices", "class": "Sleep", "params": {"seconds": 0.01}, "max_retries": 2},
    {"key": "b", "description": "Close", "class": "Noop", "condition_type": "any",
     "conditions": [{"task": "a", "status": "ended"}]},
    {"key": "c", "description": "Report", "class": "Fail", "params": {"message": "m"}, "ignore_failure": True,
     "conditions": [{"task": "b", "status": "ended_or_error"}]},
]
VALID_JOB = {"description": "Month-end close", "company": "DAT", "scheduled_start": "2026-12-01T22:00:00",
             "time_zone": "America/Chicago", "status": "withhold", "priority": "normal",
             "recurrence": {"pattern": "months", "every": 1, "nth": "last", "weekday": "fri", "end": {"after": 12}},
             "alerts": [{"user": "ops", "error": True, "popup": True}], "tasks": VALID_TASKS}


@hs.composite
def near_valid_job(draw):
    """A valid job with one to three of its fields (or of one task's) replaced by fuzz."""
    job = json.loads(json.dumps(VALID_JOB))
    for _ in range(draw(hs.integers(1, 3))):
        if draw(hs.booleans()):
            key = draw(hs.sampled_from(sorted(JOB_KEYS)))
            job[key] = draw(JOB_KEYS[key])
        else:
            task = draw(hs.sampled_from(job["tasks"])) if isinstance(job.get("tasks"), list) and job["tasks"] \
                and all(isinstance(t, dict) for t in job["tasks"]) else None
            if task is None:
                continue
            key = draw(hs.sampled_from(sorted(TASK_KEYS)))
            task[key] = draw(TASK_KEYS[key])
    if draw(hs.booleans()):
        job.pop(draw(hs.sampled_from(sorted(job))), None)
    return job


JOB_FILE = (
    near_valid_job().map(json.dumps) | near_valid_job().map(json.dumps)
    | hs.lists(near_valid_job(), min_size=2, max_size=3).map(json.dumps)
    | JOB.map(json.dumps) | hs.lists(JOB, max_size=3).map(json.dumps) | ANY_JSON.map(json.dumps)
    | hs.binary(max_size=40).map(lambda b: b.decode("latin-1"))
    | JOB.map(lambda j: json.dumps(j)[:-1])  # cut short
)


def _db_path(db_url):
    return db_url[len("sqlite:///"):]


@pytest.fixture
def fuzz_db(db_url):
    """A database with a few jobs of two owners, no connection left open."""
    for owner in ("ops", "other"):
        data = [{"description": f"{owner} job {i}", "company": "DAT",
                 "tasks": [{"key": "a", "description": "a", "class": "Noop"},
                           {"key": "b", "description": "b", "class": "Sleep", "params": {"seconds": 0.01},
                            "conditions": [{"task": "a", "status": "ended"}]}]} for i in range(3)]
        rc, out, err = call_main(["job", "import", "-"], stdin=json.dumps(data).encode(), user=owner)
        assert rc == 0, err
    rc, out, err = call_main(["group", "add", "FIN", "--description", "Finance"], user="boss")
    assert rc == 0, err
    return _db_path(db_url)


def _check_outcome(rc, out, err, before, path, allowed=(0, 2)):
    assert rc in allowed, (rc, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if rc == 2:
        assert_one_error_line(err, rc=rc)
        assert sqlite_state(path) == before, "a refused command changed the database"


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(text=JOB_FILE, as_json=hs.booleans())
def test_fuzzed_job_files_end_in_exit_0_or_2_and_a_refusal_changes_nothing(fuzz_db, text, as_json):
    before = sqlite_state(fuzz_db)
    argv = ["job", "import", "-"] + (["--json"] if as_json else [])
    rc, out, err = call_main(argv, stdin=text.encode("utf-8", "surrogatepass"))
    _check_outcome(rc, out, err, before, fuzz_db)
    if rc == 2:
        assert out == ""
    elif as_json:
        created = json.loads(out)["jobs"]
        for row in created:
            rc2, out2, err2 = call_main(["job", "export", str(row["id"])])
            assert rc2 == 0, err2
            exported = json.loads(out2)
            assert sorted(t["id"] for t in exported["tasks"]) == sorted(row["tasks"].values())


# -- fuzz: every command's arguments -------------------------------------------------------

COMMANDS = [
    ["job", "export"], ["job", "list"], ["job", "status"], ["job", "cancel"], ["job", "copy"],
    ["job", "delete"], ["job", "wait"], ["job", "history"], ["job", "import"], ["job"], ["alerts"],
    ["cleanup"], ["group", "list"], ["group", "add"], ["group", "delete"], ["group"], ["servers"],
    ["classes"], ["recurrence", "preview"], ["recurrence"], ["server"], ["job", "frobnicate"],
]
TOKENS = hs.sampled_from([
    "1", "2", "3", "4", "6", "999999", "0", "-1", "1.5", "abc", "", " ", "99999999999999999999999",
    "--json", "--status", "waiting", "withhold", "ended", "executing", "error,canceled", "--description",
    "--start", "2026-01-01T00:00:00", "not-a-time", "--timeout", "-5", "nan", "inf", "1e400",
    "--older-than", "--company", "DAT", "NOPE", "--user", "ops", "--servers", "S1,S2", ",,,", "--count",
    "--after", "--all", "--read", "-", "/nonexistent/file", "/tmp", "--help", "--version", "FIN", "--name",
    "--threads", "--groups", "--poll", "--retry-base", "--heartbeat", "--dead-after", "-x", "--",
    "\u202e", "ø𝄞", "a" * 300, "\x1b[2J", "--reset", "--no-server",
]) | hs.text(alphabet=hs.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(command=hs.sampled_from(COMMANDS), tokens=hs.lists(TOKENS, max_size=5),
       user=hs.sampled_from(["ops", "other", "boss", "mallory"]), stdin=hs.sampled_from([b"", b"{", b"[]", b"\xff"]))
def test_fuzzed_command_lines_end_in_exit_0_or_2_and_a_refusal_changes_nothing(fuzz_db, command, tokens, user,
                                                                               stdin):
    if command[-1] == "wait":
        tokens = [t for t in tokens if t != "--timeout"] + ["--timeout", "0"]
    if command == ["server"]:
        tokens = tokens + ["--exit-when-idle", "--poll", "0.05", "--retry-base", "0"]
    before = sqlite_state(fuzz_db)
    rc, out, err = call_main(command + tokens, stdin=stdin, user=user)
    allowed = (0, 2, 3, 4, 5) if command[-1] == "wait" else (0, 2)
    _check_outcome(rc, out, err, before, fuzz_db, allowed)


def test_a_sample_of_bad_input_as_real_processes(fuzz_db, db_url):
    """The same rules through the real entry point: exit 2, one line, nothing changed."""
    cases = [
        (["job", "import", "-"], b"{"), (["job", "import", "-"], b"\xff\xfe"),
        (["job", "import", "-"], b'{"description": "x", "tasks": [{"description": "t", "class": "Nope"}]}'),
        (["job", "import", "-"], b'[{"description": "ok", "tasks": []}, {"description": 3}]'),
        (["job", "status", "1", "running"], None), (["job", "export", "abc"], None),
        (["job", "cancel", "999999"], None), (["job", "delete", "4"], None),  # job 4 is other's
        (["cleanup", "--older-than", "nan"], None),
        (["recurrence", "preview", "-"], b'{"pattern": "minutes", "every": 0}'),
        (["server", "--threads", "0"], None), (["job", "copy", "1", "--start", "not-a-time"], None),
        (["group", "delete", ""], None), (["frobnicate"], None),
    ]
    dump = sqlite_dump(fuzz_db)
    for args, stdin in cases:
        before = sqlite_state(fuzz_db)
        p = run_cli(args, db_url, stdin=stdin or b"")
        assert p.stdout == b"", (args, p.stdout)
        assert_one_error_line(p)
        assert sqlite_state(fuzz_db) == before, args
    assert sqlite_dump(fuzz_db) == dump
