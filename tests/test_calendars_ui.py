"""The console's side of calendars (issue 14), through real key presses (Pilot) at 120x40 and
80x24: the Calendars form in Setup, and the Recurrence dialog's calendar, whose preview
shows the closed days' effect before it is saved."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

from batchtui import calendars  # noqa: E402
from batchtui import models as m  # noqa: E402
from batchtui.actor import Actor  # noqa: E402
from batchtui.ui.widgets.paged_grid import PagedGrid  # noqa: E402

from . import test_ui  # noqa: E402
from .test_ui import grid_rows, make_app, message, seed_data, sync  # noqa: E402

ui_db = test_ui.ui_db

SIZES = [(120, 40), (80, 24)]


@pytest.fixture
def manager_db(ui_db, tmp_path):
    (tmp_path / "config.toml").write_text('managers = ["ops"]\n')
    return ui_db


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_calendars_form_adds_refuses_and_deletes(manager_db, size):
    seed_data()
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.open_screen("calendars")
        await pilot.pause()
        screen = app.screen
        assert type(screen).__name__ == "CalendarsScreen"
        await pilot.press("ctrl+n", *"Plant", "tab", *"[b]Plant days", "tab", "tab", *"XX", "ctrl+s")
        await pilot.pause()
        assert "unknown country code 'XX'" in message(screen, "#calendar-message")
        assert m.ClosedCalendar.select().count() == 0
        await pilot.press("backspace", "backspace", *"US", "tab", *"TX", "tab", *"2027-07-05", "ctrl+s")
        await pilot.pause()
        row = m.ClosedCalendar.get_by_id("Plant")
        assert (row.weekends, row.country, row.subdiv, row.dates) == (True, "US", "TX", ["2027-07-05"])
        assert row.description == "[b]Plant days"
        rows = grid_rows(screen.query_one(PagedGrid))
        assert rows[0][:4] == ["Plant", "Yes", "US-TX", "1"]
        # A calendar a recurrence names is not deleted: the form says which job.
        job = m.BatchJob.get(m.BatchJob.description == "Month-end close")
        m.BatchJob.update(recurrence={**job.recurrence, "calendar": "Plant"}).where(m.BatchJob.id == job.id).execute()
        screen.query_one(PagedGrid).focus()
        await pilot.press("alt+f9")
        await pilot.pause()
        app.screen.query_one("#answer-delete").press()
        await pilot.pause()
        assert f"used by the recurrence of job {job.id}" in message(screen, "#calendar-message")
        assert m.ClosedCalendar.get_or_none(m.ClosedCalendar.name == "Plant") is not None


@sync
async def test_only_a_manager_saves_a_calendar(ui_db):
    seed_data()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.open_screen("calendars")
        await pilot.pause()
        await pilot.press("ctrl+n", *"Plant", "ctrl+s")
        await pilot.pause()
        assert "only a batch job manager may" in message(app.screen, "#calendar-message")
        assert m.ClosedCalendar.select().count() == 0


@pytest.mark.parametrize("size", SIZES)
@sync
async def test_the_recurrence_dialog_names_a_calendar_and_previews_its_effect(ui_db, size):
    seed_data()
    calendars.add_calendar("Weekends", actor=Actor.of("boss", managers=["boss"]), weekends=True)
    job = m.BatchJob.get(m.BatchJob.description == "Month-end close")
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.query_one("#jobs-grid").focus()
        while screen.job_id != job.id:
            await pilot.press("down")
            await pilot.pause()
        await pilot.press("r")
        await pilot.pause()
        dialog = app.screen
        assert type(dialog).__name__ == "RecurrenceDialog"
        before = message(dialog, "#rec-preview")
        assert "moved" not in before
        assert not dialog.query_one("#rec-closed").display
        dialog.query_one("#rec-calendar").focus()
        await pilot.press("enter", "down", "enter")  # (none) -> Weekends
        await pilot.pause()
        assert dialog.query_one("#rec-closed").display
        assert "skipping the closed days of Weekends" in message(dialog, "#rec-sentence")
        dialog.query_one("#rec-closed").focus()
        await pilot.press("enter", "down", "enter")  # skip -> move to the next open day
        await pilot.pause()
        preview = message(dialog, "#rec-preview")
        assert "on the next open day of Weekends" in message(dialog, "#rec-sentence")
        # The last Friday of each month at 22:00 is never closed; the preview shows the same dates.
        assert "Sat" not in preview and "Sun" not in preview
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is screen
        saved = m.BatchJob.get_by_id(job.id)
        assert (saved.recurrence["calendar"], saved.recurrence["on_closed_day"]) == ("Weekends", "next_open_day")
        trail = [e.action for e in m.JobAudit.select().where(m.JobAudit.job_id == job.id)]
        assert trail[-1] == "recurrence"


@sync
async def test_the_preview_marks_the_occurrences_a_closed_day_moved(ui_db):
    from datetime import datetime

    from batchtui.ui.dialogs.recurrence import RecurrenceDialog

    seed_data()
    calendars.add_calendar("Weekends", actor=Actor.of("boss", managers=["boss"]), weekends=True)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        dialog = RecurrenceDialog({"pattern": "weeks", "weekdays": ["fri", "sat"], "start": "2027-03-12T22:00:00",
                                   "calendar": "Weekends", "on_closed_day": "next_open_day"},
                                  datetime(2027, 3, 13, 4, 0), "America/Chicago", preview_count=3)
        app.push_screen(dialog)
        await pilot.pause()
        preview = message(dialog, "#rec-preview")
        assert "Fri 2027-03-12 22:00 CST" in preview
        assert "Mon 2027-03-15 22:00 CDT (moved: closed day)" in preview
        assert "Fri 2027-03-19 22:00 CDT" in preview and "Fri 2027-03-19 22:00 CDT (moved" not in preview
