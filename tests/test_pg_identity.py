"""Identities on PostgreSQL: Created by and Run by come from the database
session (current_user), owners and the batchtui_manager role are enforced by
the database itself, and only members of batchtui_server run batch servers.

Each operator here is a real PostgreSQL login role connecting with its own
URL; the client's BATCHTUI_USER is set to someone else throughout, to show
that it names nobody on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil

import psycopg
import pytest

from batchtui.vocabulary import BatchStatus as S

from .faultkit import MARK, ROOT, assert_one_error_line, env_for, read_marks, run_cli
from .pgserver import create_database

SUFFIX = secrets.token_hex(3)
ALICE, BOB, BOSS, SRV = (f"{name}_{SUFFIX}" for name in ("alice", "bob", "boss", "srv"))
JOB_FILE = json.dumps({"description": "Month-end close",
                       "tasks": [{"key": "close", "description": "Close", "class": "Noop"}]}).encode()


def _role_url(admin_url: str, role: str) -> str:
    return admin_url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)


@pytest.fixture
def shared_db(pg_admin_url, tmp_path):
    """A batchtui database made by its administrator, and the login roles of its users."""
    url = create_database(pg_admin_url, f"bt_ident_{os.getpid()}_{secrets.token_hex(2)}")
    proc = run_cli(["job", "list"], url)  # the administrator's first use runs the migrations
    assert proc.returncode == 0, proc.stderr
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for role, member_of in ((ALICE, "batchtui_operator"), (BOB, "batchtui_operator"),
                                (BOSS, "batchtui_manager"), (SRV, "batchtui_server")):
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                conn.execute(f'CREATE ROLE "{role}" LOGIN')
                conn.execute(f'GRANT {member_of} TO "{role}"')
    # The config file names bob a manager: on PostgreSQL the database role decides instead.
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'default_company = "DAT"\nmanagers = ["{BOB}", "root"]\n')
    return url, cfg


def as_role(shared, role, args, stdin=None, **env):
    url, cfg = shared
    role_url = _role_url(url, role)
    return run_cli(args, role_url, stdin=stdin,
                   env=env_for(role_url, BATCHTUI_USER="root", BATCHTUI_CONFIG=str(cfg), **env))


def sql(shared, role, statement, params=()):
    """One statement as the role, straight through psycopg: what a client could do by hand."""
    with psycopg.connect(_role_url(shared[0], role), autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else None


def import_job(shared, role) -> int:
    proc = as_role(shared, role, ["job", "import", "-", "--json"], stdin=JOB_FILE)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["jobs"][0]["id"]


def test_created_by_and_run_by_come_from_the_session_not_from_the_client(shared_db):
    job_id = import_job(shared_db, ALICE)
    exported = json.loads(as_role(shared_db, ALICE, ["job", "export", str(job_id)]).stdout)
    assert (exported["created_by"], exported["run_by"]) == (ALICE, ALICE)
    listed = json.loads(as_role(shared_db, ALICE, ["job", "list", "--json"]).stdout)
    assert [j["created_by"] for j in listed] == [ALICE]

    # By hand: a row naming root is stored as alice's, and cannot be made root's later.
    (row,) = sql(shared_db, ALICE,
                 "INSERT INTO batch_job (description, company_id, scheduled_start, time_zone, status, priority, "
                 "recurrence_text, created_by, run_by, created, modified, version, run_count) VALUES ('forged', "
                 "'DAT', now(), 'UTC', 0, 1, '', 'root', 'root', now(), now(), 1, 0) RETURNING id, created_by, run_by")
    assert row[1:] == (ALICE, ALICE)
    sql(shared_db, ALICE, "UPDATE batch_job SET run_by = 'root', created_by = 'root' WHERE id = %s", (row[0],))
    assert sql(shared_db, ALICE, "SELECT created_by, run_by FROM batch_job WHERE id = %s", (row[0],)) \
        == [(ALICE, ALICE)]


def _job_state(shared, job_id):
    return (sql(shared, "postgres", "SELECT status, version, run_by, description FROM batch_job WHERE id = %s",
                (job_id,)),
            sql(shared, "postgres", "SELECT id, class_name, params::text, status FROM batch_task "
                "WHERE job_id = %s ORDER BY id", (job_id,)))


def test_only_the_owner_or_a_member_of_batchtui_manager_changes_a_job_whatever_the_client_says(shared_db):
    job_id = import_job(shared_db, ALICE)
    before = _job_state(shared_db, job_id)
    owner_named = f"only its owner '{ALICE}' or a batch job manager may"

    # bob is in the config file's managers list, and says he is root: the database says no.
    for args in (["job", "status", str(job_id), "waiting"], ["job", "cancel", str(job_id)],
                 ["job", "delete", str(job_id)]):
        line = assert_one_error_line(as_role(shared_db, BOB, args))
        assert owner_named in line and BOB in line, line
    # By hand, around the command line: every way to change what alice's job runs is refused.
    (task_id,) = [t[0] for t in before[1]]
    attacks = [
        ("UPDATE batch_task SET class_name = 'ShellCommand', params = %s WHERE id = %s",
         (json.dumps({"command": "id > /tmp/owned"}), task_id)),
        ("INSERT INTO batch_task (job_id, key, description, company_id, class_name, params, batch_group, "
         "status, ignore_failure, max_retries, condition_type, attempts, version) VALUES "
         "(%s, 'evil', 'evil', 'DAT', 'ShellCommand', '{\"command\": \"true\"}', '', 0, false, 0, 0, 0, 1)",
         (job_id,)),
        ("UPDATE batch_job SET status = %s WHERE id = %s", (int(S.WAITING), job_id)),
        ("DELETE FROM batch_job WHERE id = %s", (job_id,)),
        ("DELETE FROM batch_task WHERE id = %s", (task_id,)),
        ("INSERT INTO job_alert (job_id, \"user\", ended, error, canceled, popup, email) "
         f"VALUES (%s, '{ALICE}', true, true, true, true, true)", (job_id,)),
    ]
    for statement, params in attacks:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"may not change batch job {job_id}"):
            sql(shared_db, BOB, statement, params)
    assert _job_state(shared_db, job_id) == before

    # Nor may bob read, delete or forge alice's Action-center alerts.
    (alert,) = sql(shared_db, "postgres", "INSERT INTO alert (\"user\", job_id, event, message, created, read, "
                   "popup, email, mailed) VALUES (%s, %s, 'ended', 'ended', now(), false, false, false, false) "
                   "RETURNING id", (ALICE, job_id))
    for statement, params in (
            ("UPDATE alert SET read = true WHERE id = %s", alert),
            ("DELETE FROM alert WHERE id = %s", alert),
            ("INSERT INTO alert (\"user\", job_id, event, message, created, read, popup, email, mailed) "
             "VALUES (%s, NULL, 'error', 'Your job failed: call 555-0100', now(), false, true, false, false)",
             (ALICE,))):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not change"):
            sql(shared_db, BOB, statement, params)
    sql(shared_db, ALICE, "UPDATE alert SET read = true WHERE id = %s", alert)
    assert sql(shared_db, "postgres", "SELECT \"user\", read FROM alert") == [(ALICE, True)]

    # Anyone may keep their own alert settings on any job.
    sql(shared_db, BOB, "INSERT INTO job_alert (job_id, \"user\", ended, error, canceled, popup, email) "
        f"VALUES (%s, '{BOB}', true, true, true, true, false)", (job_id,))

    # The owner and a member of batchtui_manager may.
    assert as_role(shared_db, ALICE, ["job", "status", str(job_id), "waiting"]).returncode == 0
    assert as_role(shared_db, BOSS, ["job", "status", str(job_id), "withhold"]).returncode == 0
    assert sql(shared_db, "postgres", "SELECT status FROM batch_job WHERE id = %s", (job_id,)) == [(int(S.HOLD),)]
    proc = as_role(shared_db, BOSS, ["job", "delete", str(job_id)])
    assert proc.returncode == 0, proc.stderr
    assert sql(shared_db, "postgres", "SELECT count(*) FROM batch_task WHERE job_id = %s", (job_id,)) == [(0,)]


def test_only_a_member_of_batchtui_server_runs_a_batch_server(shared_db):
    job_id = import_job(shared_db, ALICE)
    assert as_role(shared_db, ALICE, ["job", "status", str(job_id), "waiting"]).returncode == 0
    line = assert_one_error_line(as_role(shared_db, ALICE, ["server", "--exit-when-idle", "--name", "a1"]))
    assert f"role '{ALICE}' may not run a batch server" in line and "GRANT batchtui_server" in line, line
    assert sql(shared_db, "postgres", "SELECT count(*) FROM batch_server") == [(0,)]

    proc = as_role(shared_db, SRV, ["server", "--exit-when-idle", "--name", "s1", "--poll", "0.1"])
    assert proc.returncode == 0, proc.stderr
    wait = as_role(shared_db, ALICE, ["job", "wait", str(job_id), "--timeout", "30"])
    assert wait.returncode == 0, wait.stderr
    history = json.loads(as_role(shared_db, ALICE, ["job", "history", str(job_id), "--json"]).stdout)
    assert history[0]["status"] == "ended"


needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("runuser"),
                                reason="needs root, useradd and runuser to make a second account")


@needs_root
def test_a_shell_task_runs_as_the_postgresql_role_that_created_the_job(pg_admin_url, shared_db):
    import pwd
    import subprocess

    name = f"bt_pg_{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
    try:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{name}" LOGIN')
            conn.execute(f'GRANT batchtui_operator TO "{name}"')
        job = json.dumps({"description": "who am I", "status": "waiting",
                          "tasks": [{"key": "who", "description": "Who", "class": "ShellCommand",
                                     "params": {"command": "id -un"}}]})
        proc = as_role(shared_db, name, ["job", "import", "-", "--json"], stdin=job.encode())
        assert proc.returncode == 0, proc.stderr
        job_id = json.loads(proc.stdout)["jobs"][0]["id"]
        # The server runs as root on this machine and as batchtui_server in the database.
        proc = as_role(shared_db, SRV, ["server", "--exit-when-idle", "--name", "s2", "--poll", "0.1"])
        assert proc.returncode == 0, proc.stderr
        history = json.loads(as_role(shared_db, name, ["job", "history", str(job_id), "--json"]).stdout)
        (attempt,) = history[0]["tasks"][0]["attempts"]
        assert attempt["status"] == "ended", attempt
        # The log's header names the account, and `id -un` printed it: the task ran as that account.
        assert name in attempt["log"].splitlines()[1:], attempt["log"]
        assert pwd.getpwnam(name).pw_uid != 0
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", "--remove", "--force", name], capture_output=True)
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')


# -- batch servers' rows and batch groups (issue #16, item 2) ----------------------------------------------


def _servers_and_groups(shared):
    return (sql(shared, "postgres", "SELECT name, heartbeat, stopped, threads FROM batch_server ORDER BY name"),
            sql(shared, "postgres", "SELECT name, description FROM batch_group ORDER BY name"),
            sql(shared, "postgres", "SELECT group_name, server FROM batch_group_server ORDER BY 1, 2"))


def test_only_managers_change_batch_groups_and_only_batch_servers_write_server_rows(shared_db):
    proc = as_role(shared_db, SRV, ["server", "--exit-when-idle", "--name", "s1", "--groups", "NIGHT"])
    assert proc.returncode == 0, proc.stderr  # a batch server adds the groups it is started with
    proc = as_role(shared_db, BOSS, ["group", "add", "FIN", "--servers", "s1"])
    assert proc.returncode == 0, proc.stderr
    before = _servers_and_groups(shared_db)
    assert ("NIGHT", "s1") in before[2] and ("FIN", "s1") in before[2]

    # The command line: an operator (bob is in the config file's managers list: the role decides).
    for role in (ALICE, BOB):
        for args in (["group", "add", "", "--servers", "nowhere"], ["group", "add", "FIN", "--servers", "x"],
                     ["group", "delete", "FIN"]):
            line = assert_one_error_line(as_role(shared_db, role, args))
            assert f"'{role}' may not change batch groups" in line, line

    # Hand-written SQL: what the command line does not do, the database refuses all the same.
    past = "now() - interval '1 hour'"
    operator = [
        "INSERT INTO batch_group_server (group_name, server) VALUES ('', 'nowhere')",
        "UPDATE batch_group_server SET server = 'nowhere'",
        "DELETE FROM batch_group_server",
        "INSERT INTO batch_group (name, description) VALUES ('EVIL', '')",
        "UPDATE batch_group SET description = 'mine'",
        "DELETE FROM batch_group WHERE name = 'NIGHT'",
        f"UPDATE batch_server SET heartbeat = {past} WHERE name = 's1'",
        "UPDATE batch_server SET stopped = now()",
        "DELETE FROM batch_server",
        "INSERT INTO batch_server (name, host, pid, threads) VALUES ('ghost', 'h', 1, 8)",
    ]
    for role in (ALICE, BOB):
        for statement in operator:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                sql(shared_db, role, statement)
    # A batch job manager changes groups, not the servers' rows...
    for statement in operator[-4:]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sql(shared_db, BOSS, statement)
    # ... and a batch server writes its rows and adds groups, but changes no group.
    for statement in operator[1:3] + operator[4:6]:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sql(shared_db, SRV, statement)
    # A DBA's wider grant does not open them either: the guard triggers say no, and why.
    sql(shared_db, "postgres", f'GRANT ALL ON batch_server, batch_group, batch_group_server TO "{ALICE}"')
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not change the rows or heartbeats of "
                       "batch servers"):
        sql(shared_db, ALICE, operator[6])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not change batch groups"):
        sql(shared_db, ALICE, operator[0])
    assert _servers_and_groups(shared_db) == before

    # What each may do.
    sql(shared_db, SRV, "UPDATE batch_server SET heartbeat = now() WHERE name = 's1'")
    sql(shared_db, BOSS, "UPDATE batch_group SET description = 'Nightly' WHERE name = 'NIGHT'")
    proc = as_role(shared_db, BOSS, ["group", "delete", "FIN"])
    assert proc.returncode == 0, proc.stderr
    assert ("FIN", "s1") not in _servers_and_groups(shared_db)[2]


@pytest.mark.slow
def test_an_operator_cannot_make_a_batch_server_run_a_running_task_again(shared_db, tmp_path):
    """The sabotage of issue #16: an operator sets a live server's heartbeat into the past, 50 times a
    second; a second server must not declare it dead and start the task it runs a second time."""
    import signal
    import subprocess
    import sys
    import time

    url, cfg = shared_db
    marks = tmp_path / "marks"
    job = json.dumps({"description": "Long task", "status": "waiting", "tasks": [
        {"key": "long", "description": "Long", "class": MARK, "max_retries": 2,
         "params": {"file": str(marks), "seconds": 4}}]})
    proc = as_role(shared_db, ALICE, ["job", "import", "-", "--json"], stdin=job.encode())
    assert proc.returncode == 0, proc.stderr
    job_id = json.loads(proc.stdout)["jobs"][0]["id"]
    env = env_for(_role_url(url, SRV), BATCHTUI_USER="root", BATCHTUI_CONFIG=str(cfg))
    servers = []

    def start(name):
        log = open(tmp_path / f"{name}.log", "w")
        servers.append(subprocess.Popen(
            [sys.executable, "-m", "batchtui", "server", "--name", name, "--poll", "0.05", "--retry-base", "0",
             "--heartbeat", "0.2", "--dead-after", "1"], env=env, stdout=log, stderr=subprocess.STDOUT,
            cwd=str(ROOT)))

    try:
        start("s1")
        deadline = time.monotonic() + 30
        while not read_marks(marks) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(read_marks(marks)) == 1, "the task did not start"
        start("s2")
        refused = tried = 0
        with psycopg.connect(_role_url(url, ALICE), autocommit=True) as conn:
            until = time.monotonic() + 2.5
            while time.monotonic() < until:
                tried += 1
                try:
                    conn.execute("UPDATE batch_server SET heartbeat = now() - interval '1 hour' "
                                 "WHERE name IN ('s1', 's2')")
                except psycopg.errors.InsufficientPrivilege:
                    refused += 1
                time.sleep(0.02)
        wait = as_role(shared_db, ALICE, ["job", "wait", str(job_id), "--timeout", "30"])
        assert wait.returncode == 0, wait.stderr
        assert tried >= 50 and refused == tried
        assert len(read_marks(marks)) == 1, f"the running task was started again: {read_marks(marks)}"
        history = json.loads(as_role(shared_db, ALICE, ["job", "history", str(job_id), "--json"]).stdout)
        assert [a["status"] for a in history[0]["tasks"][0]["attempts"]] == ["ended"]
    finally:
        for p in servers:
            p.send_signal(signal.SIGTERM)
        for p in servers:
            assert p.wait(30) == 0
    logs = "".join((tmp_path / f"{n}.log").read_text() for n in ("s1", "s2"))
    assert "declared" not in logs, logs
