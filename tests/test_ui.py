"""The console: Pilot tests with real key presses against a real SQLite file,
and snapshot tests of every screen and dialog."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

pytest.importorskip("textual")

from batchtui import db, jobs  # noqa: E402
from batchtui import models as m  # noqa: E402
from batchtui import status as st  # noqa: E402
from batchtui.actor import Actor
from batchtui.engine.store import EngineStore, Outcome, served_groups
from batchtui.status import BatchStatus  # noqa: E402
from batchtui.ui.app import BatchTuiApp  # noqa: E402
from batchtui.ui.safe_text import visible  # noqa: E402
from batchtui.ui.widgets.paged_grid import PagedGrid  # noqa: E402

USER = "ops"
T0 = datetime(2026, 3, 2, 14, 0, 0)  # a fixed "now" (naive UTC) for the history data


# -- fixtures -------------------------------------------------------------------


def sync(fn):
    """Run an async Pilot test in its own event loop (no asyncio plugin needed)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


@pytest.fixture(autouse=True)
def _steady_cursor(request, monkeypatch):
    """In screen snapshots, a focused Input's cursor stays shown: it blinks every 0.5 s, and a
    slow machine (CI) took the snapshot after it had blinked off (test_snapshot_cleanup_dialog)."""
    if "snap_compare" in request.fixturenames:
        from textual.widgets import Input

        monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture
def ui_db(tmp_path, monkeypatch):
    """An isolated SQLite file per test, acting user ops, no config file."""
    monkeypatch.setenv("BATCHTUI_USER", USER)
    monkeypatch.setenv("BATCHTUI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("TZ", "UTC")
    database = db.open_database(f"sqlite:///{tmp_path / 'ui.db'}")
    yield database
    database.close()


def seed_data() -> dict:
    """Fixed data with fixed dates, so snapshots are stable."""
    for cid, name in (("USMF", "Contoso Entertainment System USA"), ("USRT", "Contoso Retail USA"),
                      ("DEMF", "Contoso Entertainment System Germany")):
        m.Company.get_or_create(id=cid, defaults={"name": name})
    m.BatchGroup.get_or_create(name="INVOICE", defaults={"description": "Sales invoicing"})
    m.BatchGroupServer.get_or_create(group="INVOICE", server="AOS1")
    close = jobs.create_job(actor=Actor.current(USER), description="Month-end close", company="USMF",
                            scheduled_start="2026-12-01T22:00:00", time_zone="America/Chicago")
    t1 = jobs.add_task(close.id, actor=Actor.current(USER), description="Post invoices", class_name="Sleep",
                       params={"seconds": 2}, batch_group="INVOICE", max_retries=2)
    t2 = jobs.add_task(close.id, actor=Actor.current(USER), description="Inventory close", class_name="Noop")
    jobs.add_condition(t2.id, actor=Actor.current(USER), parent_id=t1.id, expected="ended")
    jobs.set_recurrence(close.id, {"pattern": "months", "every": 1, "nth": "last", "weekday": "fri",
                                   "end": {"after": 12}}, actor=Actor.current(USER))
    sub = jobs.create_job(actor=Actor.current(USER), description="Subledger transfer", company="USMF",
                          scheduled_start="2026-12-01T08:00:00", time_zone="America/Chicago", priority="high")
    jobs.add_task(sub.id, actor=Actor.current(USER), description="Transfer to general ledger", class_name="Noop")
    jobs.set_recurrence(sub.id, {"pattern": "minutes", "every": 10}, actor=Actor.current(USER))
    # A job that ran once, with an error and a log holding an escape sequence.
    ran = jobs.create_job(actor=Actor.current(USER), description="Sales order invoicing", company="USRT",
                          scheduled_start="2026-03-02T13:00:00", time_zone="UTC")
    rt = jobs.add_task(ran.id, actor=Actor.current(USER), description="Invoice red orders", class_name="Fail",
                       params={"message": "boom"})
    # Validators refuse control characters; text from elsewhere (an older
    # import, a class's own log) may still hold them: the console must cope.
    m.BatchTask.update(description="Invoice \x1b[31mred\x1b[0m orders").where(m.BatchTask.id == rt.id).execute()
    jobs.set_alert(ran.id, actor=Actor.current(USER), alert_user=USER, error=True, popup=True)
    st.set_job_status(ran.id, BatchStatus.WAITING, Actor.current(USER))
    EngineStore().start_due_jobs("AOS1", now=T0)
    claimed = EngineStore().claim_ready_tasks("AOS1", [""], 8, now=T0)
    EngineStore().finish_attempts([Outcome(c.task_id, c.attempt_id, "error",
                                   log="Posting 12 invoices\n\x1b[2Jcleared?\nboom\n",
                                   ended=datetime(2026, 3, 2, 14, 0, 3, 250000)) for c in claimed],
                       retry_base=0, now=datetime(2026, 3, 2, 14, 0, 3, 250000))
    jobs.create_job(actor=Actor.current(USER), description="Master planning", company="DEMF",
                    scheduled_start="2026-12-02T03:00:00", time_zone="Europe/Berlin", priority="low")
    m.BatchServer.create(name="AOS1", host="batch01", pid=4242, threads=8, started=T0, heartbeat=T0)
    return {"close": close.id, "sub": sub.id, "ran": ran.id, "ran_task": rt.id, "t1": t1.id, "t2": t2.id}


def seed_with_close_executing() -> dict:
    """seed_data, with the Month-end close job Executing (no server runs it)."""
    ids = seed_data()
    st.set_job_status(ids["close"], BatchStatus.WAITING, Actor.current(USER))
    m.BatchJob.update(scheduled_start=T0).where(m.BatchJob.id == ids["close"]).execute()
    EngineStore().start_due_jobs("AOS1", now=T0)
    return ids


def make_app(server: bool = False, **kwargs) -> BatchTuiApp:
    factory = None
    if server:
        from batchtui.engine import BatchServerEngine

        def factory(on_change):
            return BatchServerEngine(name="UITEST", poll=0.1, retry_base=0, heartbeat=1.0, on_change=on_change)

    return BatchTuiApp(server=server, engine_factory=factory, **kwargs)


async def wait_for(pilot, predicate, timeout: float = 20.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await pilot.pause(step)
    return predicate()


def grid_rows(grid: PagedGrid) -> list[list[str]]:
    return [list(grid.row_at(i).cells) for i in range(grid.row_count)]


def message(screen, wid: str) -> str:
    return str(screen.query_one(wid).render())


# -- the seed procedure, end to end --------------------------------------------


@sync
async def test_seed_procedure_end_to_end(ui_db):
    app = make_app(server=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "BatchJobsScreen"
        assert app.focused is screen.query_one("#jobs-grid")

        # Create the batch job: New, Job description, Save.
        await pilot.press("ctrl+n")
        assert app.focused is screen.query_one("#job-description")
        await pilot.press(*"Seed job")
        await pilot.press("ctrl+s")
        await pilot.pause()
        job = m.BatchJob.get(m.BatchJob.description == "Seed job")
        assert job.status == BatchStatus.HOLD and job.created_by == USER
        assert "Saved batch job" in message(screen, "#job-message")

        # Recurrence: daily, end after 1 occurrence (so the run ends the job).
        await pilot.press("escape")  # back to the grid (nothing unsaved)
        assert app.focused is screen.query_one("#jobs-grid")
        await pilot.press("r")
        await pilot.pause()
        dialog = app.screen
        assert type(dialog).__name__ == "RecurrenceDialog"
        await pilot.press("tab", "tab", "tab")  # date > time > zone > End radio set
        await pilot.press("down", "enter")  # End after
        await pilot.press("tab", "backspace", "backspace", "1")
        await pilot.pause()
        assert "Every day" in message(dialog, "#rec-sentence") or message(dialog, "#rec-sentence")
        assert message(dialog, "#rec-error") == ""
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is screen
        job = m.BatchJob.get_by_id(job.id)
        assert job.recurrence is not None and job.recurrence_text

        # Alerts: Ended, Error, Canceled, pop-up.
        await pilot.press("a")
        await pilot.pause()
        assert type(app.screen).__name__ == "AlertsDialog"
        await pilot.press("space", "tab", "space", "tab", "space", "tab", "space")
        await pilot.press("ctrl+s")
        await pilot.pause()
        alert = m.JobAlert.get((m.JobAlert.job == job.id) & (m.JobAlert.user == USER))
        assert alert.ended and alert.error and alert.canceled and alert.popup and not alert.email

        # View tasks; Ctrl+N a task with class Noop; Ctrl+S.
        await pilot.press("enter")
        await pilot.pause()
        tasks = app.screen
        assert type(tasks).__name__ == "BatchTasksScreen"
        await pilot.press("ctrl+n", *"First task", "tab", "tab", "enter")
        await pilot.pause()
        await pilot.press(*"Noop", "enter")
        await pilot.press("ctrl+s")
        await pilot.pause()
        first = m.BatchTask.get((m.BatchTask.job == job.id) & (m.BatchTask.description == "First task"))
        assert first.class_name == "Noop" and first.company_id == job.company_id

        # A second task: ignore failure, maximum retries 2.
        await pilot.press("ctrl+n", *"Second task", "tab", "tab", "enter")
        await pilot.pause()
        await pilot.press(*"Noop", "enter")
        await pilot.press("tab", "tab", "space", "tab", "backspace", "2")
        await pilot.press("ctrl+s")
        await pilot.pause()
        second = m.BatchTask.get((m.BatchTask.job == job.id) & (m.BatchTask.description == "Second task"))
        assert second.ignore_failure and second.max_retries == 2

        # Has conditions: Ctrl+N, parent task, expected status Ended, Ctrl+S.
        await pilot.press("escape")  # to the tasks grid, on the second task
        assert tasks.task_id == second.id
        await pilot.press("3")
        assert app.focused is tasks.query_one("#conditions-grid")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.focused is tasks.query_one("#cond-parent")
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("down", "enter")  # the only other task: the first
        await pilot.press("ctrl+s")
        await pilot.pause()
        cond = m.BatchConstraint.get(m.BatchConstraint.task == second.id)
        assert cond.parent_id == first.id and cond.expected == 0
        assert grid_rows(tasks.query_one("#conditions-grid"))[0][0] == str(first.id)

        # Back to Batch jobs; Change status to Waiting.
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("t")
        await pilot.pause()
        assert type(app.screen).__name__ == "ChangeStatusDialog"
        await pilot.press("ctrl+s")
        await pilot.pause()

        # The embedded batch server runs it; the grid shows Ended.
        grid = screen.query_one("#jobs-grid", PagedGrid)

        def shows_ended():
            row = grid.row_at(grid.cursor)
            return row is not None and row.key == job.id and row.cells[3] == "Ended"

        assert await wait_for(pilot, shows_ended), grid_rows(grid)
        assert m.BatchJob.get_by_id(job.id).status == BatchStatus.FINISHED
        assert "Ended" in message(screen, "#job-status")

        # The alert: a pop-up toast, and the Action center lists it.
        assert await wait_for(pilot, lambda: any("ended" in n.message for n in app._notifications))
        await pilot.press("f4")
        await pilot.pause()
        center = app.screen
        assert type(center).__name__ == "ActionCenterScreen"
        rows = grid_rows(center.query_one(PagedGrid))
        assert rows and rows[0][1] == str(job.id) and rows[0][2] == "Ended"
        await pilot.press("enter")
        await pilot.pause()
        assert m.Alert.get(m.Alert.job == job.id).read

        # Its history: one run, two tasks.
        await pilot.press("escape")
        await pilot.press("h")
        await pilot.pause()
        hist = app.screen
        assert type(hist).__name__ == "HistoryScreen"
        runs = grid_rows(hist.query_one("#runs-grid"))
        assert len(runs) == 1 and runs[0][2] == "Ended"
        assert len(grid_rows(hist.query_one("#run-tasks-grid"))) == 2


# -- the Batch jobs page -------------------------------------------------------------


@sync
async def test_grid_moves_through_all_rows(ui_db):
    now = datetime(2026, 1, 1)
    m.Company.get_or_create(id="DAT")
    m.BatchJob.insert_many([
        {"description": f"Job {i}", "company": "DAT", "scheduled_start": now, "time_zone": "UTC",
         "status": 0, "priority": 1, "created_by": USER, "run_by": USER, "created": now, "modified": now}
        for i in range(1, 1001)
    ]).execute()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        grid = app.screen.query_one("#jobs-grid", PagedGrid)
        assert grid.cursor_key == 1000  # newest first
        await pilot.press("end")
        assert grid.cursor_key == 1
        await wait_for(pilot, app.screen.form_settled, timeout=2)
        await pilot.pause()
        assert app.screen.query_one("#job-description").value == "Job 1"
        await pilot.press("home", "pagedown", "down")
        assert grid.cursor > 2
        await pilot.press("home")
        assert grid.cursor_key == 1000


@sync
async def test_opens_fast_with_100k_jobs(ui_db):
    now = datetime(2026, 1, 1)
    m.Company.get_or_create(id="DAT")
    rows = [{"description": f"Job {i}", "company": "DAT", "scheduled_start": now, "time_zone": "UTC",
             "status": i % 9, "priority": 1, "created_by": USER, "run_by": USER, "created": now, "modified": now}
            for i in range(100_000)]
    with ui_db.atomic():
        for start in range(0, len(rows), 5000):
            m.BatchJob.insert_many(rows[start:start + 5000]).execute()
    app = make_app()
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        opened = time.perf_counter() - started
        grid = app.screen.query_one("#jobs-grid", PagedGrid)
        assert grid.row_count == 100_000
        assert opened < 0.5 * 4, opened  # generous on slow CI; bench/ measures the real figure
        t = time.perf_counter()
        await pilot.press("end")
        assert grid.cursor_key == 1
        await pilot.press("pageup", "up", "home")
        # Four key presses through Pilot (each waits for the screen to settle).
        assert time.perf_counter() - t < 2.0


@sync
async def test_filter_and_status_quick_filter(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        grid = screen.query_one("#jobs-grid", PagedGrid)
        assert grid.row_count == 4
        await pilot.press("slash", *"close")
        await pilot.pause()
        assert [r[0] for r in grid_rows(grid)] == [str(ids["close"])]
        await pilot.press("enter")
        assert app.focused is grid
        await pilot.press("escape")  # clears the filters
        await pilot.pause()
        assert grid.row_count == 4
        screen.query_one("#filter-status").value = int(BatchStatus.ERROR)
        await pilot.pause()
        assert [r[0] for r in grid_rows(grid)] == [str(ids["ran"])]


@sync
async def test_the_batch_jobs_page_counts_its_rows_once_as_it_opens_and_again_for_a_filter(ui_db, monkeypatch):
    """The filters' first Changed events as the page mounts ask for the rows it already shows:
    not counted and read again (issue 17: at 1,000,000 jobs a count is 15-50 ms)."""
    from batchtui.ui.screens import jobs_source

    _many_jobs(60)
    counted: list[tuple] = []
    count = jobs_source.JobsSource._count
    monkeypatch.setattr(jobs_source.JobsSource, "_count", lambda self: counted.append(self.criteria) or count(self))
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        grid = app.screen.query_one("#jobs-grid", PagedGrid)
        assert await wait_for(pilot, lambda: grid.row_count == 60)
        await pilot.pause(0.3)
        assert counted == [("", None, "id", True)]
        await pilot.press("slash", *"Job 3")
        assert await wait_for(pilot, lambda: grid.row_count == len([i for i in range(1, 61) if i % 7 == 3]))
        assert counted[-1] == ("Job 3", None, "id", True)
        await pilot.press("enter", "escape")  # to the grid; the filters cleared: all again, counted again
        assert await wait_for(pilot, lambda: grid.row_count == 60)
        assert counted[-1] == ("", None, "id", True)


@sync
async def test_a_flex_column_follows_text_read_again_after_a_reload(ui_db):
    """Each page's text is measured once; a page read again (a live refresh) is measured again."""
    _many_jobs(30)
    app = make_app()
    async with app.run_test(size=(160, 40)) as pilot:
        grid = app.screen.query_one("#jobs-grid", PagedGrid)
        assert await wait_for(pilot, lambda: grid.row_count == 30)
        col = next(i for i, c in enumerate(grid.columns) if c.key == "description")
        before = grid._widths[col]
        m.BatchJob.update(description="A much longer description than any before it").where(
            m.BatchJob.id == 7).execute()
        grid.reload(keep_key=True)
        await pilot.pause(0.2)
        assert grid._widths[col] > before
        assert grid._widths[col] >= len("A much longer description than any before it")


@sync
async def test_paging_through_the_jobs_never_waits_for_a_read_while_drawing(ui_db, monkeypatch):
    """The pages a PgDn or PgUp shows next are read once the view is painted, not while the key
    moves the cursor or draws (issue 17: 2-3 ms a page at 1,000,000 jobs); and however far one pages, the page on
    screen is never dropped and read again."""
    from batchtui.ui.screens import jobs_source

    _many_jobs(1100)
    in_key = [False]
    reads: list[tuple[int, bool]] = []  # (offset, read while a key moved the cursor or drew the rows)
    fetch = jobs_source.JobsSource.fetch

    def recorded_fetch(self, offset, limit):
        reads.append((offset, in_key[0]))
        return fetch(self, offset, limit)

    def flagged(method):
        def run(self, *args):
            in_key[0] = True
            try:
                return method(self, *args)
            finally:
                in_key[0] = False
        return run

    monkeypatch.setattr(jobs_source.JobsSource, "fetch", recorded_fetch)
    for name in ("action_page_down", "action_page_up", "render_line"):
        monkeypatch.setattr(PagedGrid, name, flagged(getattr(PagedGrid, name)))
    app = make_app()
    async with app.run_test(size=(120, 60)) as pilot:
        grid = app.screen.query_one("#jobs-grid", PagedGrid)
        assert await wait_for(pilot, lambda: grid.row_count == 1100)
        await pilot.pause(0.2)
        opened = len(reads)
        while grid.cursor < 1099:
            await pilot.press("pagedown")
            await pilot.pause()
        for _ in range(12):
            await pilot.press("pageup")
            await pilot.pause()
        paged = reads[opened:]
        assert sorted(offset for offset, _ in paged) == list(range(100, 1100, 100))  # each page read once
        assert [r for r in paged if r[1]] == []
        assert grid.row_at(grid.cursor).key == grid.cursor_key


@sync
async def test_a_read_ahead_that_meets_a_database_error_is_not_tried_again_at_every_key(ui_db, monkeypatch):
    """While the database is away, each key must not wait for it again (SQLite's busy timeout, a
    PostgreSQL reconnect): the read ahead stops until the grid is read again."""
    import peewee

    from batchtui.ui.screens import jobs_source

    _many_jobs(150)
    tried: list[int] = []
    fetch = jobs_source.JobsSource.fetch
    away = [True]

    def fetch_or_fail(self, offset, limit):
        if offset >= 100:
            tried.append(offset)
            if away[0]:
                raise peewee.OperationalError("unable to open database file")
        return fetch(self, offset, limit)

    monkeypatch.setattr(jobs_source.JobsSource, "fetch", fetch_or_fail)
    app = make_app(poll_interval=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        grid = app.screen.query_one("#jobs-grid", PagedGrid)
        assert await wait_for(pilot, lambda: grid.row_count == 150)
        while not tried and grid.cursor < 99:
            await pilot.press("pagedown")
            await pilot.pause()
        assert tried == [100] and grid.cursor < 100  # read ahead of the view, and failed
        for _ in range(5):
            await pilot.press("up")
            await pilot.pause()
        assert tried == [100]
        away[0] = False
        grid.reload()  # the next live refresh, the database back
        await pilot.press("up")
        await pilot.pause()
        assert tried[-1] == 100 and len(tried) == 2
    assert app._exception is None


def _burst(app, *keys: str) -> None:
    """Keys as a terminal sends a burst of them (tmux send-keys, a fast typist over SSH): all
    queued at once. (Pilot's press waits for the app to settle after each key.)"""
    from textual import events

    for key in keys:
        app.post_message(events.Key(key, key if len(key) == 1 else None))


@sync
async def test_a_job_key_right_after_cursor_moves_acts_on_the_row_under_the_cursor(ui_db):
    """Down Down h in one burst: the key reached the screen before the grid's cursor messages,
    and View history opened the job the cursor had left (Run now would have run it)."""
    seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        grid = screen.query_one("#jobs-grid", PagedGrid)
        assert await wait_for(pilot, lambda: grid.row_count == 4 and screen.job_id == grid.cursor_key)
        order = [int(row[0]) for row in grid_rows(grid)]
        _burst(app, "down", "down", "h")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "HistoryScreen")
        assert app.screen.job_id == order[2] == grid.cursor_key


@sync
async def test_a_task_key_right_after_the_cursor_moves_acts_on_the_row_under_the_cursor(ui_db):
    """Down then Alt+F9 in one burst on View tasks: the delete asks about the task under the cursor."""
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        grid = screen.query_one("#jobs-grid", PagedGrid)
        assert await wait_for(pilot, lambda: grid.row_count == 4)
        grid.move_to_key(ids["close"])
        await pilot.pause(0.2)
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "BatchTasksScreen")
        tasks = app.screen
        tasks_grid = tasks.query_one("#tasks-grid", PagedGrid)
        assert await wait_for(pilot, lambda: tasks_grid.row_count == 2 and tasks.task_id == ids["t1"])
        _burst(app, "down", "alt+f9")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog")
        assert app.screen.message.startswith(f"Delete task {ids['t2']} "), app.screen.message
        await pilot.press("escape")
    assert m.BatchTask.select().where(m.BatchTask.job == ids["close"]).count() == 2


def _footer_keys(screen) -> list:
    from textual.widgets._footer import FooterKey

    return list(screen.query(FooterKey))


def _footer_matches_bindings(screen) -> bool:
    """Each key shown greyed exactly when Textual's own bindings say it does not apply now."""
    applies = {(b.key, b.action): enabled for _n, b, enabled, _t in screen.active_bindings.values()}
    keys = _footer_keys(screen)
    return bool(keys) and all(applies[(k.key, k.action)] is not k.has_class("-disabled") for k in keys)


def _footer_key(screen, action: str):
    return next(k for k in _footer_keys(screen) if k.action == action)


@sync
async def test_the_footer_greys_keys_in_place_as_the_cursor_moves_from_a_running_job(ui_db):
    """From an Executing job to an ended one, Cancel greys out and Run now lights up: the same
    key widgets, not a footer composed again (issue 17: 10-18 ms while paging a million jobs)."""
    ids = seed_with_close_executing()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        grid = screen.query_one("#jobs-grid", PagedGrid)
        assert await wait_for(pilot, lambda: grid.row_count == 4)
        order = [int(row[0]) for row in grid_rows(grid)]
        await pilot.press(*["down"] * order.index(ids["close"]))
        assert await wait_for(pilot, lambda: screen.job_id == ids["close"] and _footer_matches_bindings(screen))
        assert not _footer_key(screen, "cancel_job").has_class("-disabled")
        assert _footer_key(screen, "run_now").has_class("-disabled")
        keys = _footer_keys(screen)

        step = order.index(ids["ran"]) - order.index(ids["close"])
        await pilot.press(*["down" if step > 0 else "up"] * abs(step))
        assert await wait_for(pilot, lambda: screen.job_id == ids["ran"])
        await pilot.pause(0.1)
        assert _footer_key(screen, "cancel_job").has_class("-disabled")
        assert not _footer_key(screen, "run_now").has_class("-disabled")
        assert _footer_matches_bindings(screen)
        assert all(a is b for a, b in zip(_footer_keys(screen), keys, strict=True))

        await pilot.press("slash")  # the filter box: the letter keys are typed, not shown as keys
        await pilot.pause(0.1)
        assert "history" not in [k.action for k in _footer_keys(screen)] and _footer_matches_bindings(screen)
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not _footer_key(screen, "history").has_class("-disabled") and _footer_matches_bindings(screen)


@sync
async def test_the_footer_is_composed_again_when_the_keys_it_shows_change():
    """A key that is hidden (check_action False), not only greyed, rebuilds the footer."""
    from textual.app import App
    from textual.binding import Binding

    from batchtui.ui.widgets.footer import Footer

    class Keys(App):
        ENABLE_COMMAND_PALETTE = False
        BINDINGS = [Binding("a", "one", "One"), Binding("b", "two", "Two"), Binding("c", "three", "Three")]
        mode = "all"

        def compose(self):
            yield Footer()

        def check_action(self, action, parameters):
            if action == "two" and self.mode != "all":
                return None if self.mode == "grey" else False
            return True

        def action_one(self):
            self.mode = "grey"
            self.refresh_bindings()

        def action_three(self):
            self.mode = "hide"
            self.refresh_bindings()

    app = Keys()
    async with app.run_test(size=(80, 10)) as pilot:
        await pilot.pause()
        keys = _footer_keys(app.screen)
        assert [k.action for k in keys] == ["one", "two", "three"] and _footer_matches_bindings(app.screen)
        await pilot.press("a")
        await pilot.pause()
        assert _footer_keys(app.screen)[1].has_class("-disabled") and _footer_matches_bindings(app.screen)
        assert all(a is b for a, b in zip(_footer_keys(app.screen), keys, strict=True))
        await pilot.press("c")
        await pilot.pause()
        assert [k.action for k in _footer_keys(app.screen)] == ["one", "three"]
        assert _footer_matches_bindings(app.screen)
        # A key not as Textual 8.2 makes it (a later Textual): composed again, never left wrong.
        app.mode = "all"
        app.refresh_bindings()
        await pilot.pause()
        keys = _footer_keys(app.screen)
        assert [k.action for k in keys] == ["one", "two", "three"]
        del keys[0]._disabled
        app.mode = "grey"
        app.refresh_bindings()
        await pilot.pause()
        assert _footer_matches_bindings(app.screen) and _footer_keys(app.screen)[0] is not keys[0]


@sync
async def test_live_refresh_keeps_cursor(ui_db):
    ids = seed_data()
    app = make_app(poll_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        grid = app.screen.query_one("#jobs-grid", PagedGrid)
        await pilot.press("down", "down")
        key = grid.cursor_key
        # Another process adds a job (it lands on top) and changes a status.
        jobs.create_job(actor=Actor.current("someone"), description="From elsewhere",
                        scheduled_start="2026-12-01T00:00:00", time_zone="UTC")
        st.set_job_status(ids["close"], BatchStatus.WAITING, Actor.current(USER))
        assert await wait_for(pilot, lambda: grid.row_count == 5, timeout=3)
        assert grid.cursor_key == key
        row = next(r for r in grid_rows(grid) if r[0] == str(ids["close"]))
        assert row[3] == "Waiting"


@sync
async def test_job_form_validation_keeps_input(ui_db):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("ctrl+n", *"Bad start")
        start = screen.query_one("#job-start")
        start.value = "2026-13-45 99:00"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Scheduled start" in message(screen, "#job-message")
        assert m.BatchJob.select().count() == 0
        assert screen.query_one("#job-description").value == "Bad start"
        # An empty description is refused too.
        screen.query_one("#job-description").value = ""
        start.value = "2026-12-01 10:00"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Job description" in message(screen, "#job-message")
        assert m.BatchJob.select().count() == 0


@sync
async def test_escape_on_changed_record_asks_first(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("tab", "tab", "tab")  # filter > status > grid > description
        while app.focused is not screen.query_one("#job-description"):
            await pilot.press("tab")
        await pilot.press(*" (changed)")
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmDialog"
        await pilot.press("escape")  # keep editing
        await pilot.pause()
        assert app.screen is screen and screen.is_dirty()
        await pilot.press("escape")
        await pilot.pause()
        app.screen.query_one("#answer-discard").press()
        await pilot.pause()
        assert not screen.is_dirty()
        assert m.BatchJob.get_by_id(screen.job_id).description in ("Master planning",)
        assert ids


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
@sync
async def test_stale_save_changed_by_another_user(ui_db, size):
    """A save made from an older read is refused; the input is kept; the form offers to re-read,
    and F5 on the changed form re-reads it too (after asking)."""
    seed_data()
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        job_id = screen.job_id
        desc = screen.query_one("#job-description")
        desc.focus()
        await pilot.press(*" v2")
        typed = desc.value
        # Someone else saves the job meanwhile.
        other = m.BatchJob.get_by_id(job_id)
        jobs.update_job(job_id, actor=Actor.current(USER), version=other.version, description="Changed elsewhere")
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog = app.screen
        assert dialog.dialog_title == "Changed since you opened it"
        assert f"Batch job {job_id} was changed since you opened it (by a batch server or another user)" \
            in message(dialog, ".dialog-message")
        assert [b.label.plain for b in dialog.query("Button")] == ["Re-read", "Keep editing"]
        await pilot.press("right", "enter")  # Keep editing
        await pilot.pause()
        assert app.screen is screen and desc.value == typed and screen.is_dirty()
        text = message(screen, "#job-message")
        assert "Not saved" in text and "changed since you opened it" in text and "F5" in text
        assert m.BatchJob.get_by_id(job_id).description == "Changed elsewhere"
        # F5 works on the changed form: it asks, then re-reads.
        await pilot.press("f5")
        await pilot.pause()
        assert app.screen.dialog_title == "Refresh"
        await pilot.press("escape")  # keep editing
        await pilot.pause()
        assert desc.value == typed
        await pilot.press("f5")
        await pilot.pause()
        app.screen.query_one("#answer-reread").press()
        await pilot.pause()
        assert desc.value == "Changed elsewhere" and not screen.is_dirty()
        # Saved again from the new read: accepted.
        await pilot.press("end", *" v3", "ctrl+s")
        await pilot.pause()
        assert "Saved batch job" in message(screen, "#job-message")
        assert m.BatchJob.get_by_id(job_id).description == "Changed elsewhere v3"



@sync
async def test_stale_form_after_a_recurring_run_is_refused_and_runs_nothing_extra(ui_db):
    """Issue #11, first defect: a recurring job (every minute, end after 3) runs once; the batch
    server moves its scheduled start on. The form, being edited, still shows the old start; Ctrl+S
    must not write it back (an extra run at once): the save is refused with a re-read offer."""
    from batchtui.timeutil import utcnow
    from batchtui.ui.format import wall

    ops = Actor.current(USER)
    start = utcnow().replace(microsecond=0)
    job = jobs.create_job(actor=ops, description="Every minute", company="DAT", scheduled_start=start.isoformat(),
                          time_zone="UTC")
    jobs.add_task(job.id, actor=ops, description="Takes a moment", class_name="Sleep", params={"seconds": 2})
    jobs.set_recurrence(job.id, {"pattern": "minutes", "every": 1, "end": {"after": 3}}, actor=ops)
    old_start = m.BatchJob.get_by_id(job.id).scheduled_start
    app = make_app(server=True, poll_interval=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert screen.job_id == job.id
        start_field = screen.query_one("#job-start")
        assert start_field.value == wall(old_start, "UTC")
        # Change status > Waiting: due already, the embedded batch server starts it at once.
        await pilot.press("t")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "ChangeStatusDialog", timeout=5)
        await pilot.press("ctrl+s")
        assert await wait_for(pilot, lambda: m.BatchJob.get_by_id(job.id).run_count == 1, timeout=10)
        # While it runs, the operator edits the description (the form shows the old start).
        while app.focused is not screen.query_one("#job-description"):
            await pilot.press("tab")
        await pilot.press("end", *" (edited)")
        assert screen.is_dirty() and start_field.value == wall(old_start, "UTC")

        def moved_on():
            row = m.BatchJob.get_by_id(job.id)
            return row.status == BatchStatus.WAITING and row.scheduled_start > old_start

        assert await wait_for(pilot, moved_on, timeout=20), "the run did not end / the start did not move"
        server_start = m.BatchJob.get_by_id(job.id).scheduled_start
        assert start_field.value == wall(old_start, "UTC")  # the form still shows the old start
        await pilot.press("ctrl+s")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog", timeout=5), \
            f"the stale save was not refused: {message(screen, '#job-message')}"
        dialog = app.screen
        assert dialog.dialog_title == "Changed since you opened it"
        assert f"Batch job {job.id} was changed since you opened it" in message(dialog, ".dialog-message")
        assert "Re-read it: your unsaved edits are lost" in message(dialog, ".dialog-message")
        await pilot.pause(2.0)  # an extra run would start within the server's next round (0.1 s)
        row = m.BatchJob.get_by_id(job.id)
        assert row.scheduled_start == server_start and row.description == "Every minute"
        assert m.JobRun.select().where(m.JobRun.job == job.id).count() == 1
        # Re-read: the form shows the server's start, the edit is gone.
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is screen and not screen.is_dirty()
        assert start_field.value == wall(server_start, "UTC")
        assert screen.query_one("#job-description").value == "Every minute"
    assert app._exception is None
    assert m.JobRun.select().where(m.JobRun.job == job.id).count() == 1



@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
@sync
async def test_task_save_refused_when_the_task_changed_meanwhile_offers_to_re_read(ui_db, size):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.screen.query_one("#jobs-grid", PagedGrid).move_to_key(ids["close"])
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "BatchTasksScreen", timeout=5)
        tasks = app.screen
        assert tasks.task_id == ids["t1"]
        await pilot.press("enter", "end", *" (mine)")
        other = m.BatchTask.get_by_id(ids["t1"])
        jobs.update_task(ids["t1"], actor=Actor.current(USER), version=other.version, description="Theirs")
        await pilot.press("ctrl+s")
        await pilot.pause()
        dialog = app.screen
        assert getattr(dialog, "dialog_title", "") == "Changed since you opened it"
        assert f"Task {ids['t1']} was changed since you opened it" in message(dialog, ".dialog-message")
        assert m.BatchTask.get_by_id(ids["t1"]).description == "Theirs"
        await pilot.press("escape")  # keep editing: the input stays, the message says how to re-read
        await pilot.pause()
        assert app.screen is tasks and tasks.query_one("#task-description").value == "Post invoices (mine)"
        assert "F5" in message(tasks, "#task-message")
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("enter")  # Re-read (the default)
        await pilot.pause()
        assert app.screen is tasks and not tasks.is_dirty()
        assert tasks.query_one("#task-description").value == "Theirs"


@sync
async def test_clean_forms_re_read_their_record_when_it_changes(ui_db):
    """Nothing typed: the job form and the task form show what another user saved, by themselves."""
    ids = seed_data()
    app = make_app(poll_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.query_one("#jobs-grid", PagedGrid).move_to_key(ids["close"])
        assert await wait_for(pilot, lambda: screen.job_id == ids["close"], timeout=5)
        job = m.BatchJob.get_by_id(ids["close"])
        jobs.update_job(job.id, actor=Actor.current(USER), version=job.version, description="Renamed elsewhere",
                        scheduled_start="2026-12-24T08:00:00")
        assert await wait_for(pilot, lambda: screen.query_one("#job-description").value == "Renamed elsewhere",
                              timeout=5)
        assert screen.query_one("#job-start").value == "2026-12-24 08:00" and not screen.is_dirty()
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "BatchTasksScreen", timeout=5)
        tasks = app.screen
        task = m.BatchTask.get_by_id(tasks.task_id)
        jobs.update_task(task.id, actor=Actor.current(USER), version=task.version, description="Renamed task")
        assert await wait_for(pilot, lambda: tasks.query_one("#task-description").value == "Renamed task",
                              timeout=5)
        assert not tasks.is_dirty()


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
@sync
async def test_groups_form_asks_before_changes_are_lost_and_before_a_delete(ui_db, size):
    seed_data()
    app = make_app(user="root")  # a batch job manager (no config file: the managers are root)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.open_screen("groups")
        await pilot.pause()
        screen = app.screen
        await pilot.press("ctrl+n", *"NIGHT", "escape")
        await pilot.pause()
        assert app.screen.dialog_title == "Unsaved changes"
        assert "The new batch group has changes that are not saved." in message(app.screen, ".dialog-message")
        await pilot.press("escape")  # keep editing
        await pilot.pause()
        assert app.screen is screen and screen.query_one("#group-name").value == "NIGHT"
        await pilot.press("escape")
        await pilot.pause()
        app.screen.query_one("#answer-save").press()
        await pilot.pause()
        assert m.BatchGroup.get_or_none(m.BatchGroup.name == "NIGHT") is not None
        assert "Saved batch group NIGHT." in message(screen, "#group-message")
        # A changed description and a move in the grid: asked first; Discard moves on.
        await pilot.press("tab", "end", *" runs")
        assert screen.is_dirty()
        screen.grid.focus()
        await pilot.press("up")
        await pilot.pause()
        assert app.screen.dialog_title == "Unsaved changes"
        app.screen.query_one("#answer-discard").press()
        await pilot.pause()
        assert not screen.is_dirty() and screen.group != "NIGHT"
        # Delete asks; Cancel is the default.
        screen.grid.move_to_key("NIGHT")
        await pilot.pause()
        await pilot.press("alt+f9")
        await pilot.pause()
        assert app.screen.dialog_title == "Delete" and app.screen.default == "cancel"
        await pilot.press("enter")
        await pilot.pause()
        assert m.BatchGroup.get_or_none(m.BatchGroup.name == "NIGHT") is not None
        await pilot.press("ctrl+delete")
        await pilot.pause()
        app.screen.query_one("#answer-delete").press()
        await pilot.pause()
        assert m.BatchGroup.get_or_none(m.BatchGroup.name == "NIGHT") is None


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
@sync
async def test_fields_are_checked_as_typed_by_the_shared_validators(ui_db, size):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        start = screen.query_one("#job-start")
        while app.focused is not start:
            await pilot.press("tab")
        await pilot.press("end", *" tomorrow")
        await pilot.pause()
        assert message(screen, "#job-message").startswith("Scheduled start: ")
        assert "is not a date and time (YYYY-MM-DD HH:MM)" in message(screen, "#job-message")
        assert start.has_class("-invalid")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Scheduled start" in message(screen, "#job-message")
        assert m.BatchJob.get_by_id(screen.job_id).description != ""  # nothing saved
        for _ in " tomorrow":
            await pilot.press("backspace")
        await pilot.pause()
        assert message(screen, "#job-message") == "" and not start.has_class("-invalid")
        # The task form: Maximum retries, 0 to 5 (the job file's rule).
        screen.query_one("#jobs-grid", PagedGrid).move_to_key(ids["close"])
        await pilot.pause()
        await pilot.press("escape")  # the start is unchanged again: nothing to ask
        await pilot.pause()
        screen.query_one("#jobs-grid", PagedGrid).focus()
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "BatchTasksScreen", timeout=5)
        tasks = app.screen
        retries = tasks.query_one("#task-retries")
        while app.focused is not retries:
            await pilot.press("tab")
        await pilot.press("backspace", "backspace", "9")
        await pilot.pause()
        assert message(tasks, "#task-message") == "Maximum retries: enter a whole number from 0 to 5, not 9"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Maximum retries" in message(tasks, "#task-message")
        assert m.BatchTask.get_by_id(ids["t1"]).max_retries == 2


@sync
async def test_dialogs_check_their_fields_with_the_shared_validators(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.screen.query_one("#jobs-grid", PagedGrid).move_to_key(ids["close"])
        await pilot.pause()
        await pilot.press("c")  # Copy: the description is required
        await pilot.pause()
        dialog = app.screen
        dialog.query_one("#copy-description").value = "Pasted\x1b[31m"  # a control character, as if pasted
        await pilot.pause()
        assert message(dialog, "#copy-error") == \
            "Job description: must be one line of text without control characters"
        dialog.query_one("#copy-description").value = ""
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog
        assert message(dialog, "#copy-error") == "Job description: a description must not be empty"
        await pilot.press("escape")
        await pilot.pause()
        app.action_cleanup()  # Clean-up: whole days, 0 or more
        await pilot.pause()
        dialog = app.screen
        await pilot.press("backspace", "backspace", *"-3", "ctrl+s")
        await pilot.pause()
        assert app.screen is dialog
        assert "Older than (days): enter a whole number of 0 or more, not -3" in message(dialog,
                                                                                        "#cleanup-error-line")
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("r")  # Recurrence: the day of the month, 1 to 31
        await pilot.pause()
        dialog = app.screen
        dialog.query_one("#rec-mode").value = "day"
        day = dialog.query_one("#rec-day")
        day.focus()
        await pilot.press("end", "backspace", "backspace", *"32")
        await pilot.pause()
        assert message(dialog, "#rec-error") == "Day: enter a whole number from 1 to 31, not 32"
        assert day.has_class("-invalid")


@sync
async def test_help_shows_a_remapped_key_as_the_user_set_it(ui_db):
    from textual.binding import Binding

    seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.set_keymap({"jobs.recurrence": "ctrl+r"})
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert type(app.screen).__name__ == "RecurrenceDialog"
        await pilot.press("escape", "f1")
        await pilot.pause()
        shown = app.get_key_display(Binding("ctrl+r", ""))
        assert (shown, "Recurrence") in app.screen.rows, app.screen.rows


@sync
async def test_a_database_error_in_a_worker_read_is_reported_and_the_console_goes_on(ui_db):
    import peewee

    from batchtui.ui.widgets.paged_grid import CallableSource

    seed_data()
    app = make_app(poll_interval=3600)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        notes: list[str] = []
        app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]
        await pilot.press("enter")
        await pilot.pause()
        grid = app.screen.query_one("#tasks-grid", PagedGrid)
        rows = grid_rows(grid)

        def broken():
            raise peewee.IntegrityError("CHECK constraint failed: boom")

        grid.source = CallableSource(broken)
        grid.reload_in_background()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("Database error: CHECK constraint failed: boom" in n for n in notes), notes
        assert grid_rows(grid) == rows and app.is_running  # the grid keeps what it showed
    assert app._exception is None


@sync
async def test_delete_after_confirmation(ui_db):
    seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        job_id = app.screen.job_id
        await pilot.press("alt+f9")
        await pilot.pause()
        assert type(app.screen).__name__ == "ConfirmDialog"
        await pilot.press("escape")
        await pilot.pause()
        assert m.BatchJob.get_or_none(m.BatchJob.id == job_id) is not None
        await pilot.press("ctrl+delete")
        await pilot.pause()
        app.screen.query_one("#answer-delete").press()
        await pilot.pause()
        assert m.BatchJob.get_or_none(m.BatchJob.id == job_id) is None



@sync
async def test_live_refresh_of_a_job_s_tasks_and_history_reads_in_worker_threads(ui_db):
    """A running job's tasks grid and the history grids are re-read off the UI thread."""
    import threading

    from batchtui.ui.widgets.paged_grid import CallableSource

    ops = Actor.current(USER)
    job = jobs.create_job(actor=ops, description="Worker read", company="DAT", scheduled_start="2026-01-01T00:00:00",
                          time_zone="UTC")
    jobs.add_task(job.id, actor=ops, description="Sleep a bit", class_name="Sleep", params={"seconds": 0.5})
    app = make_app(server=True, poll_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "BatchTasksScreen", timeout=5)
        tasks = app.screen
        grid = tasks.query_one("#tasks-grid", PagedGrid)
        readers: set[str] = set()

        def spy():
            readers.add(threading.current_thread().name)
            return tasks._task_rows()

        grid.set_source(CallableSource(spy))
        assert readers == {threading.current_thread().name}  # set_source reads now, on this thread
        readers.clear()
        st.set_job_status(job.id, BatchStatus.WAITING, ops)
        app.wake_engine()
        assert await wait_for(pilot, lambda: grid_rows(grid)[0][5] == "Ended", timeout=20), grid_rows(grid)
        assert readers and threading.current_thread().name not in readers, readers
        assert message(tasks, "#task-status") == "Ended"
        # The history of the job: its run appears and ends without F5, read in a worker too.
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("h")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "HistoryScreen", timeout=5)
        runs = app.screen.query_one("#runs-grid", PagedGrid)
        assert grid_rows(runs)[0][2] == "Ended"
        st.set_job_status(job.id, BatchStatus.WAITING, Actor.current(USER))
        app.wake_engine()
        assert await wait_for(pilot, lambda: runs.row_count == 2 and grid_rows(runs)[0][2] == "Ended", timeout=20)
    assert app._exception is None


@sync
async def test_a_background_read_older_than_a_reload_is_dropped(ui_db):
    import threading

    from batchtui.ui.widgets.paged_grid import CallableSource, GridRow

    seed_data()
    app = make_app(poll_interval=3600)  # no live refresh of its own meanwhile
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        grid = app.screen.query_one("#tasks-grid", PagedGrid)
        ui_thread = threading.current_thread()

        def rows():  # a worker reads what was there before; the UI thread, what is there now
            return [GridRow(1, ["old"] * 10) if threading.current_thread() is not ui_thread
                    else GridRow(2, ["new"] * 10)]

        grid.set_source(CallableSource(rows))
        grid.reload_in_background()  # reads ["old"] in a thread...
        grid.reload(keep_key=False)  # ...while a reload reads ["new"] now
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert grid_rows(grid) == [["new"] * 10]
        grid.reload_in_background()  # with nothing after it, a worker's read is shown
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert grid_rows(grid) == [["old"] * 10]


def _many_jobs(count: int) -> None:
    """Jobs with few distinct values per column, so that sorting meets many ties."""
    now = datetime(2026, 1, 1)
    m.Company.get_or_create(id="DAT")
    m.Company.get_or_create(id="USMF")
    m.BatchJob.insert_many([
        {"description": f"Job {i % 7}", "company": "USMF" if i % 3 else "DAT",
         "scheduled_start": datetime(2026, 1, 1 + i % 5), "time_zone": "UTC", "status": i % 3,
         "priority": i % 4, "created_by": USER, "run_by": USER, "created": now, "modified": now,
         "recurrence_text": "Every day" if i % 2 else ""}
        for i in range(1, count + 1)
    ]).execute()


def test_jobs_pages_cover_every_row_in_every_sort(ui_db):
    """Keyset pages (forwards, backwards, jumps) give each row once, in the sort's order."""
    from batchtui.ui.screens.batch_jobs import SORT_FIELDS, JobsSource

    _many_jobs(1234)
    J = m.BatchJob
    for sort, field in SORT_FIELDS.items():
        for descending in (True, False):
            for text, status in (("", None), ("Job 3", None), ("", 1)):
                source = JobsSource(text, status, sort, descending)
                total = source.count()
                order = ([field.desc(), J.id.desc()] if descending else [field.asc(), J.id.asc()])
                order = order[-1:] if field is J.id else order
                want = [r[0] for r in source._filtered(J.select(J.id, field)).order_by(*order).tuples()]
                assert total == len(want)
                pages = range((total + 99) // 100)
                forwards = [r.key for p in pages for r in source.fetch(p * 100, 100)]
                source.invalidate()
                source.count()
                backwards = [r.key for p in reversed(pages) for r in reversed(source.fetch(p * 100, 100))]
                source.invalidate()
                source.count()
                jumps = {p: [r.key for r in source.fetch(p * 100, 100)] for p in (7, 3, 11, 0)
                         if p * 100 < total}
                assert forwards == want, (sort, descending, text, status)
                assert backwards[::-1] == want, (sort, descending, text, status)
                for p, keys in jumps.items():
                    assert keys == want[p * 100:(p + 1) * 100]
                for key in want[::97]:
                    assert source.index_of(key) == want.index(key)


@sync
async def test_sort_by_other_columns_keeps_the_cursor_on_its_job(ui_db):
    _many_jobs(300)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        grid = screen.query_one("#jobs-grid", PagedGrid)
        assert grid.cursor_key == 300 and "Job ID▼" in str(grid.render_line(0).text)
        await pilot.press("down", "down")
        key = grid.cursor_key
        await pilot.press("o")  # Job description, ascending
        await pilot.pause()
        assert screen.sort == "description" and not screen.sort_descending
        header = grid.render_line(0).text
        assert "Job description▲" in header and "Job ID▼" not in header
        assert grid.cursor_key == key
        descriptions = [grid.row_at(i).cells[1] for i in range(grid.row_count)]
        assert descriptions == sorted(descriptions) and grid.row_count == 300
        await pilot.press("O")  # reversed
        await pilot.pause()
        assert screen.sort_descending and "Job description▼" in grid.render_line(0).text
        assert grid.cursor_key == key
        await pilot.press("end")
        last = grid.row_at(grid.row_count - 1)
        assert grid.cursor_key == last.key and last.cells[1] == "Job 0"
        # Clicking the Scheduled start header sorts by it.
        await pilot.click("#jobs-grid", offset=(36, 0))
        await pilot.pause()
        assert screen.sort == "start" and "Scheduled start▲" in grid.render_line(0).text
        for _ in range(6):  # status, recurrence, company, created by, priority, then back to Job ID
            await pilot.press("o")
        await pilot.pause()
        assert (screen.sort, screen.sort_descending) == ("id", True)


@sync
async def test_progress_bars_of_executing_tasks_and_jobs(ui_db):
    m.Company.get_or_create(id="USMF")
    job = jobs.create_job(actor=Actor.current(USER), description="Month-end close", company="USMF",
                          scheduled_start="2026-03-02T13:00:00", time_zone="UTC")
    for name in ("First", "Second", "Third", "Fourth"):
        jobs.add_task(job.id, actor=Actor.current(USER), description=name, class_name="Noop")
    st.set_job_status(job.id, BatchStatus.WAITING, Actor.current(USER))
    EngineStore().start_due_jobs("AOS1", now=T0)
    claimed = EngineStore().claim_ready_tasks("AOS1", served_groups("AOS1") or [""], limit=3, now=T0)
    assert len(claimed) == 3
    EngineStore().report_progress(claimed[0].attempt_id, 0.5, "Half way")
    EngineStore().report_progress(claimed[1].attempt_id, 0.25)
    # The third has reported nothing yet; the fourth waits: (0.5 + 0.25 + 0 + 0) / 4
    app = make_app(poll_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        grid = app.screen.query_one("#jobs-grid", PagedGrid)
        row = grid_rows(grid)[0]
        assert row[3] == "Executing" and row[4].endswith(" 19%") and "█" in row[4]
        await pilot.press("enter")
        await pilot.pause()
        tasks = app.screen.query_one("#tasks-grid", PagedGrid)
        progress = [r[6] for r in grid_rows(tasks)]
        assert progress[0].endswith(" 50%") and progress[1].endswith(" 25%")
        assert progress[2].endswith("  0%") and progress[3] == "no live batch server serves batch group ''"
        await pilot.press("4")
        await pilot.pause()
        assert "Progress:" in str(app.screen.query_one("#task-log").render()) and "Half way" in str(
            app.screen.query_one("#task-log").render())
        # The engine moves on: the first task ends, the second reports more.
        EngineStore().finish_attempts([Outcome(claimed[0].task_id, claimed[0].attempt_id, "ended")], now=T0)
        EngineStore().report_progress(claimed[1].attempt_id, 0.75)
        assert await wait_for(pilot, lambda: grid_rows(tasks)[1][6].endswith(" 75%"), timeout=5)
        assert grid_rows(tasks)[0][6] == ""  # ended: no bar
        await pilot.press("escape", "escape")  # the log, then the form
        await pilot.pause()
        assert app.screen.query_one("#jobs-grid", PagedGrid) is grid
        # (1 + 0.75 + 0 + 0) / 4 on the Batch jobs page, refreshed when it came back
        assert await wait_for(pilot, lambda: grid_rows(grid)[0][4].endswith(" 44%"), timeout=5)


def test_progress_bar_text():
    from batchtui.ui.progress import attempt_fraction, bar

    assert bar(0) == "░░░░░░   0%"
    assert bar(1) == "██████ 100%"
    assert bar(0.999).endswith(" 99%")  # never 100% before it is done
    assert bar(0.5) == "███░░░  50%"
    assert attempt_fraction(0.3, None) == 0.3
    assert attempt_fraction(None, T0) == 1.0  # an ended attempt counts as done
    assert attempt_fraction(7, None) == 1.0


@sync
async def test_demo_console_defaults_a_new_job_to_usmf(ui_db):
    for cid in ("DAT", "USMF"):
        m.Company.get_or_create(id=cid)
    app = make_app(company="USMF")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+n", *"Demo job", "ctrl+s")
        await pilot.pause()
    assert m.BatchJob.get(m.BatchJob.description == "Demo job").company_id == "USMF"
    app = make_app()  # elsewhere the config's default company (DAT)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.default_company == app.config.default_company


def test_screenshot_script_writes_svgs(tmp_path):
    """The script behind screenshots/ runs (one picture here; all of them take a while)."""
    import subprocess
    import sys

    out = tmp_path / "shots"
    result = subprocess.run([sys.executable, "-m", "batchtui.ui.screenshots", str(out), "batch-jobs"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    svg = (out / "batch-jobs.svg").read_text()
    assert svg.startswith("<svg") and "Executing" in svg and "Subledger" in svg


# -- dialogs: validation ----------------------------------------------------------


@sync
async def test_recurrence_dialog_validation(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.query_one("#jobs-grid", PagedGrid).move_to_key(ids["ran"])
        await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        dialog = app.screen
        every = dialog.query_one("#rec-every")
        every.value = "0"
        await pilot.pause()
        assert "Every" in message(dialog, "#rec-error")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog  # not accepted
        every.value = "2"
        dialog.query_one("#rec-date").value = "2026-02-30"
        await pilot.pause()
        assert "Start date" in message(dialog, "#rec-error")
        dialog.query_one("#rec-date").value = "2026-03-02"
        dialog.query_one("#rec-pattern").value = "weeks"
        await pilot.pause()
        assert "day of the week" in message(dialog, "#rec-error")
        dialog.query_one("#wd-mon").value = True
        await pilot.pause()
        assert message(dialog, "#rec-error") == ""
        assert "Next:" in message(dialog, "#rec-preview")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        assert m.BatchJob.get_by_id(ids["ran"]).recurrence is None


@sync
async def test_alerts_dialog_validation(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.query_one("#jobs-grid", PagedGrid).move_to_key(ids["close"])
        await pilot.press("a")
        await pilot.pause()
        dialog = app.screen
        dialog.query_one("#alert-popup").value = True
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog
        assert "Choose when" in message(dialog, "#alert-error-line")
        await pilot.press("escape")
        await pilot.pause()
        assert not m.JobAlert.select().where(m.JobAlert.job == ids["close"]).exists()


@sync
async def test_change_status_refused_with_reason(ui_db):
    ids = seed_with_close_executing()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.query_one("#jobs-grid", PagedGrid).move_to_key(ids["close"])
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        assert type(app.screen).__name__ == "ChangeStatusDialog"
        await pilot.press("ctrl+s")
        await pilot.pause()
        text = message(screen, "#job-message")
        assert "refused" in text and "Executing" in text
        assert m.BatchJob.get_by_id(ids["close"]).status == BatchStatus.EXECUTING


@sync
async def test_copy_dialog(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.query_one("#jobs-grid", PagedGrid).move_to_key(ids["close"])
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        dialog = app.screen
        dialog.query_one("#copy-description").value = ""
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Job description" in message(dialog, "#copy-error")
        dialog.query_one("#copy-start").value = "tomorrow"
        dialog.query_one("#copy-description").value = "Copy of close"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "Scheduled start" in message(dialog, "#copy-error")
        dialog.query_one("#copy-start").value = ""
        await pilot.press("ctrl+s")
        await pilot.pause()
        copy = m.BatchJob.get(m.BatchJob.description == "Copy of close")
        assert copy.status == BatchStatus.HOLD
        assert m.BatchTask.select().where(m.BatchTask.job == copy.id).count() == 2
        assert screen.job_id == copy.id


@sync
async def test_task_parameters_validation(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.query_one("#jobs-grid", PagedGrid).move_to_key(ids["close"])
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "BatchTasksScreen", timeout=5)
        await pilot.pause()
        tasks = app.screen
        assert tasks.task_id == ids["t1"]
        await pilot.press("2")
        await wait_for(pilot, lambda: bool(tasks.query("#" + tasks.parameters.field_id("seconds"))), timeout=5)
        seconds = tasks.query_one("#" + tasks.parameters.field_id("seconds"))
        assert seconds.value == "2"
        seconds.value = "abc"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "seconds" in message(tasks, "#task-message")
        assert m.BatchTask.get_by_id(ids["t1"]).params == {"seconds": 2}
        seconds.value = "-1"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "seconds" in message(tasks, "#task-message")
        seconds.value = "5"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert m.BatchTask.get_by_id(ids["t1"]).params == {"seconds": 5}


@sync
async def test_condition_on_itself_refused(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.screen.query_one("#jobs-grid", PagedGrid).move_to_key(ids["close"])
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "BatchTasksScreen", timeout=5)
        await pilot.pause()
        tasks = app.screen
        # t1 waits on t2 would make a cycle (t2 waits on t1).
        await pilot.press("3", "ctrl+n")
        await wait_for(pilot, lambda: tasks.query_one("#condition-new").display, timeout=5)
        await pilot.pause()
        tasks.query_one("#cond-parent").value = ids["t2"]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "cycle" in message(tasks, "#task-message")
        assert not m.BatchConstraint.select().where(m.BatchConstraint.task == ids["t1"]).exists()


@sync
async def test_task_text_is_shown_safely(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.screen.query_one("#jobs-grid", PagedGrid).move_to_key(ids["ran"])
        await pilot.press("enter")
        await pilot.pause()
        tasks = app.screen
        row = grid_rows(tasks.query_one("#tasks-grid"))[0]
        assert "\\x1b[31m" in row[1] and "\x1b" not in row[1]
        await pilot.press("4")
        log = message(tasks, "#task-log")
        assert "\\x1b[2J" in log and "\x1b" not in log


def test_safe_text():
    assert visible("a\x1b[31mb\x07\r\n\u202e") == "a\\x1b[31mb\\a\\r\\n\\u202e"
    assert visible("line1\nline2", keep_newlines=True) == "line1\nline2"
    assert visible("[b]not markup[/b]") == "[b]not markup[/b]"


@sync
async def test_navigation_and_palette(ui_db):
    seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("f2")
        await pilot.pause()
        assert type(app.screen).__name__ == "NavigationScreen"
        await pilot.press("down", "enter")  # Batch job history
        await pilot.pause()
        assert type(app.screen).__name__ == "HistoryScreen"
        await pilot.press("escape")
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in ("Batch jobs", "Batch job history", "Batch groups", "Batch servers", "Action center",
                       "Batch job history clean-up", "Recurrence", "Alerts", "Change status", "View tasks",
                       "Copy", "View history", "Cancel job", "New", "Save", "Delete"):
            assert wanted in titles, wanted
        await pilot.press("f1")
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpDialog"


@sync
async def test_groups_form(ui_db):
    seed_data()
    app = make_app(user="root")  # a batch job manager (no config file: the managers are root)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.open_screen("groups")
        await pilot.pause()
        screen = app.screen
        await pilot.press("ctrl+n", *"NIGHT", "tab", *"Night runs", "tab", *"AOS1, AOS2", "ctrl+s")
        await pilot.pause()
        assert m.BatchGroup.get_by_id("NIGHT").description == "Night runs"
        assert sorted(s.server for s in m.BatchGroupServer.select().where(m.BatchGroupServer.group == "NIGHT")) \
            == ["AOS1", "AOS2"]
        # A group in use cannot be deleted: the reason is shown.
        screen.query_one(PagedGrid).move_to_key("INVOICE")
        await pilot.pause()
        await pilot.press("alt+f9")
        await pilot.pause()
        app.screen.query_one("#answer-delete").press()
        await pilot.pause()
        assert "used by tasks" in message(screen, "#group-message")


# -- snapshots ------------------------------------------------------------------------


def _snap_app(ui_db, **kwargs) -> tuple[BatchTuiApp, dict]:
    ids = seed_data()
    return make_app(**kwargs), ids


async def _goto_job(pilot, job_id):
    pilot.app.screen.query_one("#jobs-grid", PagedGrid).move_to_key(job_id)
    await pilot.pause()


def test_snapshot_batch_jobs(ui_db, snap_compare):
    app, _ = _snap_app(ui_db)
    assert snap_compare(app, terminal_size=(120, 40))


def test_snapshot_batch_jobs_80x24(ui_db, snap_compare):
    app, _ = _snap_app(ui_db)
    assert snap_compare(app, terminal_size=(80, 24))


def test_snapshot_batch_tasks(ui_db, snap_compare):
    app, ids = _snap_app(ui_db)

    async def before(pilot):
        await _goto_job(pilot, ids["close"])
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


def test_snapshot_batch_tasks_parameters(ui_db, snap_compare):
    app, ids = _snap_app(ui_db)

    async def before(pilot):
        await _goto_job(pilot, ids["close"])
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


def test_snapshot_batch_tasks_conditions(ui_db, snap_compare):
    app, ids = _snap_app(ui_db)

    async def before(pilot):
        await _goto_job(pilot, ids["close"])
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("down", "3")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


def test_snapshot_batch_tasks_log(ui_db, snap_compare):
    app, ids = _snap_app(ui_db)

    async def before(pilot):
        await _goto_job(pilot, ids["ran"])
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("4")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


def test_snapshot_history(ui_db, snap_compare):
    app, ids = _snap_app(ui_db)

    async def before(pilot):
        await _goto_job(pilot, ids["ran"])
        await pilot.press("h")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


@pytest.mark.parametrize("screen_name", ["groups", "action_center", "history"])
def test_snapshot_forms(ui_db, snap_compare, screen_name):
    app, _ = _snap_app(ui_db)

    async def before(pilot):
        pilot.app.open_screen(screen_name)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


def test_snapshot_servers(ui_db, snap_compare):
    app, _ = _snap_app(ui_db)

    async def before(pilot):
        from batchtui.ui.screens.servers import BatchServersScreen

        pilot.app.push_screen(BatchServersScreen(now=T0))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


@pytest.mark.parametrize("key, job", [("r", "close"), ("a", "ran"), ("t", "close"), ("c", "close"),
                                      ("x", "close"), ("alt+f9", "close"), ("f1", "close"), ("f2", "close")])
def test_snapshot_dialogs(ui_db, snap_compare, key, job):
    app, ids = _snap_app(ui_db)

    async def before(pilot):
        await _goto_job(pilot, ids[job])
        await pilot.press(key)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


def test_snapshot_cleanup_dialog(ui_db, snap_compare):
    app, _ = _snap_app(ui_db)

    async def before(pilot):
        pilot.app.action_cleanup()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)


def test_snapshot_unsaved_changes(ui_db, snap_compare):
    app, _ = _snap_app(ui_db)

    async def before(pilot):
        pilot.app.screen.query_one("#job-description").value = "Changed"
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=before)
