"""Every screen and dialog of the console at 80x24 (and some at 120x40), on the demo data at a
fixed moment, through real key presses: what matters most is on the screen as drawn (the text
Textual composes for the terminal), not only somewhere in the widget tree."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

pytest.importorskip("textual")

from rich.cells import cell_len  # noqa: E402

from batchtui import models as m  # noqa: E402
from batchtui.config import Config  # noqa: E402
from batchtui.ui import screenshots as shots  # noqa: E402
from batchtui.ui.app import BatchTuiApp  # noqa: E402
from batchtui.ui.widgets.paged_grid import PagedGrid  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The screenshots' demo data at their fixed moment, once for the module (the tests read it)."""
    saved = {k: os.environ.get(k) for k in ("TZ", "BATCHTUI_USER", "BATCHTUI_CONFIG", "NO_COLOR")}
    folder = tmp_path_factory.mktemp("demo80")
    os.environ.update(TZ="UTC", BATCHTUI_USER=shots.USER, BATCHTUI_CONFIG=str(folder / "no-config.toml"))
    os.environ.pop("NO_COLOR", None)
    time.tzset()
    shots.prepare(str(folder))
    yield
    m.database.close()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    time.tzset()


def drawn(app) -> list[str]:
    """The lines of the terminal as the app draws them."""
    strips = app.screen._compositor.render_strips()
    return ["".join(segment.text for segment in strip) for strip in strips]


def run(steps, size=(80, 24), guide=False, check=None):
    """The console at ``size`` on the demo; ``steps(pilot)`` moves around and checks;
    ``check(app, pilot, lines)`` then checks what is drawn."""
    async def go():
        app = BatchTuiApp(server=False, user=shots.USER, config=Config(), company="USMF", guide=guide)
        async with app.run_test(size=size) as pilot:
            await shots.settle(pilot)
            if steps is not None:
                await steps(pilot)
            await shots.settle(pilot)
            lines = drawn(app)
            assert len(lines) == size[1] and all(cell_len(line) == size[0] for line in lines)
            return await check(app, pilot, lines) if check is not None else lines

    return asyncio.run(go())


def header_of(app, grid_id: str, lines: list[str]) -> str:
    grid = app.screen.query_one(grid_id, PagedGrid)
    region = grid.region
    return lines[region.y][region.x:region.right]


def in_view(app, widget, lines) -> bool:
    """The widget lies wholly inside the terminal and is not hidden behind another."""
    region = widget.region
    screen = app.screen.region
    return bool(region) and screen.contains_region(region) and widget.display and widget.visible


def button_text_shown(lines: list[str], label: str) -> bool:
    return any(f" {label} " in line for line in lines)


# -- the list pages -------------------------------------------------------------------------


def test_list_pages_show_their_most_telling_columns_at_80x24(demo):
    async def pages(pilot):
        app = pilot.app
        lines = drawn(app)
        header = header_of(app, "#jobs-grid", lines)
        assert "Status" in header and "Scheduled start" in header
        assert any("Withhold" in line and "CST" in line for line in lines)  # the zone beside the time
        form = "\n".join(lines[-8:])
        assert "Created by" in form and "Run by" in form

        await shots.history(pilot)
        lines = drawn(app)
        runs = header_of(app, "#runs-grid", lines)
        assert "Status" in runs and "Ended" in runs and "Started" in runs
        attempts = header_of(app, "#attempts-grid", lines)
        assert "Status" in attempts and "Ended" in attempts
        grid = app.screen.query_one("#runs-grid", PagedGrid)
        first = lines[grid.region.y + 1]
        assert "Ended" in first and first.count(" CST") == 2  # Started and Ended, whole, with their zone
        await pilot.press("escape")

        await shots.servers(pilot)
        lines = drawn(app)
        header = header_of(app, "#servers-grid", lines)
        assert "Alive" in header and "Running now" in header
        text = "\n".join(lines)
        assert "Maximum threads" in text and "--thre" not in text
        await pilot.press("escape")

        await shots.open_form("groups")(pilot)
        assert "Group" in header_of(app, "#groups-grid", drawn(app))
        await pilot.press("escape")
        await shots.settle(pilot)

        await shots.tasks_tab("Inventory close (monthly)", "1")(pilot)
        header = header_of(app, "#tasks-grid", drawn(app))
        assert "Status" in header and "Class name" in header

    run(pages)


def test_action_center_lists_the_newest_alert_first_with_its_zone(demo):
    async def center(app, pilot, lines):
        grid = app.screen.query_one(PagedGrid)
        created = [grid.row_at(i).cells[0] for i in range(grid.row_count)]
        assert len(created) >= 2 and created == sorted(created, reverse=True)
        assert all(c.endswith((" CST", " CDT", " UTC")) for c in created)
        return True

    from batchtui import models as m

    # An alert written late with an older time (a restore, a row by hand): it sorts by time, not ID.
    m.Alert.create(user=shots.USER, job=None, event="error", message="Written late, raised long ago",
                   created=shots.FIXED.replace(year=2020), read=False, popup=False)
    assert run(shots.open_form("action_center"), check=center)


def test_grid_text_is_not_cut_while_there_is_room(demo):
    """At 120 columns: a description or a class name is cut only when the grid has no room left
    (no blank stands to the right), and the room is shared evenly (no flex column wider than its
    text while another one is cut)."""
    def check_grid(grid: PagedGrid) -> int:
        widths = grid._widths
        flex = [i for i, c in enumerate(grid.columns) if c.flex]
        longest = {i: max([cell_len(grid.row_at(r).cells[i]) for r in range(grid.row_count)] + [0]) for i in flex}
        cut = [i for i in flex if longest[i] > widths[i]]
        used = sum(widths) + len(widths) - 1
        if cut:
            assert used >= grid.scrollable_content_region.width, (widths, used)  # no room left
            for i in flex:
                assert widths[i] <= max(longest[i], cell_len(grid.columns[i].label) + 1, grid.columns[i].width)
        else:
            assert all(longest[i] <= widths[i] for i in flex)
        return len(cut)

    async def grids(pilot):
        app = pilot.app
        jobs = app.screen.query_one("#jobs-grid", PagedGrid)
        check_grid(jobs)
        descriptions = jobs.columns.index(next(c for c in jobs.columns if c.key == "description"))
        assert jobs._widths[descriptions] > jobs.columns[descriptions].width  # it took the room there was
        await shots.tasks_tab("Inventory close (monthly)", "1")(pilot)
        tasks = app.screen.query_one("#tasks-grid", PagedGrid)
        check_grid(tasks)
        await pilot.press("escape")
        await shots.settle(pilot)
        await shots.tasks_tab("Sales order invoicing (hourly)", "1")(pilot)
        check_grid(app.screen.query_one("#tasks-grid", PagedGrid))

    run(grids, size=(120, 40))


# -- the task guide --------------------------------------------------------------------------


def test_guide_at_80_columns_sits_beside_the_grid_which_keeps_its_status(demo):
    async def guide(app, pilot, lines):
        from batchtui.ui.widgets.guide import GuidePanel

        assert await shots_wait(pilot, lambda: bool(app.screen.query(GuidePanel)))
        await shots.settle(pilot)
        lines = drawn(app)
        panel = app.screen.query_one(GuidePanel)
        grid = app.screen.query_one("#jobs-grid", PagedGrid)
        assert panel.has_class("-narrow") and panel.region.right == 80
        assert grid.region.right <= panel.region.x  # beside it, not under it
        header = lines[grid.region.y][:panel.region.x]
        assert "Status" in header
        status_col = header.index("Status")
        statuses = {line[status_col:status_col + 10].strip() for line in
                    lines[grid.region.y + 1: grid.region.y + 6]}
        assert statuses <= {"Withhold", "Waiting", "Canceled", "Ended", "Error", "Executing", "Didn't run",
                            "Ready", "Canceling"} and statuses
        footer = lines[-1]
        assert "Refresh" in footer and "palette" in footer  # the footer keeps the whole width
        # A dropdown opens over the panel, not mixed with it.
        app.screen.query_one("#job-company").focus()
        await shots.settle(pilot)
        await pilot.press("enter")
        await shots.settle(pilot)
        overlay = app.screen.query_one("#job-company SelectOverlay")
        lines = drawn(app)
        assert overlay.display
        for y in range(overlay.region.y, overlay.region.bottom):
            row = lines[y][overlay.region.x:overlay.region.right]
            assert "Step" not in row and "Ctrl+G" not in row
        return True

    assert run(None, guide=True, check=guide)


async def shots_wait(pilot, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await pilot.pause(0.1)
    return predicate()


# -- dialogs -----------------------------------------------------------------------------------


def test_each_dialog_fits_with_its_buttons_in_view(demo):
    async def dialogs(pilot):
        from textual.widgets import Button

        app = pilot.app
        for job, key in (("Sales order invoicing (hourly)", "r"), ("Sales order invoicing (hourly)", "a"),
                         ("Sales order invoicing (hourly)", "c"), ("Sales order invoicing (hourly)", "t"),
                         ("Sales order invoicing (hourly)", "x"), ("Master planning - scenario test", "alt+f9")):
            await shots.on_job(job, key)(pilot)
            lines = drawn(app)
            buttons = list(app.screen.query(Button))
            assert buttons, (key, type(app.screen).__name__)
            for button in buttons:
                assert in_view(app, button, lines), (key, button.id, button.region)
                assert button_text_shown(lines, str(button.label)), (key, str(button.label))
            await pilot.press("escape")
            await shots.settle(pilot)
        app.action_cleanup()
        await shots.settle(pilot)
        lines = drawn(app)
        for button in app.screen.query(Button):
            assert in_view(app, button, lines), button.id
        await pilot.press("escape")
        await shots.settle(pilot)
        await pilot.press("f1")
        await shots.settle(pilot)
        assert any("Escape closes." in line for line in drawn(app))

    run(dialogs)


def test_recurrence_at_80x24_zone_whole_sunday_in_view_ok_cancel_with_the_warning(demo):
    async def recurrence(app, pilot, lines):
        from textual.widgets import Button, Input, Select

        dialog = app.screen
        assert "America/Chicago" in "\n".join(lines)  # not America/Chic
        pattern = dialog.query_one("#rec-pattern", Select)
        pattern.value = "weeks"
        await shots.settle(pilot)
        lines = drawn(app)
        sunday = dialog.query_one("#wd-sun")
        assert in_view(app, sunday, lines) and "Sun" in lines[sunday.region.y]
        pattern.value = "minutes"
        every = dialog.query_one("#rec-every", Input)
        every.value = "1"
        await shots.settle(pilot)
        lines = drawn(app)
        assert str(dialog.query_one("#rec-warning").render()).strip()  # the one-minute warning shows
        for button in dialog.query(Button):
            assert in_view(app, button, lines), button.id
        assert button_text_shown(lines, "OK") and button_text_shown(lines, "Cancel")
        return True

    assert run(shots.on_job("Sales order invoicing (hourly)", "r"), check=recurrence)


def test_no_color_checkbox_and_radio_state_in_the_glyph(demo, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")

    async def alerts(app, pilot, lines):
        text = "\n".join(lines)
        # Job 1's alerts in the demo: error and pop-up ticked, the rest not.
        assert "[X] Has an error" in text and "[ ] Ended" in text and "[X] Show pop-up" in text
        await pilot.press("space")  # Ended, in focus
        await shots.settle(pilot)
        assert "[X] Ended" in "\n".join(drawn(app))
        return True

    assert run(shots.on_job("Sales order invoicing (hourly)", "a"), check=alerts)

    async def recurrence(app, pilot, lines):
        text = "\n".join(lines)
        assert "(•) No end date" in text and "( ) End after" in text
        return True

    assert run(shots.on_job("Sales order invoicing (hourly)", "r"), check=recurrence)
