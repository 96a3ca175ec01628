"""Alert e-mail and notices that arrive (issue #15): real SMTP servers (aiosmtpd, with TLS from a
trustme CA), a real HTTP endpoint behind an Apprise json:// URL, real batch servers (threads of this
process, and `batchtui server` processes) on SQLite and PostgreSQL."""

from __future__ import annotations

import http.server
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from email import message_from_bytes
from pathlib import Path

import pytest

from batchtui import models as m
from batchtui.engine.delivery import RetryPolicy
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus as S

from .conftest import make_job, wait_for
from .faultkit import ROOT, assert_one_error_line, env_for, run_cli

# Retries in tenths of seconds instead of half a minute: the policy is the batch server's parameter.
FAST = RetryPolicy(first=0.2, longest=0.5, give_up=3600, lease=30, every=0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Smtp:
    """An aiosmtpd server on 127.0.0.1:port that keeps every message: plain, STARTTLS or implicit TLS."""

    def __init__(self, port: int, tls: str = "none", cert=None, delay: float = 0.0,
                 refuse: dict[str, str] | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[list[str], bytes]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if address in (refuse or {}):
                    return refuse[address]
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                if delay:
                    import asyncio

                    await asyncio.sleep(delay)
                with outer.lock:
                    outer.messages.append((list(envelope.rcpt_tos), envelope.content))
                return "250 OK"

        kwargs: dict = {}
        if tls != "none":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            if tls == "ssl":
                kwargs["ssl_context"] = context
            else:
                kwargs.update(tls_context=context, require_starttls=True)
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)

    def __enter__(self) -> Smtp:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    def got(self) -> list[tuple[list[str], bytes]]:
        with self.lock:
            return list(self.messages)


def write_config(port: int, tls: str = "none", cafile: str | None = None, extra: str = "") -> None:
    lines = ['default_company = "DAT"', 'managers = ["boss"]', extra, "[smtp]", 'host = "127.0.0.1"',
             f"port = {port}", 'sender = "batch@example.com"', 'domain = "example.com"', f'tls = "{tls}"']
    if cafile:
        lines.append(f'cafile = "{cafile}"')
    Path(os.environ["BATCHTUI_CONFIG"]).write_text("\n".join(lines) + "\n")


def alert_job(email: bool = True, notify: bool = False) -> int:
    """A Waiting job of one task whose end alerts user ops by e-mail (and/or notice)."""
    job_id, _ = make_job([{"key": "a"}], description="nightly close")
    m.JobAlert.create(job=job_id, user="ops", ended=True, error=True, email=email, notify=notify)
    return job_id


def the_alert():
    return m.Alert.get_or_none()


def test_an_alert_mailed_while_smtp_is_down_is_kept_and_sent_once_when_it_comes_back(engine_factory):
    """(a) Nothing listens when the alert is raised: the mail stays pending, tried again; once an
    SMTP server listens on that port it is delivered, once, and the alert says sent."""
    port = free_port()
    write_config(port)
    job_id = alert_job()
    engine_factory(delivery_retry=FAST)
    alert = wait_for(lambda: (a := the_alert()) is not None and a.email_tries >= 2 and a)
    assert alert.email_state == "pending" and "127.0.0.1" in (alert.email_error or ""), alert.email_error
    p = run_cli(["alerts", "--json"], os.environ["BATCHTUI_DB"], env=env_for(os.environ["BATCHTUI_DB"]))
    assert p.returncode == 0, p.stderr
    (shown,) = json.loads(p.stdout)
    assert shown["email"] == "pending" and shown["notify"] is None, shown
    with Smtp(port) as smtp:
        wait_for(lambda: the_alert().email_state == "sent")
        wait_for(lambda: len(smtp.got()) >= 1)
        tries = the_alert().email_tries
        import time

        time.sleep(1.0)  # several retry intervals: nothing more is sent
        got = smtp.got()
    assert len(got) == 1, got
    rcpt, content = got[0]
    assert rcpt == ["ops@example.com"]
    mail = message_from_bytes(content)
    assert f"Batch job {job_id} 'nightly close' ended" in mail["Subject"], mail["Subject"]
    with m.database.connection_context():
        alert = the_alert()
    assert alert.email_tries == tries and alert.email_error is None and alert.email_claim is None
    p = run_cli(["alerts", "--json"], os.environ["BATCHTUI_DB"], env=env_for(os.environ["BATCHTUI_DB"]))
    assert json.loads(p.stdout)[0]["email"] == "sent"


@pytest.fixture(scope="module")
def ca():
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.mark.parametrize("tls", ["ssl", "starttls"])
def test_tls_refuses_a_certificate_it_does_not_trust_and_delivers_with_cafile(engine_factory, ca, tmp_path, tls,
                                                                             caplog):
    """(b) A certificate from a private CA: refused (pending, the error in the log) with the system's CAs;
    delivered once cafile names that CA. A certificate for another host name is refused even then."""
    caplog.set_level(logging.WARNING, logger="batchtui.engine")
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    port = free_port()
    write_config(port, tls)
    alert_job()
    with Smtp(port, tls, ca.issue_cert("127.0.0.1")) as smtp:
        engine = engine_factory(delivery_retry=FAST)
        alert = wait_for(lambda: (a := the_alert()) is not None and a.email_tries >= 2 and a)
        assert alert.email_state == "pending", alert.email_state
        assert "certificate is not trusted" in alert.email_error, alert.email_error
        assert any("certificate is not trusted" in r.getMessage() for r in caplog.records), caplog.text
        assert smtp.got() == []
        write_config(port, tls, cafile=str(cafile))
        wait_for(lambda: the_alert().email_state == "sent")
        assert len(smtp.got()) == 1
        engine.stop(grace=1)
    # The right CA but a certificate for another name: the host name is checked too.
    with m.database.connection_context():
        m.Alert.delete().execute()
        alert_job()
    with Smtp(port, tls, ca.issue_cert("mail.example.org")) as smtp:
        engine_factory(delivery_retry=FAST)
        alert = wait_for(lambda: (a := the_alert()) is not None and a.email_error is not None and a)
        assert alert.email_state == "pending" and "not trusted" in alert.email_error, alert.email_error
        assert "mismatch" in alert.email_error or "match" in alert.email_error, alert.email_error
        assert smtp.got() == []


def test_a_recipient_the_smtp_server_refuses_for_good_fails_at_once_and_one_refused_for_now_is_retried(
        engine_factory):
    port = free_port()
    write_config(port)
    job_id, _ = make_job([{"key": "a"}], status=S.HOLD)
    for user in ("gone", "busy", "ops"):
        m.Alert.create(user=user, job=job_id, event="ended", message=f"for {user}", created=utcnow(), email=True,
                       email_state="pending")
    refuse = {"gone@example.com": "550 5.1.1 no such user", "busy@example.com": "450 4.2.1 try later"}
    with Smtp(port, refuse=refuse) as smtp:
        engine_factory(delivery_retry=FAST)
        wait_for(lambda: {a.user: a.email_state for a in m.Alert.select()}
                 == {"gone": "failed", "busy": "pending", "ops": "sent"}
                 and m.Alert.get(m.Alert.user == "busy").email_tries >= 2)
        with m.database.connection_context():
            gone = m.Alert.get(m.Alert.user == "gone")
            assert gone.email_tries == 1 and "550" in gone.email_error, gone.email_error
        refuse.clear()  # the busy mailbox takes mail again
        wait_for(lambda: m.Alert.get(m.Alert.user == "busy").email_state == "sent")
        assert sorted(r for rcpt, _ in smtp.got() for r in rcpt) == ["busy@example.com", "ops@example.com"]


def _many_alerts(count: int) -> None:
    job_id, _ = make_job([{"key": "a"}], status=S.HOLD)
    now = utcnow()
    m.Alert.insert_many([{"user": "ops", "job": job_id, "event": "ended", "message": f"alert number {i}",
                          "created": now, "read": False, "popup": False, "email": True, "email_state": None}
                         for i in range(count)]).execute()


def _two_servers_deliver_each_mail_once(url: str, count: int) -> None:
    port = free_port()
    write_config(port)
    _many_alerts(count)
    m.database.close()
    env = env_for(url, BATCHTUI_CONFIG=os.environ["BATCHTUI_CONFIG"])
    with Smtp(port, delay=0.01) as smtp:
        servers = [subprocess.Popen([sys.executable, "-m", "batchtui", "server", "--name", f"MAILER{i}",
                                     "--poll", "0.1"], env=env, cwd=str(ROOT), stderr=subprocess.PIPE)
                   for i in range(2)]
        try:
            # Both servers are up before the mails are due: they race for them.
            wait_for(lambda: m.BatchServer.select().where(m.BatchServer.name.startswith("MAILER")).count() == 2,
                     timeout=30)
            with m.database.connection_context():
                m.Alert.update(email_state="pending").execute()
            wait_for(lambda: m.Alert.select().where(m.Alert.email_state == "sent").count() == count, timeout=60)
            import time

            time.sleep(0.5)  # anything sent twice would be sent by now
        finally:
            errs = []
            for server in servers:
                server.send_signal(signal.SIGTERM)
                errs.append(server.communicate(timeout=30)[1].decode(errors="replace"))
        got = [message_from_bytes(c) for _, c in smtp.got()]
    subjects = sorted(mail["Subject"] for mail in got)
    assert len(subjects) == count and len(set(subjects)) == count, (len(subjects), len(set(subjects)), errs)
    # Both servers took a share: the race was real.
    senders = {mail["X-Batchtui-Server"] for mail in got}
    assert senders == {"MAILER0", "MAILER1"}, senders


@pytest.mark.slow
def test_two_batch_servers_on_one_sqlite_file_mail_each_alert_exactly_once(database, db_url):
    """(c) Two `batchtui server` processes race for 200 pending mails: each is delivered once."""
    _two_servers_deliver_each_mail_once(db_url, 200)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_batch_servers_on_postgres_mail_each_alert_exactly_once(pg_database, pg_url):
    _two_servers_deliver_each_mail_once(pg_url, 200)


class Hook:
    """A local HTTP endpoint in a thread that keeps the JSON bodies posted to it."""

    def __init__(self, port: int) -> None:
        self.bodies: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.bodies.append({"path": self.path, "json": json.loads(data)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_notice_to_a_webhook_that_is_down_is_kept_and_posted_once_when_it_comes_back(engine_factory):
    """Apprise json:// to a local endpoint: nothing listens at first (pending, retried), then it
    does: the alert's text is posted once, and the alert says sent."""
    pytest.importorskip("apprise")
    port = free_port()
    write_config(free_port(), extra=f'notify_urls = ["json://127.0.0.1:{port}/batch?cto=1&rto=2"]')
    job_id = alert_job(email=False, notify=True)
    engine_factory(delivery_retry=FAST)
    alert = wait_for(lambda: (a := the_alert()) is not None and a.notify_tries >= 2 and a)
    assert alert.notify_state == "pending" and alert.notify_error and alert.email_state is None
    with Hook(port) as hook:
        wait_for(lambda: the_alert().notify_state == "sent")
        import time

        time.sleep(1.0)
        bodies = list(hook.bodies)
    assert len(bodies) == 1, bodies
    assert bodies[0]["path"] == "/batch"
    assert f"Batch job {job_id} 'nightly close' ended" in bodies[0]["json"]["message"], bodies
    p = run_cli(["alerts", "--json"], os.environ["BATCHTUI_DB"], env=env_for(os.environ["BATCHTUI_DB"]))
    assert [(a["email"], a["notify"]) for a in json.loads(p.stdout)] == [(None, "sent")]


def test_notify_urls_without_apprise_is_said_at_server_start_not_a_traceback(database, db_url, tmp_path):
    write_config(free_port(), extra='notify_urls = ["json://127.0.0.1:9/x"]')
    database.close()
    code = ("import sys; sys.modules['apprise'] = None; from batchtui.cli import main; "
            "sys.exit(main(['server', '--name', 'NOAPPRISE', '--exit-when-idle', '--poll', '0.1']))")
    p = subprocess.run([sys.executable, "-c", code], env=env_for(db_url), cwd=str(ROOT), capture_output=True,
                       timeout=60)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0 and "Traceback" not in err, err
    assert "Apprise is not installed" in err and "pip install 'batchtui[notify]'" in err, err
    # Saving an alert that asks for a notice says the same, and saves it.
    job = {"description": "j", "tasks": [], "alerts": [{"user": "ops", "ended": True, "notify": True}]}
    code = ("import sys; sys.modules['apprise'] = None; from batchtui.cli import main; "
            "sys.exit(main(['job', 'import', '-']))")
    p = subprocess.run([sys.executable, "-c", code], env=env_for(db_url), cwd=str(ROOT), capture_output=True,
                       input=json.dumps(job).encode(), timeout=60)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0 and err.count("\n") == 1, err
    assert err.startswith("batchtui: warning: job ") and "pip install 'batchtui[notify]'" in err, err


def _import(url, alerts):
    job = {"description": "j", "tasks": [{"description": "t", "class": "Noop"}], "alerts": alerts}
    return run_cli(["job", "import", "-"], url, stdin=json.dumps(job).encode())


def test_job_import_warns_of_an_alert_that_this_config_cannot_deliver(database, db_url):
    """#12: e-mail asked with no SMTP server configured (and a notice with no notify_urls): saved, exit 0,
    one warning line each."""
    database.close()
    p = _import(db_url, [{"user": "ops", "ended": True, "email": True, "notify": True}])
    err = p.stderr.decode()
    assert p.returncode == 0, err
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("batchtui: warning: job 1: ") for line in lines), err
    assert "no SMTP server is configured" in lines[0] and "no notify_urls" in lines[1], err
    p = run_cli(["job", "export", "1"], db_url)
    assert json.loads(p.stdout)["alerts"][0]["notify"] is True
    write_config(25)
    p = _import(db_url, [{"user": "ops", "ended": True, "email": True}])
    assert p.returncode == 0 and p.stderr == b"", p.stderr
    p = _import(db_url, [{"user": "ops", "ended": True, "popup": True}])
    assert p.returncode == 0 and p.stderr == b"", p.stderr


@pytest.mark.parametrize("setting, named", [
    ('tls = "tls"', "[smtp] tls"),
    ('tls = true', "[smtp] tls"),
    ('starttls = "yes"', "[smtp] starttls"),
    ('port = "587"', "[smtp] port"),
    ('port = 0', "[smtp] port"),
    ('cafile = "/no/such/ca.pem"', "[smtp] cafile"),
    ('tls = "none"\nstarttls = true', "disagree"),
    ('notify_urls = "json://127.0.0.1/x"', "notify_urls"),
    ('notify_urls = ["127.0.0.1/x"]', "notify_urls"),
])
def test_a_bad_delivery_setting_is_refused_naming_it(tmp_path, setting, named):
    from batchtui.config import load_config
    from batchtui.errors import UserError

    top, smtp = (setting, "") if setting.startswith("notify_urls") else ("", setting)
    path = tmp_path / "config.toml"
    path.write_text(f'{top}\n[smtp]\nhost = "127.0.0.1"\n{smtp}\n')
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert named in str(caught.value) and "\n" not in str(caught.value), caught.value


def test_a_bad_smtp_setting_is_one_cli_line_naming_it(database, db_url):
    Path(os.environ["BATCHTUI_CONFIG"]).write_text('[smtp]\nhost = "127.0.0.1"\ntls = "tls"\n')
    database.close()
    line = assert_one_error_line(run_cli(["alerts"], db_url))
    assert "[smtp] tls: must be \"starttls\", \"ssl\" or \"none\", not 'tls'" in line, line


def test_tls_mode_and_port_defaults_keep_old_configs_working():
    from batchtui.config import SmtpSettings

    assert (SmtpSettings(host="h").tls_mode, SmtpSettings(host="h").port_number) == ("none", 25)
    assert SmtpSettings(host="h", starttls=True).tls_mode == "starttls"
    assert SmtpSettings(host="h", starttls=True).port_number == 25
    assert (SmtpSettings(host="h", port=465).tls_mode, SmtpSettings(host="h", tls="ssl").port_number) == ("ssl", 465)
    assert SmtpSettings(host="h", tls="starttls", port=587).port_number == 587
    policy = RetryPolicy()  # the contract: first retry within 60 s, then up to 1 h apart, for 24 h
    assert policy.delay(1) <= 60 and policy.delay(2) > policy.delay(1) and policy.delay(50) == 3600
    assert policy.give_up == 24 * 3600


def _claims_race(rounds: int = 5, threads: int = 4, count: int = 60) -> None:
    """Threads with their own connections claim the same due mails at the same moment, several times:
    no alert is claimed twice, and every one is claimed."""
    from batchtui.engine.delivery import Outbox

    for _ in range(rounds):
        m.Alert.delete().execute()
        _many_alerts(count)
        m.Alert.update(email_state="pending").execute()
        barrier = threading.Barrier(threads)
        taken: list[list[int]] = [[] for _ in range(threads)]

        def claim(i: int, barrier=barrier, taken=taken) -> None:
            with m.database.connection_context():
                outbox = Outbox("email")
                barrier.wait()
                taken[i] = [a.id for a in outbox.claim(f"T{i}", utcnow(), FAST, limit=count)]

        workers = [threading.Thread(target=claim, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
        ids = [i for t in taken for i in t]
        assert len(ids) == len(set(ids)) == count, (len(ids), len(set(ids)))
        claims = {a.id: a.email_claim for a in m.Alert.select()}
        assert all(claims[i] == f"T{n}" for n, t in enumerate(taken) for i in t)


def test_concurrent_claims_on_sqlite_take_each_alert_once(database):
    _claims_race()


@pytest.mark.postgres
def test_concurrent_claims_on_postgres_take_each_alert_once(pg_database):
    _claims_race()


def test_a_mail_that_never_gets_through_is_given_up_as_failed(engine_factory):
    """Retried until the give-up time (24 h; 3 s here): then failed, its last error kept."""
    write_config(free_port())  # nothing ever listens
    alert_job()
    engine_factory(delivery_retry=RetryPolicy(first=0.1, longest=0.3, give_up=3, lease=30, every=0.2))
    alert = wait_for(lambda: (a := the_alert()) is not None and a.email_state == "failed" and a)
    assert alert.email_tries >= 2 and "127.0.0.1" in alert.email_error and alert.email_next is None, alert.email_error
    p = run_cli(["alerts", "--json"], os.environ["BATCHTUI_DB"], env=env_for(os.environ["BATCHTUI_DB"]))
    assert json.loads(p.stdout)[0]["email"] == "failed"


def test_a_claim_left_by_a_server_killed_mid_send_is_sent_again_after_its_lease(engine_factory):
    """A row as a killed server leaves it (claimed, lease running): nobody sends it while the lease
    holds; after it, another server sends it once and marks it sent."""
    import time
    from datetime import timedelta

    port = free_port()
    write_config(port)
    job_id, _ = make_job([{"key": "a"}], status=S.HOLD)
    m.Alert.create(user="ops", job=job_id, event="ended", message="left behind", created=utcnow(), email=True,
                   email_state="pending", email_tries=1, email_claim="DEAD/0",
                   email_next=utcnow() + timedelta(seconds=4))
    with Smtp(port) as smtp:
        engine_factory(delivery_retry=FAST)
        time.sleep(1.0)
        with m.database.connection_context():
            assert smtp.got() == [] and the_alert().email_claim == "DEAD/0"
        wait_for(lambda: the_alert().email_state == "sent")
        assert len(smtp.got()) == 1
    with m.database.connection_context():
        assert the_alert().email_tries == 2


def test_a_delivery_state_written_by_hand_is_shown_as_failed_and_never_tried(engine_factory):
    port = free_port()
    write_config(port)
    job_id, _ = make_job([{"key": "a"}], status=S.HOLD)
    m.Alert.create(user="ops", job=job_id, event="ended", message="[b]odd[/b]", created=utcnow(), email=True,
                   email_state="bogus")
    with Smtp(port) as smtp:
        engine_factory(delivery_retry=FAST)
        p = run_cli(["alerts", "--json"], os.environ["BATCHTUI_DB"], env=env_for(os.environ["BATCHTUI_DB"]))
        assert p.returncode == 0 and json.loads(p.stdout)[0]["email"] == "failed", p.stderr
        import time

        time.sleep(1.0)
        assert smtp.got() == []


# -- the console ------------------------------------------------------------------------------------


def _ui_sync(fn):
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


@_ui_sync
async def test_the_alerts_dialog_warns_of_e_mail_without_smtp_and_saves_a_notice_flag(database):
    """#12: Send e-mail with no SMTP server configured: a warning in the dialog (OK again saves) and in the
    message line; Send to chat/webhooks is saved as the notify flag."""
    from batchtui import jobs
    from batchtui.actor import Actor
    from batchtui.ui.app import BatchTuiApp

    from .test_console_security import shown

    job = jobs.create_job(actor=Actor.current("ops"), description="Month-end close", company="DAT")
    app = BatchTuiApp(server=False, user="ops")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.screen.query_one("#jobs-grid").move_to_key(job.id)
        app.screen.query_one("#jobs-grid").focus()
        await pilot.press("a")
        await pilot.pause()
        dialog = app.screen
        assert type(dialog).__name__ == "AlertsDialog"
        await pilot.press("space", "tab", "tab", "tab", "tab", "space", "tab", "space", "ctrl+s")
        await pilot.pause()
        assert app.screen is dialog, "saved without a word"
        line = shown(dialog, "#alert-error-line")
        assert "no SMTP server is configured" in line and "no notify_urls" in line, line
        assert m.JobAlert.select().count() == 0
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is not dialog
        said = str(app.screen.query_one("MessageLine").render())
        assert "Alerts saved" in said and "no SMTP server is configured" in said, said
    assert [(a.ended, a.email, a.notify) for a in m.JobAlert.select()] == [(True, True, True)]


@_ui_sync
async def test_the_action_center_shows_each_alerts_delivery(database):
    from batchtui.ui.app import BatchTuiApp
    from batchtui.ui.widgets.paged_grid import PagedGrid

    job_id, _ = make_job([{"key": "a"}], status=S.HOLD)
    for n, (email, notify, error) in enumerate([(None, None, None), ("sent", None, None),
                                                ("pending", "sent", "SMTP server [b]x[/b]: refused"),
                                                ("sent", "failed", None)]):
        m.Alert.create(user="ops", job=job_id, event="ended", message=f"alert {n}", created=utcnow(),
                       email=email is not None, email_state=email, notify_state=notify, email_error=error)
    app = BatchTuiApp(server=False, user="ops")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f4")
        await pilot.pause()
        grid = app.screen.query_one(PagedGrid)
        rows = {r[3]: r[5] for r in (list(grid.row_at(i).cells) for i in range(grid.row_count))}
        assert rows == {"alert 0": "", "alert 1": "Yes", "alert 2": "Pending", "alert 3": "Failed"}, rows
        grid.move_to_key(3)
        await pilot.pause()
        detail = str(app.screen.query_one("#alert-detail").render())
        assert "E-mail: pending (last error: SMTP server [b]x[/b]: refused)" in detail, detail
        assert "Notice: sent" in detail, detail
