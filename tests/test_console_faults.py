"""Faults, from the console's side.

- The console (a real ``batchtui`` process in a pseudo-terminal, its embedded
  batch server running a job of hundreds of tasks, an operator typing) killed
  with SIGKILL at random moments: nothing is lost, nothing runs twice, the
  restarted console takes back what it left at once.
- The database going away while the console is open (SQLite folder moved
  away or removed, the file deleted and restored from a backup, the file
  replaced, the file made read-only with chattr +i; PostgreSQL stopped and
  started again): the console says so, keeps what the operator typed (job
  form, task form, recurrence and alerts dialogs), refuses Ctrl+S with a
  clear message, never makes an empty database in place of a missing one,
  never ends on a database error whatever key is pressed, and recovers when
  the database is back (Pilot tests: real key presses, a real file or
  server, the real embedded batch server).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("textual")

from batchtui import db as dbmod  # noqa: E402
from batchtui import jobs  # noqa: E402
from batchtui import models as m  # noqa: E402
from batchtui import status as st  # noqa: E402
from batchtui.actor import Actor
from batchtui.timeutil import utcnow  # noqa: E402
from batchtui.vocabulary import BatchStatus as S  # noqa: E402

from .conftest import poll  # noqa: E402
from .faultkit import ConsolePty, PausablePg, Procs  # noqa: E402
from .test_faults import JOB_DONE, check_runs, kill_targets  # noqa: E402

USER = "ops"
CONSOLE = f"{socket.gethostname()}-console"  # the embedded batch server's name


def sync(fn):
    """Run an async Pilot test in its own event loop (no asyncio plugin needed)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


# -- the console killed with SIGKILL ---------------------------------------------------


@pytest.mark.slow
def test_console_sigkilled_at_random_moments_loses_nothing_and_runs_nothing_twice(database, db_url, tmp_path):
    rng = random.Random(20260602)
    marks = tmp_path / "marks.txt"
    jobs_ = kill_targets(rng, marks, 8, "console kill target")
    active: list[int] = []

    def activate_next():
        with m.database.connection_context():
            if active and S(m.BatchJob.get_by_id(active[-1]).status) not in JOB_DONE:
                return
            if len(active) < len(jobs_):
                active.append(jobs_[len(active)])
                st.set_job_status(active[-1], S.WAITING, Actor.current(USER))

    def registered(pid):
        row = m.BatchServer.get_or_none(m.BatchServer.name == CONSOLE)
        return row is not None and row.pid == pid and row.stopped is None

    def left_open(before):
        """Attempts of the console's server started before this console and still open."""
        return (m.TaskAttempt.select().where((m.TaskAttempt.server == CONSOLE) & m.TaskAttempt.ended.is_null()
                                             & (m.TaskAttempt.started < before)).count())

    moments, typed = [], 0
    console = None
    try:
        for rep in range(22):
            activate_next()
            started_at = utcnow()
            console = ConsolePty(db_url)
            early = rep % 6 == 5  # now and then, while the console is still starting
            if early:
                moment = rng.uniform(0.05, 0.8)
                time.sleep(moment)
            else:
                pid = console.pid
                assert poll(lambda pid=pid: registered(pid), 30), console.output()[-3000:]
                # The restarted console took back at once what the killed one left running.
                assert poll(lambda at=started_at: left_open(at) == 0, 10), \
                    "the dead console's attempts were not taken back"
                moment = rng.uniform(0.0, 2.0)
                if rng.random() < 0.5:  # an operator adds a job meanwhile (Ctrl+N, text, Ctrl+S)
                    typed += 1
                    console.type(b"\x0e")
                    time.sleep(0.2)
                    console.type(f"typed while killed {rep}".encode())
                    console.type(b"\x13")
                    moment = max(0.0, moment - 0.2)
                time.sleep(moment)
            moments.append(("starting " if early else "") + f"{moment:.2f}")
            console.kill()
            assert "Traceback" not in console.output(), console.output()[-3000:]
            console = None
        assert len(active) < len(jobs_), "every job was over before the last kill: make the jobs bigger"
        # A last console takes back what the killed one left, and is quit with Ctrl+Q (its
        # server hands back what still runs); a batch server finishes the work.
        started_at = utcnow()
        console = ConsolePty(db_url)
        assert poll(lambda: registered(console.pid), 30), console.output()[-3000:]
        assert poll(lambda: left_open(started_at) == 0, 10)
        time.sleep(0.3)
        console.type(b"\x11")
        rc = console.wait(60)
        output = console.output()
        console = None
        assert rc == 0, output[-3000:]
        assert "Traceback" not in output
        procs = Procs(db_url, tmp_path)
        proc = procs.start("FINISH", "--exit-when-idle", threads=8, poll=0.05)
        try:
            assert proc.wait(120) == 0, procs.log_text()
        finally:
            procs.stop_all()
    finally:
        if console is not None:
            console.kill()
    with m.database.connection_context():
        interrupted = check_runs(active, marks)
        assert not m.BatchJob.select().where(m.BatchJob.status << [S.EXECUTING, S.CANCELLING]).exists()
        assert not m.BatchTask.select().where(m.BatchTask.status << [S.EXECUTING, S.CANCELLING]).exists()
        assert m.BatchServer.get_by_id(CONSOLE).stopped is not None
        saved = m.BatchJob.select().where(m.BatchJob.description.startswith("typed while killed")).count()
    print(f"kill moments {moments}; jobs run {len(active)}; attempts cut by a kill {interrupted}; "
          f"jobs typed {typed}, saved {saved}")
    assert len(active) >= 2, "the kills never got past the first job"
    assert interrupted >= 5, f"only {interrupted} attempts were cut by a kill (moments {moments})"
    assert saved <= typed
    conn = sqlite3.connect(db_url[len("sqlite:///"):])
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


# -- the database going away while the console is open --------------------------------


def console_app(**kwargs):
    """The console with its real embedded batch server (quick rounds and heartbeat)."""
    from batchtui.engine import BatchServerEngine
    from batchtui.ui.app import BatchTuiApp

    def factory(on_change):
        return BatchServerEngine(name="FAULTUI", poll=0.1, retry_base=0, heartbeat=0.5, on_change=on_change)

    return BatchTuiApp(server=True, engine_factory=factory, poll_interval=0.25, **kwargs)


async def wait_until(pilot, predicate, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.1)
    assert predicate(), f"not within {timeout} s: {what}"


def banner(app) -> str:
    """The database banner of the form in front (under the breadcrumb), '' when hidden."""
    for screen in reversed(app.screen_stack):
        found = screen.query("#db-banner")
        if found:
            widget = found.first()
            return str(widget.render()) if widget.display else ""
    return ""


def text_of(screen, wid: str) -> str:
    return str(screen.query_one(wid).render())


def _chattr_works(folder) -> bool:
    if shutil.which("chattr") is None:
        return False
    probe = folder / "chattr-probe"
    probe.write_text("x")
    try:
        if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
            return False
        try:
            with open(probe, "a") as f:
                f.write("y")
            return False  # immutable but writable: this user ignores it
        except OSError:
            return True
    finally:
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        probe.unlink()


class SqliteFault:
    """One way for a SQLite database to go away, and to come back."""

    def __init__(self, kind: str, tmp_path):
        self.kind = kind
        self.tmp_path = tmp_path
        self.folder = tmp_path / "data"
        self.path = self.folder / "batch.db"
        self.url = f"sqlite:///{self.path}"
        self.broken = False

    def break_(self) -> None:
        if self.kind == "folder moved away":
            self.folder.rename(self.tmp_path / "data.away")
        elif self.kind in ("folder removed", "file deleted"):
            backup = self.tmp_path / "backup.db"
            backup.unlink(missing_ok=True)
            src, dst = sqlite3.connect(str(self.path)), sqlite3.connect(str(backup))
            src.backup(dst)
            src.close()
            dst.close()
            if self.kind == "folder removed":
                shutil.rmtree(self.folder)
            else:  # the file with its write-ahead log and index; the folder stays
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        elif self.kind == "file made read-only":
            # The file and its write-ahead log (not its shared-memory index: SQLite maps that
            # one, and a write to an immutable mapping kills the process with SIGBUS).
            subprocess.run(["chattr", "+i", str(self.path), f"{self.path}-wal"], check=True)
        self.broken = True

    def restore(self) -> None:
        if not self.broken:
            return
        self.broken = False
        if self.kind == "folder moved away":
            if self.folder.exists():
                shutil.rmtree(self.folder)
            (self.tmp_path / "data.away").rename(self.folder)
        elif self.kind in ("folder removed", "file deleted"):
            self.folder.mkdir(mode=0o700, exist_ok=True)
            shutil.copy(self.tmp_path / "backup.db", self.path)  # restored from its backup
        elif self.kind == "file made read-only":
            subprocess.run(["chattr", "-i", str(self.path), f"{self.path}-wal"], check=True)

    def nothing_made_in_its_place(self) -> None:
        if self.kind in ("folder moved away", "folder removed"):
            assert not self.folder.exists(), "a new database was made where the old one was"
        elif self.kind == "file deleted":
            assert not self.path.exists(), "a new, empty database was made where the old one was"


SQLITE_FAULTS = ["folder moved away", "folder removed", "file deleted", "file made read-only"]


@pytest.fixture
def outage_db(request, tmp_path, monkeypatch):
    kind = request.param
    fault = SqliteFault(kind, tmp_path)
    monkeypatch.setenv("BATCHTUI_USER", USER)
    monkeypatch.setenv("BATCHTUI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("TZ", "UTC")
    d = dbmod.open_database(fault.url)
    if kind == "file made read-only" and not _chattr_works(fault.folder):
        d.close()
        pytest.skip("chattr +i is not allowed here (needs CAP_LINUX_IMMUTABLE): no real way to make "
                    "the file read-only for root")
    try:
        yield fault
    finally:
        fault.restore()
        d.close()


def seed_job() -> tuple[int, int]:
    job = jobs.create_job(actor=Actor.current(USER), description="Month-end close", company="DAT",
                          scheduled_start="2026-12-01T22:00:00", time_zone="UTC")
    task = jobs.add_task(job.id, actor=Actor.current(USER), description="Post invoices", class_name="Noop")
    jobs.add_task(job.id, actor=Actor.current(USER), description="Inventory close", class_name="Noop")
    return job.id, task.id


async def outage_then_recovery(app, pilot, fault_break, fault_restore, after_break=None):
    """The database goes away with unsaved input in the form in front: the banner says so,
    Ctrl+S is refused and the input stays; back again, the banner goes and Ctrl+S saves."""
    screen = app.screen
    message = "#task-message" if type(screen).__name__ == "BatchTasksScreen" else "#job-message"
    field = screen.query_one("#task-description" if message == "#task-message" else "#job-description")
    typed = field.value
    assert screen.is_dirty() and typed

    async def refused():
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        shown = text_of(screen, message)
        assert "Not saved: the database is unavailable" in shown, shown
        assert "Your changes are kept" in shown and "Ctrl+S again" in shown
        assert app.screen is screen and screen.is_dirty() and field.value == typed

    fault_break()
    await refused()  # at once, before the watcher's next look: never saved into a file moved away
    await wait_until(pilot, lambda: "Database unavailable" in banner(app), 20, "the banner says so")
    assert "retrying" in banner(app) and "unsaved changes are kept" in banner(app)
    await refused()
    if after_break is not None:
        after_break()
    # Escape asks before anything typed is lost; "Keep editing" keeps it.
    await pilot.press("escape")
    await pilot.pause(0.2)
    assert type(app.screen).__name__ == "ConfirmDialog"
    await pilot.press("escape")
    await pilot.pause(0.2)
    assert app.screen is screen and field.value == typed
    fault_restore()
    await wait_until(pilot, lambda: banner(app) == "" and app.db_problem is None, 40, "the banner clears")
    await pilot.press("ctrl+s")
    await pilot.pause(0.3)
    assert "Saved" in text_of(screen, message), text_of(screen, message)
    assert not screen.is_dirty()
    return typed


@pytest.mark.slow
@pytest.mark.parametrize("outage_db", SQLITE_FAULTS, indirect=True)
@sync
async def test_sqlite_going_away_console_says_so_keeps_input_and_recovers(outage_db):
    fault = outage_db
    job_id, task_id = seed_job()
    app = console_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        jobs_screen = app.screen
        assert banner(app) == ""
        # A task being edited in View tasks.
        await pilot.press("enter")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "BatchTasksScreen", 10)
        await pilot.press("enter")  # edit the task under the cursor
        await pilot.press("end", *" (edited)")
        await outage_then_recovery(app, pilot, fault.break_, fault.restore, fault.nothing_made_in_its_place)
        with m.database.connection_context():
            assert m.BatchTask.get_by_id(task_id).description == "Post invoices (edited)"
        # A new job in the Batch jobs form.
        await pilot.press("escape", "escape")
        await wait_until(pilot, lambda: app.screen is jobs_screen, 10)
        await pilot.press("ctrl+n", *"Typed during the outage")
        await outage_then_recovery(app, pilot, fault.break_, fault.restore, fault.nothing_made_in_its_place)
        # The grid re-read the database: the new job is there, and the seeded one.
        grid = jobs_screen.query_one("#jobs-grid")
        rows = [grid.row_at(i).cells[1] for i in range(grid.row_count)]
        assert "Typed during the outage" in rows and "Month-end close" in rows
        assert app.return_code is None
    assert app._exception is None
    with m.database.connection_context():
        assert m.BatchJob.select().where(m.BatchJob.description == "Typed during the outage").count() == 1
    conn = sqlite3.connect(str(fault.path))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("outage_db", ["folder moved away"], indirect=True)
@sync
async def test_recurrence_and_alerts_entered_during_an_outage_are_kept_and_saved_after(outage_db):
    fault = outage_db
    job_id, _ = seed_job()
    app = console_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        jobs_screen = app.screen
        await pilot.press("r")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RecurrenceDialog", 10)
        dialog = app.screen
        dialog.query_one("#rec-pattern").value = "hours"
        dialog.query_one("#rec-every").value = "3"
        await pilot.pause(0.2)
        fault.break_()
        await wait_until(pilot, lambda: "Database unavailable" in banner(app), 20, "the banner says so")
        await pilot.press("ctrl+s")  # OK
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RecurrenceDialog" and app.screen is not dialog,
                         10, "the dialog opens again with what was entered")
        again = app.screen
        assert again.query_one("#rec-pattern").value == "hours" and again.query_one("#rec-every").value == "3"
        assert "Recurrence not saved: the database is unavailable" in text_of(jobs_screen, "#job-message")
        fault.nothing_made_in_its_place()
        fault.restore()
        await wait_until(pilot, lambda: banner(app) == "" and app.db_problem is None, 40, "the banner clears")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.screen is jobs_screen, 10)
        assert "Recurrence saved." in text_of(jobs_screen, "#job-message")
        # The same with the Alerts dialog.
        await pilot.press("a")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "AlertsDialog", 10)
        dialog = app.screen
        await pilot.press("space", "tab", "space", "tab", "tab", "space")  # Ended, Has an error, Show pop-up
        entered = dialog.result()
        assert (entered.ended, entered.error, entered.canceled, entered.popup) == (True, True, False, True)
        fault.break_()
        await wait_until(pilot, lambda: "Database unavailable" in banner(app), 20, "the banner says so")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "AlertsDialog" and app.screen is not dialog,
                         10, "the dialog opens again with what was entered")
        assert app.screen.result() == entered
        assert "Alerts not saved: the database is unavailable" in text_of(jobs_screen, "#job-message")
        fault.restore()
        await wait_until(pilot, lambda: banner(app) == "" and app.db_problem is None, 40, "the banner clears")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.screen is jobs_screen, 10)
        assert "Alerts saved." in text_of(jobs_screen, "#job-message")
    assert app._exception is None
    with m.database.connection_context():
        rec = m.BatchJob.get_by_id(job_id).recurrence
        alert = m.JobAlert.get((m.JobAlert.job == job_id) & (m.JobAlert.user == USER))
    assert rec["pattern"] == "hours" and rec["every"] == 3
    assert (alert.ended, alert.error, alert.canceled, alert.popup) == (True, True, False, True)


@sync
async def test_sqlite_file_replaced_while_the_console_is_open_console_follows_the_new_file(tmp_path, monkeypatch):
    """The file deleted and a backup put in its place at once: the console reads and writes the file
    that is there now, never the one it had open (which a long-lived connection would keep using)."""
    monkeypatch.setenv("BATCHTUI_USER", USER)
    monkeypatch.setenv("BATCHTUI_CONFIG", str(tmp_path / "config.toml"))
    path = tmp_path / "batch.db"
    d = dbmod.open_database(f"sqlite:///{path}")
    try:
        seed_job()
        backup = tmp_path / "restored.db"
        src, dst = sqlite3.connect(str(path)), sqlite3.connect(str(backup))
        src.backup(dst)
        src.close()
        dst.close()
        with sqlite3.connect(str(backup)) as conn:
            conn.execute("UPDATE batch_job SET description = 'Only in the restored file'")
        conn.close()
        app = console_app()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.3)
            screen = app.screen
            grid = screen.query_one("#jobs-grid")
            await pilot.press("ctrl+n", *"Saved into the new file")
            # The file and its write-ahead log and index are deleted, the backup put in their place.
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            os.replace(backup, path)

            def shows_new_file():
                return any("Only in the restored file" in grid.row_at(i).cells[1] for i in range(grid.row_count))

            await wait_until(pilot, shows_new_file, 20, "the grid shows the new file")
            await pilot.press("ctrl+s")
            await pilot.pause(0.3)
            assert "Saved batch job" in text_of(screen, "#job-message"), text_of(screen, "#job-message")
        assert app._exception is None
    finally:
        d.close()
    conn = sqlite3.connect(str(path))
    try:
        descriptions = {r[0] for r in conn.execute("SELECT description FROM batch_job")}
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    assert descriptions == {"Only in the restored file", "Saved into the new file"}


@pytest.fixture
def pausable_pg():
    """A PostgreSQL server of this test's own, to stop and start again."""
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
@sync
async def test_postgresql_stopped_and_started_again_while_the_console_is_open(pausable_pg, tmp_path, monkeypatch):
    from .pgserver import create_database

    server, admin = pausable_pg
    url = create_database(admin, "bt_console_faults")
    monkeypatch.setenv("BATCHTUI_USER", USER)
    monkeypatch.setenv("BATCHTUI_CONFIG", str(tmp_path / "config.toml"))
    d = dbmod.open_database(url)
    try:
        _, task_id = seed_job()
        app = console_app()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.3)
            jobs_screen = app.screen
            await pilot.press("enter")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "BatchTasksScreen", 10)
            await pilot.press("enter", "end", *" (edited)")
            await outage_then_recovery(app, pilot, server.pause, server.resume)
            await pilot.press("escape", "escape")
            await wait_until(pilot, lambda: app.screen is jobs_screen, 10)
            await pilot.press("ctrl+n", *"Typed while PostgreSQL was down")
            await outage_then_recovery(app, pilot, server.pause, server.resume)
            assert app.return_code is None
        assert app._exception is None
        with m.database.connection_context():
            assert m.BatchTask.get_by_id(task_id).description == "Post invoices (edited)"
            assert m.BatchJob.select().where(m.BatchJob.description == "Typed while PostgreSQL was down").count() == 1
    finally:
        d.close()


async def key_sweep(app, pilot, fault_break, fault_restore, after_break=None) -> None:
    """No traceback, ever: with the database away, the keys of each form (moves, refresh, open,
    the Batch job menu, sort, filter, new/save/delete) are answered and the console stays up;
    when the database is back the forms read again."""
    jobs_screen = app.screen
    fault_break()
    await wait_until(pilot, lambda: "Database unavailable" in banner(app), 20, "the banner says so")

    async def back_home():
        for _ in range(6):
            if app.screen is jobs_screen:
                return
            if getattr(app.screen, "dialog_title", "") == "Unsaved changes":
                await pilot.press("right", "enter")  # Discard
            else:
                await pilot.press("escape")
            await pilot.pause(0.1)
        assert app.screen is jobs_screen, app.screen

    for keys in (["down", "up", "pagedown", "end", "home"], ["f5"], ["enter"], ["h"], ["r"], ["a"], ["t"],
                 ["c"], ["x", "enter"], ["o"], ["O"], ["slash", *"abc", "enter"], ["escape", "escape"],
                 ["alt+f9", "escape"], ["f1", "escape"], ["ctrl+n", *"x", "ctrl+s"]):
        await pilot.press(*keys)
        await pilot.pause(0.15)
        assert app.is_running and app._exception is None, keys
        await back_home()
    for name in ("history", "groups", "servers", "action_center", "cleanup"):
        app.open_screen(name)  # as the modules pane (F2) and the command palette do
        await pilot.pause(0.3)
        for keys in (["down", "f5", "enter"], ["ctrl+n", *"g", "ctrl+s"], ["tab", "enter"]):
            await pilot.press(*keys)
            await pilot.pause(0.1)
            assert app.is_running and app._exception is None, (name, keys)
        assert "Database unavailable" in banner(app), (name, banner(app))
        await back_home()
    if after_break is not None:
        after_break()
    fault_restore()
    # (The embedded batch server may still be backing off: its own line may stay a while.)
    await wait_until(pilot, lambda: "Database unavailable" not in banner(app) and app.db_problem is None, 20,
                     "the banner clears")
    grid = jobs_screen.query_one("#jobs-grid")
    await wait_until(pilot, lambda: grid.row_count == 1 and grid.row_at(0).cells[1] == "Month-end close", 10,
                     "the grid reads again")
    assert app.is_running


@pytest.mark.slow
@pytest.mark.parametrize("outage_db", ["folder moved away"], indirect=True)
@sync
async def test_every_key_on_every_form_during_an_outage_never_ends_the_console(outage_db):
    fault = outage_db
    seed_job()
    app = console_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.3)
        await key_sweep(app, pilot, fault.break_, fault.restore, fault.nothing_made_in_its_place)
    assert app._exception is None


@pytest.mark.slow
@sync
async def test_every_key_on_every_form_while_postgresql_is_down_never_ends_the_console(pausable_pg, tmp_path,
                                                                                      monkeypatch):
    from .pgserver import create_database

    server, admin = pausable_pg
    url = create_database(admin, "bt_console_keys")
    monkeypatch.setenv("BATCHTUI_USER", USER)
    monkeypatch.setenv("BATCHTUI_CONFIG", str(tmp_path / "config.toml"))
    d = dbmod.open_database(url)
    try:
        seed_job()
        app = console_app()
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.3)
            await key_sweep(app, pilot, server.pause, server.resume)
        assert app._exception is None
    finally:
        d.close()
