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
