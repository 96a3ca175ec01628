"""The console's side of issue 14: Time limit, Late after, the late alert, Run now (n) and
Rerun failed (f), kept tasks in the history; real key presses through Pilot, a real SQLite file."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")

from batchtui import jobs  # noqa: E402
from batchtui import models as m  # noqa: E402
from batchtui.actor import Actor  # noqa: E402
from batchtui.ui.widgets.paged_grid import PagedGrid  # noqa: E402
from batchtui.vocabulary import BatchStatus  # noqa: E402

from . import test_ui  # noqa: E402
from .test_ui import USER, grid_rows, make_app, message, sync, wait_for  # noqa: E402

ui_db = test_ui.ui_db  # the same isolated database per test


def _job(**extra) -> tuple[int, dict[str, int]]:
    (created,) = jobs.import_jobs({"description": "Plant close", "status": "withhold", "time_zone": "UTC",
                                   "scheduled_start": "2026-12-01T22:00:00", **extra}, actor=Actor.current(USER))
    return created["id"], created["tasks"]


async def _type_into(pilot, screen, wid: str, text: str) -> None:
    field = screen.query_one(wid)
    field.focus()
    await pilot.pause()
    await pilot.press("ctrl+a", "ctrl+k", *text) if text else await pilot.press("ctrl+a", "ctrl+k")


@sync
async def test_time_limit_late_after_and_the_late_alert_are_set_in_the_forms(ui_db):
    job_id, tasks = _job(tasks=[{"key": "a", "description": "Hangs", "class": "Noop"}])
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        # Late after on the job form: refused values keep what was typed and save nothing.
        for bad in ("x", "0"):
            await _type_into(pilot, screen, "#job-late", bad)
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "Late after" in message(screen, "#job-message"), bad
            assert screen.query_one("#job-late").value == bad
            assert m.BatchJob.get_by_id(job_id).late_after is None
        await _type_into(pilot, screen, "#job-late", "900")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert m.BatchJob.get_by_id(job_id).late_after == 900
        # The Alerts dialog: Is late, with a pop-up.
        screen.grid.focus()
        await pilot.press("a")
        await pilot.pause()
        assert type(app.screen).__name__ == "AlertsDialog"
        await pilot.press("tab", "tab", "tab", "space", "tab", "tab", "tab", "space", "ctrl+s")  # pop-up, Is late
        await pilot.pause()
        alert = m.JobAlert.get((m.JobAlert.job == job_id) & (m.JobAlert.user == USER))
        assert alert.late and alert.popup and not (alert.ended or alert.error or alert.canceled)
        # Time limit on the task form.
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "BatchTasksScreen", timeout=5)
        form = app.screen
        for bad in ("abc", "-1"):
            await _type_into(pilot, form, "#task-limit", bad)
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "Time limit" in message(form, "#task-message"), bad
            assert m.BatchTask.get_by_id(tasks["a"]).time_limit is None
        await _type_into(pilot, form, "#task-limit", "2.5")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert m.BatchTask.get_by_id(tasks["a"]).time_limit == 2.5
        await _type_into(pilot, form, "#task-limit", "")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert m.BatchTask.get_by_id(tasks["a"]).time_limit is None
        # Run now with no batch server running: the job says it is requested.
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        screen.grid.focus()
        await pilot.press("n")
        await pilot.pause()
        assert m.BatchJob.get_by_id(job_id).run_request == "run"
        assert "Run now requested" in message(screen, "#job-waiting")
    assert app._exception is None


@sync
async def test_run_now_and_rerun_failed_keys_and_kept_tasks_in_the_history(ui_db):
    job_id, tasks = _job(tasks=[{"key": "ok", "description": "Post", "class": "Noop"},
                                {"key": "bad", "description": "Close", "class": "Fail",
                                 "params": {"message": "[b]no[/b]"}}])
    app = make_app(server=True, poll_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert screen.job_id == job_id
        # Rerun before any run: refused, in one line.
        await pilot.press("f")
        await pilot.pause()
        assert "Rerun refused: job" in message(screen, "#job-message")
        await pilot.press("n")
        assert await wait_for(pilot, lambda: m.JobRun.select().where(m.JobRun.job == job_id).count() == 1
                              and m.BatchJob.get_by_id(job_id).status == BatchStatus.HOLD, timeout=20)
        assert m.JobRun.get(m.JobRun.job == job_id).status == BatchStatus.ERROR
        m.BatchTask.update(class_name="Noop", params={}).where(m.BatchTask.id == tasks["bad"]).execute()
        await pilot.press("f")
        assert await wait_for(pilot, lambda: m.JobRun.select().where(
            (m.JobRun.job == job_id) & m.JobRun.ended.is_null(False)).count() == 2, timeout=20)
        newest = m.JobRun.get((m.JobRun.job == job_id) & (m.JobRun.run_no == 2))
        assert (newest.status, newest.requested) == (BatchStatus.FINISHED, "rerun")
        # The history screen marks the kept task.
        await pilot.press("h")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "HistoryScreen", timeout=5)
        hist = app.screen
        assert await wait_for(pilot, lambda: hist.query_one("#runs-grid", PagedGrid).row_count == 2, timeout=5)
        assert await wait_for(pilot, lambda: [r[4] for r in grid_rows(hist.query_one("#run-tasks-grid"))]
                              == ["kept", "1"], timeout=5), grid_rows(hist.query_one("#run-tasks-grid"))
    assert app._exception is None


@sync
async def test_an_attempt_handed_back_before_it_began_is_not_in_the_history_or_the_log_tab(ui_db):
    """The engine closes such an attempt Canceled and keeps it ``queued`` (claimed ahead, never
    begun: tests/test_claim_ahead.py makes them with a real server). Here one is written as the
    engine writes it, beside an attempt that ran; history shows only the one that ran."""
    from batchtui.ui.screens.tasks_source import latest_attempt_log

    job_id, tasks = _job(tasks=[{"key": "ok", "description": "Post", "class": "Noop"}])
    app = make_app(server=True, poll_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("n")
        assert await wait_for(pilot, lambda: m.JobRun.select().where(
            (m.JobRun.job == job_id) & m.JobRun.ended.is_null(False)).count() == 1, timeout=20)
        ran = m.TaskAttempt.get(m.TaskAttempt.task == tasks["ok"])
        m.TaskAttempt.create(run=ran.run_id, task=ran.task_id, attempt=2, status=BatchStatus.CANCELED,
                             started=ran.ended, ended=ran.ended, server="AOS9", queued=1,
                             log="Not started: batch server AOS9 had claimed it ahead and stopping; handed back")
        assert "Attempt 1: Ended" in str(latest_attempt_log(tasks["ok"], job_id))
        await pilot.press("h")
        assert await wait_for(pilot, lambda: type(app.screen).__name__ == "HistoryScreen", timeout=5)
        hist = app.screen
        assert await wait_for(pilot, lambda: [r[4] for r in grid_rows(hist.query_one("#run-tasks-grid"))]
                              == ["1"], timeout=5), grid_rows(hist.query_one("#run-tasks-grid"))
        assert await wait_for(pilot, lambda: [r[:2] for r in grid_rows(hist.query_one("#attempts-grid"))]
                              == [["1", "Ended"]], timeout=5), grid_rows(hist.query_one("#attempts-grid"))
    assert app._exception is None


@sync
async def test_run_now_is_not_offered_while_the_job_runs(ui_db):
    job_id, _ = _job(tasks=[{"key": "s", "description": "Sleep", "class": "Sleep", "params": {"seconds": 6}}])
    app = make_app(server=True, poll_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("n")
        assert await wait_for(pilot, lambda: screen.job_status == BatchStatus.EXECUTING, timeout=20)
        await pilot.press("n", "f")
        await pilot.pause()
        assert m.BatchJob.get_by_id(job_id).run_request is None
        assert screen.check_action("run_now", ()) is None and screen.check_action("rerun", ()) is None
    assert app._exception is None


@sync
async def test_a_late_run_pops_up_once_and_is_listed_in_the_action_center(ui_db):
    job_id, _ = _job(late_after=0.5, alerts=[{"user": USER, "late": True, "popup": True}],
                     tasks=[{"key": "s", "description": "Slow [b]close[/b]", "class": "Sleep",
                             "params": {"seconds": 4}}])
    app = make_app(server=True, poll_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("n")

        def late_toasts():
            return [n for n in app._notifications if "is late" in n.message]

        assert await wait_for(pilot, late_toasts, timeout=20), [n.message for n in app._notifications]
        assert await wait_for(pilot, lambda: m.BatchJob.get_by_id(job_id).status == BatchStatus.HOLD, timeout=20)
        assert m.Alert.select().where((m.Alert.event == "late") & (m.Alert.job == job_id)).count() == 1
        await pilot.press("f4")
        await pilot.pause()
        center = app.screen
        assert type(center).__name__ == "ActionCenterScreen"
        rows = grid_rows(center.query_one(PagedGrid))
        assert sum("is late" in " ".join(r) for r in rows) == 1, rows
    assert app._exception is None
