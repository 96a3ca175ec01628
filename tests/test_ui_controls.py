"""The scheduling controls' forms, driven through real key presses (Pilot) at 120x40 and 80x24:
Active periods, Server configuration, the Batch groups form's limit, the job form's Active
period, and the waiting reason in the task grid and the job's detail."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

from batchtui import models as m  # noqa: E402
from batchtui.actor import Actor  # noqa: E402
from batchtui.engine.store import EngineStore  # noqa: E402
from batchtui.periods import add_period  # noqa: E402
from batchtui.ui.widgets.paged_grid import PagedGrid  # noqa: E402

from . import test_ui  # noqa: E402
from .test_ui import USER, grid_rows, make_app, message, seed_data, sync, wait_for  # noqa: E402

ui_db = test_ui.ui_db  # the same isolated database per test

SIZES = [(120, 40), (80, 24)]


@pytest.fixture
def manager_db(ui_db, tmp_path):
    """The acting user ops is a batch job manager (the config file's list)."""
    (tmp_path / "config.toml").write_text('managers = ["ops"]\n')
    return ui_db


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_active_periods_form_adds_refuses_and_deletes(manager_db, size):
    seed_data()
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("f2")
        await pilot.pause()
        app.screen.dismiss("periods")
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "ActivePeriodsScreen"
        await pilot.press("ctrl+n", *"Night", "tab", *"Night window", "tab", "ctrl+u", *"25:00", "ctrl+s")
        await pilot.pause()
        assert "not a time of day" in message(screen, "#period-message")
        assert m.ActivePeriod.select().count() == 0
        await pilot.press("ctrl+u", *"22:00", "tab", "tab", *"mon,fri", "ctrl+s")
        await pilot.pause()
        period = m.ActivePeriod.get_by_id("Night")
        assert (period.start, period.end, period.weekdays) == ("22:00", "06:00", "mon,fri")
        assert "Saved active period Night." in message(screen, "#period-message")
        rows = grid_rows(screen.query_one(PagedGrid))
        assert rows[0][:4] == ["Night", "22:00", "06:00", "Mon, Fri"]
        # A period a job names cannot be deleted: the reason is shown.
        m.BatchJob.update(active_period="Night").where(m.BatchJob.description == "Master planning").execute()
        screen.query_one(PagedGrid).focus()
        await pilot.press("alt+f9")
        await pilot.pause()
        app.screen.query_one("#answer-delete").press()
        await pilot.pause()
        assert "is used by job" in message(screen, "#period-message")
        assert m.ActivePeriod.get_or_none(m.ActivePeriod.name == "Night") is not None


@sync
async def test_a_user_who_is_not_a_manager_is_told_so(ui_db):
    seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.open_screen("periods")
        await pilot.pause()
        await pilot.press("ctrl+n", *"Night", "ctrl+s")
        await pilot.pause()
        assert "only a batch job manager may" in message(app.screen, "#period-message")
        assert m.ActivePeriod.select().count() == 0


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_server_configuration_form_sets_threads_schedule_and_pauses(manager_db, size):
    seed_data()
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.open_screen("servers")
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "BatchServersScreen"
        await pilot.press("enter", *"4", "tab", "ctrl+u", *"6", "ctrl+s")
        await pilot.pause()
        assert "more than its 4 threads" in message(screen, "#server-message")
        assert m.ServerConfig.get_or_none(m.ServerConfig.name == "AOS1") is None
        await pilot.press("ctrl+u", *"1", "tab", *"18:00-06:00=8,06:00-18:00=2", "ctrl+s")
        await pilot.pause()
        config = m.ServerConfig.get_by_id("AOS1")
        assert (config.threads, config.reserved, config.schedule) == (4, 1, ["18:00-06:00=8", "06:00-18:00=2"])
        screen.query_one(PagedGrid).focus()
        await pilot.press("p")
        await pilot.pause()
        assert m.ServerConfig.get_by_id("AOS1").paused
        assert "Paused batch server AOS1." in message(screen, "#server-message")
        await pilot.press("p")
        await pilot.pause()
        assert not m.ServerConfig.get_by_id("AOS1").paused


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_groups_form_sets_the_limit_and_shows_running_tasks(manager_db, size):
    seed_data()
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.open_screen("groups")
        await pilot.pause()
        screen = app.screen
        screen.query_one(PagedGrid).move_to_key("INVOICE")
        await pilot.pause()
        await pilot.press("enter", "tab", "tab", "ctrl+u", *"-3", "ctrl+s")
        await pilot.pause()
        assert "must be -1 (stopped), 0 (no limit)" in message(screen, "#group-message")
        await pilot.press("ctrl+u", *"2", "ctrl+s")
        await pilot.pause()
        assert m.BatchGroup.get_by_id("INVOICE").max_concurrent == 2
        row = next(r for r in grid_rows(screen.query_one(PagedGrid)) if r[0] == "INVOICE")
        assert row[4:] == ["2", "0"]  # after Group, Live servers, Description, Batch servers


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_job_form_active_period_and_the_waiting_reason(manager_db, size):
    ids = seed_data()
    add_period("Night", actor=Actor.of(USER, [USER]), start="22:00", end="06:00")
    m.BatchGroup.update(max_concurrent=-1).where(m.BatchGroup.name == "INVOICE").execute()
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.grid.move_to_key(ids["close"])
        await pilot.pause(0.2)
        from textual.widgets import Select

        select = screen.query_one("#job-period", Select)
        select.focus()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert select.value == "Night"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert m.BatchJob.get_by_id(ids["close"]).active_period == "Night"
        # The job runs; its INVOICE task is held by the stopped group: the detail and the grid say so.
        m.BatchJob.update(status=1, scheduled_start=m.BatchJob.scheduled_start, active_period=None).where(
            m.BatchJob.id == ids["close"]).execute()
        m.BatchTask.update(status=1).where(m.BatchTask.job == ids["close"]).execute()
        EngineStore().start_due_jobs("AOS1", now=m.BatchJob.get_by_id(ids["close"]).scheduled_start)
        screen.grid.move_to_key(ids["sub"])
        await pilot.pause(0.2)
        screen.grid.move_to_key(ids["close"])
        assert await wait_for(pilot, lambda: "is stopped" in str(screen.query_one("#job-waiting").render()))
        assert "batch group 'INVOICE' is stopped" in str(screen.query_one("#job-waiting").render())
        screen.grid.focus()
        await pilot.press("enter")
        await pilot.pause(0.3)
        tasks = app.screen
        rows = grid_rows(tasks.query_one("#tasks-grid", PagedGrid))
        assert rows[0][6] == "batch group 'INVOICE' is stopped"
