"""5. Console: the Batch jobs page over 100,000 jobs and a million task attempts.

A SQLite database is filled first (in its own process, with executemany):
100,000 jobs (quick: 10,000) of two tasks each, five past runs per job and
so a million task attempts (quick: 100,000). Then, each in a fresh process:

batchtui: BatchTuiApp (no embedded server) driven by Textual's Pilot at
120x40. Open = from opening the database until the jobs grid has painted
its first row. Page-down = from pressing PgDn until the grid has painted the
next page (the job form below follows a moment later, by design, and is not
counted). Peak memory = ru_maxrss of the process at the end.

Peer: what a Textual user writes first: a DataTable with every job added
(add_rows), the same columns, the same database. Measured the same way; its
open time includes measuring every cell, which happens once the rows are in.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from bench.common import Row, child_main, peak_rss_mb, progress, run_child, skipped, versus, within

SIZE = (120, 40)
PRESSES = 30
OPEN_TARGET_S = 0.5
PAGE_TARGET_MS = 50.0
MEMORY_TARGET_MB = 200.0
TASKS_PER_JOB = 2
KINDS = ["Invoice posting", "Inventory close", "Cost calculation", "Sales order release", "Bank reconciliation",
         "Vendor payments", "Master planning", "Data export", "Ledger settlement", "Purge staging"]
ZONES = ["UTC", "Europe/Berlin", "America/Chicago", "Asia/Tokyo"]


def console_available() -> str | None:
    """None if the console imports; else why not."""
    try:
        from batchtui.ui.app import BatchTuiApp  # noqa: F401
        from batchtui.ui.screens.batch_jobs import BatchJobsScreen  # noqa: F401
        from batchtui.ui.widgets.paged_grid import PagedGrid  # noqa: F401
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# -- the data ---------------------------------------------------------------------


def build(folder: str, jobs: int, attempts: int) -> dict:
    """Child: fill the database, a slice of jobs at a time (memory stays flat).

    The jobs go in from Python (executemany); their tasks, runs and attempts are made
    by SQLite itself from the jobs (INSERT ... SELECT), so 10,000,000 attempts take
    about a minute, not a Python object each.
    """
    from batchtui import models as m
    from batchtui.vocabulary import BatchStatus as S
    from bench.seed import insert_rows, insert_select, job_row, open_db

    open_db(f"sqlite:///{folder}/console.db")
    runs_per_job = max(1, attempts // (jobs * TASKS_PER_JOB))
    start = time.perf_counter()
    now = datetime(2026, 3, 2, 14, 0, 0)
    step = 100_000 if jobs > 100_000 else 5_000
    ks = " UNION ALL ".join(f"SELECT {k} AS k" for k in range(TASKS_PER_JOB))
    rs = " UNION ALL ".join(f"SELECT {r} AS r" for r in range(runs_per_job))
    finished = int(S.FINISHED)
    # (peewee writes SQLite datetimes with microseconds: the same text here)
    # a run r of job j began (runs_per_job - r) days before the job's due time, now - 5 j minutes
    began = (f"datetime('{now:%Y-%m-%d %H:%M:%S}', '-' || (j.id * 5) || ' minutes', "
             f"'-' || ({runs_per_job} - r.r) || ' days'")
    for first in range(1, jobs + 1, step):
        last = min(first + step, jobs + 1) - 1
        job_rows = []
        for j in range(first, last + 1):
            status = S.WAITING if j % 50 == 0 else S.HOLD if j % 97 == 0 else S.ERROR if j % 13 == 0 else S.FINISHED
            due = now - timedelta(minutes=j * 5)
            job_rows.append(job_row(
                j, due + timedelta(days=30) if status == S.WAITING else due, status,
                f"{KINDS[j % len(KINDS)]} {j}", now, company="USMF" if j % 3 else "DAT",
                time_zone=ZONES[j % len(ZONES)], priority=j % 4, run_count=runs_per_job,
                current_run=j * runs_per_job, recurrence_text="Every day" if j % 4 == 0 else ""))
        insert_rows(m.BatchJob, job_rows)
        insert_select(m.BatchTask, dict(
            id=f"{TASKS_PER_JOB} * (j.id - 1) + k.k + 1", job="j.id", key="'step' || (k.k + 1)",
            description="'step' || (k.k + 1)", company="'DAT'", class_name="'Noop'", params="'{}'",
            status=str(finished)),
            f"FROM batch_job j, ({ks}) k WHERE j.id BETWEEN {first} AND {last} ORDER BY j.id, k.k")
        insert_select(m.JobRun, dict(
            id=f"(j.id - 1) * {runs_per_job} + r.r + 1", job="j.id", run_no="r.r + 1",
            scheduled=began + ") || '.000000'", started=began + ") || '.000000'",
            ended=began + ", '+3 seconds') || '.000000'",
            status=str(finished), server="'AOS1'"),
            f"FROM batch_job j, ({rs}) r WHERE j.id BETWEEN {first} AND {last} ORDER BY j.id, r.r")
        insert_select(m.TaskAttempt, dict(
            id=f"(r.id - 1) * {TASKS_PER_JOB} + k.k + 1", run="r.id",
            task=f"{TASKS_PER_JOB} * (r.job_id - 1) + k.k + 1", attempt="1", status=str(finished),
            started="r.started", ended="datetime(r.started, '+1 seconds') || '.000000'",
            server="'AOS1'", log="'Ended.' || char(10)"),
            f"FROM job_run r, ({ks}) k WHERE r.job_id BETWEEN {first} AND {last} ORDER BY r.id, k.k")
        progress(f"console: {last:,} of {jobs:,} jobs written")
    m.database.execute_sql("ANALYZE")
    attempts_made = m.database.execute_sql("SELECT MAX(id) FROM task_attempt").fetchone()[0] or 0
    return {"seconds": time.perf_counter() - start, "jobs": jobs, "attempts": attempts_made}


# -- measuring a grid --------------------------------------------------------------


class Paints:
    """Records when a grid widget paints its first body line (y == 1) and at which scroll."""

    def __init__(self, widget_class, want=lambda widget: True) -> None:
        self.times: list[tuple[float, float]] = []  # (perf_counter, scroll_y)
        original = widget_class.render_line
        paints = self

        def render_line(widget, y):
            strip = original(widget, y)
            if y == 1 and want(widget):
                paints.times.append((time.perf_counter(), widget.scroll_offset.y))
            return strip

        widget_class.render_line = render_line

    def first_after(self, since: float, other_than: float | None = None) -> float | None:
        for at, scroll in self.times:
            if at >= since and scroll != other_than:
                return at
        return None


async def _settle(pilot, ready, timeout: float = 600) -> None:
    deadline = time.perf_counter() + timeout
    while not ready():
        if time.perf_counter() > deadline:
            raise SystemExit("the grid never showed a row")
        await pilot.pause(0.01)
    await pilot.pause()


async def _page_down(pilot, paints: Paints, widget, presses: int) -> list[float]:
    """Seconds from each PgDn until the grid painted the scrolled page."""
    times = []
    for _ in range(presses):
        before = widget.scroll_offset.y
        pressed = time.perf_counter()
        await pilot.press("pagedown")
        await pilot.pause()
        painted = paints.first_after(pressed, other_than=before)
        if painted is None:
            raise SystemExit("page-down did not scroll the grid")
        times.append(painted - pressed)
    return times


def batchtui_console(folder: str, presses: int) -> dict:
    """Child: open the Batch jobs page, press PgDn `presses` times."""
    from batchtui.config import Config
    from batchtui.db import open_database
    from batchtui.ui.app import BatchTuiApp
    from batchtui.ui.widgets.paged_grid import PagedGrid

    paints = Paints(PagedGrid, want=lambda grid: grid.id == "jobs-grid" and grid.row_count > 0)
    result = {}

    async def drive() -> None:
        start = time.perf_counter()
        open_database(f"sqlite:///{folder}/console.db")
        app = BatchTuiApp(server=False, user="bench", config=Config())
        async with app.run_test(size=SIZE) as pilot:
            await _settle(pilot, lambda: paints.times)
            result["open"] = paints.times[0][0] - start
            grid = app.screen.query_one("#jobs-grid", PagedGrid)
            result["rows"] = grid.row_count
            result["page_down"] = await _page_down(pilot, paints, grid, presses)
            result["cursor"] = grid.cursor

    asyncio.run(drive())
    result["peak_mb"] = peak_rss_mb()
    return result


def datatable_console(folder: str, presses: int) -> dict:
    """Child: the peer, a plain Textual DataTable holding every job."""
    import sqlite3

    from textual.app import App
    from textual.widgets import DataTable

    labels = {0: "Withhold", 1: "Waiting", 2: "Executing", 3: "Error", 4: "Ended", 5: "Ready"}
    paints = Paints(DataTable, want=lambda table: table.row_count > 0)

    class JobsTable(App):
        def compose(self):
            yield DataTable(cursor_type="row")

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            table.add_columns("Job ID", "Job description", "Scheduled start", "Status", "Recurrence",
                              "Company", "Created by", "Priority")
            conn = sqlite3.connect(Path(folder) / "console.db")
            rows = conn.execute(
                "SELECT id, description, scheduled_start, status, recurrence_text, company_id, created_by, "
                "priority FROM batch_job ORDER BY id DESC").fetchall()
            conn.close()
            table.add_rows([(str(i), d, s[:16], labels.get(st, str(st)), r, c, u, str(p))
                            for i, d, s, st, r, c, u, p in rows])
            table.focus()

    # DataTable measures every cell of the rows it was given once it is idle; it
    # is open when it paints its first row after that.
    measured: list[float] = []
    update_dimensions = DataTable._update_dimensions

    def timed_update_dimensions(table, new_rows):
        update_dimensions(table, new_rows)
        measured.append(time.perf_counter())

    DataTable._update_dimensions = timed_update_dimensions
    result = {}

    async def drive() -> None:
        start = time.perf_counter()
        app = JobsTable()
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(DataTable)
            await _settle(pilot, lambda: measured and paints.first_after(measured[-1]))
            result["open"] = paints.first_after(measured[-1]) - start
            result["rows"] = table.row_count
            result["page_down"] = await _page_down(pilot, paints, table, presses)

    asyncio.run(drive())
    result["peak_mb"] = peak_rss_mb()
    return result


# -- the benchmark -----------------------------------------------------------------


# Above this many jobs the DataTable peer is not run (it would hold every row: minutes and gigabytes).
PEER_MAX_JOBS = 100_000
# Issue 17's targets, for 1,000,000 jobs and 10,000,000 attempts (--console-jobs 1000000).
BIG_JOBS = 1_000_000
BIG_OPEN_TARGET_S = 0.3
BIG_PAGE_TARGET_MS = 10.0
BIG_MEMORY_TARGET_MB = 150.0


@contextmanager
def _database(keep: str | None, jobs: int, attempts: int) -> Iterator[str]:
    """The folder of a database of jobs and attempts: written in a temporary folder and deleted
    at the end, or, with keep, written in that folder and kept, and used again by a later run
    of the same size (1,000,000 jobs take 2.7 GB and 80 s to write)."""
    if keep is None:
        # Under /tmp (or $TMPDIR): 1,000,000 jobs take 2.7 GB.
        with tempfile.TemporaryDirectory(prefix="batchtui-bench-") as folder:
            _write(folder, jobs, attempts)
            yield folder
        return
    folder = Path(keep)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "built.json"
    size = {"jobs": jobs, "attempts": attempts}
    if marker.exists() and json.loads(marker.read_text()) == size and (folder / "console.db").exists():
        progress(f"console: using the {jobs:,} jobs already written in {folder}")
    elif (folder / "console.db").exists() and not marker.exists():
        raise SystemExit(f"--console-keep: {folder} holds a console.db this bench did not write; "
                         "choose another folder (it would be replaced)")
    else:
        marker.unlink(missing_ok=True)
        for old in folder.glob("console.db*"):
            old.unlink()
        _write(str(folder), jobs, attempts)
        marker.write_text(json.dumps(size))
    yield str(folder)


def _write(folder: str, jobs: int, attempts: int) -> None:
    progress(f"console: writing {jobs:,} jobs and {attempts:,} task attempts in {folder}")
    built = run_child("console", "build", folder=folder, jobs=jobs, attempts=attempts)
    size_mb = sum(p.stat().st_size for p in Path(folder).glob("console.db*")) / 1e6
    progress(f"console: written in {built['seconds']:.0f} s, {size_mb:,.0f} MB")


def run(quick: bool, jobs: int | None = None, keep: str | None = None) -> list[Row]:
    """jobs: the size (10 attempts a job); None = 100,000 (quick: 10,000). keep: a folder where
    the database is written and kept, for the next run of the same size (see _database)."""
    why = console_available()
    if why is not None:
        progress(f"console: skipped, the console is not available ({why})")
        return [skipped("console: Batch jobs page", "console not available")]
    if jobs is None:
        jobs = 10_000 if quick else 100_000
    attempts = jobs * 10
    presses = 10 if quick else PRESSES
    big = jobs >= BIG_JOBS
    open_target, page_target, memory_target = ((BIG_OPEN_TARGET_S, BIG_PAGE_TARGET_MS, BIG_MEMORY_TARGET_MB) if big
                                               else (OPEN_TARGET_S, PAGE_TARGET_MS, MEMORY_TARGET_MB))
    with _database(keep, jobs, attempts) as folder:
        progress("console: batchtui's Batch jobs page")
        ours = run_child("console", "batchtui_console", folder=folder, presses=presses)
        peer = None
        if jobs <= PEER_MAX_JOBS:
            progress(f"console: Textual DataTable with all {jobs:,} rows (the peer; slow)")
            peer = run_child("console", "datatable_console", folder=folder, presses=presses)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    label = f"{jobs // 1000}k jobs"
    if peer is None:
        return [
            within(f"console open, {label}", ours["open"], "s", open_target),
            within(f"console page-down, mean of {presses}", mean(ours["page_down"]) * 1000, "ms", page_target),
            within("console page-down, slowest", max(ours["page_down"]) * 1000, "ms", page_target),
            within("console peak memory", ours["peak_mb"], "MB", memory_target),
        ]
    return [
        versus(f"console open, {label}", ours["open"], "s", f"DataTable, all {label}", peer["open"]),
        within(f"console open, {label}", ours["open"], "s", open_target),
        versus(f"console page-down, mean of {presses}", mean(ours["page_down"]) * 1000, "ms",
               "DataTable page-down", mean(peer["page_down"]) * 1000),
        within(f"console page-down, mean of {presses}", mean(ours["page_down"]) * 1000, "ms", page_target),
        versus("console page-down, slowest", max(ours["page_down"]) * 1000, "ms", "DataTable slowest",
               max(peer["page_down"]) * 1000),
        versus("console peak memory", ours["peak_mb"], "MB", "DataTable peak memory", peer["peak_mb"]),
        within("console peak memory", ours["peak_mb"], "MB", memory_target),
    ]


if __name__ == "__main__":
    child_main({"build": build, "batchtui_console": batchtui_console, "datatable_console": datatable_console})
