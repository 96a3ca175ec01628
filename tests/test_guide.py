"""The task guide: each step's check against a real SQLite file, and the whole
walk-through with real key presses, the embedded batch server and the panel."""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import timedelta

import pytest

from batchtui import jobs
from batchtui import models as m
from batchtui import status as st
from batchtui.actor import Actor
from batchtui.demo import guide
from batchtui.demo.guide import STEPS, GuideSession
from batchtui.engine.store import EngineStore, Outcome
from batchtui.timeutil import utcnow
from batchtui.vocabulary import BatchStatus

USER = "ops"


# -- the checks, one by one ------------------------------------------------------


def new_job(description="Guide job", company="USMF", user=USER):
    return jobs.create_job(actor=Actor.current(user), description=description, company=company)


def run_once(job_id, result="ended"):
    """One run of the job, settled as the engine would: every task ends with ``result``."""
    st.set_job_status(job_id, BatchStatus.WAITING, Actor.current(USER))
    now = utcnow() + timedelta(seconds=5)
    EngineStore().start_due_jobs("AOS1", now=now)
    rounds = 0
    while claimed := EngineStore().claim_ready_tasks("AOS1", [""], 8, now=now):
        EngineStore().finish_attempts([Outcome(c.task_id, c.attempt_id, result) for c in claimed], retry_base=0,
                           now=now)
        rounds += 1
    assert rounds and m.JobRun.get(m.JobRun.job == job_id).ended is not None


def step_done(session: GuideSession) -> list[int]:
    return [s.number for s, ok in zip(STEPS, session.evaluate().done, strict=True) if ok]


def test_steps_follow_the_procedure():
    assert [s.number for s in STEPS] == list(range(1, 10))
    text = " ".join(" ".join(s.instructions) for s in STEPS)
    for key in ("`Ctrl+N`", "`Ctrl+S`", "`r`", "`a`", "`Enter`", "`3`", "`t`", "`USMF`"):
        assert key in text
    assert "import textual" not in open(guide.__file__).read()


def test_nothing_done_before_a_job(database):
    session = GuideSession(USER)
    progress = session.evaluate()
    assert progress.job_id is None and not any(progress.done)
    assert progress.current is STEPS[0]


def test_follows_the_newest_job_of_the_user_since_the_start(database):
    older = new_job("Made before the guide")
    m.BatchJob.update(created=utcnow() - timedelta(minutes=5)).where(m.BatchJob.id == older.id).execute()
    session = GuideSession.start(USER)
    assert session.after_id == older.id
    assert session.job() is None
    new_job("Someone else's", user="jane")
    assert session.job() is None
    first = new_job("First")
    assert session.job().id == first.id
    second = new_job("Second")
    assert session.job().id == second.id
    assert guide.job_created(session.job(), USER)
    assert not guide.job_created(None, USER)


def test_recurrence(database):
    job = new_job()
    assert not guide.has_recurrence(m.BatchJob.get_by_id(job.id), USER)
    jobs.set_recurrence(job.id, {"pattern": "days", "every": 1}, actor=Actor.current(USER))
    assert guide.has_recurrence(m.BatchJob.get_by_id(job.id), USER)
    assert not guide.has_recurrence(None, USER)


def test_alerts_of_the_acting_user(database):
    job = new_job()
    assert not guide.has_alerts(job, USER)
    jobs.set_alert(job.id, actor=Actor.current("jane"), alert_user="jane", ended=True, popup=True)
    assert not guide.has_alerts(job, USER)  # someone else's alert
    jobs.set_alert(job.id, actor=Actor.current(USER), alert_user=USER, popup=True)
    assert not guide.has_alerts(job, USER)  # pop-up, but on no event
    jobs.set_alert(job.id, actor=Actor.current(USER), alert_user=USER, error=True)
    assert guide.has_alerts(job, USER)


def test_one_task_then_two(database):
    job = new_job()
    assert not guide.has_task(job, USER) and not guide.has_two_tasks(job, USER)
    jobs.add_task(job.id, actor=Actor.current(USER), description="First", class_name="Noop")
    assert guide.has_task(job, USER) and not guide.has_two_tasks(job, USER)
    jobs.add_task(job.id, actor=Actor.current(USER), description="Second", class_name="Noop")
    assert guide.has_two_tasks(job, USER)
    other = new_job("Other")
    assert not guide.has_task(other, USER)


def test_condition(database):
    job = new_job()
    t1 = jobs.add_task(job.id, actor=Actor.current(USER), description="First", class_name="Noop")
    t2 = jobs.add_task(job.id, actor=Actor.current(USER), description="Second", class_name="Noop")
    assert not guide.has_condition(job, USER)
    other = new_job("Other")
    o1 = jobs.add_task(other.id, actor=Actor.current(USER), description="A", class_name="Noop")
    o2 = jobs.add_task(other.id, actor=Actor.current(USER), description="B", class_name="Noop")
    jobs.add_condition(o2.id, actor=Actor.current(USER), parent_id=o1.id)
    assert not guide.has_condition(job, USER)  # a condition of another job
    jobs.add_condition(t2.id, actor=Actor.current(USER), parent_id=t1.id, expected="ended")
    assert guide.has_condition(job, USER)


@pytest.mark.parametrize("fields", [{"ignore_failure": True}, {"max_retries": 3}])
def test_failure_handling(database, fields):
    job = new_job()
    task = jobs.add_task(job.id, actor=Actor.current(USER), description="First", class_name="Noop")
    assert not guide.has_failure_handling(job, USER)
    jobs.update_task(task.id, actor=Actor.current(USER), version=task.version, **fields)
    assert guide.has_failure_handling(job, USER)


def test_released_once_waiting_and_after_it_ran(database):
    job = new_job()
    jobs.add_task(job.id, actor=Actor.current(USER), description="First", class_name="Noop")
    assert not guide.is_released(m.BatchJob.get_by_id(job.id), USER)
    st.set_job_status(job.id, BatchStatus.WAITING, Actor.current(USER))
    assert guide.is_released(m.BatchJob.get_by_id(job.id), USER)
    run_once(job.id)
    assert guide.is_released(m.BatchJob.get_by_id(job.id), USER)
    # Put back on hold after a run: the step stays done.
    st.set_job_status(job.id, BatchStatus.HOLD, Actor.current(USER))
    assert guide.is_released(m.BatchJob.get_by_id(job.id), USER)


def test_ran_and_alerted(database):
    job = new_job()
    jobs.add_task(job.id, actor=Actor.current(USER), description="First", class_name="Noop")
    jobs.set_alert(job.id, actor=Actor.current(USER), alert_user=USER, ended=True, error=True, popup=True)
    st.set_job_status(job.id, BatchStatus.WAITING, Actor.current(USER))
    assert not guide.ran_and_alerted(m.BatchJob.get_by_id(job.id), USER)
    run_once(job.id)
    job = m.BatchJob.get_by_id(job.id)
    assert job.status == BatchStatus.FINISHED
    assert guide.ran_and_alerted(job, USER)
    live, note = guide.live_state(job, USER)
    assert "Status: Ended" in live and "Run 1: Ended" in live and note == ""
    assert any(line.startswith("Alert: ") and "ended" in line for line in live)


def test_no_alert_asked_for_that_outcome_still_ends_the_walk(database):
    job = new_job()
    jobs.add_task(job.id, actor=Actor.current(USER), description="First", class_name="Noop")
    jobs.set_alert(job.id, actor=Actor.current(USER), alert_user=USER, error=True, popup=True)
    run_once(job.id)
    job = m.BatchJob.get_by_id(job.id)
    assert m.Alert.select().where(m.Alert.job == job.id).count() == 0
    assert guide.ran_and_alerted(job, USER)
    _, note = guide.live_state(job, USER)
    assert "No alert" in note


def test_a_run_without_the_expected_alert_is_not_done(database):
    job = new_job()
    jobs.add_task(job.id, actor=Actor.current(USER), description="First", class_name="Noop")
    jobs.set_alert(job.id, actor=Actor.current(USER), alert_user=USER, ended=True, popup=True)
    run_once(job.id)
    m.Alert.delete().execute()  # the alert has not reached the user (yet)
    assert not guide.ran_and_alerted(m.BatchJob.get_by_id(job.id), USER)


def test_session_walks_the_steps_in_order(database):
    session = GuideSession(USER)
    assert step_done(session) == []
    job = new_job("Walk", company="DAT")
    progress = session.evaluate()
    assert progress.done_count == 1 and progress.current.number == 2
    assert "USMF" in progress.note  # the job is not in the procedure's company
    jobs.update_job(job.id, actor=Actor.current(USER), version=m.BatchJob.get_by_id(job.id).version, company="USMF")
    assert session.evaluate().note == ""
    jobs.set_recurrence(job.id, {"pattern": "days", "every": 1, "end": {"after": 1}}, actor=Actor.current(USER))
    assert session.evaluate().current.number == 3
    jobs.set_alert(job.id, actor=Actor.current(USER), alert_user=USER, ended=True, popup=True)
    assert session.evaluate().current.number == 4
    t1 = jobs.add_task(job.id, actor=Actor.current(USER), description="First", class_name="Noop")
    assert session.evaluate().current.number == 5
    t2 = jobs.add_task(job.id, actor=Actor.current(USER), description="Second", class_name="Noop")
    assert session.evaluate().current.number == 6
    jobs.add_condition(t2.id, actor=Actor.current(USER), parent_id=t1.id)
    assert session.evaluate().current.number == 7
    jobs.update_task(t2.id, actor=Actor.current(USER), version=m.BatchTask.get_by_id(t2.id).version, max_retries=2)
    assert session.evaluate().current.number == 8
    st.set_job_status(job.id, BatchStatus.WAITING, Actor.current(USER))
    progress = session.evaluate()
    assert progress.current.number == 9 and progress.live[0].startswith("Status: Waiting, next start ")
    run_once(job.id)
    progress = session.evaluate()
    assert progress.finished and progress.current is None
    assert step_done(session) == list(range(1, 10))


def test_a_step_done_out_of_order_is_ticked_but_not_current(database):
    session = GuideSession(USER)
    job = new_job()
    jobs.set_alert(job.id, actor=Actor.current(USER), alert_user=USER, ended=True)
    progress = session.evaluate()
    assert progress.done[:3] == (True, False, True)
    assert progress.current.number == 2


# -- the panel, with real key presses --------------------------------------------


textual = pytest.importorskip("textual")

from batchtui import db  # noqa: E402
from batchtui.ui.app import BatchTuiApp  # noqa: E402


def sync(fn):
    """Run an async Pilot test in its own event loop (no asyncio plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


@pytest.fixture
def ui_db(tmp_path, monkeypatch):
    """An isolated SQLite file per test, acting user ops, no config file (default company DAT)."""
    monkeypatch.setenv("BATCHTUI_USER", USER)
    monkeypatch.setenv("BATCHTUI_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("TZ", "UTC")
    database = db.open_database(f"sqlite:///{tmp_path / 'ui.db'}")
    for cid, name in (("DAT", "Default company"), ("USMF", "Contoso Entertainment System USA")):
        m.Company.get_or_create(id=cid, defaults={"name": name})
    yield database
    database.close()


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


def panel_of(app):
    from batchtui.ui.widgets.guide import GuidePanel

    for screen in reversed(app.screen_stack):
        panels = list(screen.query(GuidePanel))
        if panels:
            return panels[0]
    return None


def panel_text(app) -> str:
    panel = panel_of(app)
    if panel is None:
        return ""
    from textual.widgets import Static

    return "\n".join(str(s.render()) for s in panel.query(Static))


def on_step(app, number: int):
    """The guide's current step is ``number``, and the panel in front says so."""

    def check() -> bool:
        progress = getattr(app.task_guide, "progress", None)
        if progress is None or progress.current is None or progress.current.number != number:
            return False
        return f"Step {number} of 9" in panel_text(app)

    return check


@sync
async def test_guide_walks_through_to_the_alert(ui_db):
    app = make_app(server=True, guide=True)
    async with app.run_test(size=(120, 40)) as pilot:
        assert await wait_for(pilot, on_step(app, 1)), panel_text(app)
        jobs_screen = app.screen
        panel = panel_of(app)
        assert panel.screen is jobs_screen
        assert await wait_for(pilot, lambda: panel.region.width == 36, timeout=3), panel.region
        assert panel.region.right == 120  # docked right
        assert "Ctrl+N" in panel_text(app)

        # 1 Create the job: New, description, Company USMF, Save.
        await pilot.press("ctrl+n", *"Guide job", "tab", "tab", "tab")
        assert app.focused is jobs_screen.query_one("#job-company")
        await pilot.press("enter", *"USMF", "enter")
        await pilot.press("ctrl+s")
        await pilot.pause()
        job = m.BatchJob.get(m.BatchJob.description == "Guide job")
        assert job.company_id == "USMF"
        assert await wait_for(pilot, on_step(app, 2)), panel_text(app)
        assert f"Following job {job.id}" in panel_text(app)
        assert "✓ Batch job saved." in panel_text(app)

        # 2 Recurrence: every day, end after 1 occurrence.
        await pilot.press("escape", "r")
        await pilot.pause()
        assert type(app.screen).__name__ == "RecurrenceDialog"
        await pilot.press("tab", "tab", "tab", "down", "enter", "tab", "backspace", "backspace", "1")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is jobs_screen
        assert await wait_for(pilot, on_step(app, 3)), panel_text(app)

        # 3 Alerts: Ended, Has an error, Show pop-up.
        await pilot.press("a")
        await pilot.pause()
        assert type(app.screen).__name__ == "AlertsDialog"
        await pilot.press("space", "tab", "space", "tab", "tab", "space", "ctrl+s")
        await pilot.pause()
        assert await wait_for(pilot, on_step(app, 4)), panel_text(app)

        # 4 View tasks, a task (company USMF from the job, a demo class).
        await pilot.press("enter")
        await pilot.pause()
        tasks_screen = app.screen
        assert type(tasks_screen).__name__ == "BatchTasksScreen"
        # The guide came along to the tasks form.
        assert await wait_for(pilot, lambda: panel_of(app) is not None and panel_of(app).screen is tasks_screen)
        await pilot.press("ctrl+n", *"Post sales invoices", "tab", "tab", "enter")
        await pilot.pause()
        await pilot.press(*"SubledgerTransfer", "enter", "ctrl+s")
        await pilot.pause()
        first = m.BatchTask.get(m.BatchTask.description == "Post sales invoices")
        assert first.company_id == "USMF" and first.class_name == "SubledgerTransfer"
        assert await wait_for(pilot, on_step(app, 5)), panel_text(app)

        # 5 A second task.
        await pilot.press("ctrl+n", *"Transfer to GL", "tab", "tab", "enter")
        await pilot.pause()
        await pilot.press(*"Noop", "enter", "ctrl+s")
        await pilot.pause()
        second = m.BatchTask.get(m.BatchTask.description == "Transfer to GL")
        assert await wait_for(pilot, on_step(app, 6)), panel_text(app)

        # 6 Has conditions: Ctrl+N, parent task, expected status Ended, Ctrl+S.
        await pilot.press("escape")
        assert tasks_screen.task_id == second.id
        await pilot.press("3", "ctrl+n")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("down", "enter", "ctrl+s")
        await pilot.pause()
        assert m.BatchConstraint.get(m.BatchConstraint.task == second.id).parent_id == first.id
        assert await wait_for(pilot, on_step(app, 7)), panel_text(app)

        # 7 Failure handling: Ignore task failure on the second task.
        await pilot.press("escape", "enter")
        assert app.focused is tasks_screen.query_one("#task-description")
        await pilot.press("tab", "tab", "tab", "tab", "space", "ctrl+s")
        await pilot.pause()
        assert m.BatchTask.get_by_id(second.id).ignore_failure
        assert await wait_for(pilot, on_step(app, 8)), panel_text(app)

        # 8 Back to Batch jobs; Change status to Waiting.
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert app.screen is jobs_screen
        await pilot.press("t")
        await pilot.pause()
        assert type(app.screen).__name__ == "ChangeStatusDialog"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert await wait_for(pilot, on_step(app, 9)), panel_text(app)
        assert "Status: " in panel_text(app)

        # 9 The embedded batch server runs it; the alert pops up; the guide congratulates.
        assert await wait_for(pilot, lambda: app.task_guide.progress.finished, timeout=30), panel_text(app)
        assert m.BatchJob.get_by_id(job.id).status == BatchStatus.FINISHED
        assert await wait_for(pilot, lambda: any("ended" in n.message for n in app._notifications))
        assert await wait_for(pilot, lambda: "Well done" in panel_text(app)), panel_text(app)
        text = panel_text(app)
        assert "Status: Ended" in text and "Run 1: Ended" in text and "Alert: Batch job" in text


@sync
async def test_palette_opens_and_ctrl_g_hides(ui_db):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert panel_of(app) is None
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert "Task guide" in commands
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Task guide")
        await pilot.pause(0.5)
        await pilot.press("enter")
        assert await wait_for(pilot, on_step(app, 1)), panel_text(app)
        panel = panel_of(app)
        assert panel.display
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert not panel.display
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert panel.display


@sync
async def test_narrow_terminal_docks_beside_and_steps_aside(ui_db):
    app = make_app(guide=True)
    async with app.run_test(size=(80, 24)) as pilot:
        assert await wait_for(pilot, on_step(app, 1)), panel_text(app)
        screen = app.screen
        panel = panel_of(app)
        assert await wait_for(pilot, lambda: panel.region.width == 30, timeout=3), panel.region
        assert panel.has_class("-narrow") and panel.region.right == 80
        # Beside the form, never over it (nothing of the form hides under it).
        assert screen.query_one("#job-form").region.right <= panel.region.x
        assert "1 of 9 done" not in panel_text(app) and "0 of 9 done" in panel_text(app)
        await pilot.press("ctrl+n", *"Narrow", "tab", "tab")
        await pilot.pause()
        assert app.focused is screen.query_one("#job-tz")
        assert panel.display  # in view beside the panel
        await pilot.press("tab", "tab")
        await pilot.pause()
        priority = screen.query_one("#job-priority")
        assert app.focused is priority or priority in app.focused.ancestors
        assert not panel.display  # the field would lie under the panel: out of the way
        assert priority.region.right <= 80
        await pilot.press("shift+tab")
        await pilot.pause()
        assert panel.display


def test_guide_says_when_a_task_sits_in_a_group_no_live_server_serves(database):
    session = GuideSession(USER)
    job = new_job("Dead group")
    m.BatchGroup.get_or_create(name="INV", defaults={"description": "Inventory"})
    m.BatchGroupServer.get_or_create(group="INV", server="AOS1")  # AOS1 is not running
    jobs.add_task(job.id, actor=Actor.current(USER), description="Count", class_name="Noop", batch_group="INV")
    note = session.evaluate().note
    assert "'INV'" in note and "Batch group" in note
    # AOS1 comes up: the group is served, nothing to say.
    m.BatchServer.create(name="AOS1", host="h", pid=1, threads=4, started=utcnow(), heartbeat=utcnow())
    assert session.evaluate().note == ""
    step4 = " ".join(STEPS[3].instructions)
    assert "leave it empty" in step4 and "stopped" in step4  # the guide does not lead into INV
