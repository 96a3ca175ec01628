"""The services the command line and the console share: batch servers and alerts.

Each is checked through both faces: `batchtui ... --json` (cli.main) and the
console's screen (Pilot), against one real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest

from batchtui import alerts, cli, servers
from batchtui import models as m
from batchtui.actor import Actor
from batchtui.errors import NotFound
from batchtui.vocabulary import BatchStatus

from .conftest import make_job

NOW = datetime(2026, 3, 2, 14, 0, 0)  # naive UTC, the frozen clock of these tests
OPS = Actor.of("ops")
EVE = Actor.of("eve")
BOSS = Actor.of("boss", ["boss"])


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
    by_screen = {r[0]: (r[1] == "Yes", int(r[2])) for r in shown}
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


# -- alerts -------------------------------------------------------------------------------


def _alert(user: str, event: str = "error", read: bool = False, minutes_ago: int = 0) -> int:
    return int(m.Alert.create(user=user, job=None, event=event, message=f"{user}: job {event}",
                              created=NOW - timedelta(minutes=minutes_ago), read=read).id)


def test_alerts_belong_to_their_user(database):
    a1, a2 = _alert("ops", minutes_ago=2), _alert("ops")
    read = _alert("ops", "ended", read=True, minutes_ago=5)
    theirs = _alert("eve")

    assert [a.id for a in alerts.list_alerts(OPS)] == [a1, a2]
    assert [a.id for a in alerts.list_alerts(OPS, unread_only=False)] == [a1, a2, read]
    # Newest first by the time raised (the Action center's order), not by ID.
    assert [a.id for a in alerts.list_alerts(OPS, unread_only=False, newest_first=True, limit=2)] == [a2, a1]
    assert [a.id for a in alerts.list_alerts(OPS, unread_only=False, newest_first=True, offset=2)] == [read]
    assert alerts.count_alerts(OPS) == 2 and alerts.count_alerts(OPS, unread_only=False) == 3
    assert alerts.get_alert(OPS, a1).message == "ops: job error"
    assert alerts.get_alert(OPS, a1).time_zone  # the machine's, since the alert has no job

    # Nobody reads, marks or deletes another user's alerts, a manager included.
    for actor in (OPS, BOSS):
        with pytest.raises(NotFound, match=f"alert {theirs}: no such alert for user '{actor.user}'"):
            alerts.get_alert(actor, theirs)
        with pytest.raises(NotFound, match=f"alert {theirs}"):
            alerts.mark_read(actor, [theirs])
        with pytest.raises(NotFound, match=f"alert {theirs}"):
            alerts.delete_alerts(actor, [theirs])
    with pytest.raises(NotFound, match=f"alert {theirs}: no such alert for user 'ops'"):
        alerts.mark_read(OPS, [a1, theirs])  # all or nothing
    assert not m.Alert.get_by_id(a1).read  # a refused call changes nothing
    assert not m.Alert.get_by_id(theirs).read
    assert alerts.mark_read(BOSS) == 0  # "all my unread alerts": boss has none

    assert alerts.mark_read(OPS, [a1]) == 1
    assert [a.id for a in alerts.list_alerts(OPS)] == [a2]
    assert alerts.mark_read(OPS) == 1  # every unread one of ops
    assert alerts.count_alerts(OPS) == 0 and alerts.count_alerts(EVE) == 1
    assert alerts.delete_alerts(OPS, [a1, read]) == 2
    assert [a.id for a in alerts.list_alerts(OPS, unread_only=False)] == [a2]
    assert m.Alert.get_by_id(theirs).user == "eve"  # still there


def test_the_command_line_and_the_action_center_list_the_same_alerts(database, capsys, monkeypatch):
    job_id, _ = make_job([{"key": "a"}], time_zone="America/Chicago")
    mine = [_alert("ops", minutes_ago=3), _alert("ops", "ended", minutes_ago=1)]
    m.Alert.update(job=job_id).where(m.Alert.id == mine[0]).execute()
    _alert("ops", "canceled", read=True, minutes_ago=9)
    _alert("eve")
    database.close()

    listed = cli_json(capsys, "alerts")
    assert [r["id"] for r in listed] == mine
    assert listed[0]["created"].endswith("-06:00")  # in its job's zone
    assert datetime.fromisoformat(listed[1]["created"]).tzinfo is not None  # no job: the machine's zone

    async def read_and_mark(screen, pilot):
        before = await _grid_rows(screen, pilot)
        await pilot.press("enter")  # marks the newest (the cursor's) read
        await pilot.pause()
        return before, await _grid_rows(screen, pilot)

    before, after = on_screen("action_center", read_and_mark)
    assert [r[2] for r in before] == ["Ended", "Error"]  # newest first, eve's not among them
    assert [r[2] for r in after] == ["Error"]
    assert [r["id"] for r in cli_json(capsys, "alerts")] == [mine[0]]

    monkeypatch.setenv("BATCHTUI_USER", "eve")
    assert [r["event"] for r in cli_json(capsys, "alerts", "--all")] == ["error"]
    assert len(cli_json(capsys, "alerts", "--read")) == 1
    monkeypatch.setenv("BATCHTUI_USER", "ops")
    assert [r["id"] for r in cli_json(capsys, "alerts")] == [mine[0]]  # eve's --read left ops' alone


def test_the_services_and_the_command_line_load_no_textual():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; import batchtui.servers, batchtui.alerts, batchtui.text, batchtui.actor, batchtui.cli; "
            "sys.exit(any(m.split('.')[0] == 'textual' for m in sys.modules))")
    repo = Path(__file__).resolve().parents[1]  # `python -c` imports from its working folder first
    assert subprocess.run([sys.executable, "-c", code], cwd=repo, timeout=60).returncode == 0
