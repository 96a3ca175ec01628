"""Security in the console, through Textual's Pilot: who may change batch groups, text from the
database that must never act as markup, alert e-mail to outside addresses (issue #16)."""

from __future__ import annotations

import asyncio
import functools

import pytest

from batchtui import db as dbmod
from batchtui import models as m
from batchtui.ui.app import BatchTuiApp

from .test_pg_identity import ALICE, BOB, BOSS, _role_url, as_role, shared_db  # noqa: F401 - shared_db: a fixture


def sync(fn):
    """Run an async Pilot test in its own event loop (no asyncio plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def shown(screen, wid: str) -> str:
    return str(screen.query_one(wid).render())


# -- batch groups: batch job managers only ---------------------------------------------------------


def _groups():
    return (sorted(m.tuples(m.BatchGroup.select(m.BatchGroup.name, m.BatchGroup.description))),
            sorted(m.tuples(m.BatchGroupServer.select(m.BatchGroupServer.group, m.BatchGroupServer.server))))


async def _try_to_change_groups(app: BatchTuiApp) -> list[str]:
    """New, edit and save, delete in the Batch groups form; what the message line said each time."""
    said = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.open_screen("groups")
        await pilot.pause()
        screen = app.screen

        async def fresh(key):
            screen.discard()
            screen.grid.focus()
            screen.grid.move_to_key(key)
            screen.load_record(key)
            await pilot.pause()

        await pilot.press("ctrl+n")
        await pilot.pause()
        await pilot.press(*"NOWHERE", "tab", "tab", *"nowhere", "ctrl+s")  # typed where the form lets it
        await pilot.pause()
        said.append(shown(screen, "#group-message"))
        await fresh("")  # the Empty batch group: mapped to a server that does not exist
        await pilot.press("enter", "tab", *"nowhere", "ctrl+s")
        await pilot.pause()
        said.append(shown(screen, "#group-message"))
        await fresh("FIN")
        await pilot.press("alt+f9")
        await pilot.pause()
        if app.screen is not screen:  # the confirmation of a delete the user may make
            app.screen.query_one("#answer-delete").press()
            await pilot.pause()
        said.append(shown(screen, "#group-message"))
        await fresh("")
    return said


@sync
async def test_the_batch_groups_form_refuses_anyone_but_a_batch_job_manager(database):
    m.BatchGroup.get_or_create(name="FIN", defaults={"description": "Finance"})
    before = _groups()
    said = await _try_to_change_groups(BatchTuiApp(server=False, user="mallory"))
    assert len(said) == 3
    for line in said:
        assert "'mallory' may not change batch groups" in line and "batch job manager" in line, said
    assert _groups() == before
    # A batch job manager (the config's managers list on SQLite) may.
    said = await _try_to_change_groups(BatchTuiApp(server=False, user="boss"))
    assert "Saved batch group NOWHERE." in said[0] and "Deleted batch group FIN." in said[2], said
    assert ("", "nowhere") in _groups()[1]


@pytest.mark.postgres
@sync
async def test_the_batch_groups_form_refuses_anyone_but_a_batch_job_manager_on_postgresql(
        shared_db, monkeypatch):  # noqa: F811 - the fixture imported above
    url, cfg = shared_db
    assert as_role(shared_db, BOSS, ["group", "add", "FIN"]).returncode == 0
    monkeypatch.setenv("BATCHTUI_CONFIG", str(cfg))  # it names bob a manager: the database role decides
    monkeypatch.setenv("BATCHTUI_USER", "root")  # and names nobody on PostgreSQL
    for role in (ALICE, BOB):
        d = dbmod.open_database(_role_url(url, role))
        try:
            before = _groups()
            said = await _try_to_change_groups(BatchTuiApp(server=False))
            for line in said:
                assert f"'{role}' may not change batch groups" in line, said
            assert _groups() == before
        finally:
            d.close()
    d = dbmod.open_database(_role_url(url, BOSS))
    try:
        said = await _try_to_change_groups(BatchTuiApp(server=False))
        assert "Saved batch group NOWHERE." in said[0] and "Deleted batch group FIN." in said[2], said
    finally:
        d.close()


# -- text from the database is never markup ------------------------------------------------------------

#: What a job owner may type as a description: markup that would end the console ([/EU] closes a tag that
#: was never opened: MarkupError), make a live link that quits it, or change the look.
CRASH, LINK, LOOK = "Post [/EU] invoices", "Click [@click=app.quit]here[/]", "[bold]now"
EVIL = f"{CRASH} {LINK} {LOOK}"


def _engine_factory(on_change):
    from batchtui.engine import BatchServerEngine

    return BatchServerEngine(name="UISEC", poll=0.1, retry_base=0, heartbeat=1.0, on_change=on_change)


def _links(app, widget) -> list[tuple[int, int]]:
    """Cells of the widget whose style carries an action (a markup @click)."""
    region = widget.region
    return [(x, y) for y in range(region.y, region.bottom) for x in range(region.x, region.right)
            if any(key.startswith("@") for key in app.screen.get_style_at(x, y).meta)]


def _cell_of(widget, text: str) -> tuple[int, int]:
    """The screen cell where text starts in the widget as drawn."""
    content = widget.content_region
    for line in range(content.height):
        col = widget.render_line(line).text.find(text)
        if col >= 0:
            return content.x + col, content.y + line
    lines = [widget.render_line(line).text for line in range(content.height)]
    raise AssertionError(f"{text!r} is not shown in {widget!r}: {lines}")


@pytest.mark.parametrize("description", [CRASH, LINK, EVIL])
@sync
async def test_a_pop_up_alert_with_markup_in_the_job_description_shows_it_as_text(database, description):
    """Issue #16, item 3: a job named `Post [/EU] invoices` ended the console with a MarkupError, and
    `[@click=app.quit]here[/]` became a live link. On PostgreSQL anyone may subscribe you to their job."""
    from batchtui import jobs
    from batchtui.actor import Actor

    owner = Actor.current("ops")
    job = jobs.create_job(actor=owner, description=description, company="DAT")
    jobs.add_task(job.id, actor=owner, description=description, class_name="Noop")
    jobs.set_alert(job.id, actor=owner, alert_user="ops", ended=True, popup=True)
    app = BatchTuiApp(server=True, engine_factory=_engine_factory, poll_interval=0.2)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.pause()
        from batchtui import status as st
        from batchtui.vocabulary import BatchStatus

        st.set_job_status(job.id, BatchStatus.WAITING, owner)
        app.wake_engine()
        for _ in range(200):
            await pilot.pause(0.05)
            if app.screen.query("Toast"):
                break
        toasts = list(app.screen.query("Toast"))
        assert toasts, "no pop-up came"
        (toast,) = [t for t in toasts if "Batch job alert" in str(t.render())]
        for _ in range(40):  # laid out and drawn
            await pilot.pause(0.05)
            if toast.content_region.height:
                break
        assert description in str(toast.render()), str(toast.render())
        assert _links(app, toast) == []
        if LINK in description:
            x, y = _cell_of(toast, "here")
            await pilot.click(offset=(x + 1, y))
            await pilot.pause(0.3)
            assert app.is_running and app.return_code is None, "a click in the pop-up quit the console"
        # The Action center shows the same alert, as text.
        await pilot.press("f4")
        await pilot.pause()
        assert description in shown(app.screen, "#alert-detail")
        assert _links(app, app.screen.query_one("#alert-detail")) == []
    assert app.return_code in (None, 0)


@sync
async def test_every_form_shows_text_from_the_database_as_text(engine_factory):
    """Grids, details, logs, the breadcrumb, lists to choose from, the servers' detail, the Action center:
    the same text, literally, and nowhere a live link."""
    from batchtui import jobs
    from batchtui.actor import Actor
    from batchtui.timeutil import utcnow

    from .conftest import job_status, wait_for

    owner = Actor.current("ops")
    job = jobs.create_job(actor=owner, description=EVIL, company="DAT")
    first = jobs.add_task(job.id, actor=owner, description=EVIL, class_name="Fail", params={"message": EVIL})
    jobs.add_task(job.id, actor=owner, description=f"{LOOK} second", class_name="Noop")
    from batchtui import status as st
    from batchtui.vocabulary import BatchStatus

    st.set_job_status(job.id, BatchStatus.WAITING, owner)
    engine_factory(name="RUNNER")
    wait_for(lambda: job_status(job.id) == BatchStatus.ERROR)
    server = f"AOS {CRASH} {LINK}"
    m.BatchServer.create(name=server, host="h", pid=1, threads=8, started=utcnow(), heartbeat=utcnow())
    m.Alert.create(user="ops", job=job.id, event="error", message=EVIL, created=utcnow(), popup=False)

    app = BatchTuiApp(server=False)
    async with app.run_test(size=(160, 50), notifications=True) as pilot:
        await pilot.pause()
        jobs_screen = app.screen
        grid = jobs_screen.query_one("#jobs-grid")
        grid.move_to_key(job.id)
        await pilot.pause()
        assert _links(app, grid) == [] and any(CRASH in grid.render_line(y).text for y in range(1, 5))

        await pilot.press("enter")  # View tasks
        await pilot.pause()
        tasks = app.screen
        assert EVIL in shown(tasks, "#breadcrumb").replace("\n", "")
        tasks.grid.move_to_key(first.id)
        await pilot.press("4")  # the Log tab: the attempt's log
        await pilot.pause()
        assert f"Error: {EVIL}" in shown(tasks, "#task-log")
        tasks.grid.focus()
        await pilot.press("down", "3", "ctrl+n")  # the second task's Has conditions: a new condition
        await pilot.pause()
        parent = tasks.query_one("#cond-parent")
        parent.value = first.id
        await pilot.press("enter")  # the list of parent tasks, open
        await pilot.pause()
        assert f"{first.id}  {EVIL}" in shown(parent, "#label")
        overlay = parent.query_one("SelectOverlay")
        assert any(CRASH in overlay.render_line(y).text for y in range(overlay.content_region.height))
        assert _links(app, overlay) == [] and _links(app, tasks.query_one("#breadcrumb")) == []
        await pilot.press("escape")
        await pilot.pause()

        app.open_screen("history", job_id=job.id)
        await pilot.pause()
        assert f"Error: {EVIL}" in shown(app.screen, "#attempt-log")

        app.open_screen("servers")
        await pilot.pause()
        app.screen.query_one("#servers-grid").move_to_key(server)
        await pilot.pause()
        assert f"{server} runs nothing now." in shown(app.screen, "#server-detail")
        assert _links(app, app.screen.query_one("#server-detail")) == []
        await pilot.press("f1")
        await pilot.pause()
        await pilot.press("escape")

        app.open_screen("action_center")
        await pilot.pause()
        assert EVIL in shown(app.screen, "#alert-detail")
        assert app.is_running and app.return_code is None


def test_every_toast_of_the_console_goes_through_notify_plain():
    """App.notify reads its message as markup unless told not to: one helper says so, for every toast."""
    import ast
    from pathlib import Path

    ui = Path(__file__).resolve().parent.parent / "batchtui" / "ui"
    calls = []
    for path in sorted(ui.rglob("*.py")):
        if path.name == "safe_text.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "notify":
                calls.append(f"{path.relative_to(ui)}:{node.lineno}")
    assert calls == [], f"call notify_plain (batchtui/ui/safe_text.py) instead: {calls}"


# -- alert e-mail: the site's own addresses only ---------------------------------------------------------


@sync
async def test_the_alerts_dialog_refuses_e_mail_to_an_address_outside_the_site(database, tmp_path, monkeypatch):
    from batchtui import jobs
    from batchtui.actor import Actor

    config = tmp_path / "mail.toml"
    config.write_text('[smtp]\nhost = "127.0.0.1"\ndomain = "example.com"\n')
    monkeypatch.setenv("BATCHTUI_CONFIG", str(config))
    job = jobs.create_job(actor=Actor.current("ops"), description="Month-end close", company="DAT")
    app = BatchTuiApp(server=False, user="mallory@evil.example")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.screen.query_one("#jobs-grid").move_to_key(job.id)
        app.screen.query_one("#jobs-grid").focus()
        await pilot.press("a")
        await pilot.pause()
        dialog = app.screen
        assert type(dialog).__name__ == "AlertsDialog"
        await pilot.press("space", "tab", "tab", "tab", "tab", "space", "ctrl+s")  # Ended, Send e-mail, OK
        await pilot.pause()
        assert app.screen is dialog, "the dialog closed"
        line = shown(dialog, "#alert-error-line")
        assert "e-mail to 'mallory@evil.example' is refused" in line and "example.com" in line, line
        assert m.JobAlert.select().count() == 0
        await pilot.press("space", "shift+tab", "space", "ctrl+s")  # no e-mail, a pop-up instead: saved
        await pilot.pause()
        assert app.screen is not dialog
    assert [(a.user, a.email, a.popup) for a in m.JobAlert.select()] == [("mallory@evil.example", False, True)]
