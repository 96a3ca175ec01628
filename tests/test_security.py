"""Security: shell tasks run as the job's Run-by user, who may change a job,
private database files and SMTP credentials."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from batchtui import config as cfgmod
from batchtui import db as dbmod
from batchtui import models as m
from batchtui.vocabulary import BatchStatus as S

from .conftest import job_status, make_job, wait_for
from .faultkit import ROOT, assert_one_error_line, env_for, run_cli

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("runuser"),
                                reason="needs root, useradd and runuser to make a second account")


@pytest.fixture(scope="module")
def account():
    """A real second account with a home folder, deleted at the end."""
    name = f"bt_ops_{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True,
                   capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)  # only that account's processes
        subprocess.run(["userdel", "--remove", "--force", name], capture_output=True)


def _attempts(task_id):
    return list(m.TaskAttempt.select().where(m.TaskAttempt.task == task_id).order_by(m.TaskAttempt.attempt))


@needs_root
def test_a_root_server_runs_a_shell_task_as_the_jobs_run_by_user(engine_factory, account):
    name, home = account.pw_name, account.pw_dir
    job_id, ids = make_job([{
        "key": "who", "class_name": "ShellCommand",
        "params": {"command": 'id -un; echo "HOME=$HOME"; pwd; touch made_by_task; echo "SECRET=$BATCHTUI_DB"'},
    }], user=name)
    engine_factory()
    wait_for(lambda: job_status(job_id) in (S.FINISHED, S.ERROR))
    (att,) = _attempts(ids["who"])
    assert att.status == S.FINISHED, att.log
    lines = att.log.splitlines()
    assert name in lines and f"HOME={home}" in lines and home in lines, att.log
    assert "SECRET=" in lines, "the server's environment leaked into the command"
    made = Path(home) / "made_by_task"
    assert made.stat().st_uid == account.pw_uid and made.stat().st_gid == account.pw_gid


def _serve_as(account, env, args, folder):
    """`batchtui server ARGS` as the account: a real process through runuser where the account may
    run this Python; else (an interpreter in root's home) a fork of this process that drops to the
    account's uid, gid and groups before it opens the database."""
    probe = subprocess.run(["runuser", "-u", account.pw_name, "--", sys.executable, "-c", "import batchtui"],
                           env=env, cwd="/", capture_output=True)
    if probe.returncode == 0:
        p = subprocess.run(["runuser", "-u", account.pw_name, "--", sys.executable, "-m", "batchtui", "server",
                            *args], env=env, cwd="/", capture_output=True, timeout=60)
        return p.returncode, p.stderr.decode(errors="replace")
    import io
    import time
    import traceback

    from batchtui import cli
    from batchtui.classes import shell  # noqa: F401 - loaded before the uid changes
    from batchtui.engine import server  # noqa: F401

    err_path = folder / "child.err"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        rc = 1
        try:
            os.setgroups(os.getgrouplist(account.pw_name, account.pw_gid))
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            assert os.geteuid() == account.pw_uid
            os.environ.clear()
            os.environ.update(env)
            os.chdir("/")
            buf = io.StringIO()
            sys.stderr = buf
            rc = cli.main(["server", *args])
            with open(err_path, "w") as f:
                f.write(buf.getvalue())
        except BaseException:  # noqa: BLE001  (forked child: record any failure, SystemExit too, before os._exit)
            with open(err_path, "a") as f:
                f.write(traceback.format_exc())
        finally:
            os._exit(rc)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return -9, "timed out"
        time.sleep(0.05)
    err = err_path.read_text() if err_path.exists() else ""
    return os.waitstatus_to_exitcode(status), err


@needs_root
def test_a_server_running_as_another_user_refuses_someone_elses_shell_task(account):
    folder = Path(tempfile.mkdtemp(prefix="bt-sec-"))
    try:
        url = f"sqlite:///{folder}/batch.db"
        os.environ["BATCHTUI_DB"] = url  # for make_job's process; restored below
        d = dbmod.open_database(url)
        try:
            root_job, root_ids = make_job([{"key": "as_root", "class_name": "ShellCommand",
                                            "params": {"command": "id -un > /tmp/should-not-exist"}}],
                                          user="root", description="root's")
            own_job, own_ids = make_job([{"key": "as_self", "class_name": "ShellCommand",
                                          "params": {"command": "id -un"}}],
                                        user=account.pw_name, description="own")
        finally:
            d.close()
        for p in [folder, *folder.iterdir()]:
            os.chown(p, account.pw_uid, account.pw_gid)
        env = env_for(url, BATCHTUI_CONFIG=str(folder / "none.toml"), HOME=account.pw_dir,
                      BATCHTUI_USER=account.pw_name)
        rc, err = _serve_as(account, env, ["--name", "U1", "--exit-when-idle", "--poll", "0.05", "--retry-base", "0"],
                            folder)
        assert rc == 0, err
        d = dbmod.open_database(url)
        try:
            (att,) = _attempts(root_ids["as_root"])
            assert att.status == S.ERROR
            assert f"refused: this batch server runs as '{account.pw_name}'" in att.log, att.log
            assert "'root'" in att.log
            (att,) = _attempts(own_ids["as_self"])
            assert att.status == S.FINISHED and account.pw_name in att.log.splitlines(), att.log
            assert job_status(root_job) == S.ERROR and job_status(own_job) == S.FINISHED
        finally:
            d.close()
    finally:
        os.environ.pop("BATCHTUI_DB", None)
        shutil.rmtree(folder, ignore_errors=True)


def test_only_the_owner_or_a_manager_may_change_cancel_delete_or_rerun_a_job(database, db_url):
    job_id, _ = make_job([{"key": "a"}], user="ops", status=S.HOLD)
    other_id, _ = make_job([{"key": "a"}], user="ops", status=S.HOLD)
    database.close()
    for args in (["job", "status", str(job_id), "waiting"], ["job", "cancel", str(job_id)],
                 ["job", "delete", str(job_id)], ["cleanup", "--older-than", "0", "--user", "ops"]):
        p = run_cli(args, db_url, user="mallory")
        line = assert_one_error_line(p)
        assert "mallory" in line and ("owner" in line or "own jobs" in line), line
    # The owner may; so may a batch job manager (the config's managers list).
    assert run_cli(["job", "status", str(job_id), "waiting"], db_url, user="ops").returncode == 0
    p = run_cli(["job", "status", str(other_id), "waiting"], db_url, user="boss")
    assert p.returncode == 0, p.stderr
    p = run_cli(["job", "delete", str(job_id)], db_url, user="mallory")
    assert_one_error_line(p)
    with m.database.connection_context():
        # An ended job set to Waiting again runs again: a re-run, refused to others too.
        m.BatchJob.update(status=S.FINISHED).where(m.BatchJob.id == other_id).execute()
    p = run_cli(["job", "status", str(other_id), "waiting"], db_url, user="mallory")
    assert_one_error_line(p)
    with m.database.connection_context():
        assert m.BatchJob.get_by_id(other_id).status == S.FINISHED
        assert m.BatchJob.get_by_id(job_id).status == S.WAITING
    # Anyone may copy a job: the copy is theirs, and runs as them.
    p = run_cli(["job", "copy", str(job_id), "--json"], db_url, user="mallory")
    assert p.returncode == 0, p.stderr
    with m.database.connection_context():
        copy = m.BatchJob.select().order_by(m.BatchJob.id.desc()).first()
        assert (copy.created_by, copy.run_by, copy.status) == ("mallory", "mallory", S.HOLD)


def test_the_sqlite_file_and_its_folder_are_created_private_even_with_umask_0(tmp_path):
    folder = tmp_path / "new" / "data"
    url = f"sqlite:///{folder}/batch.db"
    p = subprocess.run(["/bin/sh", "-c", f'umask 000; exec "{sys.executable}" -m batchtui job list'],
                       env=env_for(url, BATCHTUI_CONFIG=str(tmp_path / "none.toml")), cwd=str(ROOT),
                       capture_output=True)
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "batch.db").stat().st_mode) == 0o600
    # The WAL and shared-memory files of an open database are private too.
    os.umask(old := os.umask(0))
    try:
        d = dbmod.open_database(url)
        try:
            with dbmod.write():
                m.Company.get_or_create(id="PRIV", defaults={"name": "x"})
            for suffix in ("-wal", "-shm"):
                f = folder / f"batch.db{suffix}"
                assert f.exists() and stat.S_IMODE(f.stat().st_mode) == 0o600, (suffix, oct(f.stat().st_mode))
        finally:
            d.close()
    finally:
        os.umask(old)


SMTP = '''default_company = "DAT"
[smtp]
host = "smtp.example.com"
user = "batch"
password = "hunter2-{tag}"
'''


def test_smtp_password_in_a_file_others_can_read_is_refused_with_a_clear_message(tmp_path, caplog):
    path = tmp_path / "config.toml"
    path.write_text(SMTP.format(tag="a"))
    path.chmod(0o600)
    cfg = cfgmod.load_config(path)
    assert cfg.smtp.configured and cfg.smtp.password == "hunter2-a" and cfg.smtp_refused is None
    for mode in (0o640, 0o604, 0o644):
        path.chmod(mode)
        caplog.clear()
        cfg = cfgmod.load_config(path)
        assert not cfg.smtp.configured and cfg.smtp.password == ""
        assert f"{mode:04o}" in cfg.smtp_refused and "chmod 600" in cfg.smtp_refused
        assert "hunter2" not in cfg.smtp_refused
        assert any("chmod 600" in r.getMessage() for r in caplog.records)
    # Without a password, a readable config file is fine (managers, default company).
    path.write_text('default_company = "DAT"\nmanagers = ["boss"]\n[smtp]\nhost = "relay"\n')
    path.chmod(0o644)
    cfg = cfgmod.load_config(path)
    assert cfg.smtp.configured and cfg.smtp_refused is None and cfg.managers == ["boss"]


def test_smtp_password_never_reaches_the_database_or_the_command_output(database, db_url, tmp_path):
    path = tmp_path / "private.toml"
    path.write_text(SMTP.format(tag="zz9") + 'domain = "example.com"\n')
    path.chmod(0o600)
    database.close()
    env = env_for(db_url, BATCHTUI_CONFIG=str(path))
    outputs = []
    for args in (["job", "import", "-"], ["job", "list", "--json"], ["servers", "--json"], ["job", "history", "1"],
                 ["job", "export", "1"]):
        p = run_cli(args, db_url, env=env, stdin=b'{"description": "j", "status": "waiting", '
                                              b'"alerts": [{"user": "ops", "ended": true, "email": true}], '
                                              b'"tasks": [{"description": "t", "class": "Noop"}]}')
        assert p.returncode == 0, p.stderr
        outputs.append(p.stdout + p.stderr)
    p = subprocess.run([sys.executable, "-m", "batchtui", "server", "--exit-when-idle", "--poll", "0.05"],
                       env=env, cwd=str(ROOT), capture_output=True, timeout=60)
    outputs.append(p.stdout + p.stderr)
    assert not any(b"hunter2" in o for o in outputs)
    raw = Path(db_url[len("sqlite:///"):]).read_bytes()
    assert b"hunter2" not in raw


# -- a root batch server on someone else's SQLite file ------------------------------------------------


def _root_server_on(url, folder):
    """`batchtui server` as root (a real process) until the file holds no more work; (rc, stderr)."""
    p = subprocess.run([sys.executable, "-m", "batchtui", "server", "--name", "ROOT1", "--exit-when-idle",
                        "--poll", "0.05", "--retry-base", "0"],
                       env=env_for(url, BATCHTUI_CONFIG=str(folder / "none.toml"), BATCHTUI_USER="root"),
                       cwd="/", capture_output=True, timeout=60)
    return p.returncode, p.stderr.decode(errors="replace")


@needs_root
@pytest.mark.parametrize("owner, file_mode, folder_mode", [
    ("account", 0o600, 0o700),   # the account's own private file
    ("account", 0o660, 0o770),   # a file the account's group may write
    ("root", 0o660, 0o770),      # root's file, but a group may write it: nobody's rows are root's
], ids=["owners-file", "group-writable", "roots-shared-file"])
def test_a_root_server_runs_no_task_as_anyone_but_the_owner_of_the_sqlite_file(account, owner, file_mode,
                                                                                folder_mode):
    """Anyone who can write the file can write a job whose Run by is root: a root server serving it
    must not run that job's task as root (the escalation of issue #16, item 1)."""
    folder = Path(tempfile.mkdtemp(prefix="bt-sec-"))
    try:
        url = f"sqlite:///{folder}/batch.db"
        os.environ["BATCHTUI_DB"] = url  # for make_job's process; restored below
        d = dbmod.open_database(url)
        try:
            forged, forged_ids = make_job([{"key": "as_root", "class_name": "ShellCommand",
                                            "params": {"command": "id -u; touch /root/escalated-$$"}}],
                                          user="root", description="forged")
            own, own_ids = make_job([{"key": "as_owner", "class_name": "ShellCommand",
                                      "params": {"command": "id -u"}}], user=account.pw_name, description="own")
        finally:
            d.close()
        uid, gid = (account.pw_uid, account.pw_gid) if owner == "account" else (0, account.pw_gid)
        for p in [folder, *folder.iterdir()]:
            os.chown(p, uid, gid)
            os.chmod(p, folder_mode if p == folder else file_mode)
        before = set(Path("/root").glob("escalated-*"))
        rc, err = _root_server_on(url, folder)
        assert rc == 0, err
        d = dbmod.open_database(url)
        try:
            (att,) = _attempts(forged_ids["as_root"])
            assert att.status == S.ERROR, att.log
            assert "0" not in att.log.splitlines(), f"the task ran as uid 0: {att.log}"
            assert "refused" in att.log and "'root'" in att.log, att.log
            (mine,) = _attempts(own_ids["as_owner"])
            if owner == "account":
                assert mine.status == S.FINISHED, mine.log
                assert str(account.pw_uid) in mine.log.splitlines(), mine.log
                assert f"is not '{account.pw_name}', the owner of the database file" in att.log, att.log
            else:  # root's file that a group may write: no row in it is trusted to be root's
                assert mine.status == S.ERROR and "refused" in mine.log, mine.log
                assert "group" in att.log, att.log
            assert job_status(forged) == S.ERROR
        finally:
            d.close()
        assert set(Path("/root").glob("escalated-*")) == before
        assert "refused" in err and f"job {forged}" in err, err  # the server's own log says it too
    finally:
        os.environ.pop("BATCHTUI_DB", None)
        shutil.rmtree(folder, ignore_errors=True)


@needs_root
def test_the_rule_of_a_root_server_asks_the_file_and_every_folder_above_it(account, tmp_path):
    from batchtui.engine.runas import rule_for_file

    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    db = folder / "batch.db"
    db.write_bytes(b"")
    db.chmod(0o600)
    assert rule_for_file(db) is None  # root's own private file: root wrote every row
    os.chown(folder, account.pw_uid, account.pw_gid)  # root's file in the account's folder
    rule = rule_for_file(db)
    assert rule is not None and rule.only is None and f"belongs to '{account.pw_name}'" in rule.shared
    assert rule.refusal("root") and rule.refusal(account.pw_name)
    os.chown(folder, 0, 0)
    folder.chmod(0o1777)  # sticky does not help the file's own folder (-wal and -journal files)
    assert "may write its folder" in rule_for_file(db).shared
    folder.chmod(0o700)
    os.chown(db, account.pw_uid, account.pw_gid)
    rule = rule_for_file(db)
    assert rule.refusal(account.pw_name) is None and "refused: Run by 'root'" in rule.refusal("root")


# -- batch groups and their servers: batch job managers only ------------------------------------------


def _groups(db_url):
    with m.database.connection_context():
        return (sorted(m.tuples(m.BatchGroup.select(m.BatchGroup.name, m.BatchGroup.description))),
                sorted(m.tuples(m.BatchGroupServer.select(m.BatchGroupServer.group, m.BatchGroupServer.server))))


def test_only_a_batch_job_manager_changes_batch_groups_from_the_command_line(database, db_url):
    """The Empty batch group mapped to a server named `nowhere` stops everyone's jobs (issue #16, item 2)."""
    m.BatchGroup.get_or_create(name="FIN", defaults={"description": "Finance"})
    database.close()
    before = _groups(db_url)
    for args in (["group", "add", "", "--servers", "nowhere"], ["group", "add", "FIN", "--servers", "nowhere"],
                 ["group", "add", "NEW"], ["group", "delete", "FIN"]):
        line = assert_one_error_line(run_cli(args, db_url, user="mallory"))
        assert "'mallory' may not change batch groups" in line and "batch job manager" in line, line
    assert _groups(db_url) == before
    assert run_cli(["group", "list"], db_url, user="mallory").returncode == 0  # reading is for everyone
    # A batch job manager (the config's managers list on SQLite) may.
    p = run_cli(["group", "add", "FIN", "--servers", "AOS1"], db_url, user="boss")
    assert p.returncode == 0, p.stderr
    p = run_cli(["group", "delete", "FIN"], db_url, user="boss")
    assert p.returncode == 0, p.stderr
    assert _groups(db_url) == (before[0][:1], [])  # the Empty batch group, mapped to no server


# -- alert e-mail only to the site's own domain or the allow-list --------------------------------------

MAIL_CONFIG = '''default_company = "DAT"
managers = ["boss"]
[smtp]
host = "127.0.0.1"
port = {port}
sender = "batch@example.com"
domain = "example.com"
'''
ALLOW_LIST = 'allowed_recipients = ["ops@partner.example", "@trusted.example"]\n'


def _alert_job(user, description="mail me"):
    return json.dumps({"description": description, "tasks": [{"description": "t", "class": "Noop"}],
                       "alerts": [{"user": user, "ended": True, "email": True}]}).encode()


def test_an_alert_that_mails_outside_the_site_is_refused_when_it_is_saved(database, db_url, tmp_path):
    """Issue #16, item 4: any job owner could make the server mail any address through the site's SMTP."""
    config = tmp_path / "mail.toml"
    database.close()
    env = env_for(db_url, BATCHTUI_CONFIG=str(config))
    outside = ("boss@evil.example", "ops@example.com.evil.example", "ops@example.com, boss@evil.example",
               "<boss@evil.example>", "ops@example.com@evil.example", "x@sub.example.com")
    for allow_list, users in (("", outside + ("cfo@partner.example",)),
                              (ALLOW_LIST, outside + ("cfo@partner.example", "x@sub.trusted.example"))):
        config.write_text(MAIL_CONFIG.format(port=25) + allow_list)
        for user in users:
            p = run_cli(["job", "import", "-"], db_url, env=env, stdin=_alert_job(user))
            line = assert_one_error_line(p)
            assert "alerts[0].user" in line and "refused" in line and repr(user) in line, line
    with m.database.connection_context():
        assert m.BatchJob.select().count() == 0 and m.JobAlert.select().count() == 0
    for user in ("cfo", "Ops@Example.COM", "ops@partner.example", "anyone@trusted.example"):
        p = run_cli(["job", "import", "-"], db_url, env=env, stdin=_alert_job(user))
        assert p.returncode == 0, (user, p.stderr)
    # A pop-up for an outside name is no e-mail: it may be saved.
    p = run_cli(["job", "import", "-"], db_url, env=env, stdin=json.dumps(
        {"description": "j", "tasks": [], "alerts": [{"user": "boss@evil.example", "ended": True, "popup": True}]})
        .encode())
    assert p.returncode == 0, p.stderr
    # The config's allow-list is checked like any other input.
    config.write_text(MAIL_CONFIG.format(port=25) + ALLOW_LIST.replace('"@trusted.example"', '"trusted.example"'))
    line = assert_one_error_line(run_cli(["job", "import", "-"], db_url, env=env, stdin=_alert_job("cfo")))
    assert "allowed_recipients" in line and "'trusted.example'" in line, line


@pytest.mark.parametrize("allow_list, mailed", [
    ("", ["cfo@example.com"]),
    (ALLOW_LIST, ["cfo@example.com", "ops@partner.example"]),
], ids=["domain", "allow-list"])
def test_the_batch_server_mails_only_the_sites_addresses_and_logs_the_others(database, db_url, tmp_path,
                                                                             allow_list, mailed):
    """Alerts already in the database (an older batchtui, another config, a hand-written row): the server
    that mails checks again, with its own config, and says in its log what it skipped."""
    from batchtui.timeutil import utcnow

    from .smtpsink import SmtpSink

    job_id, _ = make_job([{"key": "a"}], status=S.HOLD)
    for user in ("outsider@evil.example", "cfo", "ops@partner.example", "ops@example.com,outsider@evil.example"):
        m.Alert.create(user=user, job=job_id, event="ended", message=f"Batch job {job_id} ended.",
                       created=utcnow(), popup=False, email=True, email_state="pending")
    database.close()
    with SmtpSink() as sink:
        config = tmp_path / "mail.toml"
        config.write_text(MAIL_CONFIG.format(port=sink.port) + allow_list)
        server = subprocess.Popen([sys.executable, "-m", "batchtui", "server", "--name", "MAILER", "--poll", "0.1"],
                                  env=env_for(db_url, BATCHTUI_CONFIG=str(config)), cwd=str(ROOT),
                                  stderr=subprocess.PIPE)
        try:
            wait_for(lambda: len(sink.recipients()) >= len(mailed)
                     and m.Alert.select().where(m.Alert.email_state == "pending").count() == 0, timeout=30)
            import time

            time.sleep(1.5)  # what else it would send, it has sent by now
        finally:
            server.send_signal(signal.SIGTERM)
            _, err = server.communicate(timeout=30)
        assert server.returncode == 0, err
        assert sink.recipients() == mailed
    with m.database.connection_context():  # a refused address is given up at once, not retried
        states = {a.user: a.email_state for a in m.Alert.select()}
    assert states["outsider@evil.example"] == "failed" and states["cfo"] == "sent", states
    err = err.decode(errors="replace")
    assert "not sent, given up (attempt 1): e-mail to 'outsider@evil.example' is refused" in err, err
    assert "not sent, given up (attempt 1): e-mail to 'ops@example.com,outsider@evil.example' is refused" in err, err
