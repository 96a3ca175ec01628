"""The services the command line and the console share: batch servers.

Each is checked through both faces: `batchtui ... --json` (cli.main) and the
console's screen (Pilot), against one real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest

from batchtui import cli, servers
from batchtui import models as m
from batchtui.vocabulary import BatchStatus

from .conftest import make_job

NOW = datetime(2026, 3, 2, 14, 0, 0)  # naive UTC, the frozen clock of these tests


def cli_json(capsys, *args: str):
    capsys.readouterr()
    code = cli.main([*args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def on_screen(screen_name: str, read):
    """Open a console screen (no embedded server) and return read(screen) once it shows."""
    pytest.importorskip("textual")
    from batchtui.ui.app import BatchTuiApp

    async def go():
        app = BatchTuiApp(server=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            app.open_screen(screen_name)
            await pilot.pause()
            return await read(app.screen, pilot)

    return asyncio.run(go())


async def _grid_rows(screen, pilot) -> list[list[str]]:
    from batchtui.ui.widgets.paged_grid import PagedGrid

    grid = screen.query_one(PagedGrid)
    return [list(grid.row_at(i).cells) for i in range(grid.row_count)]


# -- batch servers ------------------------------------------------------------------------


@pytest.fixture
def frozen(monkeypatch):
    """The servers service's clock stopped at NOW, for the command line and the console alike."""
    monkeypatch.setattr(servers, "utcnow", lambda: NOW)
    return NOW


def test_the_command_line_and_the_servers_form_agree_on_alive_and_running(database, frozen, capsys):
    limit = timedelta(seconds=servers.ALIVE_WITHIN)
    rows = [("EDGE", NOW - limit, None),  # exactly at the boundary: still alive
            ("LATE", NOW - limit - timedelta(milliseconds=1), None),  # just past it: dead
            ("STOPPED", NOW, NOW),  # a fresh heartbeat, but it stopped
            ("NEVER", None, None)]  # registered, no heartbeat yet
    for name, beat, stopped in rows:
        m.BatchServer.create(name=name, host="h", pid=1, threads=4, started=NOW - timedelta(hours=1),
                             heartbeat=beat, stopped=stopped)
    _, ids = make_job([{"key": "a"}, {"key": "b"}, {"key": "c"}])
    m.BatchTask.update(status=BatchStatus.EXECUTING, server="EDGE").where(m.BatchTask.id == ids["a"]).execute()
    m.BatchTask.update(status=BatchStatus.CANCELLING, server="EDGE").where(m.BatchTask.id == ids["b"]).execute()
    m.BatchTask.update(status=BatchStatus.ERROR, server="EDGE").where(m.BatchTask.id == ids["c"]).execute()
    database.close()

    expected = {"EDGE": (True, 2), "LATE": (False, 0), "STOPPED": (False, 0), "NEVER": (False, 0)}
    by_cli = {r["name"]: (r["alive"], r["running"]) for r in cli_json(capsys, "servers")}
    assert by_cli == expected
    shown = on_screen("servers", _grid_rows)
    by_screen = {r[0]: (r[6] == "Yes", int(r[7])) for r in shown}
    assert by_screen == expected
    # The service itself, and the condition the demo and queries use, say the same.
    assert {s.name: (s.alive, s.running) for s in servers.server_rows()} == expected
    assert servers.alive_names(NOW) == ["EDGE"]
    assert [t.task_id for t in servers.running_tasks("EDGE")] == [ids["a"], ids["b"]]


def test_the_engine_and_the_command_line_take_their_defaults_from_the_one_rule():
    import inspect

    from batchtui.cli.parser import build_parser
    from batchtui.engine import BatchServerEngine

    args = build_parser().parse_args(["server"])
    assert args.dead_after == servers.ALIVE_WITHIN and args.heartbeat == servers.HEARTBEAT_EVERY
    assert inspect.signature(BatchServerEngine).parameters["dead_after"].default == servers.ALIVE_WITHIN
    assert servers.HEARTBEAT_EVERY * 3 <= servers.ALIVE_WITHIN  # a live server may miss a beat or two
