"""Schema version 3: the index of the batch server's start order.

Waiting jobs (status 1) by priority (highest first), then start, walked one
priority at a time up to now (status.start_due_jobs). Without it, 20,000
jobs due at once were all read and sorted for every 256 started. Partial:
only Waiting jobs, so a run's other status changes leave it alone.

Frozen as batchtui 5c99734 ran it, the status written as the number it is.
"""

from __future__ import annotations

DUE_INDEX = ("CREATE INDEX IF NOT EXISTS batch_job_due ON batch_job "
             "(priority DESC, scheduled_start, id) WHERE status = 1")


def apply(db, migrator) -> None:
    db.execute_sql(DUE_INDEX)
