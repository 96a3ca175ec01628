"""The Batch jobs grid's columns and rows: keyed by Job ID, in the operator's sort, paged."""

from __future__ import annotations

from typing import Any

from peewee import SQL, Field, fn

from ... import models as m
from ...vocabulary import BatchStatus
from ..format import priority_label, status_label, status_style, zoned
from ..paging import KeysetPager
from ..progress import bar, job_progress
from ..safe_text import one_line
from ..widgets.paged_grid import Column, GridRow

JOB_COLUMNS = [
    Column("id", "Job ID", 7, align="right"),
    Column("description", "Job description", 18, flex=True),
    Column("start", "Scheduled start", 20),
    Column("status", "Status", 10, essential=True),
    Column("progress", "Progress", 11, sortable=False, essential=True),
    Column("recurrence", "Recurrence", 14, flex=True),
    Column("company", "Company", 7),
    Column("created_by", "Created by", 10),
    Column("priority", "Priority", 8),
]
PROGRESS_COLUMN = 4

# The grid's columns -> the column of batch_job each sorts by.
SORT_FIELDS: dict[str, Field] = {
    "id": m.BatchJob.id,
    "description": m.BatchJob.description,
    "start": m.BatchJob.scheduled_start,
    "status": m.BatchJob.status,
    "recurrence": m.BatchJob.recurrence_text,
    "company": m.BatchJob.company,
    "created_by": m.BatchJob.created_by,
    "priority": m.BatchJob.priority,
}
DEFAULT_SORT = ("id", True)  # Job ID, newest first

STATUS_FILTERS = [("All statuses", -1)] + [(s.label, int(s)) for s in BatchStatus]


class JobsSource:
    """The Batch jobs grid's rows: keyed by Job ID, in the operator's sort, one page at a time."""

    def __init__(self, text: str = "", status: int | None = None, sort: str = "id",
                 descending: bool = True) -> None:
        self.text = text.strip()
        self.status = status
        self.sort = sort if sort in SORT_FIELDS else "id"
        self.descending = descending
        self.pager = KeysetPager(self._query, SORT_FIELDS[self.sort], m.BatchJob.id, descending, self._count)

    @property
    def criteria(self) -> tuple[str, int | None, str, bool]:
        """What it shows: the filter text and status, the sort column and direction."""
        return (self.text, self.status, self.sort, self.descending)

    def _filtered(self, query: Any) -> Any:
        J = m.BatchJob
        if self.status is not None:
            query = query.where(J.status == self.status)
        if self.text:
            cond = (J.description.contains(self.text) | (J.company == self.text.upper())
                    | (J.created_by == self.text) | J.recurrence_text.contains(self.text))
            if self.text.isdigit():
                cond = cond | (J.id == int(self.text))
            query = query.where(cond)
        return query

    def _query(self) -> Any:
        J = m.BatchJob
        return self._filtered(J.select(
            J.id, J.description, J.scheduled_start, J.time_zone, J.status, J.recurrence_text,
            J.company, J.created_by, J.priority, SORT_FIELDS[self.sort],
        ))

    def _count(self) -> int:
        # COUNT(*), not COUNT(id): SQLite counts the rows of its smallest index
        # without reading a column (13 ms for 1,000,000 jobs, against 40 ms).
        return self._filtered(m.BatchJob.select(fn.COUNT(SQL("*")))).scalar() or 0

    def count(self) -> int:
        return self.pager.count()

    def invalidate(self) -> None:
        self.pager.invalidate()

    def index_of(self, key: Any) -> int | None:
        return self.pager.index_of(key)

    def fetch(self, offset: int, limit: int) -> list[GridRow]:
        found = self.pager.fetch(offset, limit)
        running = [r[0] for r in found if r[4] in (BatchStatus.EXECUTING, BatchStatus.CANCELLING)]
        progress = job_progress(running) if running else {}
        rows = []
        for (jid, desc, start, tz, status, rec, company, created_by, priority, _sort) in found:
            done = progress.get(jid)
            rows.append(GridRow(jid, [
                str(jid), one_line(desc), zoned(start, tz), status_label(status),
                bar(done) if done is not None else "", one_line(rec or ""),
                one_line(company), one_line(created_by), priority_label(priority),
            ], {3: status_style(status), PROGRESS_COLUMN: "$text-warning"}))
        return rows
