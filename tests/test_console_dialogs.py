"""Dialogs and messages of the console (#12): help in every dialog, input never lost to "?",
an option chosen by typing into its field, messages in the form's words, refusals at once,
clean-up asked first, the Copy dialog's options, Run by, the theme remembered."""

from __future__ import annotations

from datetime import timedelta

from textual.color import Color

from batchtui import jobs
from batchtui import models as m
from batchtui.actor import Actor
from batchtui.config import load_config, save_theme
from batchtui.ui.safe_text import for_console
from batchtui.ui.widgets.paged_grid import PagedGrid
from batchtui.vocabulary import BatchStatus

from . import test_ui
from .test_ui import USER, make_app, message, seed_data, sync

ui_db = test_ui.ui_db  # the same isolated database per test


async def open_job(app, pilot, job_id, key=None):
    app.screen.query_one("#jobs-grid", PagedGrid).move_to_key(job_id)
    await pilot.pause()
    app.screen._flush_pending()  # the form follows the cursor after a short pause: now
    await pilot.pause()
    if key:
        await pilot.press(key)
        await pilot.pause()


@sync
async def test_every_dialog_has_its_help_and_question_mark_keeps_the_typed_text(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        jobs_screen = app.screen
        for key, title in (("r", "Recurrence"), ("a", "Alerts"), ("x", "Cancel batch job")):
            await open_job(app, pilot, ids["close"] if key != "x" else ids["sub"], key)
            dialog = app.screen
            assert dialog is not jobs_screen, key
            await pilot.press("f1")
            await pilot.pause()
            helper = app.screen
            assert type(helper).__name__ == "HelpDialog", (key, type(helper).__name__)
            assert f"Help: {title}" in str(helper.query_one(".dialog-title").render())
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is dialog  # back in the dialog, as it was
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is jobs_screen, key
        # Recurrence: the start date is focused with its text selected; "?" leaves it whole.
        await open_job(app, pilot, ids["close"], "r")
        dialog = app.screen
        date = dialog.query_one("#rec-date")
        before = date.value
        assert app.focused is date and before
        await pilot.press("question_mark")
        await pilot.pause()
        assert date.value == before
        helps = dialog.HELP_EXTRA
        assert any("typing a count" in text for _, text in helps)


@sync
async def test_typing_into_an_option_s_field_chooses_that_option(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await open_job(app, pilot, ids["sub"], "r")  # every 10 minutes, no end date
        dialog = app.screen
        assert dialog.query_one("#end-never").value
        dialog.query_one("#rec-after").focus()
        await pilot.press("backspace", "backspace", "3")
        await pilot.pause()
        assert dialog.query_one("#end-after").value and not dialog.query_one("#end-never").value
        assert "3 times" in message(dialog, "#rec-sentence")
        dialog.query_one("#rec-by").focus()
        await pilot.press(*"2026-12-31")
        await pilot.pause()
        assert dialog.query_one("#end-by").value and not dialog.query_one("#end-after").value
        assert "2026-12-31" in message(dialog, "#rec-sentence")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert m.BatchJob.get_by_id(ids["sub"]).recurrence["end"] == {"by": "2026-12-31"}


@sync
async def test_a_task_saved_without_a_class_says_so_in_the_form_s_words(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await open_job(app, pilot, ids["close"], "enter")
        tasks = app.screen
        await pilot.press("ctrl+n", *"No class here")
        await pilot.press("ctrl+s")
        await pilot.pause()
        said = message(tasks, "#task-message")
        assert said.startswith("Class name:"), said
        assert "NoSelection" not in said and "batchtui" not in said
        assert not m.BatchTask.select().where(m.BatchTask.description == "No class here").exists()


def test_console_messages_leave_command_line_hints_out():
    assert for_console("unknown batch group 'X' (see `batchtui group list`)") == "unknown batch group 'X'"
    assert for_console("batch server 'A': nothing to change (--threads, --reserved or --schedule)") == \
        "batch server 'A': nothing to change"
    assert for_console("Runs at 22:00 (every day), 5 times") == "Runs at 22:00 (every day), 5 times"


@sync
async def test_message_line_shows_a_service_refusal_without_its_command_line_hint(ui_db):
    seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.show_message("unknown batch group 'X' (see `batchtui group list`)")
        await pilot.pause()
        assert message(screen, "#job-message") == "unknown batch group 'X'"


@sync
async def test_delete_of_a_running_job_is_refused_at_once_with_the_reason(ui_db):
    ids = seed_data()
    m.BatchJob.update(status=int(BatchStatus.EXECUTING)).where(m.BatchJob.id == ids["close"]).execute()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        await open_job(app, pilot, ids["close"], "alt+f9")
        assert app.screen is screen  # no question asked
        said = message(screen, "#job-message")
        assert "Executing" in said and "cancel" in said.lower()
        assert m.BatchJob.get_or_none(m.BatchJob.id == ids["close"]) is not None
        # Its tasks: the same.
        await pilot.press("enter")
        await pilot.pause()
        tasks = app.screen
        await pilot.press("alt+f9")
        await pilot.pause()
        assert app.screen is tasks and "Executing" in message(tasks, "#task-message")
        assert m.BatchTask.select().where(m.BatchTask.job == ids["close"]).count() == 2
        # A job that does not run: asked first, as before.
        await pilot.press("escape")
        await pilot.pause()
        await open_job(app, pilot, ids["sub"], "alt+f9")
        assert type(app.screen).__name__ == "ConfirmDialog"


@sync
async def test_history_clean_up_counts_and_asks_first(ui_db):
    ids = seed_data()
    old = m.JobRun.get(m.JobRun.job == ids["ran"])
    m.JobRun.update(ended=old.ended - timedelta(days=400)).where(m.JobRun.id == old.id).execute()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        for answer in ("escape", "enter"):
            app.action_cleanup()
            await pilot.pause()
            await pilot.press("ctrl+s")  # OK: 30 days, any status
            await pilot.pause()
            confirm = app.screen
            assert type(confirm).__name__ == "ConfirmDialog"
            text = str(confirm.query_one(".dialog-message").render())
            assert "1 run(s)" in text and "30 day(s)" in text
            assert m.JobRun.select().where(m.JobRun.id == old.id).exists()  # nothing gone yet
            if answer == "enter":
                await pilot.press("left", "enter")  # Cancel is the default: move to Delete
            else:
                await pilot.press("escape")
            await pilot.pause()
        assert not m.JobRun.select().where(m.JobRun.id == old.id).exists()
        assert any("Deleted 1 run(s)" in n.message for n in app._notifications)
        # Nothing matches: said at once, no question.
        app.action_cleanup()
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert type(app.screen).__name__ != "ConfirmDialog"
        assert any("nothing deleted" in n.message for n in app._notifications)


@sync
async def test_copy_offers_company_and_keeping_recurrence_and_alerts(ui_db):
    ids = seed_data()
    jobs.set_alert(ids["close"], actor=Actor.current(USER), alert_user=USER, error=True, popup=True)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await open_job(app, pilot, ids["close"], "c")
        dialog = app.screen
        dialog.query_one("#copy-description").value = "Close in USRT"
        dialog.query_one("#copy-company").value = "USRT"
        dialog.query_one("#copy-recurrence").value = False
        dialog.query_one("#copy-alerts").value = False
        await pilot.press("ctrl+s")
        await pilot.pause()
        copy = m.BatchJob.get(m.BatchJob.description == "Close in USRT")
        assert copy.company_id == "USRT" and copy.recurrence is None and copy.recurrence_text == ""
        assert not m.JobAlert.select().where(m.JobAlert.job == copy.id).exists()
        assert {t.company_id for t in m.BatchTask.select().where(m.BatchTask.job == copy.id)} == {"USRT"}
        # Kept by default: recurrence and alerts come along, the company stays.
        await open_job(app, pilot, ids["close"], "c")
        app.screen.query_one("#copy-description").value = "Close again"
        await pilot.press("ctrl+s")
        await pilot.pause()
        again = m.BatchJob.get(m.BatchJob.description == "Close again")
        assert again.company_id == "USMF" and again.recurrence is not None
        assert m.JobAlert.select().where(m.JobAlert.job == again.id).exists()


@sync
async def test_run_by_beside_created_by(ui_db):
    ids = seed_data()
    m.BatchJob.update(run_by="svc-batch").where(m.BatchJob.id == ids["close"]).execute()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await open_job(app, pilot, ids["close"])
        screen = app.screen
        assert str(screen.query_one("#job-created-by").render()) == USER
        assert str(screen.query_one("#job-run-by").render()) == "svc-batch"
        assert screen.query_one("#job-run-by").region.right <= 80


@sync
async def test_status_colours_come_from_the_theme(ui_db):
    ids = seed_data()
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        grid = app.screen.query_one("#jobs-grid", PagedGrid)
        row = grid.row_at(grid._index_of(ids["ran"]) if grid._index_of(ids["ran"]) is not None else 0)
        seen = {}
        for theme in ("textual-dark", "solarized-light"):
            app.theme = theme
            await pilot.pause()
            style = grid._style(row.styles[3])
            seen[theme] = style.color.triplet.hex if style.color and style.color.triplet else None
            assert seen[theme] == Color.parse(app.theme_variables["text-error"]).hex.lower()
        assert seen["textual-dark"] != seen["solarized-light"]


@sync
async def test_the_chosen_theme_is_remembered_in_the_config(ui_db, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('# mine\ndefault_company = "USMF"\n\n[smtp]\nhost = "mail.example.com"\n')
    path.chmod(0o600)
    app = make_app(config=load_config(path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.theme = "nord"
        await pilot.pause()
    text = path.read_text()
    assert 'theme = "nord"' in text and "# mine" in text and 'host = "mail.example.com"' in text
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_config(path)
    assert again.theme == "nord" and again.smtp.host == "mail.example.com" and again.default_company == "USMF"
    app = make_app(config=again)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == "nord"
    save_theme(path, "gruvbox")  # replaced, not added twice
    assert path.read_text().count("theme =") == 1 and load_config(path).theme == "gruvbox"


@sync
async def test_batch_groups_flag_a_group_no_live_server_serves(ui_db):
    seed_data()  # INVOICE is served by AOS1, whose heartbeat is months old
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.open_screen("groups")
        await pilot.pause()
        grid = app.screen.query_one("#groups-grid", PagedGrid)
        rows = {grid.row_at(i).key: grid.row_at(i) for i in range(grid.row_count)}
        assert rows["INVOICE"].cells[1] == "None: waits" and "error" in rows["INVOICE"].styles[1]
        from batchtui.timeutil import utcnow

        m.BatchServer.update(heartbeat=utcnow(), stopped=None).where(m.BatchServer.name == "AOS1").execute()
        await pilot.press("f5")
        await pilot.pause()
        rows = {grid.row_at(i).key: grid.row_at(i) for i in range(grid.row_count)}
        assert rows["INVOICE"].cells[1] == "AOS1" and not rows["INVOICE"].styles[1]
