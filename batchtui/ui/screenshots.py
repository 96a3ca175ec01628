"""Regenerate ``screenshots/``: an SVG of every screen and dialog of the console.

    python -m batchtui.ui.screenshots [OUTDIR]      (default: screenshots/)

The real app, on the USMF demo data loaded into a throw-away SQLite file at a
fixed moment (so the same code gives the same pictures), with no batch server
running (so nothing moves while a picture is taken). At that moment three
jobs are part-way through their run: the batch server AOS1 has claimed their
first tasks and the classes have reported some progress, so the progress bars
show. 120x40 unless the name says otherwise.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

FIXED = datetime(2026, 3, 2, 14, 0, 0)  # naive UTC: a Monday afternoon
USER = "admin"
SIZE = (120, 40)


@dataclass
class Shot:
    name: str
    what: str
    steps: Callable[[object], Awaitable[None]] | None = None
    size: tuple[int, int] = SIZE
    guide: bool = False  # with the task guide open (--guide)


# -- the frozen moment ----------------------------------------------------------------


def prepare(folder: str) -> str:
    """The demo data, plus a run in progress; returns the database URL."""
    from .. import db
    from .. import models as m
    from ..demo import load_demo
    from ..engine.store import EngineStore

    url = f"sqlite:///{folder}/screenshots.db"
    db.open_database(url)
    load_demo(now=FIXED)
    # AOS1 is up and has started what was due at FIXED.
    m.BatchServer.update(heartbeat=FIXED, stopped=None, started=FIXED - timedelta(hours=6)).where(
        m.BatchServer.name == "AOS1").execute()
    # The scheduling controls: active periods, a group limit, AOS1's Server configuration.
    m.ActivePeriod.create(name="Night", description="Overnight window", start="22:00", end="06:00", weekdays="")
    m.ActivePeriod.create(name="Weekend", description="Weekend maintenance", start="00:00", end="00:00",
                          weekdays="sat,sun")
    m.ActivePeriod.create(name="Close", description="Month-end close days", start="18:00", end="23:00",
                          weekdays="mon,tue,wed,thu,fri", start_date="2026-12-28", end_date="2026-12-31")
    m.BatchJob.update(active_period="Night").where(m.BatchJob.description.startswith("Master planning")).execute()
    m.BatchGroup.update(max_concurrent=2).where(m.BatchGroup.name != "").execute()
    m.ServerConfig.create(name="AOS1", threads=8, reserved=2, schedule=["18:00-06:00=8", "06:00-18:00=4"],
                          paused=False, modified=FIXED, modified_by=USER)
    m.ServerConfig.create(name="AOS2", threads=4, reserved=0, schedule=None, paused=True, modified=FIXED,
                          modified_by=USER)
    m.BatchServer.update(threads_now=4).where(m.BatchServer.name == "AOS1").execute()
    store = EngineStore()
    store.start_due_jobs("AOS1", now=FIXED)
    claimed = store.claim_ready_tasks("AOS1", store.served_groups("AOS1"), limit=8, now=FIXED)
    reports = {"SubledgerTransfer": (0.62, "Transferred 1,240 of 2,000 voucher lines"),
               "WorkflowMessageProcessing": (0.3, "Processed 18 of 60 workflow messages")}
    for claim in claimed:
        fraction, text = reports.get(claim.class_name, (0.1, "Started"))
        store.report_progress(claim.attempt_id, fraction, text)
        store.append_log(claim.attempt_id, f"{FIXED:%H:%M:%S} {claim.description}: started on AOS1.\n"
                                        f"{FIXED:%H:%M:%S} {text}.\n")
    return url


# -- moving around -------------------------------------------------------------------


async def settle(pilot) -> None:
    await pilot.pause()
    screen = pilot.app.screen
    flush = getattr(screen, "_flush_pending", None)
    if flush is not None:
        flush()
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


def job_id(description_start: str) -> int:
    from .. import models as m

    job = (m.BatchJob.select(m.BatchJob.id).where(m.BatchJob.description.startswith(description_start))
           .order_by(m.BatchJob.id).first())
    if job is None:
        raise SystemExit(f"screenshots: no demo job starts with {description_start!r}")
    return job.id


async def goto_job(pilot, description_start: str) -> None:
    from .widgets.paged_grid import PagedGrid

    pilot.app.screen.query_one("#jobs-grid", PagedGrid).move_to_key(job_id(description_start))
    await settle(pilot)


def on_job(description_start: str, *keys: str):
    async def steps(pilot) -> None:
        await goto_job(pilot, description_start)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return steps


def tasks_tab(description_start: str, tab: str, down: int = 0):
    async def steps(pilot) -> None:
        await goto_job(pilot, description_start)
        await pilot.press("enter")
        await settle(pilot)
        for _ in range(down):
            await pilot.press("down")
            await settle(pilot)
        if tab != "1":
            await pilot.press(tab)
            await settle(pilot)

    return steps


def open_form(name: str):
    async def steps(pilot) -> None:
        pilot.app.open_screen(name)
        await settle(pilot)

    return steps


async def servers(pilot) -> None:
    from .screens.servers import BatchServersScreen

    pilot.app.push_screen(BatchServersScreen(now=FIXED))
    await settle(pilot)


async def history(pilot) -> None:
    await goto_job(pilot, "Sales order invoicing (hourly)")
    await pilot.press("h")
    await settle(pilot)
    await pilot.press("down", "down")
    await settle(pilot)


async def new_job(pilot) -> None:
    await pilot.press("ctrl+n")
    await settle(pilot)
    await pilot.press(*"Post intercompany invoices")
    screen = pilot.app.screen
    screen.query_one("#job-start").value = "2026-03-02 18:00"
    screen.query_one("#job-tz").value = "America/Chicago"
    await settle(pilot)


async def unsaved(pilot) -> None:
    pilot.app.screen.query_one("#job-description").value = "Sales order invoicing (every 30 minutes)"
    await settle(pilot)
    await pilot.press("escape")
    await settle(pilot)


async def guide_open(pilot) -> None:
    from .widgets.guide import GuidePanel

    for _ in range(50):  # the guide's first look at the database
        if pilot.app.screen.query(GuidePanel):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.8)
    await settle(pilot)


async def sorted_by_start(pilot) -> None:
    await pilot.press("o", "o")  # Job description, then Scheduled start
    await settle(pilot)


async def cleanup(pilot) -> None:
    pilot.app.action_cleanup()
    await settle(pilot)


async def palette(pilot) -> None:
    await pilot.press("ctrl+p")
    await settle(pilot)
    await pilot.press(*"batch")
    await settle(pilot)
    await asyncio.sleep(0.3)  # the palette searches in a worker
    await settle(pilot)


SHOTS = [
    Shot("batch-jobs", "Batch jobs: the list page, three jobs executing with their progress"),
    Shot("batch-jobs-80x24", "Batch jobs at 80x24", size=(80, 24)),
    Shot("batch-jobs-sorted", "Batch jobs sorted by Scheduled start (o cycles the sort column)", sorted_by_start),
    Shot("batch-jobs-new", "Ctrl+N: a new job, typing goes into Job description", new_job),
    Shot("batch-tasks-general", "View tasks: a running task's progress, General tab",
         tasks_tab("Subledger transfer to general ledger", "1")),
    Shot("batch-tasks-parameters", "View tasks: Parameters tab, generated from the class's parameters",
         tasks_tab("Inventory close (monthly)", "2")),
    Shot("batch-tasks-conditions", "View tasks: Has conditions tab",
         tasks_tab("Inventory close (monthly)", "3", down=1)),
    Shot("batch-tasks-log", "View tasks: Log tab of a running task, with its progress",
         tasks_tab("Subledger transfer to general ledger", "4")),
    Shot("recurrence", "Recurrence dialog", on_job("Sales order invoicing (hourly)", "r")),
    Shot("alerts", "Alerts dialog", on_job("Sales order invoicing (hourly)", "a")),
    Shot("change-status", "Change status dialog", on_job("Settle and post sales tax (monthly)", "t")),
    Shot("cancel", "Cancel: the confirmation", on_job("Sales order invoicing (hourly)", "x")),
    Shot("copy", "Copy dialog", on_job("Master planning - DynPlan (nightly)", "c")),
    Shot("delete", "Delete: the confirmation", on_job("Master planning - scenario test", "alt+f9")),
    Shot("unsaved-changes", "Escape on a changed record asks first", unsaved),
    Shot("batch-job-history", "Batch job history: runs, their tasks, attempts and the attempt's log", history),
    Shot("batch-job-history-80x24", "Batch job history at 80x24: Status and Ended in view", history, size=(80, 24)),
    Shot("recurrence-80x24", "Recurrence dialog at 80x24: the zone whole, OK and Cancel in view",
         on_job("Sales order invoicing (hourly)", "r"), size=(80, 24)),
    Shot("alerts-80x24", "Alerts dialog at 80x24: ticked [X] and unticked [ ] without colour",
         on_job("Sales order invoicing (hourly)", "a"), size=(80, 24)),
    Shot("task-guide-80x24", "The task guide (--guide) at 80x24: beside the grid, Status in view", guide_open,
         size=(80, 24), guide=True),
    Shot("task-guide", "The task guide (--guide)", guide_open, guide=True),
    Shot("batch-groups", "Batch groups", open_form("groups")),
    Shot("batch-servers", "Server configuration: threads, reserved threads, schedule, pause, and what runs now",
         servers),
    Shot("batch-servers-80x24", "Server configuration at 80x24", servers, size=(80, 24)),
    Shot("active-periods", "Active periods for batch jobs", open_form("periods")),
    Shot("active-periods-80x24", "Active periods for batch jobs at 80x24", open_form("periods"), size=(80, 24)),
    Shot("batch-groups-80x24", "Batch groups at 80x24: max concurrent and running now", open_form("groups"),
         size=(80, 24)),
    Shot("calendars", "Calendars of closed days: dates, weekends, public holidays by country",
         open_form("calendars")),
    Shot("audit-trail", "Audit trail (u): who changed what on a job, when, from what to what",
         on_job("Master planning - DynPlan (nightly)", "u")),
    Shot("action-center", "Action center: alerts for you", open_form("action_center")),
    Shot("history-cleanup", "Batch job history clean-up", cleanup),
    Shot("help", "Help (F1 or ?): the keys of the screen in front of you", on_job("Sales order invoicing", "f1")),
    Shot("navigation", "Navigation (F2): Modules > System administration", on_job("Sales order invoicing", "f2")),
    Shot("command-palette", "Command palette (Ctrl+P): every action by name", palette),
]


# -- taking them ---------------------------------------------------------------------


async def take(shot: Shot, outdir: Path) -> Path:
    from ..config import Config
    from .app import BatchTuiApp

    app = BatchTuiApp(server=False, user=USER, config=Config(), company="USMF", guide=shot.guide)
    async with app.run_test(size=shot.size) as pilot:
        await settle(pilot)
        if shot.steps is not None:
            await shot.steps(pilot)
        await settle(pilot)
        return Path(app.save_screenshot(filename=f"{shot.name}.svg", path=str(outdir)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    outdir = Path(argv[0] if argv else "screenshots").resolve()
    only = set(argv[1:])  # optional: names of the shots to retake
    outdir.mkdir(parents=True, exist_ok=True)
    # Stable across machines: the zone, the acting user, no personal config.
    os.environ["TZ"] = "UTC"
    time.tzset()
    os.environ["BATCHTUI_USER"] = USER
    with tempfile.TemporaryDirectory(prefix="batchtui-shots-") as folder:
        os.environ["BATCHTUI_CONFIG"] = str(Path(folder) / "no-config.toml")
        prepare(folder)
        for shot in SHOTS:
            if only and shot.name not in only:
                continue
            path = asyncio.run(take(shot, outdir))
            print(f"{path}  {shot.what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
